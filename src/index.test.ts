// The public API (src/index.ts) on real data: sklearn's digits as numeric CSV, as the CLI tests use it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDigitsSplit } from './data/digits.ts';
import { readNumericCsv } from './data/csv.ts';
import {
  type ProgressEvent, GraftError, backbone, backbones, dataKind, embed, evaluate, fineTune, isGraftError, loadModel, planTrain, predict, tasks, train,
} from './index.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-api-'));
let digits: { train: string; test: string };

before(() => {
  digits = writeDigitsSplit(dir, 0.25, 0);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The GraftError code a promise rejects with. */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(isGraftError(e), `not a GraftError: ${(e as Error).stack}`);
    return e.code;
  }
  assert.fail('expected a GraftError');
}

test('train, evaluate, predict and loadModel on digits: typed results, progress events, one model folder', async () => {
  const out = join(dir, 'linear');
  const events: ProgressEvent[] = [];
  const lines: string[] = [];
  const plan = planTrain(digits.train, { out, head: 'linear', threads: 2 });
  assert.equal(plan.trainer, 'tabular');
  assert.equal(plan.task, 'csv');
  const r = await train(digits.train, { out, head: 'linear', threads: 2, log: (l) => lines.push(l), onProgress: (e) => events.push(e) });
  assert.deepEqual(r.labels, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  assert.ok(r.valAccuracy !== null && r.valAccuracy > 0.9, `validation accuracy ${r.valAccuracy}`);
  assert.ok(existsSync(join(out, 'model.onnx')));
  assert.equal(events[0]?.type, 'phase');
  assert.ok(lines.some((l) => l.startsWith('protocol:')), lines.join('\n'));
  assert.deepEqual(events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message), lines, 'onProgress gets every log line');

  const ev = await evaluate(out, digits.test, { threads: 2 });
  assert.ok(!('micro' in ev));
  assert.ok(ev.accuracy > 0.9 && ev.n === 451, JSON.stringify(ev));

  const byPath = await predict(out, digits.test);
  assert.equal(byPath.task, 'csv');
  assert.equal(byPath.predictions.length, 451);
  // Rows by column name give the same probabilities as the file.
  const table = readNumericCsv(digits.test, { requireLabel: false });
  const rows = Array.from({ length: 5 }, (_, i) => Object.fromEntries(table.columns.map((c, j) => [c, table.x[i * table.d + j]!])));
  const model = await loadModel(out);
  assert.equal(model.task, 'csv');
  assert.equal(model.labels.length, 10);
  const a = await model.predict({ rows });
  const b = await model.predict({ rows });
  await model.dispose();
  assert.deepEqual(a, b, 'the kept session answers the same twice');
  if (a.task !== 'csv' || byPath.task !== 'csv') assert.fail('numeric-CSV predictions');
  for (let i = 0; i < 5; i++) {
    for (const l of model.labels) assert.ok(Math.abs(a.predictions[i]!.probabilities[l]! - byPath.predictions[i]!.probabilities[l]!) < 1e-6);
  }
  assert.equal(await codeOf(model.predict({ rows })), 'E_BAD_OPTION', 'a disposed predictor refuses');
  assert.equal(await codeOf(predict(out, { rows: [{ nope: 1 }] })), 'E_CSV_COLUMNS');
  assert.equal(await codeOf(predict(out, { texts: ['hello'] })), 'E_BAD_OPTION');
});

test('the MLP reports epochs through onProgress, and an AbortSignal stops it cleanly (E_ABORTED, no model folder)', async () => {
  const out = join(dir, 'mlp');
  const ac = new AbortController();
  const epochs: number[] = [];
  const code = await codeOf(train(digits.train, {
    out, head: 'mlp', epochs: 30, threads: 2, signal: ac.signal,
    onProgress: (e) => { if (e.type === 'epoch') { epochs.push(e.epoch); if (epochs.length === 2) ac.abort(); } },
  }));
  assert.equal(code, 'E_ABORTED');
  assert.equal(epochs.length, 2, 'stopped within the epoch after the abort');
  assert.ok(!existsSync(join(out, 'graft.json')), 'no model folder from an aborted run');
  // An already-aborted signal stops before anything runs.
  assert.equal(await codeOf(evaluate(join(dir, 'linear'), digits.test, { signal: AbortSignal.abort() })), 'E_ABORTED');
  rmSync(`${out}.checkpoint`, { force: true });
});

test('options are checked before anything runs; errors are GraftErrors with codes and hints', async () => {
  // @ts-expect-error: not a head graft has
  assert.throws(() => planTrain(digits.train, { head: 'resnet' }), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION' && e.hint.length > 0);
  assert.throws(() => planTrain(digits.train, { backbone: 'mobilenet_v2' }), /numeric CSV trains with --backbone none/);
  assert.throws(() => planTrain(digits.train, { task: 'ner' }), /--task ner needs text data/);
  assert.equal(await codeOf(fineTune(digits.train)), 'E_BAD_OPTION');
  assert.equal(await codeOf(evaluate(join(dir, 'no-such-model'), digits.test)), 'E_MODEL_MISSING');
  assert.equal(await codeOf(embed(join(dir, 'no-such-folder'), { out: join(dir, 'f.safetensors') })), 'E_FILE_MISSING');
  assert.equal(await codeOf(embed(digits.train, { out: join(dir, 'f.safetensors') })), 'E_BAD_OPTION');
});

test('the task table: data kinds, entries, and the backbone registry', async () => {
  const photos = join(dir, 'photos');
  mkdirSync(join(photos, 'a'), { recursive: true });
  writeFileSync(join(photos, 'a', 'x.png'), '');
  const texts = join(dir, 'texts.csv');
  writeFileSync(texts, 'text,label\nhello,a\n');
  const clips = join(dir, 'clips');
  mkdirSync(join(clips, 'yes'), { recursive: true });
  writeFileSync(join(clips, 'yes', 'x.wav'), '');
  assert.equal(dataKind(digits.train), 'csv');
  assert.equal(dataKind(photos), 'images');
  assert.equal(dataKind(join(photos, 'a', 'x.png')), 'images');
  assert.equal(dataKind(clips), 'audio');
  assert.equal(dataKind(texts), 'text');
  assert.equal(dataKind(join(dir, 'train.conll')), 'text');
  assert.deepEqual(tasks().map((t) => t.id), ['csv', 'images', 'audio', 'text', 'pair', 'ner']);
  assert.ok(backbones().some((b) => b.id === 'mobilenet_v2' && b.modality === 'image'));
  const speech = await backbone('speech-embedding');
  assert.equal(speech.modality, 'audio');
  assert.deepEqual([speech.groups, speech.candidates], [[], []]);
  assert.equal(await codeOf(backbone('resnet9000')), 'E_BAD_OPTION');
});
