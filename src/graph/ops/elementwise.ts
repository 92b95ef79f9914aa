/** Elementwise ops, MatMul and Gemm: type inference and gradient rules. */
import { GraftError } from '../../errors.ts';
import type { Sym } from '../builder.ts';
import type { Dim } from '../ir.ts';
import { type DType, DTYPE_OF_ONNX, isFloat, isRawBits, tensor, toNumbers } from '../tensor.ts';
import { type GradCtx, type InferCtx, type TypeInfo, broadcastShapes, defineOp, noGradient, shapeError, staticShape } from './registry.ts';

const same = (c: InferCtx): TypeInfo[] => [{ dtype: c.inputs[0]!.dtype, shape: [...c.inputs[0]!.shape] }];
/** Integer results as ONNX Runtime computes them: truncated toward zero. */
const INT_FOLD: Record<string, (a: number, b: number) => number> = {
  Add: (a, b) => a + b, Sub: (a, b) => a - b, Mul: (a, b) => a * b, Div: (a, b) => Math.trunc(a / b),
  Max: (a, b) => Math.max(a, b), Min: (a, b) => Math.min(a, b),
  // ONNX Mod with fmod = 0: the sign follows the divisor, as Python's % (Swin's padding: (7 - H % 7) % 7).
  Mod: (a, b) => ((a % b) + b) % b,
};
const FLOAT_FOLD: Record<string, (a: number, b: number) => number> = { ...INT_FOLD, Div: (a, b) => a / b };

/**
 * The value of a small elementwise result whose inputs are all known at build time (shape arithmetic in
 * loaded models and in ONNX's function expansions: Size - axis, Cast(Size) for Range bounds).
 */
function fold(c: InferCtx, dtype: DType, shape: Dim[]): TypeInfo['value'] {
  if (isRawBits(dtype) || dtype === 'bool' || shape.length > 1 || shape.some((d) => typeof d !== 'number')) return undefined;
  const n = shape.length ? shape[0] as number : 1;
  if (n > 64) return undefined;
  const f = c.node.op === 'Mod' && c.int('fmod', 0) ? (a: number, b: number) => a % b : (isFloat(dtype) ? FLOAT_FOLD : INT_FOLD)[c.node.op];
  const ins = c.inputs.filter((t): t is TypeInfo => !!t);
  if (!f || ins.some((t) => !t.value || isRawBits(t.value.dtype))) return undefined;
  const vals = ins.map((t) => toNumbers(t.value!));
  const out = Array.from({ length: n }, (_, i) => vals.map((v) => v[v.length === 1 ? 0 : i]!).reduce(f));
  return tensor(dtype, shape as number[], out);
}

const bcast = (c: InferCtx): TypeInfo[] => {
  const dtype = c.inputs[0]!.dtype;
  const shape = broadcastShapes(c.node, c.inputs.filter((t): t is TypeInfo => !!t).map((t) => t.shape));
  const value = fold(c, dtype, shape);
  return [{ dtype, shape, ...(value ? { value } : {}) }];
};
const bcastBool = (c: InferCtx): TypeInfo[] => [{ dtype: 'bool', shape: bcast(c)[0]!.shape }];

function unary(op: string, grad?: (c: GradCtx, x: Sym, y: Sym, dy: Sym) => Sym): void {
  defineOp(op, { infer: same, ...(grad ? { grad: (c: GradCtx) => [grad(c, c.x(0), c.y(0), c.dy(0)!)] } : {}) });
}

