import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertGradcheck, input } from '../gradcheck.ts';
import { GraphBuilder, type Sym } from '../builder.ts';
import { gradients } from '../autodiff.ts';
import { Session } from '../../runtime/session.ts';
import { tensor } from '../tensor.ts';

const check = assertGradcheck;

const A = input('a');
const B = input('b');

test('binary ops with broadcasting, float64 finite differences', async () => {
  for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
    await check(op, (b, [x, y]) => b.op1(op, [x!, y!]), [A([3, 4]), B([4], { lo: 0.5, hi: 2 })]);
    await check(`${op} rank-lifted`, (b, [x, y]) => b.op1(op, [x!, y!]), [A([2, 1, 4]), B([3, 1], { lo: 0.5, hi: 2 })]);
  }
  await check('Pow', (b, [x, y]) => b.op1('Pow', [x!, y!]), [A([3, 4], { lo: 0.5, hi: 2 }), B([1, 4], { lo: -1, hi: 2 })]);
  await check('Sum', (b, [x, y]) => b.op1('Sum', [x!, y!, x!]), [A([2, 3]), B([3])]);
});

test('Pow gradients at base 0 are finite: 0 for the exponent where p >= 0, 0 for the base where p == 0 (as PyTorch)', async () => {
  // d/dp x^p = x^p log x was 0 * -inf = NaN at x = 0; d/dx = p x^(p-1) was 0 * inf = NaN at x = 0, p = 0.
  const pow = (b: GraphBuilder, [x, y]: Sym[]) => b.op1('Pow', [x!, y!]);
  // Integer exponents where x = 0, so that finite differences in x may step below 0.
  await check('Pow at base 0, both inputs', pow, [A([6], { values: [0, 0, 0, 0.5, 1.5, 2] }), B([6], { values: [2, 1, 3, 1.5, 0, -0.5] })]);
  await check('Pow at base 0, exponent 0, base gradient', pow, [A([4], { values: [0, 0, 1, 2] }), B([4], { values: [0, 1, 0, 2], wrt: false })]);
  await check('Pow at base 0, exponent gradient, broadcast exponent', pow, [A([2, 3], { values: [0, 0.5, 0, 2, 0, 1], wrt: false }), B([3], { values: [0.5, 1.25, 2.5] })]);
  // At x = 0 and p < 0 the exponent gradient is -inf (x^p = inf), not masked, also as PyTorch.
  const b = new GraphBuilder();
  const x = b.input('x', 'float64', [3]);
  const p = b.input('p', 'float64', [3]);
  const y = b.op1('ReduceSum', [pow(b, [x, p])], { keepdims: 0 });
  const g = gradients(b, y.name, ['x', 'p']);
  b.output(g.get('x')!, 'dx');
  b.output(g.get('p')!, 'dp');
  const s = await Session.create(b.graph, { threads: 1 });
  const r = await s.run({ x: tensor('float64', [3], [0, 0, 0]), p: tensor('float64', [3], [0, 2, -1]) });
  assert.deepEqual([...r.dx!.data], [0, 0, -Infinity]);
  assert.deepEqual([...r.dp!.data], [0, 0, -Infinity]);
});

test('unary ops, float64 finite differences', async () => {
  const pos = { lo: 0.2, hi: 2 };
  for (const [op, range] of [['Neg', {}], ['Relu', {}], ['Sigmoid', {}], ['Tanh', {}], ['Exp', {}], ['Log', pos], ['Sqrt', pos], ['Identity', {}], ['Abs', {}], ['Reciprocal', pos]] as const) {
    await check(op, (b, [x]) => b.op1(op, [x!]), [A([5, 3], range)]);
  }
  await check('LeakyRelu', (b, [x]) => b.op1('LeakyRelu', [x!], { alpha: 0.2 }), [A([5, 3])], { dtype: 'float32' });
  await check('Erf', (b, [x]) => b.op1('Erf', [x!]), [A([5, 3])], { dtype: 'float32' });
  await check('Clip', (b, [x]) => b.op1('Clip', [x!, b.scalar(-0.5, 'float64'), b.scalar(0.5, 'float64')]), [A([6, 4])]);
});

test('Where routes the gradient by the condition', async () => {
  await check('Where', (b, [x, y]) => b.op1('Where', [b.op1('Greater', [x!, b.scalar(0, 'float64')]), x!, y!]), [A([4, 3]), B([3])]);
});

test('MatMul and Gemm in every layout', async () => {
  await check('MatMul 2d', (b, [x, y]) => b.matmul(x!, y!), [A([3, 4]), B([4, 5])]);
  await check('MatMul batched broadcast', (b, [x, y]) => b.matmul(x!, y!), [A([2, 3, 4]), B([4, 5])]);
  await check('MatMul vec-mat', (b, [x, y]) => b.matmul(x!, y!), [A([4]), B([2, 4, 5])]);
  await check('MatMul mat-vec', (b, [x, y]) => b.matmul(x!, y!), [A([3, 4]), B([4])]);
  for (const transA of [0, 1]) {
    for (const transB of [0, 1]) {
      await check(`Gemm tA=${transA} tB=${transB}`, (b, [x, y, c]) => b.op1('Gemm', [x!, y!, c!], { transA, transB, alpha: 0.7, beta: 1.3 }),
        [A(transA ? [4, 3] : [3, 4]), B(transB ? [5, 4] : [4, 5]), { name: 'c', shape: [5] }]);
    }
  }
});
