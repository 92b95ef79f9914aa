// gradcheck itself: kinks pass only between the one-sided differences, and a wrong rule still fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OPS } from '../graph/ops/registry.ts';
import { gradcheck } from './gradcheck.ts';
import { tensor } from '../graph/tensor.ts';

test('at a kink (Relu at 0) a gradient between the one-sided slopes passes, and is counted', async () => {
  const r = await gradcheck((b, [x]) => b.op1('Relu', [x!]), [{ name: 'x', shape: [3], values: [-1, 0, 1] }]);
  assert.ok(r.ok, `${JSON.stringify(r.numeric)} vs ${JSON.stringify(r.analytic)}`);
  assert.equal(r.kinks, 1);
  // The central difference at 0 averages the two slopes: no rule gives it.
  assert.ok(Math.abs(r.numeric['x']![1]! - r.analytic['x']![1]!) > 1e-3);
  // Abs at 0: sign(0) = 0 is the central difference itself, so no kink is needed.
  const abs = await gradcheck((b, [x]) => b.op1('Abs', [x!]), [{ name: 'x', shape: [3], values: [-1, 0, 1] }]);
  assert.ok(abs.ok);
  assert.equal(abs.kinks, 0);
  const smooth = await gradcheck((b, [x]) => b.op1('Relu', [x!]), [{ name: 'x', shape: [2], values: [-1, 1] }]);
  assert.equal(smooth.kinks, 0);
});

test('a wrong gradient rule fails, at a smooth point and at a kink (outside the bracket)', async () => {
  const relu = OPS.get('Relu')!;
  const grad = relu.grad!;
  // Twice the true gradient: 2 where x > 0.
  OPS.set('Relu', { ...relu, grad: (c) => grad(c).map((g) => (g ? c.b.mul(g, c.b.like(2, g)) : g)) });
  try {
    assert.equal((await gradcheck((b, [x]) => b.op1('Relu', [x!]), [{ name: 'x', shape: [2], values: [-1, 1] }])).ok, false);
    // At 0 the wrong rule gives 0 (inside [0, R]), so its error shows only where the function is smooth.
    const atKink = await gradcheck((b, [x]) => b.op1('Relu', [x!]), [{ name: 'x', shape: [1], values: [0] }]);
    assert.equal(atKink.ok, true);
  } finally {
    OPS.set('Relu', relu);
  }
  // A rule that is wrong at the kink itself: -1 times the upstream gradient everywhere.
  OPS.set('Relu', { ...relu, grad: (c) => [c.b.neg(c.dy(0)!)] });
  try {
    assert.equal((await gradcheck((b, [x]) => b.op1('Relu', [x!]), [{ name: 'x', shape: [1], values: [0] }], { seed: 3 })).ok, false);
  } finally {
    OPS.set('Relu', relu);
  }
});

test('on the edge of the domain the one-sided difference from inside is used; where both sides are undefined, nothing is checked', async () => {
  // x^2.5 at x = 0: (-eps)^2.5 is NaN, the derivative from the right is 0.
  const edge = await gradcheck((b, [x]) => b.op1('Pow', [x!, b.scalar(2.5, 'float64')]), [{ name: 'x', shape: [3], values: [0, 0.5, 2] }]);
  assert.ok(edge.ok);
  assert.equal(edge.edges, 1);
  // (-2)^y at y = 2 is 4, but (-2)^(2 +- eps) is NaN: no derivative in y exists there.
  const none = await gradcheck((b, [y]) => b.op1('Pow', [b.constant(tensor('float64', [2], [-2, 3])), y!]), [{ name: 'y', shape: [2], values: [2, 1.5] }]);
  assert.ok(none.ok);
  assert.equal(none.undefinedAt, 1);
  assert.equal(none.checked, 1);
  // An infinite derivative on the edge (sqrt at 0, acosh at 1): the one-sided difference grows as the step shrinks.
  for (const [op, at] of [['Sqrt', 0], ['Acosh', 1]] as const) {
    // ORT has no float64 Acosh: both in float32, with its step.
    const r = await gradcheck((b, [x]) => b.op1(op, [x!]), [{ name: 'x', shape: [2], values: [at, at + 1.5] }], { dtype: 'float32', eps: 1e-3, atol: 2e-3, rtol: 2e-2 });
    assert.ok(r.ok && r.edges === 1, `${op}: ${JSON.stringify(r.analytic)} ${r.edges}`);
    assert.equal(r.analytic['x']![0], Math.sign(r.analytic['x']![0]!) * Infinity);
  }
});
