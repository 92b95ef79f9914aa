import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertGradcheck, input } from '../gradcheck.ts';
import { GraphBuilder, type Sym } from '../builder.ts';
import { gradients } from '../autodiff.ts';
import { GraftError } from '../../errors.ts';

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

test('an op without a gradient rule makes gradients() throw E_GRAD_NO_RULE', () => {
  for (const op of ['Hardmax', 'TopK']) {
    const b = new GraphBuilder();
    const x = b.input('x', 'float64', [3, 4]);
    const h = op === 'TopK'
      ? b.op('TopK', [x, b.ints([2])], {}, { outputs: 2, name: 'my_topk' })[0]!
      : b.op1('Hardmax', [x], {}, { name: 'my_hardmax' });
    const loss = b.op1('ReduceSum', [b.mul(h, h)], { keepdims: 0 });
    assert.throws(() => gradients(b, loss.name, ['x']), (e: unknown) =>
      e instanceof GraftError && e.code === 'E_GRAD_NO_RULE' && e.message.includes(op) && e.message.includes(op === 'TopK' ? 'my_topk' : 'my_hardmax'));
  }
});
