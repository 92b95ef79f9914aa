// GradientReversal: its gradient is the negated, lambda-scaled upstream gradient, checked against central
// finite differences (float64) of the same loss without the reversal; the serialised graph is plain ONNX
// (Identity), and ORT runs it as the identity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gradients } from '../autodiff.ts';
import { GraphBuilder } from '../builder.ts';
import { Graph } from '../ir.ts';
import { tensor } from '../tensor.ts';
import { Session } from '../../runtime/session.ts';
import { rng } from '../../rng.ts';
import { GraftError } from '../../errors.ts';

const N = 7;
/** loss = sum(c * tanh(x) * x), through GradientReversal(lambda) or not. */
function build(reverse: boolean) {
  const b = new GraphBuilder();
  const x = b.input('x', 'float64', [N]);
  const lambda = b.input('lambda', 'float64', []);
  const c = b.input('c', 'float64', [N]);
  const h = reverse ? b.op1('GradientReversal', [x, lambda], {}, { domain: 'ai.graft' }) : x;
  const loss = b.op1('ReduceSum', [b.mul(c, b.mul(b.op1('Tanh', [h]), h))], { keepdims: 0 });
  b.output(loss, 'loss');
  b.output(gradients(b, loss.name, ['x']).get('x')!, 'dx');
  return b.graph;
}

test('GradientReversal: dx = -lambda x the gradient without it, against float64 central differences', async () => {
  const r = rng(5);
  const x = Float64Array.from({ length: N }, () => r() * 2 - 1);
  const c = Float64Array.from({ length: N }, () => r() * 2 - 1);
  const plain = await Session.create(build(false));
  const rev = await Session.create(build(true));
  try {
    const loss = async (v: Float64Array) => Number((await plain.run({ x: tensor('float64', [N], v), lambda: tensor('float64', [], [0]), c: tensor('float64', [N], c) }))['loss']!.data[0]);
    const eps = 1e-6;
    const fd = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      const up = Float64Array.from(x); up[i]! += eps;
      const dn = Float64Array.from(x); dn[i]! -= eps;
      fd[i] = ((await loss(up)) - (await loss(dn))) / (2 * eps);
    }
    for (const lambda of [0, 0.3, 1, 2.5]) {
      const out = await rev.run({ x: tensor('float64', [N], x), lambda: tensor('float64', [], [lambda]), c: tensor('float64', [N], c) });
      // The forward pass is untouched.
      assert.ok(Math.abs(Number(out['loss']!.data[0]) - (await loss(x))) < 1e-12);
      const dx = out['dx']!.data as Float64Array;
      for (let i = 0; i < N; i++) assert.ok(Math.abs(dx[i]! + lambda * fd[i]!) < 1e-8 * (1 + Math.abs(fd[i]!)), `lambda ${lambda}, x[${i}]: ${dx[i]} vs ${-lambda * fd[i]!}`);
    }
  } finally {
    await plain.dispose();
    await rev.dispose();
  }
});

test('GradientReversal is serialised as ONNX Identity: no graft domain in the file, and it loads back', () => {
  const bytes = build(true).toBytes();
  const g = Graph.fromBytes(bytes);
  assert.ok(g.nodes.some((n) => n.op === 'Identity' && n.inputs.length === 1 && n.inputs[0] === 'x'));
  assert.ok(g.nodes.every((n) => n.domain === '' && n.op !== 'GradientReversal'));
});

test('GradientReversal: lambda must be a scalar of the input\'s type', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [3]);
  assert.throws(() => b.op1('GradientReversal', [x, b.input('l', 'float32', [1])], {}, { domain: 'ai.graft' }), (e: unknown) => e instanceof GraftError && e.code === 'E_GRAPH_SHAPE');
  assert.throws(() => b.op1('GradientReversal', [x, b.input('l64', 'float64', [])], {}, { domain: 'ai.graft' }), (e: unknown) => e instanceof GraftError && e.code === 'E_GRAPH_SHAPE');
});