// ---- binary arithmetic ------------------------------------------------------------------------------
// Only the wanted side is summed back: ORT keeps unused nodes, so an unbroadcast of a constant side (the 1 in
// 1 + erf(x), an attention mask) would cost a full reduction per step.
defineOp('Add', {
  infer: bcast,
  grad: (c) => [c.needs(0) ? c.unbroadcast(c.dy(0)!, c.x(0)) : null, c.needs(1) ? c.unbroadcast(c.dy(0)!, c.x(1)) : null],
});
defineOp('Sub', {
  infer: bcast,
  grad: (c) => [c.needs(0) ? c.unbroadcast(c.dy(0)!, c.x(0)) : null, c.needs(1) ? c.unbroadcast(c.b.neg(c.dy(0)!), c.x(1)) : null],
});
defineOp('Mul', {
  infer: bcast,
  grad: (c) => {
    const dy = c.dy(0)!;
    return [
      c.needs(0) ? c.unbroadcast(c.b.mul(dy, c.x(1)), c.x(0)) : null,
      c.needs(1) ? c.unbroadcast(c.b.mul(dy, c.x(0)), c.x(1)) : null,
    ];
  },
});
defineOp('Div', {
  infer: bcast,
  grad: (c) => {
    const { b } = c;
    const dy = c.dy(0)!;
    const da = c.needs(0) || c.needs(1) ? b.div(dy, c.x(1)) : null;
    // d(a/b)/db = -(a/b)/b * dy = -y * (dy/b)
    return [
      c.needs(0) ? c.unbroadcast(da!, c.x(0)) : null,
      c.needs(1) ? c.unbroadcast(b.neg(b.mul(da!, c.y(0))), c.x(1)) : null,
    ];
  },
});
defineOp('Pow', {
  infer: (c) => [{ dtype: c.inputs[0]!.dtype, shape: broadcastShapes(c.node, [c.inputs[0]!.shape, c.inputs[1]!.shape]) }],
  grad: (c) => {
    const { b } = c;
    const dy = c.dy(0)!;
    const x = c.x(0);
    const p = c.x(1).dtype === x.dtype ? c.x(1) : b.cast(c.x(1), x.dtype);
    const out: (Sym | null)[] = [null, null];
    const zero = b.like(0, x);
    if (c.needs(0)) {
      // p * x^(p-1), and 0 where p == 0 (x^0 is constant; at x == 0 the formula is 0 * inf), as PyTorch.
      const pm1 = b.sub(p, b.like(1, x));
      const d = b.op1('Where', [b.op1('Equal', [p, zero]), zero, b.mul(p, b.op1('Pow', [x, pm1]))]);
      out[0] = c.unbroadcast(b.mul(dy, d), x);
    }
    if (c.needs(1)) {
      // x^p * log(x), and 0 where x == 0 and p >= 0 (0^p is flat in p there; the formula is 0 * -inf), as PyTorch.
      const flat = b.op1('And', [b.op1('Equal', [x, zero]), b.op1('Not', [b.op1('Less', [p, zero])])]);
      const d = b.op1('Where', [flat, zero, b.mul(c.y(0), b.log(x))]);
      out[1] = c.unbroadcast(b.mul(dy, d), c.x(1));
    }
    return out;
  },
});
defineOp('Sum', {
  infer: bcast,
  grad: (c) => c.node.inputs.map((_, i) => (c.needs(i) ? c.unbroadcast(c.dy(0)!, c.x(i)) : null)),
});
/**
 * Variadic Max and Min: the gradient goes to the inputs equal to the result, shared evenly among ties (as
 * PyTorch's maximum/minimum split it), summed back over broadcasting.
 */
const variadicExtremum = (c: GradCtx): (Sym | null)[] => {
  const { b } = c;
  const y = c.y(0);
  const dy = c.dy(0)!;
  const masks = c.node.inputs.map((_, i) => b.cast(b.op1('Equal', [c.x(i), y]), dy.dtype));
  const count = masks.length === 1 ? null : masks.slice(1).reduce((a, m) => b.add(a, m), masks[0]!);
  const share = count ? b.div(dy, count) : dy;
  return c.node.inputs.map((_, i) => (c.needs(i) ? c.unbroadcast(b.mul(share, masks[i]!), c.x(i)) : null));
};
defineOp('Max', { infer: bcast, grad: variadicExtremum });
defineOp('Min', { infer: bcast, grad: variadicExtremum });
defineOp('Mean', {
  infer: bcast,
  grad: (c) => {
    const n = c.node.inputs.length;
    const g = n === 1 ? c.dy(0)! : c.b.mul(c.dy(0)!, c.b.like(1 / n, c.dy(0)!));
    return c.node.inputs.map((_, i) => (c.needs(i) ? c.unbroadcast(g, c.x(i)) : null));
  },
});
defineOp('Mod', {
  infer: bcast,
  // a - b * q with q = trunc(a / b) (fmod = 1, floats) or floor(a / b) (fmod = 0): da = dy, db = -dy * q.
  grad: (c) => {
    const { b } = c;
    const a = c.x(0);
    const d = c.x(1);
    if (!isFloat(a.dtype)) return [null, null];
    const r = b.div(a, d);
    const q = c.int('fmod', 0) ? b.mul(b.op1('Sign', [r]), b.op1('Floor', [b.op1('Abs', [r])])) : b.op1('Floor', [r]);
    const dy = c.dy(0)!;
    return [c.needs(0) ? c.unbroadcast(dy, a) : null, c.needs(1) ? c.unbroadcast(b.neg(b.mul(dy, q)), d) : null];
  },
});
defineOp('BitShift', { infer: bcast, ...noGradient(2) });
/** PRelu's slope as it broadcasts against x: before opset 7 a 1-D slope of x's channel count is per channel. */
function preluSlope(c: GradCtx): Sym {
  const x = c.x(0);
  const s = c.x(1);
  const perChannel = c.b.graph.opset < 7 && s.shape.length === 1 && x.shape.length > 2 && s.shape[0] === x.shape[1] && s.shape[0] !== x.shape[x.shape.length - 1];
  return perChannel ? c.b.reshape(s, [Number(s.shape[0]), ...new Array<number>(x.shape.length - 2).fill(1)]) : s;
}
defineOp('PRelu', {
  // Unidirectional broadcast: the output has x's shape.
  infer: same,
  grad: (c) => {
    // y = x > 0 ? x : slope * x (as PyTorch's prelu): dx = dy or slope * dy, dslope = x * dy where x <= 0.
    const { b } = c;
    const x = c.x(0);
    const dy = c.dy(0)!;
    const slope = preluSlope(c);
    const pos = b.op1('Greater', [x, b.like(0, x)]);
    const zero = b.like(0, dy);
    let ds = c.needs(1) ? c.unbroadcast(b.op1('Where', [pos, zero, b.mul(dy, x)]), slope) : null;
    if (ds && slope !== c.x(1)) ds = b.reshape(ds, c.x(1).shape.map(Number));
    return [c.needs(0) ? b.op1('Where', [pos, dy, b.mul(dy, slope)]) : null, ds];
  },
});

