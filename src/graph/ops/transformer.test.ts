// The gradient rules that BERT, DistilBERT, RoBERTa and MiniLM-style encoders need: an audit of the op
// table, and float64 finite-difference checks of each differentiable rule, alone and composed the way
// exporters emit them (attention from MatMul/Softmax/Transpose, LayerNorm fused and decomposed, GELU in
// both forms, Gather embeddings, the attention-mask arithmetic and the shape ops around it).
// ORT has no float64 Erf kernel, so the erf form of GELU is checked in float32 and against its closed form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertGradcheck, input } from '../../runtime/gradcheck.ts';
import { GraphBuilder, type Sym } from '../builder.ts';
import { gradients } from '../autodiff.ts';
import { Session } from '../../runtime/session.ts';
import { tensor, toNumbers } from '../tensor.ts';
import { OPS } from './registry.ts';

const check = assertGradcheck;
const X = input('x');
const Y = input('y');
const Z = input('z');

/** Differentiable ops an encoder export uses, and ops it uses only on shapes, masks and indices. */
const DIFFERENTIABLE = ['MatMul', 'Gemm', 'Softmax', 'LogSoftmax', 'Transpose', 'Reshape', 'Unsqueeze', 'Squeeze', 'Concat', 'Split', 'Slice',
  'LayerNormalization', 'ReduceMean', 'ReduceSum', 'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Sqrt', 'Neg', 'Erf', 'Tanh', 'Gather', 'Expand',
  'Where', 'Cast', 'Identity', 'Dropout', 'CumSum'];
const NON_DIFFERENTIABLE = ['Shape', 'ConstantOfShape', 'Equal', 'Not', 'Less', 'Greater', 'Range'];

test('audit: every op an encoder export uses has a gradient rule or is declared non-differentiable', () => {
  for (const op of DIFFERENTIABLE) assert.ok(OPS.get(op)?.grad, `${op} has a gradient rule`);
  for (const op of NON_DIFFERENTIABLE) {
    const def = OPS.get(op);
    assert.ok(def?.grad, `${op} is declared (a gradient stops there instead of failing)`);
    const arity = op === 'Range' ? 3 : op === 'Equal' || op === 'Less' || op === 'Greater' ? 2 : 1;
    assert.deepEqual(def.nondiff, [...Array(arity).keys()], `${op}: every input is non-differentiable`);
  }
});

// ---- attention ------------------------------------------------------------------------------------------

/** softmax(q k^T / sqrt(d) + bias) v on [B, H, L, d], k given as [B, H, L, d] and transposed in the graph. */
function attention(b: GraphBuilder, q: Sym, k: Sym, v: Sym, bias?: Sym): Sym {
  const d = Number(q.shape.at(-1));
  let s = b.mul(b.matmul(q, b.transpose(k, [0, 1, 3, 2])), b.like(1 / Math.sqrt(d), q));
  if (bias) s = b.add(s, bias);
  return b.matmul(b.op1('Softmax', [s], { axis: -1 }), v);
}

test('attention: MatMul, Transpose, Softmax, with and without an additive mask', async () => {
  const shape = [2, 2, 4, 3];
  await check('attention q, k, v', (b, [q, k, v]) => attention(b, q!, k!, v!), [X(shape, { lo: -2, hi: 2 }), Y(shape, { lo: -2, hi: 2 }), Z(shape)]);
  // A broadcast [B, 1, 1, L] bias that is itself trained (relative-position-style) reaches its gradient too.
  await check('attention with trained bias [B,1,1,L]', (b, [q, k, v, m]) => attention(b, q!, k!, v!, m!),
    [X(shape), Y(shape), Z(shape), input('m')([2, 1, 1, 4])]);
  // Batched MatMul against a shared 2-D weight (the gradient sums over the batch axes).
  await check('MatMul [B,L,D] x [D,E]', (b, [x, w]) => b.matmul(x!, w!), [X([2, 3, 4]), Y([4, 5])]);
  await check('Transpose [0,2,1,3]', (b, [x]) => b.transpose(x!, [0, 2, 1, 3]), [X([2, 3, 4, 2])]);
});

