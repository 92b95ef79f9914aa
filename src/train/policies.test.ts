import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StageTracker, discriminativeLrs, fineTuneBeatsProbe, lowestTrainable, perExampleLossFromLogits, planStages, runStages } from './policies.ts';
import { Learner, mixBatch } from './learner.ts';
import { mlpHead } from '../heads/heads.ts';
import { GraftError } from '../errors.ts';
import { loadDigits } from '../data/digits.ts';

const GROUPS = ['stem', 'stage1', 'stage2', 'block_16', 'top', 'head'];

test('discriminative rates: the head gets lr, each group down lr * mult more', () => {
  assert.deepEqual(discriminativeLrs(4, 1e-3, 0.5), [1.25e-4, 2.5e-4, 5e-4, 1e-3]);
});

test('fineTune plan: head-only epochs, then the unfrozen groups with discriminative rates and one-cycle', () => {
  const s = planStages(GROUPS, 'finetune', { epochs: 4, lr: 1e-3, unfreeze: 2 });
  assert.deepEqual(s.map((x) => [x.name, x.trainFrom, x.epochs]), [['head', 5, 3], ['fine-tune', 3, 4]]);
  assert.deepEqual(s[0]!.lr, GROUPS.map(() => 3e-3));
  assert.deepEqual(s[1]!.lr.slice(3), [2.5e-4, 5e-4, 1e-3]);
  assert.equal(s[1]!.schedule.kind, 'one-cycle');
  const all = planStages(GROUPS, 'finetune', { epochs: 2, lr: 1e-3, freezeEpochs: 0 });
  assert.deepEqual(all.map((x) => x.trainFrom), [0], 'no head stage when asked for none; every group trains');
});

test('gradual plan: one more group each epoch from the top, never below --unfreeze', () => {
  const s = planStages(GROUPS, 'gradual', { epochs: 5, lr: 1e-3 });
  assert.deepEqual(s.map((x) => x.trainFrom), [5, 4, 3, 2, 1]);
  const capped = planStages(GROUPS, 'gradual', { epochs: 5, lr: 1e-3, unfreeze: 2 });
  assert.deepEqual(capped.map((x) => x.trainFrom), [5, 4, 3, 3, 3]);
  assert.equal(lowestTrainable(GROUPS.length, 'gradual', { epochs: 5, unfreeze: 2 }), 3);
  assert.equal(lowestTrainable(GROUPS.length, 'gradual', { epochs: 2 }), 4, 'two epochs reach one group below the head');
  assert.equal(lowestTrainable(GROUPS.length, 'probe', { epochs: 5 }), 5);
});

test('policies reject impossible settings with typed errors', () => {
  const bad = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION' && re.test(e.message));
  bad(() => planStages(GROUPS, 'finetune', { epochs: 3, lr: 1e-3, unfreeze: 6 }), /cannot unfreeze 6 groups: the backbone has 5/);
  bad(() => planStages(GROUPS, 'finetune', { epochs: 3, lr: 1e-3, unfreeze: -1 }), /cannot unfreeze -1/);
  bad(() => planStages(GROUPS, 'finetune', { epochs: 0, lr: 1e-3 }), /epochs/);
  bad(() => planStages(GROUPS, 'finetune', { epochs: 2, lr: 0 }), /learning rate/);
  bad(() => planStages(GROUPS, 'finetune', { epochs: 2, lr: 1e-3, lrMult: 2 }), /lr-mult/);
});

test('mixup: one lambda per batch, rows mixed with a permutation, targets still sum to what they did, seeded', () => {
  const m = 6;
  const x = Float32Array.from({ length: m * 3 }, (_, i) => i);
  const t = new Float32Array(m * 2);
  for (let i = 0; i < m; i++) t[i * 2 + (i % 2)] = 1 / m;
  const a = mixBatch(x, t, m, 0.4, 123);
  const b = mixBatch(x, t, m, 0.4, 123);
  assert.deepEqual(a, b);
  assert.ok(a.lambda > 0 && a.lambda < 1);
  for (let i = 0; i < m; i++) assert.ok(Math.abs(a.t[i * 2]! + a.t[i * 2 + 1]! - 1 / m) < 1e-7);
  // Each mixed row is lambda * its own row + (1 - lambda) * some row of the batch.
  for (let i = 0; i < m; i++) {
    const hit = [...Array(m).keys()].some((j) => [0, 1, 2].every((k) => Math.abs(a.x[i * 3 + k]! - (a.lambda * x[i * 3 + k]! + (1 - a.lambda) * x[j * 3 + k]!)) < 1e-4));
    assert.ok(hit, `row ${i}`);
  }
  // Beta(0.4, 0.4) is U-shaped: lambdas pile up near 0 and 1.
  const ls = Array.from({ length: 2000 }, (_, s) => mixBatch(x, t, m, 0.4, s).lambda);
  const mean = ls.reduce((p, q) => p + q, 0) / ls.length;
  const extreme = ls.filter((l) => l < 0.1 || l > 0.9).length / ls.length;
  assert.ok(Math.abs(mean - 0.5) < 0.03, `mean ${mean}`);
  assert.ok(extreme > 0.4, `share near 0 or 1: ${extreme}`);
});

