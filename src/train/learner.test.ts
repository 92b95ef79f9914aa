import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Learner, type Dataset } from './learner.ts';
import { CancelBatch, CancelFit, Checkpoint, EarlyStopping, type Callback } from './callbacks.ts';
import { linearHead, mlpHead } from '../heads/heads.ts';
import { lrFind } from './lrfind.ts';
import { mse } from './losses.ts';
import { rng } from '../rng.ts';

/** Three Gaussian blobs in 6-d: separable, but not trivially. */
function blobs(n: number, seed: number): Dataset {
  const r = rng(seed);
  const d = 6;
  const x = new Float32Array(n * d);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    y[i] = c;
    for (let j = 0; j < d; j++) x[i * d + j] = (j % 3 === c ? 1.5 : 0) + (r() + r() + r() - 1.5);
  }
  return { x, y, n };
}

const train = blobs(240, 1);
const val = blobs(90, 2);

test('callbacks fire in order, by their order field, with cancel signals', async () => {
  const events: string[] = [];
  const rec = (name: string, order: number): Callback => ({
    name, order,
    beforeFit: () => { events.push(`${name}:beforeFit`); },
    beforeEpoch: () => { events.push(`${name}:beforeEpoch`); },
    afterEpoch: () => { events.push(`${name}:afterEpoch`); },
    afterCancelFit: () => { events.push(`${name}:afterCancelFit`); },
    afterFit: () => { events.push(`${name}:afterFit`); },
  });
  let batches = 0;
  const skipper: Callback = { name: 'skip', beforeBatch: () => { if (batches++ % 2 === 0) throw new CancelBatch(); } };
  const stopper: Callback = { name: 'stop', order: 5, afterEpoch: (l) => { if (l.history.length === 2) throw new CancelFit(); } };
  const l = new Learner({ net: linearHead({ inputDim: 6, classes: 3 }), train, batchSize: 60, callbacks: [rec('b', 2), rec('a', 1), skipper, stopper], threads: 1 });
  await l.fit(5, { lr: 0.01 });
  assert.equal(l.history.length, 2);
  assert.deepEqual(events, [
    'a:beforeFit', 'b:beforeFit',
    'a:beforeEpoch', 'b:beforeEpoch', 'a:afterEpoch', 'b:afterEpoch',
    'a:beforeEpoch', 'b:beforeEpoch', 'a:afterEpoch', 'b:afterEpoch',
    'a:afterCancelFit', 'b:afterCancelFit', 'a:afterFit', 'b:afterFit',
  ]);
  await l.dispose();
});

test('the loss falls and validation accuracy clears 90% on separable blobs', async () => {
  const l = new Learner({ net: mlpHead({ inputDim: 6, classes: 3, hidden: [16], seed: 3 }), train, val, batchSize: 16, seed: 3, threads: 1 });
  await l.fit(15, { lr: 0.01, schedule: { kind: 'one-cycle' } });
  assert.ok(l.history.at(-1)!.trainLoss < 0.6 * l.history[0]!.trainLoss, `loss ${l.history[0]!.trainLoss} -> ${l.history.at(-1)!.trainLoss}`);
  assert.ok(l.history.at(-1)!.valAccuracy! > 0.9, `val accuracy ${l.history.at(-1)!.valAccuracy}`);
  await l.dispose();
});

test('one seed gives the same run twice (shuffling, init and dropout masks)', async () => {
  const run = async () => {
    const l = new Learner({ net: mlpHead({ inputDim: 6, classes: 3, hidden: [8], dropout: 0.3, seed: 5 }), train, batchSize: 32, seed: 5, threads: 1 });
    await l.fit(3, { lr: 0.01 });
    const w = Array.from(l.getWeights().get('out.weight')!);
    await l.dispose();
    return w;
  };
  assert.deepEqual(await run(), await run());
});

test('early stopping stops on a stalled validation loss and restores the best epoch', async () => {
  const es = new EarlyStopping({ patience: 2 });
  let bestW: Float32Array | null = null;
  let bestLoss = Infinity;
  const spy: Callback = { name: 'spy', order: 60, afterEpoch: (l) => {
    const r = l.history.at(-1)!;
    if (r.valLoss! < bestLoss) { bestLoss = r.valLoss!; bestW = Float32Array.from(l.getWeights().get('linear.weight')!); }
  } };
  // A large constant rate makes the validation loss bounce, so it stalls quickly.
  const l = new Learner({ net: linearHead({ inputDim: 6, classes: 3 }), train, val, batchSize: 8, callbacks: [es, spy], optimizer: { kind: 'sgd', momentum: 0.9 }, threads: 1 });
  await l.fit(40, { lr: 0.5 });
  assert.ok(l.history.length < 40, 'stopped early');
  assert.equal(es.stoppedEpoch, l.history.at(-1)!.epoch);
  assert.deepEqual(Array.from(l.getWeights().get('linear.weight')!), Array.from(bestW!));
  const v = await l.evaluate(val);
  assert.ok(Math.abs(v.loss - bestLoss) < 1e-6, `restored val loss ${v.loss} vs best ${bestLoss}`);
  await l.dispose();
});