// ---- unary -------------------------------------------------------------------------------------------
defineOp('Neg', {
  // Folds small known values (-axis in ONNX's LayerNormalization expansion).
  infer: (c) => {
    const x = c.inputs[0]!;
    const ok = x.value && !isRawBits(x.value.dtype) && x.shape.length <= 1;
    return [{ dtype: x.dtype, shape: [...x.shape], ...(ok ? { value: tensor(x.dtype, x.shape as number[], toNumbers(x.value!).map((v) => -v)) } : {}) }];
  },
  grad: (c) => [c.b.neg(c.dy(0)!)],
});
unary('Identity', (_c, _x, _y, dy) => dy);
unary('Relu', (c, x, _y, dy) => c.b.op1('Where', [c.b.op1('Greater', [x, c.b.like(0, x)]), dy, c.b.like(0, dy)]));
unary('LeakyRelu', (c, x, _y, dy) => {
  const alpha = c.float('alpha', 0.01);
  return c.b.op1('Where', [c.b.op1('Greater', [x, c.b.like(0, x)]), dy, c.b.mul(dy, c.b.like(alpha, dy))]);
});
unary('Sigmoid', (c, _x, y, dy) => c.b.mul(dy, c.b.mul(y, c.b.sub(c.b.like(1, y), y))));
unary('Tanh', (c, _x, y, dy) => c.b.mul(dy, c.b.sub(c.b.like(1, y), c.b.mul(y, y))));
unary('Exp', (c, _x, y, dy) => c.b.mul(dy, y));
unary('Log', (c, x, _y, dy) => c.b.div(dy, x));
unary('Sqrt', (c, _x, y, dy) => c.b.div(dy, c.b.mul(y, c.b.like(2, y))));
unary('Reciprocal', (c, _x, y, dy) => c.b.neg(c.b.mul(dy, c.b.mul(y, y))));
unary('Abs', (c, x, _y, dy) => c.b.mul(dy, c.b.op1('Sign', [x])));
unary('Sign', (c, x) => zeroGrad(c, x));
// ---- trigonometric and hyperbolic (PyTorch's derivatives) ----------------------------------------------
unary('Sin', (c, x, _y, dy) => c.b.mul(dy, c.b.op1('Cos', [x])));
unary('Cos', (c, x, _y, dy) => c.b.neg(c.b.mul(dy, c.b.op1('Sin', [x]))));
unary('Tan', (c, _x, y, dy) => c.b.mul(dy, c.b.add(c.b.like(1, y), c.b.mul(y, y))));
/** sqrt(s * (1 - x^2)) or sqrt(x^2 + k) style denominators. */
const oneMinusSq = (c: GradCtx, x: Sym): Sym => c.b.sub(c.b.like(1, x), c.b.mul(x, x));
unary('Asin', (c, x, _y, dy) => c.b.div(dy, c.b.sqrt(oneMinusSq(c, x))));
unary('Acos', (c, x, _y, dy) => c.b.neg(c.b.div(dy, c.b.sqrt(oneMinusSq(c, x)))));
unary('Atan', (c, x, _y, dy) => c.b.div(dy, c.b.add(c.b.like(1, x), c.b.mul(x, x))));
unary('Sinh', (c, x, _y, dy) => c.b.mul(dy, c.b.op1('Cosh', [x])));
unary('Cosh', (c, x, _y, dy) => c.b.mul(dy, c.b.op1('Sinh', [x])));
unary('Asinh', (c, x, _y, dy) => c.b.div(dy, c.b.sqrt(c.b.add(c.b.mul(x, x), c.b.like(1, x)))));
unary('Acosh', (c, x, _y, dy) => c.b.div(dy, c.b.sqrt(c.b.sub(c.b.mul(x, x), c.b.like(1, x)))));
unary('Atanh', (c, x, _y, dy) => c.b.div(dy, oneMinusSq(c, x)));

