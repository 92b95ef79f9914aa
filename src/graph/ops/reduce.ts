/** Reductions and normalisations: type inference and gradient rules. */
import type { Sym } from '../builder.ts';
import type { Dim } from '../ir.ts';
import { type DType, sizeOf, tensor } from '../tensor.ts';
import { type GradCtx, type InferCtx, type TypeInfo, defineOp, noGradient, normAxis, staticShape } from './registry.ts';

/** Reduction axes come from an attribute (opset < 18 ReduceMean & co) or an input (ReduceSum >= 13). */
function reduceAxes(c: InferCtx, rank: number): number[] {
  const fromInput = c.node.inputs[1] ? c.constInts(1) : undefined;
  const axes = fromInput ?? c.ints('axes', []);
  if (axes.length === 0) return c.int('noop_with_empty_axes', 0) ? [] : [...Array(rank).keys()];
  return axes.map((a) => normAxis(a, rank));
}

function reduceInfer(c: InferCtx) {
  const s = c.inputs[0]!.shape;
  const axes = reduceAxes(c, s.length);
  const keep = c.int('keepdims', 1);
  const out: Dim[] = [];
  s.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keep) out.push(1);
  });
  return [{ dtype: c.inputs[0]!.dtype, shape: out }];
}

/** Broadcasts the reduced gradient back over the reduced axes. */
function spread(c: GradCtx, scale: (count: number) => number): Sym {
  const { b } = c;
  const x = c.x(0);
  const xs = x.shape.map(Number);
  const axes = reduceAxes(c, xs.length);
  const kept = xs.map((d, i) => (axes.includes(i) ? 1 : d));
  let g = b.reshape(c.dy(0)!, kept);
  const count = axes.reduce((n, a) => n * xs[a]!, 1);
  const k = scale(count);
  if (k !== 1) g = b.mul(g, b.like(k, g));
  return b.expand(g, xs);
}

defineOp('ReduceSum', { infer: reduceInfer, nondiff: [1], grad: (c) => [spread(c, () => 1)] });
defineOp('ReduceMean', { infer: reduceInfer, nondiff: [1], grad: (c) => [spread(c, (n) => 1 / n)] });
/**
 * Max and min: the gradient goes to the elements equal to the result, shared evenly among ties (as
 * PyTorch's amax/amin do), so it is a valid subgradient whatever the ties.
 */
export function extremumGrad(b: GradCtx['b'], x: Sym, y: Sym, dy: Sym, kept: number[], axes: number[]): Sym {
  const xs = staticShape(x);
  const yk = b.reshape(y, kept);
  const mask = b.cast(b.op1('Equal', [x, yk]), x.dtype);
  const count = b.reduceSum(mask, axes);
  return b.mul(mask, b.expand(b.div(b.reshape(dy, kept), count), xs));
}

const extremum = (c: GradCtx): Sym => {
  const xs = c.x(0).shape.map(Number);
  const axes = reduceAxes(c, xs.length);
  return extremumGrad(c.b, c.x(0), c.y(0), c.dy(0)!, xs.map((d, i) => (axes.includes(i) ? 1 : d)), axes);
};
defineOp('ReduceMax', { infer: reduceInfer, nondiff: [1], grad: (c) => [extremum(c)] });
defineOp('ReduceMin', { infer: reduceInfer, nondiff: [1], grad: (c) => [extremum(c)] });
/** dY and Y reshaped to keep the reduced axes as 1s, and dY spread back over x's shape. */
function reduced(c: GradCtx): { y: Sym; g: Sym; kept: number[] } {
  const { b } = c;
  const xs = c.x(0).shape.map(Number);
  const axes = reduceAxes(c, xs.length);
  const kept = xs.map((d, i) => (axes.includes(i) ? 1 : d));
  return { y: b.reshape(c.y(0), kept), g: b.expand(b.reshape(c.dy(0)!, kept), xs), kept };
}
// PyTorch's derivatives: sign(x) for the L1 norm, x / y for L2 (0 where y = 0), exp(x - y) for logsumexp,
// 2x for the sum of squares, 1 / sum for the log of the sum, y / x for the product (x has no zeros).
defineOp('ReduceL1', { infer: reduceInfer, nondiff: [1], grad: (c) => [c.b.mul(reduced(c).g, c.b.op1('Sign', [c.x(0)]))] });
defineOp('ReduceL2', {
  infer: reduceInfer,
  nondiff: [1],
  grad: (c) => {
    const { b } = c;
    const { y, g } = reduced(c);
    const zero = b.op1('Equal', [y, b.like(0, y)]);
    const safe = b.op1('Where', [zero, b.like(1, y), y]);
    return [b.op1('Where', [zero, b.like(0, g), b.div(b.mul(g, c.x(0)), safe)])];
  },
});
defineOp('ReduceLogSumExp', { infer: reduceInfer, nondiff: [1], grad: (c) => { const r = reduced(c); return [c.b.mul(r.g, c.b.exp(c.b.sub(c.x(0), r.y)))]; } });
defineOp('ReduceLogSum', { infer: reduceInfer, nondiff: [1], grad: (c) => { const r = reduced(c); return [c.b.div(r.g, c.b.exp(r.y))]; } });
defineOp('ReduceSumSquare', { infer: reduceInfer, nondiff: [1], grad: (c) => [c.b.mul(reduced(c).g, c.b.mul(c.x(0), c.b.like(2, c.x(0))))] });
defineOp('ReduceProd', { infer: reduceInfer, nondiff: [1], grad: (c) => { const r = reduced(c); return [c.b.div(c.b.mul(r.g, r.y), c.x(0))]; } });
const argInfer = (c: InferCtx): TypeInfo[] => {
  const s = c.inputs[0]!.shape;
  const axis = normAxis(c.int('axis', 0), s.length);
  const keep = c.int('keepdims', 1);
  const out: Dim[] = [];
  s.forEach((d, i) => { if (i !== axis) out.push(d); else if (keep) out.push(1); });
  return [{ dtype: 'int64', shape: out }];
};
defineOp('ArgMin', { infer: argInfer, ...noGradient(1) });
defineOp('ArgMax', { infer: argInfer, ...noGradient(1) });