test('a run resumed from a checkpoint ends exactly where an uninterrupted run ends', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'graft-ckpt-'));
  const make = (cbs: Callback[]) => new Learner({
    net: mlpHead({ inputDim: 6, classes: 3, hidden: [8], dropout: 0.2, seed: 7 }), train, val, batchSize: 32, seed: 7, threads: 1,
    callbacks: [new EarlyStopping({ patience: 100 }), ...cbs],
  });
  const fit = { lr: 0.01, schedule: { kind: 'one-cycle' as const } };
  const full = make([]);
  await full.fit(6, fit);
  const ref = Array.from(full.getWeights().get('out.weight')!);

  const path = join(dir, 'run.ckpt');
  const killer: Callback = { name: 'kill', order: 99, afterEpoch: (l) => { if (l.history.length === 3) throw new Error('killed'); } };
  const first = make([new Checkpoint(path), killer]);
  await assert.rejects(first.fit(6, fit), /killed/);
  assert.ok(existsSync(path));
  const resumed = make([new Checkpoint(path)]);
  resumed.loadCheckpoint(path);
  assert.equal(resumed.epochsDone, 3);
  await resumed.fit(6, fit);
  assert.equal(resumed.history.length, 6);
  assert.deepEqual(Array.from(resumed.getWeights().get('out.weight')!), ref);
  // Resuming with other settings is refused.
  const other = make([]);
  other.loadCheckpoint(path);
  await assert.rejects(other.fit(6, { lr: 0.02 }), { code: 'E_CHECKPOINT' });
  for (const l of [full, first, resumed, other]) await l.dispose();
});

test('divergence stops at once with a typed error and keeps the last good weights', async () => {
  // Squared error with a far too large rate grows the weights geometrically until they overflow.
  const l = new Learner({ net: linearHead({ inputDim: 6, classes: 3 }), train, batchSize: 16, loss: mse(), optimizer: { kind: 'sgd' }, threads: 1 });
  await assert.rejects(l.fit(50, { lr: 100 }), (e: { code?: string }) => e.code === 'E_DIVERGED');
  for (const v of l.getWeights().values()) assert.ok(v.every(Number.isFinite));
  await l.dispose();
});

test('LR finder records a falling then rising loss, suggests a sane rate, and restores the weights', async () => {
  const l = new Learner({ net: mlpHead({ inputDim: 6, classes: 3, hidden: [16], seed: 1 }), train, batchSize: 16, threads: 1 });
  const before = Array.from(l.getWeights().get('out.weight')!);
  const r = await lrFind(l, { iters: 80 });
  assert.ok(r.lrs.length > 20);
  assert.ok(r.suggestion > 1e-5 && r.suggestion < 1, `suggestion ${r.suggestion}`);
  assert.ok(Math.min(...r.losses) < r.losses[0]!);
  assert.deepEqual(Array.from(l.getWeights().get('out.weight')!), before);
  await l.dispose();
});

test('freezeTo picks trainable groups and rejects groups that do not exist', () => {
  const l = new Learner({ net: linearHead({ inputDim: 6, classes: 3 }), train, threads: 1 });
  assert.deepEqual(l.trainableGroups, [0]);
  assert.throws(() => l.freezeTo(3), { code: 'E_BAD_OPTION' });
});

test('the progress bar stays quiet when stderr is not a terminal', async () => {
  const { Writable } = await import('node:stream');
  const sink = (tty: boolean) => {
    const chunks: string[] = [];
    const w = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } }) as unknown as NodeJS.WriteStream;
    (w as { isTTY?: boolean }).isTTY = tty;
    return { w, chunks };
  };
  const { ProgressBar } = await import('./callbacks.ts');
  for (const tty of [false, true]) {
    const s = sink(tty);
    const l = new Learner({ net: linearHead({ inputDim: 6, classes: 3 }), train, batchSize: 60, callbacks: [new ProgressBar(s.w)], threads: 1 });
    await l.fit(2, { lr: 0.01 });
    if (tty) assert.match(s.chunks.join(''), /epoch 2\/2 .*loss/);
    else assert.equal(s.chunks.length, 0);
    await l.dispose();
  }
});