// ---- activations (PyTorch's derivatives) -----------------------------------------------------------------
const positive = (c: GradCtx, x: Sym): Sym => c.b.op1('Greater', [x, c.b.like(0, x)]);
unary('Elu', (c, x, y, dy) => {
  const alpha = c.float('alpha', 1);
  return c.b.op1('Where', [positive(c, x), dy, c.b.mul(dy, c.b.add(y, c.b.like(alpha, y)))]);
});
unary('Selu', (c, x, y, dy) => {
  // x > 0: gamma; else gamma * alpha * e^x = y + gamma * alpha.
  const alpha = c.float('alpha', 1.67326319217681884765625);
  const gamma = c.float('gamma', 1.05070102214813232421875);
  const { b } = c;
  return b.op1('Where', [positive(c, x), b.mul(dy, b.like(gamma, dy)), b.mul(dy, b.add(y, b.like(gamma * alpha, y)))]);
});
unary('Celu', (c, x, _y, dy) => {
  // x > 0: 1; else exp(x / alpha).
  const alpha = c.float('alpha', 1);
  const { b } = c;
  return b.op1('Where', [positive(c, x), dy, b.mul(dy, b.exp(b.div(x, b.like(alpha, x))))]);
});
unary('ThresholdedRelu', (c, x, _y, dy) => {
  const alpha = c.float('alpha', 1);
  return c.b.op1('Where', [c.b.op1('Greater', [x, c.b.like(alpha, x)]), dy, c.b.like(0, dy)]);
});
unary('HardSigmoid', (c, x, _y, dy) => {
  // alpha where 0 < alpha * x + beta < 1, else 0.
  const { b } = c;
  const alpha = c.float('alpha', 0.2);
  const beta = c.float('beta', 0.5);
  const t = b.add(b.mul(x, b.like(alpha, x)), b.like(beta, x));
  const inside = b.op1('And', [b.op1('Greater', [t, b.like(0, x)]), b.op1('Less', [t, b.like(1, x)])]);
  return b.op1('Where', [inside, b.mul(dy, b.like(alpha, dy)), b.like(0, dy)]);
});
unary('HardSwish', (c, x, _y, dy) => {
  // PyTorch: 0 below -3, x / 3 + 1/2 up to 3, 1 above.
  const { b } = c;
  const mid = b.add(b.div(x, b.like(3, x)), b.like(0.5, x));
  const d = b.op1('Where', [b.op1('Less', [x, b.like(-3, x)]), b.like(0, x), b.op1('Where', [b.op1('Greater', [x, b.like(3, x)]), b.like(1, x), mid])]);
  return b.mul(dy, d);
});
unary('Softplus', (c, x, _y, dy) => c.b.mul(dy, c.b.sigmoid(x)));
unary('Softsign', (c, x, _y, dy) => {
  const d = c.b.add(c.b.like(1, x), c.b.op1('Abs', [x]));
  return c.b.div(dy, c.b.mul(d, d));
});
unary('Mish', (c, x, _y, dy) => {
  // d/dx x tanh(softplus(x)) = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2)
  const { b } = c;
  const t = b.op1('Tanh', [b.op1('Softplus', [x])]);
  return b.mul(dy, b.add(t, b.mul(b.mul(x, b.sigmoid(x)), b.sub(b.like(1, x), b.mul(t, t)))));
});
unary('Shrink', (c, x, _y, dy) => {
  // 1 where |x| > lambd, else 0.
  const lambd = c.float('lambd', 0.5);
  const { b } = c;
  const out = b.op1('Or', [b.op1('Less', [x, b.like(-lambd, x)]), b.op1('Greater', [x, b.like(lambd, x)])]);
  return b.op1('Where', [out, dy, b.like(0, dy)]);
});
// Step functions: zero gradient almost everywhere, as PyTorch gives (a tensor of zeros, not none).
const zeroGrad = (c: GradCtx, x: Sym) => c.b.op1('ConstantOfShape', [c.b.ints(staticShape(x))], { value: tensor(x.dtype, [1], [0]) });
unary('Floor', (c, x) => zeroGrad(c, x));
unary('Ceil', (c, x) => zeroGrad(c, x));
unary('Round', (c, x) => zeroGrad(c, x));
defineOp('Not', { infer: same, ...noGradient(1) });
unary('Erf', (c, x, _y, dy) => {
  // d erf(x)/dx = 2/sqrt(pi) * exp(-x^2)
  const { b } = c;
  return b.mul(dy, b.mul(b.like(2 / Math.sqrt(Math.PI), x), b.exp(b.neg(b.mul(x, x)))));
});
defineOp('Clip', {
  infer: same,
  nondiff: [1, 2],
  // Where the input passed through unclipped, y == x; the gradient flows exactly there. dY times the mask
  // cast to float: ORT's Where against a scalar zero was 1.2x slower over MobileNetV2's ReLU6 shapes on one
  // thread and 1.5x on two (measured).
  grad: (c) => [c.b.mul(c.dy(0)!, c.b.cast(c.b.op1('Equal', [c.y(0), c.x(0)]), c.dy(0)!.dtype))],
});

