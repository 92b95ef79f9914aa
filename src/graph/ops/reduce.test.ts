import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertGradcheck, input, rng } from '../../runtime/gradcheck.ts';
import { GraphBuilder, type Sym } from '../builder.ts';
import { gradients } from '../autodiff.ts';
import { GraftError } from '../../errors.ts';
import { Session } from '../../runtime/session.ts';
import { sizeOf, tensor } from '../tensor.ts';
import { OPS, defineOp } from './registry.ts';

const check = assertGradcheck;

const A = input('a');
const B = input('b');
const C = input('c');

test('ReduceSum and ReduceMean over several axes, keepdims 0 and 1', async () => {
  const axesCases = [[0], [1], [-1], [0, 2], [-3, -1], []];
  for (const axes of axesCases) {
    for (const keepdims of [0, 1]) {
      await check(`ReduceSum axes=[${axes}] keepdims=${keepdims}`,
        (b, [x]) => b.op1('ReduceSum', [x!, ...(axes.length ? [b.ints(axes)] : [])], { keepdims }), [A([2, 3, 4])]);
      await check(`ReduceMean axes=[${axes}] keepdims=${keepdims}`,
        (b, [x]) => b.op1('ReduceMean', [x!], { ...(axes.length ? { axes } : {}), keepdims }), [A([2, 3, 4])]);
    }
  }
  for (const op of ['ReduceMax', 'ReduceMin']) {
    for (const [axes, keepdims] of [[[1], 0], [[0, 2], 1], [[], 0]] as [number[], number][]) {
      await check(`${op} axes=[${axes}] keepdims=${keepdims}`, (b, [x]) => b.op1(op, [x!], { ...(axes.length ? { axes } : {}), keepdims }), [A([2, 3, 4])]);
    }
  }
  await check('ReduceSum noop_with_empty_axes', (b, [x]) => b.op1('ReduceSum', [x!], { noop_with_empty_axes: 1 }), [A([2, 3])]);
});

test('Softmax and LogSoftmax on each axis', async () => {
  for (const op of ['Softmax', 'LogSoftmax']) {
    for (const axis of [undefined, 0, 1, -2]) {
      await check(`${op} axis=${axis}`, (b, [x]) => b.op1(op, [x!], axis === undefined ? {} : { axis }), [A([3, 4, 5], { lo: -2, hi: 2 })]);
    }
  }
  await check('Softmax into LogSoftmax', (b, [x]) => b.op1('LogSoftmax', [b.op1('Softmax', [x!], { axis: 0 })], { axis: 1 }), [A([4, 3])]);
});

test('LayerNormalization: X, Scale and B', async () => {
  const ln = (attrs: Record<string, number>, bias = true) => (b: GraphBuilder, [x, s, bb]: Sym[]) =>
    b.op1('LayerNormalization', [x!, s!, ...(bias ? [bb!] : [])], attrs);
  await check('LayerNorm default axis', ln({}), [A([3, 5]), B([5], { lo: 0.5, hi: 1.5 }), C([5])]);
  await check('LayerNorm axis=1 (two normalised axes)', ln({ axis: 1, epsilon: 1e-3 }), [A([2, 3, 4]), B([3, 4], { lo: 0.5, hi: 1.5 }), C([3, 4])]);
  await check('LayerNorm axis=-2 no bias', ln({ axis: -2 }, false), [A([2, 3, 4]), B([3, 4], { lo: 0.5, hi: 1.5 })]);
  await check('LayerNorm only X', ln({ axis: -1 }), [A([4, 6]), B([6], { wrt: false }), C([6], { wrt: false })]);
  // float32 takes the other branch (Mean and InvStdDev read from the node's own outputs).
  await check('LayerNorm float32 saved statistics', ln({ axis: -1 }), [A([3, 6]), B([6], { lo: 0.5, hi: 1.5 }), C([6])], { dtype: 'float32' });
  await check('LayerNorm float32 axis=1', ln({ axis: 1 }), [A([2, 3, 4]), B([3, 4], { lo: 0.5, hi: 1.5 }), C([3, 4])], { dtype: 'float32' });
});

/** LayerNormalization's three outputs in float64, rows of n normalised values: Y, Mean and InvStdDev. */
function layerNormRef(x: Float64Array, scale: number[], bias: number[], n: number, eps: number): [number[], number[], number[]] {
  const y: number[] = [];
  const means: number[] = [];
  const invs: number[] = [];
  for (let r = 0; r < x.length / n; r++) {
    const row = x.subarray(r * n, (r + 1) * n);
    const mean = row.reduce((a, v) => a + v, 0) / n;
    const inv = 1 / Math.sqrt(row.reduce((a, v) => a + (v - mean) ** 2, 0) / n + eps);
    row.forEach((v, k) => y.push((v - mean) * inv * scale[k]! + bias[k]!));
    means.push(mean);
    invs.push(inv);
  }
  return [y, means, invs];
}

