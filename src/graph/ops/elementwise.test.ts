import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertGradcheck, input } from '../../runtime/gradcheck.ts';
import { GraphBuilder, type Sym } from '../builder.ts';
import { gradients } from '../autodiff.ts';
import { Session } from '../../runtime/session.ts';
import { tensor } from '../tensor.ts';
import { GraftError } from '../../errors.ts';

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

// ---- ops whose backend cases do not check their gradient (no case, no float64 kernel, or a kink in the data) ----

test('Mish, Shrink, Tan, HardSwish, Elu/Selu/ThresholdedRelu away from their kinks', async () => {
  // Mish is opset 18.
  await check('Mish', (b, [x]) => ((b.graph.opset = 18), b.op1('Mish', [x!])), [A([3, 4], { lo: -3, hi: 3 })], { dtype: 'float32', eps: 1e-2, atol: 2e-3 });
  // ORT's float64 Shrink rounds through float32 (the backend's shrink cases fail by that): checked as float32.
  await check('Shrink soft', (b, [x]) => b.op1('Shrink', [x!], { lambd: 0.5, bias: 0.5 }), [A([6], { values: [-2, -1, -0.3, 0.2, 1.2, 2.5] })], { dtype: 'float32', eps: 1e-2, atol: 2e-3 });
  await check('Tan', (b, [x]) => b.op1('Tan', [x!]), [A([3, 4], { lo: -1, hi: 1 })], { dtype: 'float32', eps: 1e-2, atol: 2e-3, rtol: 1e-2 });
  await check('HardSwish', (b, [x]) => b.op1('HardSwish', [x!]), [A([6], { values: [-5, -2.5, -1, 0.5, 2.7, 4] })], { dtype: 'float32', eps: 1e-2, atol: 2e-3 });
  await check('Elu', (b, [x]) => b.op1('Elu', [x!], { alpha: 2 }), [A([4], { values: [-1, -0.5, 0.5, 1] })], { dtype: 'float32', eps: 1e-2, atol: 2e-3 });
  await check('Selu', (b, [x]) => b.op1('Selu', [x!]), [A([4], { values: [-1, -0.5, 0.5, 1] })], { dtype: 'float32', eps: 1e-2, atol: 2e-3 });
  await check('ThresholdedRelu', (b, [x]) => b.op1('ThresholdedRelu', [x!], { alpha: 1.5 }), [A([4], { values: [-1, 1, 2, 3] })], { dtype: 'float32', eps: 1e-2, atol: 2e-3 });
});

test('variadic Max/Min share the gradient among ties; Mean divides it; PRelu with a broadcast slope', async () => {
  for (const op of ['Max', 'Min']) {
    await check(`${op} of three, broadcast`, (b, [x, y, z]) => b.op1(op, [x!, y!, z!]), [A([3, 4]), B([4]), input('c')([3, 1])]);
    // Ties: x and y equal at every element, each gets half (a central difference sees the same).
    await check(`${op} ties`, (b, [x, y]) => b.op1(op, [x!, y!]), [A([3], { values: [1, 2, 3] }), B([3], { values: [1, 2, 3] })]);
    const b = new GraphBuilder();
    const x = b.input('x', 'float64', [2]);
    const y = b.input('y', 'float64', [2]);
    const loss = b.op1('ReduceSum', [b.op1(op, [x, y])], { keepdims: 0 });
    const g = gradients(b, loss.name, ['x', 'y']);
    b.output(g.get('x')!, 'gx');
    const s = await Session.create(b.graph);
    const out = await s.run({ x: tensor('float64', [2], [1, 5]), y: tensor('float64', [2], [1, 2]) }, ['gx']);
    assert.deepEqual(Array.from(out['gx']!.data as Float64Array), op === 'Max' ? [0.5, 1] : [0.5, 0]);
    await s.dispose();
  }
  // ORT has no float64 Mean.
  await check('Mean', (b, [x, y]) => b.op1('Mean', [x!, y!]), [A([3, 4]), B([4])], { dtype: 'float32', eps: 1e-2, atol: 2e-3 });
  await check('PRelu', (b, [x, s]) => b.op1('PRelu', [x!, s!]), [A([2, 3, 4], { lo: -1, hi: 1 }), B([3, 1], { lo: 0.1, hi: 0.5 })]);
});

test('Einsum gradients (contractions, a letter only one operand has, transposes) and Mod\'s (fmod), float64 finite differences', async () => {
  for (const [eq, sa, sb] of [['ij,jk->ik', [2, 3], [3, 4]], ['ijk,j->i', [2, 3, 4], [3]], ['bij,bjk->bki', [2, 3, 2], [2, 2, 3]], ['ij,ij->', [2, 3], [2, 3]]] as const) {
    await check(`Einsum ${eq}`, (b, [x, y]) => b.op1('Einsum', [x!, y!], { equation: eq }), [A([...sa]), B([...sb])]);
  }
  await check('Einsum one operand ij->j', (b, [x]) => b.op1('Einsum', [x!], { equation: 'ij->j' }), [A([3, 4])]);
  await check('Mod fmod=1', (b, [x, y]) => b.op1('Mod', [x!, y!], { fmod: 1 }), [A([6], { values: [5.3, -5.3, 2.2, -7.1, 0.4, 3.9] }), B([6], { values: [2, 2, -1.5, 3, 1.7, -2.5] })]);
  // The batch diagonal has a rule; another repeated subscript is refused with a typed error.
  await check('Einsum diagonal bii->bi', (b, [x]) => b.op1('Einsum', [x!], { equation: 'bii->bi' }), [A([2, 3, 3])]);
  const b = new GraphBuilder();
  const x = b.input('x', 'float64', [3, 3, 2]);
  const loss = b.op1('ReduceSum', [b.op1('Einsum', [x], { equation: 'iij->j' })], { keepdims: 0 });
  assert.throws(() => gradients(b, loss.name, ['x']), (e: unknown) => e instanceof GraftError && e.code === 'E_GRAD_UNSUPPORTED');
});
