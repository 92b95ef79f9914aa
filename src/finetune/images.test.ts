import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { writeFashionFolder } from '../data/idx.ts';
import { BIN, cliRunner, expectError } from '../cli/testkit.ts';
import { prepareImage } from '../data/images.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-ft-'));
const cache = join(dir, 'cache');
const train = join(dir, 'train');
const testDir = join(dir, 'test');

const graft = cliRunner(cache);

// Small and fast: 64x64 inputs (MobileNetV2 is fully convolutional), 10 real Fashion-MNIST classes.
const small = ['--size', '64', '--batch-size', '16', '--seed', '1'];

before(async () => {
  await writeFashionFolder(train, 'train', 12, 0);
  await writeFashionFolder(testDir, 't10k', 6, 0);
});


test('graft train --mode finetune: head first, then the top groups with discriminative rates from a cached prefix; one ONNX graph from pixels', async () => {
  const out = join(dir, 'ft');
  // A random head trained first (--freeze-epochs), no augmentation: the classic recipe, options given.
  const t = graft('train', train, '--mode', 'finetune', '--unfreeze', '2', '--epochs', '3', '--lr', '1e-3', '--head', 'mlp', '--freeze-epochs', '3', '--no-augment', ...small, '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  const r = t.json();
  assert.equal(r.mode, 'finetune');
  assert.deepEqual(r.trainedGroups, ['block_16', 'top', 'head']);
  assert.match(r.cachedPrefix, /^block_16 entry \[160x2x2\]$/);
  assert.deepEqual(r.stages.map((s: { name: string; groups: string[] }) => [s.name, s.groups]), [['head', ['head']], ['fine-tune', ['block_16', 'top', 'head']]]);
  // Discriminative rates: the head gets lr, each group down half of the one above.
  assert.deepEqual(r.stages[1].lr, [2.5e-4, 5e-4, 1e-3]);
  assert.match(t.stderr, /cached prefix: the frozen layers below block_16 run once/);

  const card = JSON.parse(readFileSync(join(out, 'graft.json'), 'utf8'));
  assert.equal(card.training.mode, 'finetune');
  assert.deepEqual(card.input.shape, [3, 64, 64]);
  assert.equal(card.history.length, 6, 'three head epochs + three fine-tuning epochs');
  assert.ok(['head', 'fine-tune'].includes(card.training.kept));
  assert.ok(card.diagnosis.summary.length > 10);

  // The saved graph alone, in plain onnxruntime-node, from prepared pixels gives graft predict's probabilities.
  const classes = readdirSync(testDir).sort();
  const file = join(testDir, classes[0]!, readdirSync(join(testDir, classes[0]!))[0]!);
  const p = graft('predict', out, file, '--json');
  assert.equal(p.code, 0, p.stderr);
  const pred = p.json().predictions[0];
  const s = await ort.InferenceSession.create(join(out, 'model.onnx'));
  const x = await prepareImage(file, card.input.preprocess);
  const probs = (await s.run({ input: new ort.Tensor('float32', x, [1, 3, 64, 64]) }))['probabilities']!.data as Float32Array;
  card.labels.forEach((l: string, j: number) => assert.ok(Math.abs(pred.probabilities[l] - probs[j]!) < 1e-5, l));

  const e = graft('eval', out, testDir, '--json');
  assert.equal(e.code, 0, e.stderr);
  assert.equal(e.json().n, 60);
  assert.ok(e.json().accuracy > 0.3, `10 classes from 12 images each: above chance (${e.json().accuracy})`);
});

test('default fine-tuning is LP-FT: the convex probe as the head, augmentation for a small set, epochs from a step budget, lr from the finder', () => {
  const out = join(dir, 'lpft');
  const t = graft('train', train, '--mode', 'finetune', '--unfreeze', '1', ...small, '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  const r = t.json();
  assert.deepEqual(r.stages.map((s: { name: string }) => s.name), ['fine-tune'], 'no random-head stage: the head starts as the probe');
  assert.equal(r.cachedPrefix, null, 'augmentation on by default for 12 images per class');
  assert.match(t.stderr, /augmentation on by default: the smallest class has \d+ images/);
  assert.match(t.stderr, /head: the convex probe \(C = [\d.e+-]+, cross-validated accuracy [\d.]+%\), then fine-tuning from it \(LP-FT\)/);
  assert.match(t.stderr, /learning rate [\d.e+-]+ from the lr finder/);
  const card = JSON.parse(readFileSync(join(out, 'graft.json'), 'utf8'));
  // 96 training images at batch 16: 6 steps per epoch, 240 / 6 = 40 epochs, capped at 20.
  assert.equal(r.stages[0].epochs, 20);
  assert.ok(r.stages[0].lr.at(-1) >= 1e-5 && r.stages[0].lr.at(-1) <= 3e-3, `lr ${r.stages[0].lr}`);
  // LP-FT starts at the default probe's cut (searched over every block output), and is kept only when
  // it beats that probe on the validation split; otherwise the default probe is what is saved.
  const probeCut = /fine-tuning at the default probe's cut (\S+) \(validation accuracy [\d.]+%\)/.exec(t.stderr)?.[1];
  assert.ok(probeCut, t.stderr);
  if (r.kept === 'probe') {
    assert.match(r.note, /the default probe \(cut [^)]+\) against fine-tuning on validation: (validation accuracy [\d.]+ below the probe's [\d.]+|validation loss gain -?[\d.]+ <= 2 x its standard error [\d.]+ over \d+ paired examples \(accuracy [\d.]+ vs [\d.]+\)): saved the default probe/);
    assert.equal(card.backbone.cut, probeCut);
    assert.equal(card.training.solver, 'lbfgs');
  } else {
    assert.equal(card.training.headInit.kind, 'convex probe (LP-FT)');
    assert.equal(card.backbone.cut, probeCut);
    if (r.kept !== 'head') assert.match(t.stderr, /keep rule: validation loss gain [\d.]+ > 2 x its standard error [\d.]+ over \d+ paired examples/);
    // Small-data protocol: the validation split chose fine-tuning and its epochs; the saved model was
    // fine-tuned again on every image.
    assert.equal(card.training.refit.epochs, card.training.epochs);
    assert.ok(card.training.refit.valAccuracy >= card.training.refit.probeValAccuracy);
    assert.equal(card.metrics.nVal, 0);
    assert.equal(card.metrics.nTrain, 120);
    assert.equal(card.training.augment, true);
    if (r.kept === 'head') assert.match(r.note, /below the head-only stage/);
  }
});

test('graft train --mode gradual unfreezes one more group each epoch; --augment reruns the prefix instead of caching it', () => {
  const out = join(dir, 'gradual');
  const t = graft('train', train, '--mode', 'gradual', '--epochs', '3', '--augment', ...small, '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  const r = t.json();
  assert.deepEqual(r.stages.map((s: { groups: string[] }) => s.groups[0]), ['head', 'top', 'block_16']);
  assert.equal(r.cachedPrefix, null);
  assert.match(t.stderr, /augmentation on: the frozen prefix below block_16 runs again/);
});

test('mixup, L2-SP and label smoothing are recorded and train', () => {
  const out = join(dir, 'reg');
  const t = graft('train', train, '--mode', 'finetune', '--unfreeze', '1', '--epochs', '2', '--mixup', '0.4', '--l2sp', '1', '--label-smoothing', '0.1', '--no-probe-fallback', ...small, '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  const card = JSON.parse(readFileSync(join(out, 'graft.json'), 'utf8'));
  assert.equal(card.training.mixup, 0.4);
  assert.equal(card.training.l2sp, 1);
  assert.equal(card.training.labelSmoothing, 0.1);
  assert.ok(card.history.every((h: { trainLoss: number }) => Number.isFinite(h.trainLoss)));
});

test('fine-tuning bad input: too many groups, a kNN head, a bad mode or size are typed errors', () => {
  expectError(graft('train', train, '--mode', 'finetune', '--unfreeze', '9', ...small, '--out', join(dir, 'x1')), 'E_BAD_OPTION');
  expectError(graft('train', train, '--mode', 'finetune', '--head', 'knn', ...small, '--out', join(dir, 'x2')), 'E_BAD_OPTION');
  expectError(graft('train', train, '--mode', 'sideways', '--out', join(dir, 'x3')), 'E_BAD_OPTION');
  expectError(graft('train', train, '--mode', 'finetune', '--size', '8', '--out', join(dir, 'x4')), 'E_BAD_OPTION');
  const r = graft('train', train, '--mode', 'finetune', '--unfreeze', '9', ...small, '--out', join(dir, 'x1'));
  // Groups below the cut count: the default probe's cut may sit below the top groups.
  assert.match(r.stderr, /cannot unfreeze 9 groups: the backbone has \d+ below cut \S+ \(plus the head\)/);
  assert.ok(!existsSync(join(dir, 'x1')));
});

test('graft lr-find sweeps the fine-tuning network and writes the plot', () => {
  const html = join(dir, 'lr.html');
  const r = graft('lr-find', train, '--unfreeze', '2', ...small, '--out', html, '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = r.json();
  assert.ok(j.suggestion > 1e-7 && j.suggestion < 10, `suggestion ${j.suggestion}`);
  assert.ok(j.lrs.length >= 10 && j.lrs.every((x: number, i: number) => i === 0 || x > j.lrs[i - 1]));
  const page = readFileSync(html, 'utf8');
  assert.match(page, /data-section="lr-find"/);
  assert.match(page, /Suggested learning rate/);
});

test('a fine-tune killed mid-run resumes from its checkpoint (stage and epoch) to the same model', async () => {
  // LP-FT with two head epochs before unfreezing, and the lr finder's rate, which the resumed run must reuse.
  const args = (out: string) => ['train', train, '--mode', 'finetune', '--unfreeze', '2', '--epochs', '6', '--freeze-epochs', '2', '--no-augment', '--patience', '100', '--threads', '1', ...small, '--out', out, '--json'];
  const ref = join(dir, 'ref');
  assert.equal(graft(...args(ref)).code, 0);
  const out = join(dir, 'killed');
  const ckpt = `${out}.checkpoint`;
  const child = spawn(process.execPath, [BIN, ...args(out)], { stdio: 'ignore', env: { ...process.env, GRAFT_CACHE_DIR: cache } });
  const deadline = Date.now() + 120_000;
  // Wait until the checkpoint is from the fine-tuning stage (stage 2), then kill.
  const stageOf = () => {
    try {
      const buf = readFileSync(ckpt);
      const n = Number(buf.readBigUInt64LE(0));
      const meta = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))['__metadata__'];
      const st = JSON.parse(meta.state);
      return { stage: st.callbacks['policy-stage']?.stage ?? -1, epochs: st.epochsDone };
    } catch { return { stage: -1, epochs: 0 }; }
  };
  while (Date.now() < deadline) {
    const s = stageOf();
    if (s.stage === 1 && s.epochs >= 2) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal(stageOf().stage, 1, 'killed during the fine-tuning stage');
  assert.ok(!existsSync(join(out, 'graft.json')), 'no model folder from a killed run');
  const resumed = graft(...args(out), '--resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  const a = graft('predict', ref, testDir, '--json').json().predictions;
  const b = graft('predict', out, testDir, '--json').json().predictions;
  assert.deepEqual(b, a);
});