// ---- softmax family ----------------------------------------------------------------------------------

const same = (c: InferCtx): TypeInfo[] => [{ dtype: c.inputs[0]!.dtype, shape: [...c.inputs[0]!.shape] }];

/** The axes a softmax normalises over: one axis from opset 13, all axes from `axis` on before that. */
function softmaxAxes(c: GradCtx): number[] {
  const r = c.x(0).shape.length;
  const old = c.b.graph.opset < 13;
  const axis = normAxis(c.int('axis', old ? 1 : -1), r);
  return old ? Array.from({ length: r - axis }, (_, k) => axis + k) : [axis];
}

defineOp('Softmax', {
  infer: same,
  grad: (c) => {
    // dx = y * (dy - sum(dy * y))
    const { b } = c;
    const y = c.y(0);
    const dy = c.dy(0)!;
    return [b.mul(y, b.sub(dy, b.reduceSum(b.mul(dy, y), softmaxAxes(c))))];
  },
});

defineOp('LogSoftmax', {
  infer: same,
  grad: (c) => {
    // dx = dy - softmax(x) * sum(dy), with softmax(x) = exp(y)
    const { b } = c;
    const dy = c.dy(0)!;
    return [b.sub(dy, b.mul(b.exp(c.y(0)), b.reduceSum(dy, softmaxAxes(c))))];
  },
});

// One-hot of the argmax: piecewise constant, so a zero gradient (as the step functions).
defineOp('Hardmax', { infer: same, grad: (c) => [c.b.op1('ConstantOfShape', [c.b.ints(staticShape(c.x(0)))], { value: tensor(c.x(0).dtype, [1], [0]) })] });

defineOp('TopK', {
  nondiff: [1],
  infer: (c) => {
    const x = c.inputs[0]!;
    const axis = normAxis(c.int('axis', -1), x.shape.length);
    const k = c.constInts(1)?.[0];
    const shape = x.shape.map((d, i) => (i === axis ? k ?? '?' : d));
    return [{ dtype: x.dtype, shape }, { dtype: 'int64', shape: [...shape] }];
  },
  grad: (c) => {
    // Scatter-add dY into zeros at the indices the values came from (the ScatterElements form of PyTorch's rule).
    const { b } = c;
    if (!c.dy(0)) return [null, null];
    const x = c.x(0);
    const xs = staticShape(x);
    const axis = normAxis(c.int('axis', -1), xs.length);
    const zeros = b.op1('ConstantOfShape', [b.ints(xs)], { value: tensor(x.dtype, [1], [0]) });
    return [b.op1('ScatterElements', [zeros, c.ensureOutput(1), c.dy(0)!], { axis, reduction: 'add' }), null];
  },
});

// ---- LayerNormalization ------------------------------------------------------------------------------

const STASH: Record<number, DType> = { 1: 'float32', 10: 'float16', 11: 'float64' };