// ---- comparisons and selection -------------------------------------------------------------------------
// Boolean results: no gradient flows through them (the masks exporters build around attention).
const CMP_FOLD: Record<string, (a: number, b: number) => boolean> = {
  Equal: (a, b) => a === b, Greater: (a, b) => a > b, Less: (a, b) => a < b, GreaterOrEqual: (a, b) => a >= b, LessOrEqual: (a, b) => a <= b,
  And: (a, b) => !!a && !!b, Or: (a, b) => !!a || !!b, Xor: (a, b) => !!a !== !!b,
};
/** The values of small (at most 1-D, 64 elements) results whose inputs are all known at build time. */
function smallKnown(c: InferCtx, shape: Dim[]): { n: number; vals: number[][] } | undefined {
  if (shape.length > 1 || shape.some((d) => typeof d !== 'number')) return undefined;
  const n = shape.length ? shape[0] as number : 1;
  const ins = c.inputs.filter((t): t is TypeInfo => !!t);
  if (n > 64 || ins.length !== c.inputs.length || ins.some((t) => !t.value || isRawBits(t.value.dtype))) return undefined;
  return { n, vals: ins.map((t) => toNumbers(t.value!)) };
}
const at = (v: number[], i: number) => v[v.length === 1 ? 0 : i]!;
// Comparisons fold small known values: torch exports expand(-1, ...) as Where(Equal(shape, -1), 1, shape).
for (const op of Object.keys(CMP_FOLD)) {
  defineOp(op, {
    infer: (c) => {
      const shape = bcastBool(c)[0]!.shape;
      const k = smallKnown(c, shape);
      const value = k ? tensor('bool', shape as number[], Array.from({ length: k.n }, (_, i) => Number(CMP_FOLD[op]!(at(k.vals[0]!, i), at(k.vals[1]!, i))))) : undefined;
      return [{ dtype: 'bool', shape, ...(value ? { value } : {}) }];
    },
    ...noGradient(2),
  });
}
defineOp('IsNaN', { infer: (c) => [{ dtype: 'bool', shape: [...c.inputs[0]!.shape] }], ...noGradient(1) });
defineOp('IsInf', { infer: (c) => [{ dtype: 'bool', shape: [...c.inputs[0]!.shape] }], ...noGradient(1) });
defineOp('Where', {
  infer: (c) => {
    const dtype = c.inputs[1]!.dtype;
    const shape = broadcastShapes(c.node, c.inputs.map((t) => t!.shape));
    const k = isRawBits(dtype) ? undefined : smallKnown(c, shape);
    const value = k ? tensor(dtype, shape as number[], Array.from({ length: k.n }, (_, i) => (at(k.vals[0]!, i) ? at(k.vals[1]!, i) : at(k.vals[2]!, i)))) : undefined;
    return [{ dtype, shape, ...(value ? { value } : {}) }];
  },
  nondiff: [0],
  grad: (c) => {
    const { b } = c;
    const dy = c.dy(0)!;
    const zero = b.like(0, dy);
    return [
      null,
      c.needs(1) ? c.unbroadcast(b.op1('Where', [c.x(0), dy, zero]), c.x(1)) : null,
      c.needs(2) ? c.unbroadcast(b.op1('Where', [c.x(0), zero, dy]), c.x(2)) : null,
    ];
  },
});

