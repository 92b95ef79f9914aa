import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GraphBuilder } from '../graph/builder.ts';
import { gradients } from '../graph/autodiff.ts';
import { Session } from '../runtime/session.ts';
import { tensor } from '../graph/tensor.ts';
import { binaryCrossEntropy, crossEntropy, mse, type Loss } from './losses.ts';

const fx = JSON.parse(readFileSync(new URL('../../fixtures/torch/train.json', import.meta.url), 'utf8')).losses;

/** Runs a loss on the fixture logits; returns loss, closed-form dlogits and autodiff dlogits. */
async function run(loss: Loss, target: Float32Array) {
  const [B, K] = fx.shape as [number, number];
  const b = new GraphBuilder();
  const z = b.input('z', 'float32', [B, K]);
  const t = b.input('t', 'float32', [B, K]);
  const lg = loss.build(b, z, t);
  b.output(lg.loss, 'loss');
  b.output(lg.dlogits, 'dlogits');
  b.output(gradients(b, lg.loss.name, ['z']).get('z')!, 'auto');
  const s = await Session.create(b.graph, { threads: 1 });
  const r = await s.run({ z: tensor('float32', [B, K], fx.logits), t: tensor('float32', [B, K], target) });
  await s.dispose();
  return { loss: Number(r.loss!.data[0]), dlogits: Array.from(r.dlogits!.data as Float32Array), auto: Array.from(r.auto!.data as Float32Array) };
}

function close(a: number[], b: number[], tol: number, what: string) {
  assert.equal(a.length, b.length, what);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= tol * Math.max(1, Math.abs(b[i]!)), `${what}[${i}]: ${v} vs ${b[i]}`));
}

test('softmax cross-entropy matches PyTorch with class weights and label smoothing', async () => {
  const K = fx.shape[1];
  for (const name of ['ce', 'ce_smooth', 'ce_weighted', 'ce_weighted_smooth']) {
    const c = fx.cases[name];
    const loss = crossEntropy({ labelSmoothing: c.smoothing, ...(c.weight ? { classWeights: c.weight } : {}) });
    const r = await run(loss, loss.targets(Int32Array.from(fx.labels), K));
    assert.ok(Math.abs(r.loss - c.loss) < 1e-5, `${name} loss ${r.loss} vs torch ${c.loss}`);
    close(r.dlogits, c.dlogits, 1e-5, `${name} dlogits`);
    close(r.auto, c.dlogits, 1e-5, `${name} autodiff dlogits`);
  }
});

test('binary cross-entropy and MSE match PyTorch', async () => {
  for (const [name, loss] of [['bce', binaryCrossEntropy()], ['mse', mse()]] as const) {
    const c = fx.cases[name];
    const r = await run(loss, Float32Array.from(c.target));
    assert.ok(Math.abs(r.loss - c.loss) < 1e-5, `${name} loss ${r.loss} vs torch ${c.loss}`);
    close(r.dlogits, c.dlogits, 1e-5, `${name} dlogits`);
    close(r.auto, c.dlogits, 1e-5, `${name} autodiff dlogits`);
  }
});

test('label smoothing outside [0, 1) is a typed error', () => {
  assert.throws(() => crossEntropy({ labelSmoothing: 1 }), { code: 'E_BAD_OPTION' });
});
