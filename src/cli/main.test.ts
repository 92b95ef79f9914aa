import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { writeDigitsSplit } from '../data/digits.ts';
import { readNumericCsv } from '../data/csv.ts';

const BIN = new URL('../../bin/graft.mjs', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'graft-cli-'));
let train = '';
let testCsv = '';

function graft(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, GRAFT_THREADS: '2' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout.trim().split('\n').at(-1)!) };
}

before(() => {
  ({ train, test: testCsv } = writeDigitsSplit(dir, 0.25, 0));
});

test('digits: graft train --head mlp reaches >= 96% test accuracy, and eval/predict agree with plain onnxruntime', async () => {
  const out = join(dir, 'mlp');
  const t = graft('train', train, '--backbone', 'none', '--head', 'mlp', '--val', '0.2', '--epochs', '40', '--lr', '0.003', '--seed', '0', '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  const tr = t.json();
  assert.equal(tr.labels.length, 10);
  const e = graft('eval', out, testCsv, '--json');
  assert.equal(e.code, 0, e.stderr);
  const ev = e.json();
  assert.ok(ev.accuracy >= 0.96, `test accuracy ${ev.accuracy}`);
  assert.ok(ev.macroF1 >= 0.95, `macro-F1 ${ev.macroF1}`);
  assert.equal(ev.n, 451); // 25% of 1,797, stratified per class
  assert.deepEqual(Object.keys(ev).sort(), ['accuracy', 'macroF1', 'n']);

  // The saved model.onnx alone, in plain onnxruntime-node, gives the same probabilities as graft predict.
  const p = graft('predict', out, testCsv, '--json');
  assert.equal(p.code, 0, p.stderr);
  const preds = p.json().predictions as { label: string; probabilities: Record<string, number> }[];
  const card = JSON.parse(readFileSync(join(out, 'graft.json'), 'utf8'));
  const table = readNumericCsv(testCsv, { requireLabel: false, featureColumns: card.input.columns });
  const s = await ort.InferenceSession.create(join(out, 'model.onnx'));
  const r = await s.run({ input: new ort.Tensor('float32', table.x, [table.n, table.d]) });
  const probs = r['probabilities']!.data as Float32Array;
  const k = card.labels.length;
  let maxDiff = 0;
  preds.forEach((row, i) => card.labels.forEach((lab: string, j: number) => { maxDiff = Math.max(maxDiff, Math.abs(row.probabilities[lab]! - probs[i * k + j]!)); }));
  assert.ok(maxDiff < 1e-6, `max probability difference ${maxDiff}`);
  assert.equal(card.format, 'graft-model');
  for (const key of ['labels', 'input', 'head', 'metrics', 'training', 'provenance', 'createdAt', 'graftVersion']) assert.ok(key in card, key);
  assert.equal(card.training.seed, 0);
});

test('linear head trains too, and --json keeps progress off stdout', () => {
  const out = join(dir, 'linear');
  const t = graft('train', train, '--head', 'linear', '--epochs', '20', '--lr', '0.01', '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  const lines = t.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'stdout holds only the JSON result');
  assert.ok(t.json().valAccuracy > 0.9);
});

test('a killed training run resumes from its checkpoint to the same model', async () => {
  const args = (out: string) => ['train', train, '--head', 'mlp', '--epochs', '30', '--lr', '0.003', '--seed', '3', '--patience', '100', '--threads', '1', '--out', out, '--json'];
  const ref = join(dir, 'ref');
  assert.equal(graft(...args(ref)).code, 0);
  const out = join(dir, 'killed');
  const ckpt = `${out}.checkpoint`;
  const child = spawn(process.execPath, [BIN, ...args(out)], { stdio: 'ignore' });
  const deadline = Date.now() + 60_000;
  while (!existsSync(ckpt) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 150)); // let it get a few epochs in
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(existsSync(ckpt), 'checkpoint written before the kill');
  assert.ok(!existsSync(join(out, 'graft.json')), 'no model folder from a killed run');
  const resumed = graft(...args(out), '--resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.ok(!existsSync(ckpt), 'checkpoint removed once the model is saved');
  const a = graft('predict', ref, testCsv, '--json').json().predictions;
  const b = graft('predict', out, testCsv, '--json').json().predictions;
  assert.deepEqual(b, a);
});

function expectError(r: ReturnType<typeof graft>, code: string) {
  assert.equal(r.code, 2, `exit code for ${code}: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`error \\[${code}\\]`));
  assert.match(r.stderr, /hint: /);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

test('bad input: typed errors with hints, exit code 2, and no half-written model folder', () => {
  const w = (name: string, text: string) => { const p = join(dir, name); writeFileSync(p, text); return p; };
  const cases: [string, string][] = [
    [join(dir, 'nope.csv'), 'E_FILE_MISSING'],
    [w('text.csv', 'a,b,label\n1,2,x\n3,oops,y\n'), 'E_CSV_NOT_NUMERIC'],
    [w('nolabel.csv', 'a,b\n1,2\n3,4\n'), 'E_CSV_NO_LABEL'],
    [w('one.csv', 'a,b,label\n1,2,x\n3,4,x\n5,6,x\n'), 'E_ONE_CLASS'],
    [w('nan.csv', 'a,b,label\n1,NaN,x\n3,4,y\n'), 'E_CSV_NOT_FINITE'],
    [w('inf.csv', 'a,b,label\n1,Infinity,x\n3,4,y\n'), 'E_CSV_NOT_FINITE'],
    [w('empty.csv', ''), 'E_CSV_EMPTY'],
    [w('header.csv', 'a,b,label\n'), 'E_CSV_EMPTY'],
  ];
  for (const [file, code] of cases) {
    const out = join(dir, `bad-${code}`);
    expectError(graft('train', file, '--out', out), code);
    assert.ok(!existsSync(out), `no model folder after ${code}`);
  }
  expectError(graft('train', train, '--head', 'resnet'), 'E_BAD_OPTION');
  expectError(graft('train', train, '--epochs', 'many'), 'E_USAGE');
  expectError(graft('frobnicate'), 'E_USAGE');
});

test('bad model folders: missing, missing file, corrupt file', () => {
  const good = join(dir, 'mlp');
  expectError(graft('eval', join(dir, 'no-such-model'), testCsv), 'E_MODEL_MISSING');
  const copy = (name: string) => {
    const d = join(dir, name);
    spawnSync('cp', ['-r', good, d]);
    return d;
  };
  const noOnnx = copy('no-onnx');
  rmSync(join(noOnnx, 'model.onnx'));
  expectError(graft('eval', noOnnx, testCsv), 'E_MODEL_MISSING');
  const noCard = copy('no-card');
  rmSync(join(noCard, 'graft.json'));
  expectError(graft('predict', noCard, testCsv), 'E_MODEL_MISSING');
  const badOnnx = copy('bad-onnx');
  const bytes = readFileSync(join(badOnnx, 'model.onnx'));
  writeFileSync(join(badOnnx, 'model.onnx'), bytes.subarray(0, bytes.length >> 1));
  expectError(graft('eval', badOnnx, testCsv), 'E_MODEL_CORRUPT');
  const badCard = copy('bad-card');
  writeFileSync(join(badCard, 'graft.json'), '{"format": "graft-model", ');
  expectError(graft('eval', badCard, testCsv), 'E_MODEL_CORRUPT');
  // Rows whose columns do not match the model's.
  const wrong = join(dir, 'wrong-cols.csv');
  writeFileSync(wrong, 'a,b,label\n1,2,0\n');
  expectError(graft('eval', good, wrong), 'E_CSV_COLUMNS');
});