// ---- matrix products -----------------------------------------------------------------------------------
function matmulShape(c: InferCtx): Dim[] {
  let a = c.inputs[0]!.shape;
  let bs = c.inputs[1]!.shape;
  const aVec = a.length === 1;
  const bVec = bs.length === 1;
  if (aVec) a = [1, a[0]!];
  if (bVec) bs = [bs[0]!, 1];
  const k1 = a[a.length - 1]!;
  const k2 = bs[bs.length - 2]!;
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) {
    throw shapeError(c.node, `inner dimensions differ: [${c.inputs[0]!.shape}] x [${c.inputs[1]!.shape}]`);
  }
  const batch = broadcastShapes(c.node, [a.slice(0, -2), bs.slice(0, -2)]);
  const out = [...batch, a[a.length - 2]!, bs[bs.length - 1]!];
  if (aVec) out.splice(out.length - 2, 1);
  if (bVec) out.splice(out.length - 1, 1);
  return out;
}

/** Swaps the last two axes. */
function tr(c: GradCtx, s: Sym): Sym {
  const r = s.shape.length;
  const perm = [...Array(r).keys()];
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return c.b.transpose(s, perm);
}

defineOp('MatMul', {
  infer: (c) => [{ dtype: c.inputs[0]!.dtype, shape: matmulShape(c) }],
  grad: (c) => {
    const { b } = c;
    let a = c.x(0);
    let w = c.x(1);
    let dy = c.dy(0)!;
    // Promote vectors to matrices, as MatMul itself does, so one formula serves all ranks.
    if (a.shape.length === 1) { a = b.reshape(a, [1, Number(a.shape[0])]); dy = b.op1('Unsqueeze', [dy, b.ints([-2])]); }
    if (w.shape.length === 1) { w = b.reshape(w, [Number(w.shape[0]), 1]); dy = b.op1('Unsqueeze', [dy, b.ints([-1])]); }
    const out: (Sym | null)[] = [null, null];
    if (c.needs(0)) out[0] = c.unbroadcast(b.matmul(dy, tr(c, w)), a);
    if (c.needs(1)) out[1] = c.unbroadcast(b.matmul(tr(c, a), dy), w);
    // Vectors were promoted above; reshape their gradients back.
    return out.map((g, i) => (g && g.shape.length !== c.x(i).shape.length ? b.reshape(g, c.x(i).shape.map(Number)) : g));
  },
});

defineOp('Gemm', {
  infer: (c) => {
    const ta = c.int('transA', 0);
    const tb = c.int('transB', 0);
    const a = c.inputs[0]!.shape;
    const bs = c.inputs[1]!.shape;
    const m = ta ? a[1]! : a[0]!;
    const n = tb ? bs[0]! : bs[1]!;
    const k1 = ta ? a[0]! : a[1]!;
    const k2 = tb ? bs[1]! : bs[0]!;
    if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) throw shapeError(c.node, `inner dimensions differ: [${a}] x [${bs}]`);
    return [{ dtype: c.inputs[0]!.dtype, shape: [m, n] }];
  },
  grad: (c) => {
    // Y = alpha * A' B' + beta * C, with A' = transA ? A^T : A, B' likewise.
    const { b } = c;
    const ta = c.int('transA', 0);
    const tb = c.int('transB', 0);
    const alpha = c.float('alpha', 1);
    const beta = c.float('beta', 1);
    const dy = c.dy(0)!;
    const gemm = (x: Sym, y: Sym, tA: number, tB: number) => b.op1('Gemm', [x, y], { transA: tA, transB: tB, alpha });
    const out: (Sym | null)[] = [null, null, null];
    if (c.needs(0)) out[0] = ta ? gemm(c.x(1), dy, tb, 1) : gemm(dy, c.x(1), 0, tb ? 0 : 1);
    if (c.needs(1)) out[1] = tb ? gemm(dy, c.x(0), 1, ta) : gemm(c.x(0), dy, ta ? 0 : 1, 0);
    if (c.node.inputs[2] && c.needs(2)) {
      const g = beta === 1 ? dy : b.mul(dy, b.like(beta, dy));
      out[2] = c.unbroadcast(g, c.x(2));
    }
    return out;
  },
});

// ---- Einsum (with gradients) and Det (inference only) ----------------------------------------------------

