/**
 * Helpers for tests that check a Network's numbers against a reference (PyTorch fixtures): its loss,
 * logits and every parameter's gradient from one ORT run, as compiled.ts builds a train step.
 */
import assert from 'node:assert/strict';
import { GraphBuilder, type Sym } from '../graph/builder.ts';
import { gradients } from '../graph/autodiff.ts';
import { type TensorData, tensor, toNumbers } from '../graph/tensor.ts';
import { Session } from '../runtime/session.ts';
import type { Loss } from './losses.ts';
import type { ForwardContext, Network } from './network.ts';

/** The eval-mode forward context: dropout off, every parameter an input. */
export function evalCtx(params: Map<string, Sym>): ForwardContext {
  return { training: false, param: (n) => params.get(n)!, dropout: (x) => x, trainable: () => false, setBuffer: () => {} };
}

/** Relative L2 error of a against the reference b. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (Number(a[i]) - Number(b[i])) ** 2;
    den += Number(b[i]) ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** Loss, logits and every parameter's gradient, from one ORT run of forward + loss + autodiff (eval mode). */
export async function lossAndGrads(net: Network, values: Map<string, Float32Array>, x: Float32Array, loss: Loss, target: Float32Array) {
  const n = x.length / net.inputShape.reduce((a, d) => a * d, 1);
  const b = new GraphBuilder();
  const xs = b.input('x', 'float32', [n, ...net.inputShape]);
  const t = b.input('target', 'float32', [n, net.outputs]);
  const syms = new Map<string, Sym>();
  const feeds: Record<string, TensorData> = {
    x: { dtype: 'float32', dims: [n, ...net.inputShape], data: x },
    target: tensor('float32', [n, net.outputs], target),
  };
  for (const p of net.params) {
    syms.set(p.name, b.input(`p:${p.name}`, 'float32', p.shape));
    feeds[`p:${p.name}`] = { dtype: 'float32', dims: p.shape, data: values.get(p.name)! };
  }
  const logits = net.forward(b, xs, evalCtx(syms));
  const { loss: l, dlogits } = loss.build(b, logits, t);
  b.output(l, 'loss');
  b.output(logits, 'logits');
  const grads = gradients(b, logits.name, net.params.map((p) => `p:${p.name}`), { seed: dlogits });
  for (const p of net.params) b.output(grads.get(`p:${p.name}`)!, `g:${p.name}`);
  const s = await Session.create(b.graph, { threads: 1 });
  const r = await s.run(feeds);
  await s.dispose();
  return { loss: Number(r['loss']!.data[0]), logits: toNumbers(r['logits']!), grad: (name: string) => toNumbers(r[`g:${name}`]!) };
}