test('LayerNormalization: gradients arriving at Mean and InvStdDev, alone and with Y', async () => {
  const picks: [string, number[]][] = [['Mean', [1]], ['InvStdDev', [2]], ['Mean+InvStdDev', [1, 2]], ['Y+Mean+InvStdDev', [0, 1, 2]]];
  // ORT returns Mean and InvStdDev in float32 (stash_type 1) even for float64 X, so finite differences through
  // ORT are float32-exact at best there. The float64 rule is checked against central differences of a float64
  // reference of the three outputs; the float32 rule (which reads the node's saved statistics) by gradcheck.
  const rand = rng(7);
  const uni = (k: number, lo: number, hi: number) => Array.from({ length: k }, () => lo + (hi - lo) * rand());
  // Weights exact in float32: the gradient into Mean and InvStdDev passes back through Cast to float32.
  const weights = (k: number) => Array.from({ length: k }, () => Math.round(rand() * 2048) / 1024 - 1);
  for (const { shape, axis, eps } of [{ shape: [3, 5], axis: -1, eps: 1e-5 }, { shape: [2, 3, 4], axis: 1, eps: 1e-3 }]) {
    const a = axis < 0 ? axis + shape.length : axis;
    const n = sizeOf(shape.slice(a));
    const x = Float64Array.from(uni(sizeOf(shape), -2, 2));
    const scale = uni(n, 0.5, 1.5);
    const bias = uni(n, -1, 1);
    const stats = [...shape.slice(0, a), ...shape.slice(a).map(() => 1)];
    const R = [weights(x.length), weights(x.length / n), weights(x.length / n)];
    for (const [name, pick] of picks) {
      const b = new GraphBuilder();
      const xin = b.input('x', 'float64', shape);
      const outs = b.op('LayerNormalization', [xin, b.constant(tensor('float64', shape.slice(a), scale)), b.constant(tensor('float64', shape.slice(a), bias))],
        { axis, epsilon: eps }, { outputs: 3 });
      const terms = pick.map((i) => {
        const o = outs[i]!.dtype === 'float64' ? outs[i]! : b.cast(outs[i]!, 'float64');
        return b.op1('ReduceSum', [b.mul(o, b.constant(tensor('float64', i ? stats : shape, R[i]!)))], { keepdims: 0 });
      });
      const loss = terms.reduce((acc, t) => b.add(acc, t));
      b.output(gradients(b, loss.name, ['x']).get('x')!, 'dx');
      const s = await Session.create(b.graph, { threads: 1, optimization: 'disabled' });
      const dx = (await s.run({ x: tensor('float64', shape, x) })).dx!.data as Float64Array;
      await s.dispose();
      const ref = (v: Float64Array) => layerNormRef(v, scale, bias, n, eps).reduce((acc, o, i) => acc + (pick.includes(i) ? o.reduce((t, e, k) => t + e * R[i]![k]!, 0) : 0), 0);
      const h = 1e-6;
      for (let k = 0; k < x.length; k++) {
        const v = Float64Array.from(x);
        v[k] = x[k]! + h;
        const up = ref(v);
        v[k] = x[k]! - h;
        const num = (up - ref(v)) / (2 * h);
        assert.ok(Math.abs(num - dx[k]!) <= 1e-7 + 1e-6 * Math.abs(num), `float64 [${shape}] axis=${axis} loss on ${name}: dx[${k}] = ${dx[k]}, finite differences ${num}`);
      }
      const flat = (bb: GraphBuilder, o: Sym) => bb.reshape(o, [-1]);
      await check(`LayerNorm float32 [${shape}] axis=${axis} loss on ${name}`, (bb, [xx, sc, bi]) => {
        const os = bb.op('LayerNormalization', [xx!, sc!, bi!], { axis, epsilon: eps }, { outputs: 3 });
        const parts = pick.map((i) => flat(bb, os[i]!));
        return parts.length === 1 ? parts[0]! : bb.op1('Concat', parts, { axis: 0 });
      }, [A(shape, { lo: -2, hi: 2 }), B(shape.slice(a), { lo: 0.5, hi: 1.5, wrt: pick.includes(0) }), C(shape.slice(a), { wrt: pick.includes(0) })], { dtype: 'float32' });
    }
  }
});

test('an op without a gradient rule makes gradients() throw E_GRAD_NO_RULE, naming op and node', () => {
  // Every registered differentiable op has a rule now: a stand-in op without one shows the error.
  defineOp('NoRuleForTest', { infer: (c) => [{ dtype: c.inputs[0]!.dtype, shape: [...c.inputs[0]!.shape] }] });
  try {
    const b = new GraphBuilder();
    const x = b.input('x', 'float64', [4, 4]);
    const h = b.op1('NoRuleForTest', [x], {}, { name: 'my_op' });
    const loss = b.op1('ReduceSum', [b.mul(h, h)], { keepdims: 0 });
    assert.throws(() => gradients(b, loss.name, ['x']), (e: unknown) =>
      e instanceof GraftError && e.code === 'E_GRAD_NO_RULE' && e.message.includes('NoRuleForTest') && e.message.includes('my_op'));
  } finally {
    OPS.delete('NoRuleForTest');
  }
});