test('L2-SP: after each step the weights move lr * alpha of the way back to their anchors', async () => {
  const d = loadDigits();
  const train = { x: Float32Array.from(d.rows.slice(0, 64).flat(), (v) => v / 16), y: d.y.slice(0, 64), n: 64 };
  const make = (l2sp?: number) => {
    const net = mlpHead({ inputDim: 64, classes: 10, hidden: [16], dropout: 0, seed: 3 });
    const anchors = new Map(net.params.map((p) => [p.name, Float32Array.from(p.value, (v) => v + 0.5)]));
    return { net, anchors, l: new Learner({ net, train, batchSize: 64, seed: 0, threads: 1, ...(l2sp ? { l2sp: { alpha: l2sp, anchors } } : {}) }) };
  };
  const plain = make();
  const sp = make(2);
  await plain.l.fit(1, { lr: 0.01 });
  await sp.l.fit(1, { lr: 0.01 });
  for (const [name, w] of sp.l.getWeights()) {
    const wp = plain.l.getWeights().get(name)!;
    const w0 = sp.anchors.get(name)!;
    for (let i = 0; i < w.length; i++) assert.ok(Math.abs(w[i]! - (wp[i]! - 0.01 * 2 * (wp[i]! - w0[i]!))) < 1e-6, `${name}[${i}]`);
  }
  assert.throws(() => make(-1), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION');
});

test('fine-tuning never ends below its head-only stage on validation: a destructive stage falls back to the probe', async () => {
  const d = loadDigits();
  const rows = (from: number, to: number) => ({ x: Float32Array.from(d.rows.slice(from, to).flat(), (v) => v / 16), y: d.y.slice(from, to), n: to - from });
  const train = rows(0, 600);
  const val = rows(600, 900);
  const net = mlpHead({ inputDim: 64, classes: 10, hidden: [128], dropout: 0, seed: 1 });
  // Two groups: the hidden layer ("backbone") and the output ("head").
  for (const p of net.params) p.group = p.name.startsWith('hidden') ? 0 : 1;
  net.groups = ['body', 'head'];
  const l = new Learner({ net, train, val, batchSize: 32, seed: 0, threads: 1, callbacks: [new StageTracker()] }); // no early stopping: the fallback alone
  // A rate of 5 with AdamW wrecks the hidden layer in the second stage.
  const stages = planStages(net.groups, 'finetune', { epochs: 3, lr: 5, headLr: 0.03, freezeEpochs: 8, lrMult: 1 });
  const r = await runStages(l, stages);
  const head = r.stages[0]!.valAccuracy!;
  const final = (await l.evaluate(val)).accuracy;
  assert.ok(head > 0.8, `head-only stage ${head}`);
  assert.ok(final >= head, `final ${final} >= head-only ${head}`);
  assert.equal(r.kept, 'head');
  assert.match(r.note!, /below the head-only stage|diverged/);
});

test('LP-FT keep rule: a paired loss gain over two standard errors, accuracy not lower', () => {
  // Hand-computed: d = [0.3, 0.1, 0.2, 0.2], mean 0.2, sd sqrt(0.02 / 3), se sd / 2 = 0.0408.
  const e = fineTuneBeatsProbe({ accuracy: 0.75, losses: [0.2, 0.4, 0.3, 0.3] }, { accuracy: 0.75, losses: [0.5, 0.5, 0.5, 0.5] });
  assert.ok(Math.abs(e.gain - 0.2) < 1e-12 && Math.abs(e.se - Math.sqrt(0.02 / 3) / 2) < 1e-12 && e.n === 4);
  assert.equal(e.keep, true, 'a consistent gain of 4.9 standard errors');
  // The same mean gain carried by one example out of 20 (a noisy split): se = 0.2, gain 0.2 < 2 se.
  const probe = new Array(20).fill(0.5);
  const noisy = fineTuneBeatsProbe({ accuracy: 0.8, losses: probe.map((v, i) => (i === 0 ? v - 4 : v)) }, { accuracy: 0.8, losses: probe });
  assert.ok(Math.abs(noisy.gain - 0.2) < 1e-12 && Math.abs(noisy.se - 0.2) < 1e-12);
  assert.equal(noisy.keep, false, 'one example carries the whole gain');
  assert.equal(fineTuneBeatsProbe({ accuracy: 0.7, losses: [0.1, 0.1, 0.1] }, { accuracy: 0.75, losses: [0.9, 0.8, 0.9] }).keep, false, 'lower accuracy');
  assert.equal(fineTuneBeatsProbe({ accuracy: 0.75, losses: [0.9, 0.8] }, { accuracy: 0.75, losses: [0.9, 0.8] }).keep, false, 'no change');
  assert.throws(() => fineTuneBeatsProbe({ accuracy: 1, losses: [0.1] }, { accuracy: 1, losses: [0.1, 0.2] }), (e: unknown) => (e as { code?: string; hint?: string }).code === 'E_GRAPH_SHAPE' && /same validation examples/.test((e as { hint: string }).hint));
});

test('per-example cross-entropy from logits, against log-sum-exp by hand', () => {
  const logits = [1, 2, 0.5, -1, 0, 3];
  const a = perExampleLossFromLogits(logits, [1, 2], 3);
  assert.ok(Math.abs(a[0]! - (Math.log(Math.exp(1) + Math.exp(2) + Math.exp(0.5)) - 2)) < 1e-12);
  assert.ok(Math.abs(a[1]! - (Math.log(Math.exp(-1) + Math.exp(0) + Math.exp(3)) - 3)) < 1e-12);
});

test('StageTracker keeps the probe\'s per-example losses through a checkpoint', () => {
  const t = new StageTracker();
  t.probe = { weights: new Map([['linear.weight', new Float32Array([1, 2])]]), acc: 0.5, loss: 0.7, losses: new Float32Array([0.5, 0.9]) };
  const u = new StageTracker();
  u.loadState(t.state());
  u.loadArrays(Object.fromEntries(Object.entries(t.arrays()).map(([k, v]) => [k, v.data])));
  assert.deepEqual([...u.probe!.weights.keys()], ['linear.weight']);
  assert.deepEqual(Array.from(u.probe!.losses!), [0.5, Math.fround(0.9)]);
});