test('attention-mask arithmetic: BERT (1 - mask) * -1e4, DistilBERT Equal/Where fill, with Shape/Expand/ConstantOfShape', async () => {
  const B = 2;
  const L = 4;
  const mask = [1, 1, 1, 0, 1, 1, 0, 0];
  const scores = X([B, 2, L, L], { lo: -2, hi: 2 });
  const M = input('mask')([B, L], { values: mask, wrt: false });
  // BERT: ext = (1 - Cast(Unsqueeze(mask))) * -10000, added to the scores.
  const bert = (b: GraphBuilder, [s, m]: Sym[]) => {
    const ext = b.op1('Unsqueeze', [m!, b.ints([1, 2])]);
    const add = b.mul(b.sub(b.like(1, ext), b.cast(ext, 'float64')), b.like(-1e4, ext));
    return b.op1('Softmax', [b.add(s!, add)], { axis: -1 });
  };
  await check('BERT additive mask', bert, [scores, M]);
  // DistilBERT: Where(Expand(Equal(mask, 0), Shape(scores)), min, scores); the fill value from ConstantOfShape.
  const distil = (b: GraphBuilder, [s, m]: Sym[]) => {
    const isPad = b.op1('Equal', [b.reshape(m!, [B, 1, 1, L]), b.scalar(0, 'float64')]);
    const shape = b.op1('Shape', [s!]);
    const cond = b.op1('Expand', [isPad, shape]);
    const fill = b.op1('ConstantOfShape', [shape], { value: tensor('float64', [1], [-1e30]) });
    return b.op1('Softmax', [b.op1('Where', [cond, fill, s!])], { axis: -1 });
  };
  const r = await check('DistilBERT Where fill', distil, [scores, M]);
  // Masked keys get exactly no gradient.
  const g = r.analytic['x']!;
  for (let i = 0; i < g.length; i++) if (mask[Math.floor(i / (2 * L * L)) * L + (i % L)] === 0) assert.equal(g[i], 0);
  // Where's two branches, and Expand of a trained tensor (the gradient sums over the expanded axes).
  await check('Where both branches', (b, [x, y, m]) => b.op1('Where', [b.op1('Equal', [m!, b.scalar(0, 'float64')]), x!, y!]),
    [X([2, 4]), Y([1, 4]), input('m')([2, 4], { values: mask, wrt: false })]);
  await check('Expand [1,3,1] -> [2,3,4]', (b, [x]) => b.op1('Expand', [x!, b.op1('Shape', [b.constant(tensor('float64', [2, 3, 4]))])]), [X([1, 3, 1])]);
});

test('a gradient reaching Shape, Equal, ConstantOfShape or a Cast to int stops there', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float64', [2, 3]);
  // x feeds only integer and boolean paths into the loss; the float path is a separate input.
  const ids = b.cast(b.mul(x, b.like(10, x)), 'int64');
  const asFloat = b.cast(ids, 'float64');
  const pad = b.cast(b.op1('Equal', [ids, b.constant(tensor('int64', [], [0]))]), 'float64');
  const ones = b.op1('ConstantOfShape', [b.op1('Shape', [x])], { value: tensor('float64', [1], [1]) });
  const w = b.input('w', 'float64', [2, 3]);
  const loss = b.op1('ReduceSum', [b.mul(w, b.add(b.add(asFloat, pad), ones))], { keepdims: 0 });
  const g = gradients(b, loss.name, ['x', 'w']);
  assert.ok(!g.has('x'), 'no gradient reaches x through integer and boolean paths');
  assert.ok(g.has('w'));
});

// ---- LayerNormalization and GELU ----------------------------------------------------------------------

