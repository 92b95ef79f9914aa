import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliRunner, expectError } from '../cli/testkit.ts';
import { writeSpamSplit, writeSubjectPairs } from '../data/spam.ts';
import { loadTextEncoder } from '../backbones/textenc.ts';
import { contrastivePairs } from '../text/setfit.ts';
import { readTextTable } from '../data/text.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-textft-'));
const graft = cliRunner(join(dir, 'cache'));
const ENC = new URL('../../fixtures/textenc/tiny-bert', import.meta.url).pathname;
const NER = new URL('../../fixtures/ner/', import.meta.url).pathname;
let spam: { train: string; test: string };
let pairs: { train: string; test: string };

before(() => {
  spam = writeSpamSplit(dir, 240, 100, 0, 600);
  mkdirSync(join(dir, 'pairs'));
  pairs = writeSubjectPairs(join(dir, 'pairs'), 200, 60, 0, 200);
});

// The encoder fixture is a tiny BERT with random weights (no pretrained BERT installs offline): these tests
// check that the encoder's own layers learn real tasks from scratch quickly, not transfer quality.

test('NER: fine-tuning the encoder on real CoNLL text reaches entity F1 > 0.3; predict prints entities with character offsets; eval scores entities', () => {
  const out = join(dir, 'ner');
  const t = graft('train', join(NER, 'train.conll'), '--backbone', ENC, '--task', 'ner', '--val-data', join(NER, 'dev.conll'), '--epochs', '6', '--freeze-epochs', '1',
    '--lr', '3e-3', '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  const r = t.json();
  assert.equal(r.task, 'ner');
  assert.deepEqual(r.trainedGroups, ['embeddings', 'layer0', 'layer1', 'head']);
  assert.deepEqual(r.stages.map((s: { name: string }) => s.name), ['head', 'fine-tune']);
  // Layer-wise decay: each group down gets 0.9 of the rate above it.
  assert.deepEqual(r.stages[1].lr.map((x: number) => +x.toPrecision(6)), [2.187e-3, 2.43e-3, 2.7e-3, 3e-3]);
  assert.ok(r.ner.micro.f1 > 0.3, `validation entity F1 ${r.ner.micro.f1}`);
  assert.match(t.stderr, /training length \d+ tokens \(95th percentile\)/);
  const card = JSON.parse(readFileSync(join(out, 'graft.json'), 'utf8'));
  assert.equal(card.task, 'token-classification');
  assert.equal(card.labels[0], 'O');
  assert.ok(card.files['model.onnx'] && readFileSync(join(out, 'tokenizer.json')).length > 0);

  const e = graft('eval', out, join(NER, 'test.conll'), '--json');
  assert.equal(e.code, 0, e.stderr);
  const ev = e.json();
  assert.equal(ev.n, 500);
  assert.ok(ev.micro.f1 > 0.3, `test entity F1 ${ev.micro.f1}`);
  assert.ok(Math.abs(ev.micro.f1 - (2 * ev.micro.precision * ev.micro.recall) / (ev.micro.precision + ev.micro.recall)) < 1e-12);

  const texts = join(dir, 'ner-texts.csv');
  const text = 'It costs $12.99 (50% off) at www.example.com until 2002-08-22.';
  writeFileSync(texts, `text\n"${text}"\n""\n"${'word '.repeat(400)}"\n`);
  const p = graft('predict', out, texts, '--json');
  assert.equal(p.code, 0, p.stderr);
  const preds = p.json().predictions as { text: string; entities: { type: string; start: number; end: number; text: string; score: number }[] }[];
  assert.equal(preds.length, 3);
  for (const ent of preds[0]!.entities) {
    assert.equal(text.slice(ent.start, ent.end), ent.text, 'offsets point at the entity text');
    assert.ok(ent.score > 0 && ent.score <= 1);
  }
  assert.ok(preds[0]!.entities.length > 0, 'some entity found in a text full of them');
  assert.deepEqual(preds[1]!.entities, [], 'an empty text has no entities');
  assert.match(p.stderr, /warning: 1 of 3 text\(s\) had more than 128 tokens/);
  const rep = graft('report', out, '--data', join(NER, 'test.conll'), '--out', join(dir, 'ner.html'));
  assert.equal(rep.code, 0, rep.stderr);
  assert.match(rep.stdout, /7\d{3} words of 500 sentences .* entities \(seqeval\): precision [\d.]+, recall [\d.]+, F1 0\.[3-9]/);
  assert.match(readFileSync(join(dir, 'ner.html'), 'utf8'), /B-URL/);
  const plain = graft('predict', out, texts);
  assert.match(plain.stdout, /^text 1: \d+ entit/m);
  assert.match(plain.stdout, /\t\d+-\d+\t"/);
});

test('sequence classification: fine-tuning with --mode gradual unfreezes one group per epoch; the saved model predicts the same as the validation score', () => {
  const out = join(dir, 'cls');
  const t = graft('train', spam.train, '--backbone', ENC, '--task', 'classify', '--mode', 'gradual', '--epochs', '4', '--lr', '1e-3', '--cut', 'mean', '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  const r = t.json();
  assert.deepEqual(r.stages.map((s: { groups: string[] }) => s.groups[0]), ['head', 'layer1', 'layer0', 'embeddings']);
  assert.ok(r.valAccuracy > 0.6, `validation accuracy ${r.valAccuracy}`);
  const e = graft('eval', out, spam.test, '--json');
  assert.equal(e.code, 0, e.stderr);
  assert.ok(e.json().accuracy > 0.6, `test accuracy ${e.json().accuracy}`);
  const p = graft('predict', out, spam.test, '--json');
  const probs = p.json().predictions.map((q: { probabilities: Record<string, number> }) => q.probabilities);
  for (const q of probs) assert.ok(Math.abs(q.ham + q.spam - 1) < 1e-5);
});

test('sequence classification: default fine-tuning is LP-FT (the convex probe as the head, pooling by its CV, rate from the finder, epochs from a step budget)', () => {
  const out = join(dir, 'lpft');
  const t = graft('train', spam.train, '--backbone', ENC, '--task', 'classify', '--mode', 'finetune', '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  const r = t.json();
  assert.deepEqual(r.stages.map((s: { name: string }) => s.name), ['fine-tune'], 'no random-head stage');
  assert.match(t.stderr, /head: the convex probe on (cls|mean)-pooled embeddings \(C = [\d.e+-]+, cross-validated accuracy [\d.]+%\), then fine-tuning from it \(LP-FT\)/);
  assert.match(t.stderr, /learning rate [\d.e+-]+ from the lr finder/);
  const card = JSON.parse(readFileSync(join(out, 'graft.json'), 'utf8'));
  assert.ok(r.stages[0].epochs >= 2 && r.stages[0].epochs <= 10);
  assert.ok(r.stages[0].lr.at(-1) >= 1e-5 && r.stages[0].lr.at(-1) <= 3e-4, `lr ${r.stages[0].lr}`);
  if (r.kept === 'probe') {
    // Fine-tuning lowered the accuracy, or did not lower the paired validation loss by two standard errors: the default probe is saved.
    assert.match(r.note, /the probe against fine-tuning on validation: (validation accuracy [\d.]+ below the probe's [\d.]+|validation loss gain -?[\d.]+ <= 2 x its standard error [\d.]+ over \d+ paired examples \(accuracy [\d.]+ vs [\d.]+\)): saved the default probe/);
    assert.equal(card.training.solver, 'lbfgs');
  } else {
    assert.equal(card.training.headInit.kind, 'convex probe (LP-FT)');
    if (r.kept === 'head') assert.match(r.note, /below the head-only stage/);
  }
  assert.ok(r.valAccuracy > 0.6, `validation accuracy ${r.valAccuracy}`);
});

test('sentence pairs: text and text_pair share one sequence with segment ids; eval and predict read both columns', async () => {
  const enc = await loadTextEncoder(ENC);
  const one = enc.tokenizer.encodePairOne('free money', 'click here');
  assert.deepEqual(Array.from(one.typeIds), [0, 0, 0, 0, 1, 1, 1]);
  const out = join(dir, 'pair');
  const t = graft('train', pairs.train, '--backbone', ENC, '--task', 'pair', '--epochs', '2', '--freeze-epochs', '1', '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  assert.deepEqual(t.json().labels, ['match', 'other']);
  const e = graft('eval', out, pairs.test, '--json');
  assert.equal(e.code, 0, e.stderr);
  assert.equal(e.json().n, 60);
  const p = graft('predict', out, pairs.test, '--json');
  assert.equal(p.code, 0, p.stderr);
  const preds = p.json().predictions as { label: string }[];
  const truth = readFileSync(pairs.test, 'utf8').trim().split('\n').slice(1).map((l) => l.slice(l.lastIndexOf(',') + 1));
  const acc = preds.filter((q, i) => q.label === truth[i]).length / preds.length;
  assert.ok(Math.abs(acc - e.json().accuracy) < 1e-12, 'predict and eval agree');
  const rep = graft('report', out, '--data', pairs.test, '--out', join(dir, 'pair.html'), '--json');
  assert.equal(rep.code, 0, rep.stderr);
  assert.ok(Math.abs(rep.json().accuracy - e.json().accuracy) < 1e-12, 'the report scores pairs as eval does');
  // A pair model needs its second column.
  const single = join(dir, 'single.csv');
  writeFileSync(single, 'text,label\nhello,match\n');
  expectError(graft('eval', out, single), 'E_CSV_COLUMNS');
});

test('SetFit: contrastive pairs, positives within a class and negatives across; --mode setfit trains and saves a classifier', () => {
  const y = Int32Array.from([0, 0, 0, 1, 1, 1, 2, 2]);
  const p = contrastivePairs(y, 3, 7);
  assert.equal(p.a.length, p.same.length);
  for (let i = 0; i < p.a.length; i++) {
    assert.equal(y[p.a[i]!] === y[p.b[i]!], p.same[i] === 1);
    if (p.same[i] === 1) assert.notEqual(p.a[i], p.b[i]);
  }
  assert.equal(p.same.filter((v) => v === 1).length, 3 * 8, 'one positive per example and round');
  assert.equal(p.same.filter((v) => v === 0).length, 3 * 8, 'one negative per example and round');

  const few = join(dir, 'few.csv');
  const t0 = readTextTable(spam.train);
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const pick = (label: string) => t0.texts.filter((_, i) => t0.labels![i] === label).slice(0, 8).map((s) => `${q(s)},${label}`);
  writeFileSync(few, ['text,label', ...pick('spam'), ...pick('ham')].join('\n') + '\n');
  const out = join(dir, 'setfit');
  const t = graft('train', few, '--backbone', ENC, '--mode', 'setfit', '--val', '0', '--lr', '1e-3', '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  assert.equal(t.json().kept, 'setfit');
  assert.match(t.stderr, /setfit: 6\d\d pairs from 16 examples/);
  const e = graft('eval', out, spam.test, '--json');
  assert.equal(e.code, 0, e.stderr);
  expectError(graft('train', pairs.train, '--backbone', ENC, '--task', 'pair', '--mode', 'setfit'), 'E_BAD_OPTION');
});

test('bad input: word vectors cannot be fine-tuned, unknown task, unknown labels at eval, malformed CoNLL with its line', () => {
  expectError(graft('train', spam.train, '--backbone', 'glove-100d', '--mode', 'finetune'), 'E_BAD_OPTION');
  expectError(graft('train', spam.train, '--backbone', ENC, '--task', 'summarise'), 'E_BAD_OPTION');
  expectError(graft('train', spam.train, '--task', 'ner', '--mode', 'finetune'), 'E_BAD_OPTION');
  const bad = join(dir, 'bad.conll');
  writeFileSync(bad, 'Hello O\nworld B-LOC extra\n\n');
  const r = graft('train', bad, '--backbone', ENC, '--task', 'ner');
  expectError(r, 'E_CONLL_MALFORMED');
  assert.match(r.stderr, /line 2/);
  const unknown = join(dir, 'unknown.csv');
  writeFileSync(unknown, 'text,label\nhello there,eggs\n');
  expectError(graft('eval', join(dir, 'cls'), unknown), 'E_UNKNOWN_LABEL');
});

test('length bucketing: batches cut to their longest example give the same scores as full padding, and an epoch trains on far fewer token positions', async () => {
  const { encoderNetwork, tokenRows } = await import('../text/encoder-net.ts');
  const { Learner } = await import('../train/learner.ts');
  const enc = await loadTextEncoder(ENC);
  const t = readTextTable(spam.train);
  const texts = t.texts.slice(0, 40).map((s, i) => s.slice(0, 20 + 30 * (i % 7)));
  const tok = enc.tokenizer.encode(texts);
  const L = 96;
  for (const task of ['sequence', 'token'] as const) {
    const net = encoderNetwork(enc, { classes: 3, seqLen: L, task, pooling: 'mean', dropout: 0 });
    const x = tokenRows(tok, L, net.rows, enc.tokenizer.padId);
    const lengths = Int32Array.from(tok.ids, (ids) => Math.min(L, ids.length));
    const y = new Int32Array(texts.length);
    const l = new Learner({ net, train: { x, y, n: texts.length }, evalBatchSize: 8 });
    const full = await l.evaluate({ x, y, n: texts.length });
    const cut = await l.evaluate({ x, y, n: texts.length, lengths });
    const k = net.outputs / (task === 'token' ? L : 1);
    let worst = 0;
    for (let i = 0; i < texts.length; i++) {
      const width = task === 'token' ? lengths[i]! * k : k; // per-token scores past the text's length are padding
      for (let j = 0; j < width; j++) worst = Math.max(worst, Math.abs(full.logits[i * net.outputs + j]! - cut.logits[i * net.outputs + j]!));
    }
    assert.ok(worst < 1e-5, `${task}: bucketed logits differ by ${worst}`);
    await l.dispose();
  }
  // The plan: batches of similar length, so the padded positions per epoch shrink.
  const lengths = Int32Array.from(tok.ids, (ids) => Math.min(L, ids.length));
  const sorted = [...lengths].sort((a, b) => a - b);
  let bucketed = 0;
  for (let i = 0; i < sorted.length; i += 8) bucketed += Math.min(L, Math.ceil(Math.max(...sorted.slice(i, i + 8)) / 16) * 16) * Math.min(8, sorted.length - i);
  assert.ok(bucketed < 0.8 * L * sorted.length, `bucketed positions ${bucketed} vs ${L * sorted.length} padded`);
});

test('a real pretrained encoder transfers: Universal Sentence Encoder lite (npm, converted) with SetFit at 8 emails per class beats the random tiny encoder', () => {
  const few = join(dir, 'few.csv'); // written by the SetFit test above: 8 spam and 8 ham
  const acc = (enc: string, lr: string) => {
    const out = join(dir, `few-${enc.length}`);
    const t = graft('train', few, '--backbone', enc, '--mode', 'setfit', '--val', '0', '--lr', lr, '--max-length', '64', '--out', out, '--json');
    assert.equal(t.code, 0, t.stderr);
    const e = graft('eval', out, spam.test, '--json');
    assert.equal(e.code, 0, e.stderr);
    return e.json().accuracy as number;
  };
  const show = graft('backbones', 'show', 'use-lite');
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /0 embeddings +\d+ weights\n +1 layer0 +\d+ weights\n +2 layer1 +\d+ weights\n +3 head/);
  assert.match(show.stdout, /dist\/group1-shard7of7 +sha256 a29a5e08/);
  const pretrained = acc('use-lite', '2e-5');
  const random = acc(ENC, '1e-3');
  assert.ok(pretrained > 0.7, `use-lite few-shot accuracy ${pretrained}`);
  assert.ok(pretrained > random + 0.05, `use-lite ${pretrained} vs random tiny encoder ${random}`);
});

test('a bucketed text fine-tune killed after an epoch and resumed from its checkpoint ends exactly where an uninterrupted run ends', async () => {
  const { encoderNetwork, tokenRows } = await import('../text/encoder-net.ts');
  const { Learner } = await import('../train/learner.ts');
  const { Checkpoint } = await import('../train/callbacks.ts');
  const enc = await loadTextEncoder(ENC);
  const t = readTextTable(spam.train);
  const texts = t.texts.slice(0, 48).map((s, i) => s.slice(0, 20 + 25 * (i % 5)));
  const tok = enc.tokenizer.encode(texts);
  const L = 64;
  const y = Int32Array.from(texts, (_, i) => (t.labels![i] === 'spam' ? 1 : 0));
  const make = (cbs: import('../train/callbacks.ts').Callback[]) => {
    const net = encoderNetwork(enc, { classes: 2, seqLen: L, seed: 3 });
    const x = tokenRows(tok, L, net.rows, enc.tokenizer.padId);
    return new Learner({ net, train: { x, y, n: texts.length, lengths: Int32Array.from(tok.ids, (ids) => Math.min(L, ids.length)) }, batchSize: 8, seed: 3, threads: 1, callbacks: cbs });
  };
  const fit = { lr: 1e-3, schedule: { kind: 'linear-warmup' as const, warmup: 2, decay: 'linear' as const } };
  const full = make([]);
  await full.fit(3, fit);
  const path = join(dir, 'text.ckpt');
  const killer = { name: 'kill', order: 99, afterEpoch: (l: { history: unknown[] }) => { if (l.history.length === 2) throw new Error('killed'); } };
  const first = make([new Checkpoint(path), killer]);
  await assert.rejects(first.fit(3, fit), /killed/);
  const resumed = make([new Checkpoint(path)]);
  resumed.loadCheckpoint(path);
  await resumed.fit(3, fit);
  for (const [k, v] of full.getWeights()) assert.deepEqual(Array.from(resumed.getWeights().get(k)!), Array.from(v), k);
  for (const l of [full, first, resumed]) await l.dispose();
});