defineOp('LayerNormalization', {
  infer: (c) => {
    const x = c.inputs[0]!;
    const axis = normAxis(c.int('axis', -1), x.shape.length);
    const stats: Dim[] = x.shape.map((d, i) => (i < axis ? d : 1));
    const u = STASH[c.int('stash_type', 1)] ?? 'float32';
    return [{ dtype: x.dtype, shape: [...x.shape] }, { dtype: u, shape: stats }, { dtype: u, shape: [...stats] }];
  },
  grad: (c) => {
    const { b } = c;
    const x = c.x(0);
    const xs = staticShape(x);
    const axis = normAxis(c.int('axis', -1), xs.length);
    const axes = Array.from({ length: xs.length - axis }, (_, k) => axis + k);
    const count = sizeOf(xs.slice(axis));
    const asX = (s: Sym) => (s.dtype === x.dtype ? s : b.cast(s, x.dtype));
    // Gradients may reach any of Y, Mean and InvStdDev (the last two in the stash dtype).
    const dy = c.dy(0);
    const dMean = c.dy(1) && asX(c.dy(1)!);
    const dInv = c.dy(2) && asX(c.dy(2)!);
    let mean: Sym;
    let inv: Sym;
    if (x.dtype === 'float64') {
      // ORT saves the statistics in float32 even for float64 input; recompute them at full precision.
      const eps = c.float('epsilon', 1e-5);
      mean = b.reduceMean(x, axes);
      const d = b.sub(x, mean);
      inv = b.op1('Reciprocal', [b.sqrt(b.add(b.reduceMean(b.mul(d, d), axes), b.like(eps, x)))]);
    } else {
      mean = asX(c.ensureOutput(1));
      inv = asX(c.ensureOutput(2));
    }
    const xhat = b.mul(b.sub(x, mean), inv);
    const out: (Sym | null)[] = [null, null, null];
    if (c.needs(0)) {
      const parts: Sym[] = [];
      if (dy) {
        // Through Y: dx = inv * (g - mean(g) - xhat * mean(g * xhat)), g = dy * scale
        const g = b.mul(dy, c.x(1));
        parts.push(b.mul(inv, b.sub(b.sub(g, b.reduceMean(g, axes)), b.mul(xhat, b.reduceMean(b.mul(g, xhat), axes)))));
      }
      // Through Mean = E[x]: d mean / dx = 1/N. Through InvStdDev = (var + eps)^-1/2 with var = E[(x - mean)^2]:
      // d inv / dx = -inv^3 / 2 * 2 (x - mean) / N = -inv^2 * xhat / N. Together (dMean - dInv * inv^2 * xhat) / N.
      let stats: Sym | null = dMean;
      if (dInv) {
        const t = b.mul(b.mul(dInv, b.mul(inv, inv)), xhat);
        stats = stats ? b.sub(stats, t) : b.neg(t);
      }
      if (stats) {
        stats = b.mul(stats, b.like(1 / count, stats));
        parts.push(parts.length || dInv ? stats : b.expand(stats, xs));
      }
      out[0] = parts.length === 2 ? b.add(parts[0]!, parts[1]!) : parts[0]!;
    }
    if (dy && c.needs(1)) out[1] = c.unbroadcast(b.mul(dy, xhat), c.x(1));
    if (dy && c.node.inputs[2] && c.needs(2)) out[2] = c.unbroadcast(dy, c.x(2));
    return out;
  },
});

// ---- InstanceNormalization -----------------------------------------------------------------------------

defineOp('InstanceNormalization', {
  infer: same,
  grad: (c) => {
    // Per (example, channel) over the spatial axes, as LayerNormalization's rule with a per-channel scale.
    const { b } = c;
    const x = c.x(0);
    const xs = staticShape(x);
    const axes = Array.from({ length: xs.length - 2 }, (_, k) => k + 2);
    const perC = (s: Sym) => b.reshape(s, [xs[1]!, ...axes.map(() => 1)]);
    const eps = c.float('epsilon', 1e-5);
    const mean = b.reduceMean(x, axes);
    const d = b.sub(x, mean);
    const inv = b.op1('Reciprocal', [b.sqrt(b.add(b.reduceMean(b.mul(d, d), axes), b.like(eps, x)))]);
    const xhat = b.mul(d, inv);
    const dy = c.dy(0)!;
    const out: (Sym | null)[] = [null, null, null];
    if (c.needs(0)) {
      const g = b.mul(dy, perC(c.x(1)));
      out[0] = b.mul(inv, b.sub(b.sub(g, b.reduceMean(g, axes)), b.mul(xhat, b.reduceMean(b.mul(g, xhat), axes))));
    }
    const batchSpatial = [0, ...axes];
    if (c.needs(1)) out[1] = b.reduceSum(b.mul(dy, xhat), batchSpatial, false);
    if (c.needs(2)) out[2] = b.reduceSum(dy, batchSpatial, false);
    return out;
  },
});

// ---- CumSum (RoBERTa-style position ids; float prefix sums) --------------------------------------------

defineOp('CumSum', {
  nondiff: [1],
  infer: same,
  grad: (c) => {
    // d/dx_j of sum_{i<=j} x_i is the sum of dy_i over i >= j: the cumulative sum the other way round.
    const reverse = c.int('reverse', 0);
    return [c.b.op1('CumSum', [c.dy(0)!, c.x(1)], { exclusive: c.int('exclusive', 0), reverse: reverse ? 0 : 1 }), null];
  },
});
