/** Reductions and normalisations: type inference and gradient rules. */
import type { Sym } from '../builder.ts';
import type { Dim } from '../ir.ts';
import { type GradCtx, type InferCtx, defineOp, normAxis } from './registry.ts';

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
defineOp('ReduceMax', { infer: reduceInfer });
defineOp('ReduceMin', { infer: reduceInfer });
defineOp('ReduceL2', { infer: reduceInfer });
defineOp('ArgMax', {
  infer: (c) => {
    const s = c.inputs[0]!.shape;
    const axis = normAxis(c.int('axis', 0), s.length);
    const keep = c.int('keepdims', 1);
    const out: Dim[] = [];
    s.forEach((d, i) => { if (i !== axis) out.push(d); else if (keep) out.push(1); });
    return [{ dtype: 'int64', shape: out }];
  },
});