defineOp('Einsum', {
  infer: (c) => {
    const eq = c.str('equation', '').replace(/\s/g, '');
    const [lhs, rhs] = eq.split('->') as [string, string | undefined];
    const terms = lhs.split(',');
    const dims = new Map<string, Dim>();
    let ell: Dim[] = [];
    terms.forEach((term, k) => {
      const s = c.inputs[k]!.shape;
      const [pre, post] = term.includes('...') ? term.split('...') as [string, string] : [term, ''];
      const nEll = term.includes('...') ? s.length - pre.length - post.length : 0;
      if (nEll > 0) ell = broadcastShapes(c.node, [ell, s.slice(pre.length, pre.length + nEll)]);
      [...pre].forEach((ch, i) => { const d = s[i]!; if (!dims.has(ch) || dims.get(ch) === 1) dims.set(ch, d); });
      [...post].forEach((ch, i) => { const d = s[pre.length + nEll + i]!; if (!dims.has(ch) || dims.get(ch) === 1) dims.set(ch, d); });
    });
    let out: string;
    if (rhs !== undefined) out = rhs;
    else {
      const letters = terms.join('').replace(/\.\.\./g, '');
      const once = [...new Set(letters)].filter((ch) => letters.split(ch).length === 2).sort();
      out = (lhs.includes('...') ? '...' : '') + once.join('');
    }
    const shape: Dim[] = [];
    const [opre, opost] = out.includes('...') ? out.split('...') as [string, string] : [out, ''];
    for (const ch of opre) shape.push(dims.get(ch) ?? '?');
    if (out.includes('...')) shape.push(...ell);
    for (const ch of opost) shape.push(dims.get(ch) ?? '?');
    return [{ dtype: c.inputs[0]!.dtype, shape }];
  },
  // Operand k's gradient is the einsum of dY with the other operands onto k's subscripts; a letter only k
  // has is summed away in the forward, so its gradient is broadcast back along it. No ellipsis and no
  // diagonals, but for the batch diagonal of one operand.
  grad: (c) => {
    const { b } = c;
    const eq = c.str('equation', '').replace(/\s/g, '');
    const [lhs, rhs] = eq.split('->') as [string, string | undefined];
    const terms = lhs.split(',');
    const letters = terms.join('');
    const out = rhs ?? [...new Set(letters)].filter((ch) => letters.split(ch).length === 2).sort().join('');
    // A batch diagonal (PyTorch's diagonal / einsum '...ii->...i'): dY spread onto the diagonal.
    const diag = /^(\.\.\.|[a-zA-Z]*)([a-zA-Z])\2->\1\2$/.exec(eq);
    if (diag && terms.length === 1 && !diag[1]!.includes(diag[2]!)) {
      const n = staticShape(c.x(0)).at(-1)!;
      const eye = b.constant(tensor(c.x(0).dtype, [n, n], Array.from({ length: n * n }, (_, k) => (k % (n + 1) === 0 ? 1 : 0))));
      return [b.mul(b.reshape(c.dy(0)!, [...staticShape(c.dy(0)!), 1]), eye)];
    }
    if (eq.includes('.') || terms.some((t) => new Set(t).size !== t.length) || new Set(out).size !== out.length) {
      throw new GraftError('E_GRAD_UNSUPPORTED', `op Einsum (node "${c.node.name}") has no gradient for "${eq}" (ellipsis or a repeated subscript)`,
        'Write the contraction without "..." and diagonals, or freeze the layers before this node.', { op: 'Einsum', node: c.node.name });
    }
    const dy = c.dy(0)!;
    return terms.map((term, k) => {
      if (!c.needs(k)) return null;
      const others = terms.filter((_, j) => j !== k);
      const seen = out + others.join('');
      const kept = [...term].filter((ch) => seen.includes(ch)).join('');
      const g = b.op1('Einsum', [dy, ...terms.map((_, j) => j).filter((j) => j !== k).map((j) => c.x(j))], { equation: `${[out, ...others].join(',')}->${kept}` });
      if (kept === term) return g;
      // Letters only this operand has: insert them as size-1 axes (kept is in term's order), then expand.
      const xs = staticShape(c.x(k));
      return b.expand(b.reshape(g, [...term].map((ch, i) => (kept.includes(ch) ? xs[i]! : 1))), xs);
    });
  },
});
defineOp('Det', {
  infer: (c) => [{ dtype: c.inputs[0]!.dtype, shape: c.inputs[0]!.shape.slice(0, -2) }],
  // d det(A) / dA is A's cofactor matrix: C_ij = (-1)^(i+j) det(A without row i and column j), each minor
  // a Det of constant row and column gathers (fine for the small matrices Det sees in models).
  grad: (c) => {
    const { b } = c;
    const a = c.x(0);
    const s = staticShape(a);
    const n = s.at(-1)!;
    const r = s.length;
    const batch = s.slice(0, -2);
    if (n === 1) return [b.reshape(c.dy(0)!, s)];
    const entries: Sym[] = [];
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const rows = b.constant(tensor('int64', [n - 1], [...Array(n).keys()].filter((q) => q !== i)));
        const cols = b.constant(tensor('int64', [n - 1], [...Array(n).keys()].filter((q) => q !== j)));
        const minor = b.op1('Gather', [b.op1('Gather', [a, rows], { axis: r - 2 }), cols], { axis: r - 1 });
        let cof = n === 2 ? b.reshape(minor, batch) : b.op1('Det', [minor]);
        if ((i + j) % 2) cof = b.neg(cof);
        entries.push(b.reshape(cof, [...batch, 1]));
      }
    }
    const C = b.reshape(b.op1('Concat', entries, { axis: batch.length }), s);
    return [b.mul(C, b.reshape(c.dy(0)!, [...batch, 1, 1]))];
  },
});

