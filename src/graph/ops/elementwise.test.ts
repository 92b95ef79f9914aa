import { test } from 'node:test';
import { assertGradcheck, input } from '../gradcheck.ts';

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