test('LayerNormalization, fused (opset 17) and decomposed as older exports emit it (ReduceMean, Sub, Pow, Sqrt, Div)', async () => {
  const ln = (b: GraphBuilder, [x, g, be]: Sym[]) => b.op1('LayerNormalization', [x!, g!, be!], { axis: -1, epsilon: 1e-12 });
  await check('LayerNormalization eps 1e-12', ln, [X([2, 3, 8], { lo: -2, hi: 2 }), Y([8], { lo: 0.5, hi: 1.5 }), Z([8])]);
  const decomposed = (b: GraphBuilder, [x, g, be]: Sym[]) => {
    const d = b.sub(x!, b.reduceMean(x!, [-1]));
    const v = b.reduceMean(b.op1('Pow', [d, b.scalar(2, 'float64')]), [-1]);
    return b.add(b.mul(b.div(d, b.sqrt(b.add(v, b.like(1e-12, v)))), g!), be!);
  };
  await check('LayerNorm decomposed', decomposed, [X([2, 3, 8], { lo: -2, hi: 2 }), Y([8], { lo: 0.5, hi: 1.5 }), Z([8])]);
});

/** GELU, 0.5 x (1 + erf(x / sqrt 2)), as BERT exports it. */
function geluErf(b: GraphBuilder, x: Sym): Sym {
  return b.mul(b.mul(x, b.add(b.like(1, x), b.op1('Erf', [b.div(x, b.like(Math.SQRT2, x))]))), b.like(0.5, x));
}

/** GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
function geluTanh(b: GraphBuilder, x: Sym): Sym {
  const inner = b.mul(b.add(x, b.mul(b.op1('Pow', [x, b.like(3, x)]), b.like(0.044715, x))), b.like(Math.sqrt(2 / Math.PI), x));
  return b.mul(b.mul(b.like(0.5, x), x), b.add(b.like(1, x), b.op1('Tanh', [inner])));
}

test('GELU, tanh form: float64 finite differences', async () => {
  await check('GELU tanh', (b, [x]) => geluTanh(b, x!), [X([4, 8], { lo: -4, hi: 4 })]);
  await check('Tanh', (b, [x]) => b.op1('Tanh', [x!]), [X([3, 5], { lo: -3, hi: 3 })]);
  await check('Pow x^3', (b, [x]) => b.op1('Pow', [x!, b.scalar(3, 'float64')]), [X([3, 5], { lo: -2, hi: 2 })]);
});

/** erf(x) in float64 by its Taylor series (accurate to ~1e-9 for |x| <= 4.5; beyond, erf is +-1 within 3e-10). */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax > 4.5) return Math.sign(x);
  let sum = 0;
  let term = ax;
  for (let n = 0; n < 200; n++) {
    sum += term / (2 * n + 1);
    term *= -(ax * ax) / (n + 1);
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
}

test('GELU, erf form: float32 finite differences and the closed-form derivative', async () => {
  await check('Erf float32', (b, [x]) => b.op1('Erf', [x!]), [X([3, 5], { lo: -2, hi: 2 })], { dtype: 'float32' });
  await check('GELU erf float32', (b, [x]) => geluErf(b, x!), [X([4, 8], { lo: -4, hi: 4 })], { dtype: 'float32' });
  // The autodiff gradient of the erf form against Phi(x) + x phi(x), evaluated in float64.
  const b = new GraphBuilder();
  const xs = Array.from({ length: 41 }, (_, i) => -5 + i * 0.25);
  const x = b.input('x', 'float32', [xs.length]);
  const y = geluErf(b, x);
  const g = gradients(b, b.op1('ReduceSum', [y], { keepdims: 0 }).name, ['x']).get('x')!;
  b.output(y, 'y');
  b.output(g, 'g');
  const s = await Session.create(b.graph, { threads: 1 });
  const r = await s.run({ x: tensor('float32', [xs.length], xs) });
  await s.dispose();
  const ys = toNumbers(r['y']!);
  const gs = toNumbers(r['g']!);
  xs.forEach((v, i) => {
    const cdf = 0.5 * (1 + erf(v / Math.SQRT2));
    const pdf = Math.exp(-v * v / 2) / Math.sqrt(2 * Math.PI);
    assert.ok(Math.abs(ys[i]! - v * cdf) < 1e-6 * Math.max(1, Math.abs(v)), `gelu(${v}) = ${ys[i]}, want ${v * cdf}`);
    assert.ok(Math.abs(gs[i]! - (cdf + v * pdf)) < 2e-6, `gelu'(${v}) = ${gs[i]}, want ${cdf + v * pdf}`);
  });
});

