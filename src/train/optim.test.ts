import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Learner } from './learner.ts';
import type { Network } from './network.ts';
import type { OptimizerOptions } from './optim.ts';

const fx = JSON.parse(readFileSync(new URL('../../fixtures/torch/train.json', import.meta.url), 'utf8')).optim;
const [N, D, H, C] = fx.dims as number[];

/** The fixture's 2-layer MLP, with 'body' and 'head' as two parameter groups. */
function net(): Network {
  const p = (name: string, shape: number[], group: number, decay: boolean) => ({ name, shape, value: Float32Array.from(fx.init[name]), group, decay });
  return {
    inputShape: [D!], outputs: C!, groups: ['body', 'head'], config: {},
    params: [p('body.weight', [D!, H!], 0, true), p('body.bias', [H!], 0, false), p('head.weight', [H!, C!], 1, true), p('head.bias', [C!], 1, false)],
    forward: (b, x, ctx) => b.add(b.matmul(b.relu(b.add(b.matmul(x, ctx.param('body.weight')), ctx.param('body.bias'))), ctx.param('head.weight')), ctx.param('head.bias')),
  };
}

const OPTS: Record<string, OptimizerOptions> = {
  sgd: { kind: 'sgd' },
  sgd_momentum: { kind: 'sgd', momentum: 0.9 },
  sgd_nesterov: { kind: 'sgd', momentum: 0.9, nesterov: true },
  adamw: { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8 },
  sgd_dampening: { kind: 'sgd', momentum: 0.9, dampening: 0.3 },
  adam: { kind: 'adam', beta1: 0.9, beta2: 0.999, eps: 1e-8 },
  adagrad: { kind: 'adagrad', lrDecay: 0.1, eps: 1e-10, initialAccumulatorValue: 0.1 },
};

test('SGD (plain, momentum, Nesterov, dampening), Adam, AdamW and Adagrad with two parameter groups match PyTorch over 5 steps', async () => {
  const x = Float32Array.from(fx.x);
  const y = Int32Array.from(fx.y);
  for (const [name, opt] of Object.entries(OPTS)) {
    const l = new Learner({ net: net(), train: { x, y, n: N! }, optimizer: opt, threads: 1 });
    // Per-group learning rates and weight decay, as fit() would set them.
    l.lrs = fx.lrs;
    (l as unknown as { groupWd: number[] }).groupWd = fx.wds;
    const losses: number[] = [];
    for (let i = 0; i < 5; i++) losses.push(await l.step(x, y, ['t', i]));
    const c = fx.cases[name];
    losses.forEach((v, i) => assert.ok(Math.abs(v - c.losses[i]) < 1e-5, `${name} step ${i} loss ${v} vs torch ${c.losses[i]}`));
    for (const [k, want] of Object.entries(c.final as Record<string, number[]>)) {
      const got = l.getWeights().get(k)!;
      want.forEach((w, i) => assert.ok(Math.abs(got[i]! - w) < 2e-5, `${name} ${k}[${i}]: ${got[i]} vs torch ${w}`));
    }
    await l.dispose();
  }
});

test('Nesterov without momentum is a typed error', () => {
  assert.throws(() => new Learner({ net: net(), train: { x: new Float32Array(D!), y: new Int32Array(1), n: 1 }, optimizer: { kind: 'sgd', nesterov: true } }), { code: 'E_BAD_OPTION' });
});