// ---- typing of non-differentiable helpers ---------------------------------------------------------------
const DTYPE_CODES = DTYPE_OF_ONNX;
defineOp('Cast', {
  infer: (c) => {
    const x = c.inputs[0]!;
    const dtype = DTYPE_CODES[c.int('to', 1)] ?? 'float32';
    // Small known values carry through casts between numeric types (integers truncated toward zero).
    const ok = x.value && !isRawBits(x.value.dtype) && !isRawBits(dtype) && dtype !== 'bool' && x.shape.length <= 2 && x.shape.every((d) => typeof d === 'number');
    const v = ok ? toNumbers(x.value!).map((e) => (isFloat(dtype) ? e : Math.trunc(e))) : undefined;
    return [{ dtype, shape: [...x.shape], ...(v ? { value: tensor(dtype, x.shape as number[], v) } : {}) }];
  },
  // Float to float passes the gradient back (cast to the input's dtype); to or from an integer or bool, none flows.
  grad: (c) => [!isFloat(c.x(0).dtype) || !isFloat(c.y(0).dtype) ? null
    : c.x(0).dtype === c.dy(0)!.dtype ? c.dy(0)! : c.b.cast(c.dy(0)!, c.x(0).dtype)],
});
defineOp('CastLike', {
  nondiff: [1],
  infer: (c) => [{ dtype: c.inputs[1]!.dtype, shape: [...c.inputs[0]!.shape] }],
  grad: (c) => [!isFloat(c.x(0).dtype) || !isFloat(c.y(0).dtype) ? null
    : c.x(0).dtype === c.dy(0)!.dtype ? c.dy(0)! : c.b.cast(c.dy(0)!, c.x(0).dtype), null],
});
defineOp('Size', {
  ...noGradient(1),
  infer: (c) => {
    const s = c.inputs[0]!.shape;
    const known = s.every((d) => typeof d === 'number');
    return [{ dtype: 'int64', shape: [], ...(known ? { value: tensor('int64', [], [(s as number[]).reduce((a, d) => a * d, 1)]) } : {}) }];
  },
});
defineOp('EyeLike', {
  ...noGradient(1),
  infer: (c) => [{ dtype: c.node.attrs['dtype'] ? DTYPE_CODES[c.int('dtype', 1)] ?? 'float32' : c.inputs[0]!.dtype, shape: [...c.inputs[0]!.shape] }],
});
defineOp('Shape', {
  ...noGradient(1),
  infer: (c) => {
    const s = c.inputs[0]!.shape;
    const start = c.int('start', 0);
    const end = c.int('end', s.length);
    const norm = (v: number) => Math.min(Math.max(v < 0 ? v + s.length : v, 0), s.length);
    const dims = s.slice(norm(start), norm(end));
    const known = dims.every((d) => typeof d === 'number');
    return [{ dtype: 'int64', shape: [dims.length], ...(known ? { value: tensor('int64', [dims.length], dims as number[]) } : {}) }];
  },
});
defineOp('Constant', {
  infer: (c) => {
    const a = c.node.attrs['value'];
    if (a && 't' in a) return [{ dtype: a.t.dtype, shape: [...a.t.dims], ...(a.t.data.length <= 64 ? { value: a.t } : {}) }];
    const fa = c.node.attrs['value_float'];
    if (fa && 'f' in fa) return [{ dtype: 'float32', shape: [], value: tensor('float32', [], [fa.f]) }];
    const ia = c.node.attrs['value_int'];
    if (ia && 'i' in ia) return [{ dtype: 'int64', shape: [], value: tensor('int64', [], [ia.i]) }];
    const ias = c.node.attrs['value_ints'];
    if (ias && 'ints' in ias) return [{ dtype: 'int64', shape: [ias.ints.length], value: tensor('int64', [ias.ints.length], ias.ints) }];
    throw shapeError(c.node, 'Constant without a supported value attribute');
  },
});