// ---- Gather embeddings ----------------------------------------------------------------------------------

test('Gather: the table gradient is a scatter-add, repeated indices accumulate', async () => {
  const ids = [3, 1, 3, 0, 3, 1];
  const idsIn = input('ids')([2, 3], { values: ids, dtype: 'int64', wrt: false });
  const r = await check('Gather table [5,4] by ids [2,3]', (b, [t, i]) => b.op1('Gather', [t!, i!], { axis: 0 }), [X([5, 4]), idsIn]);
  // Against the scatter-add written out: row k of the gradient is the sum of R over the positions holding k.
  // With the loss sum(Gather(T, ids) * R), that is sum over positions p with ids[p] == k of R[p, :].
  const g = r.analytic['x']!;
  const num = r.numeric['x']!;
  for (let k = 0; k < 5; k++) {
    const uses = ids.filter((v) => v === k).length;
    for (let j = 0; j < 4; j++) {
      if (uses === 0) assert.equal(g[k * 4 + j], 0, `row ${k} is never gathered`);
      if (!Number.isNaN(num[k * 4 + j]!)) assert.ok(Math.abs(g[k * 4 + j]! - num[k * 4 + j]!) < 1e-7);
    }
  }
  // A direct check of accumulation: with R = 1 everywhere, the gradient of row k is the count of k in ids.
  const b = new GraphBuilder();
  const t = b.input('t', 'float64', [5, 2]);
  const i = b.constant(tensor('int64', [2, 3], ids));
  const loss = b.op1('ReduceSum', [b.op1('Gather', [t, i], { axis: 0 })], { keepdims: 0 });
  b.output(gradients(b, loss.name, ['t']).get('t')!, 'g');
  const s = await Session.create(b.graph, { threads: 1 });
  const out = toNumbers((await s.run({ t: tensor('float64', [5, 2]) }))['g']!);
  await s.dispose();
  assert.deepEqual(out, [1, 1, 2, 2, 0, 0, 3, 3, 0, 0]);
  // Negative indices, another axis, and float indices cast to int64 in the graph (how bertEncoder reads ids).
  await check('Gather axis 1, negative indices', (b2, [x, j]) => b2.op1('Gather', [x!, j!], { axis: 1 }),
    [X([2, 4, 3]), input('j')([3], { values: [-1, 0, -1], dtype: 'int64', wrt: false })]);
  await check('Gather by float ids cast to int64', (b2, [x, f]) => b2.op1('Gather', [x!, b2.cast(f!, 'int64')]),
    [X([6, 3]), input('f')([4], { values: [5, 2, 2, 0], wrt: false })]);
});

// ---- the shape ops exporters emit around attention ------------------------------------------------------

test('Reshape, Unsqueeze, Squeeze, Concat, Split, Slice: the head split and merge', async () => {
  // [B*L, 3D] -> [B, L, 3, H, d] -> [3, B, H, L, d] -> q, k, v: the fused-QKV head split.
  await check('QKV split', (b, [x]) => {
    const t = b.transpose(b.reshape(x!, [2, 3, 3, 2, 2]), [2, 0, 3, 1, 4]);
    const [q, k, v] = b.op('Split', [t, b.ints([1, 1, 1])], { axis: 0 }, { outputs: 3 });
    return b.add(b.mul(q!, k!), v!);
  }, [X([6, 12])]);
  await check('head merge', (b, [x]) => b.reshape(b.transpose(x!, [0, 2, 1, 3]), [6, 4]), [X([2, 2, 3, 2])]);
  await check('Unsqueeze, Squeeze', (b, [x]) => b.op1('Squeeze', [b.op1('Unsqueeze', [x!, b.ints([0, 3])]), b.ints([0])]), [X([2, 3])]);
  await check('Concat', (b, [x, y]) => b.op1('Concat', [x!, y!], { axis: 1 }), [X([2, 3]), Y([2, 2])]);
  await check('Slice [:, 0] (CLS)', (b, [x]) => b.op1('Slice', [x!, b.ints([0]), b.ints([1]), b.ints([1])]), [X([2, 4, 3])]);
});

test('CumSum (RoBERTa position ids, float prefix sums): plain, exclusive, reverse', async () => {
  for (const attrs of [{}, { exclusive: 1 }, { reverse: 1 }, { exclusive: 1, reverse: 1 }]) {
    await check(`CumSum ${JSON.stringify(attrs)}`, (b, [x]) => b.op1('CumSum', [x!, b.constant(tensor('int64', [], [1]))], attrs), [X([2, 5])]);
  }
});

// ---- a whole encoder layer -------------------------------------------------------------------------------

test('one post-LN encoder layer in float64: Gemm projections, masked attention, residuals, LayerNorm, tanh-GELU FFN', async () => {
  const [B, L, D, H, F] = [2, 3, 4, 2, 6];
  const d = D / H;
  const mask = [1, 1, 0, 1, 1, 1];
  const layer = (b: GraphBuilder, [x, wqkv, wo, w1, w2, m]: Sym[]) => {
    const qkv = b.op1('Gemm', [x!, wqkv!]);
    const t = b.transpose(b.reshape(qkv, [B, L, 3, H, d]), [2, 0, 3, 1, 4]);
    const [q, k, v] = b.op('Split', [t, b.ints([1, 1, 1])], { axis: 0 }, { outputs: 3 }).map((s) => b.op1('Squeeze', [s, b.ints([0])]));
    const bias = b.mul(b.sub(b.like(1, m!), b.reshape(m!, [B, 1, 1, L])), b.like(-1e4, m!));
    const ctx = b.reshape(b.transpose(attention(b, q!, k!, v!, bias), [0, 2, 1, 3]), [B * L, D]);
    const ln = (s: Sym) => b.op1('LayerNormalization', [s, b.constant(tensor('float64', [D], [1, 1.1, 0.9, 1])), b.constant(tensor('float64', [D], [0, 0.1, 0, -0.1]))], { epsilon: 1e-12 });
    const h = ln(b.add(x!, b.op1('Gemm', [ctx, wo!])));
    return ln(b.add(h, b.op1('Gemm', [geluTanh(b, b.op1('Gemm', [h, w1!])), w2!])));
  };
  await check('encoder layer', layer, [
    X([B * L, D]), input('wqkv')([D, 3 * D]), input('wo')([D, D]), input('w1')([D, F]), input('w2')([F, D]),
    input('m')([B, L], { values: mask, wrt: false }),
  ], { maxElems: 24 });
});

// ---- an op without a rule ----------------------------------------------------------------------------------

test('ReduceL2 (L2-norm pooling over tokens) has a gradient', async () => {
  await check('ReduceL2 pooling', (b, [h]) => b.op1('ReduceL2', [h!], { axes: [1], keepdims: 0 }), [input('h')([2, 5, 4])]);
});

test('Einsum as a projection (bld,de->ble) has a gradient for both operands', async () => {
  await check('Einsum projection', (b, [h, w]) => b.op1('Einsum', [h!, w!], { equation: 'bld,de->ble' }), [input('h')([2, 5, 4]), input('w')([4, 3])]);
});
