import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSpamSplit } from '../data/spam.ts';
import { evalText, predictTexts, trainText } from './text.ts';
import { readTextTable } from '../data/text.ts';
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';

test('text probe on real emails (SpamAssassin) with GloVe: pooling chosen by CV, >= 90% on held-out mail', { timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'graft-text-probe-'));
  const { train, test: testCsv } = writeSpamSplit(dir, 300, 200, 0);
  const r = await trainText({ data: train, out: join(dir, 'model'), backbone: 'glove-100d' });
  assert.deepEqual(Object.keys(r.cutScores), ['mean', 'sif']);
  assert.equal(r.cutScores[r.cut], Math.max(...Object.values(r.cutScores)));
  const e = await evalText(join(dir, 'model'), testCsv);
  assert.equal(e.n, 400);
  assert.ok(e.accuracy >= 0.9, `test accuracy ${e.accuracy}`);
  const p = await predictTexts(join(dir, 'model'), ['', 'qwxz zzkq']); // empty and unknown-word texts still predict
  assert.equal(p.probs.length, 4);
  assert.ok(p.probs.every(Number.isFinite));
});

// ---- a BERT-family ONNX encoder (fixtures/textenc: a tiny random-weight BERT and its WordPiece tokenizer) ----------

const BIN = new URL('../../bin/graft.mjs', import.meta.url).pathname;
const ENCODER = new URL('../../fixtures/textenc/tiny-bert', import.meta.url).pathname;

function graft(env: Record<string, string>, ...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, GRAFT_THREADS: '1', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout.trim().split('\n').at(-1)!) };
}

test('graft train/eval/predict with a text encoder on real emails; model.onnx alone in plain ORT gives the same probabilities', { timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'graft-text-encoder-'));
  const env = { GRAFT_CACHE_DIR: join(dir, 'cache') };
  const { train, test: testCsv } = writeSpamSplit(dir, 150, 100, 0);
  const enc = join(dir, 'encoder');
  cpSync(ENCODER, enc, { recursive: true });
  const model = join(dir, 'model');

  const t = graft(env, 'train', train, '--backbone', enc, '--out', model, '--json');
  assert.equal(t.code, 0, t.stderr);
  const r = t.json();
  assert.deepEqual(Object.keys(r.cutScores), ['cls', 'mean']);
  assert.equal(r.cutScores[r.cut], Math.max(...Object.values(r.cutScores as Record<string, number>)));
  assert.ok(r.truncated > 0 && r.truncated <= 300);
  assert.equal(t.stderr.split('\n').filter((l) => /^warning: .* truncated to 128/.test(l)).length, 1, t.stderr);
  assert.deepEqual(readdirSync(model).sort(), ['graft.json', 'model.onnx', 'tokenizer.json', 'tokenizer_config.json']);
  const card = JSON.parse(readFileSync(join(model, 'graft.json'), 'utf8')) as { labels: string[]; input: { kind: string } };
  assert.equal(card.input.kind, 'token-ids');

  // The same features again come from the cache; --cut picks a pooling; wrong poolings are refused.
  const again = graft(env, 'train', train, '--backbone', ENCODER, '--cut', 'cls', '--head', 'knn', '--out', join(dir, 'model-cls'), '--json');
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /300 of 300 text\(s\) from the feature cache/);
  assert.equal(again.json().cut, 'cls');
  for (const [bb, cut] of [[enc, 'sif'], ['glove-100d', 'cls']] as const) {
    const bad = graft(env, 'train', train, '--backbone', bb, '--cut', cut, '--out', join(dir, 'bad'));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /error \[E_BAD_OPTION\]: --cut/);
  }

  // The model folder alone predicts: the encoder it came from is gone.
  rmSync(enc, { recursive: true });
  const e = graft(env, 'eval', model, testCsv, '--json');
  assert.equal(e.code, 0, e.stderr);
  assert.equal(e.json().n, 200);
  assert.ok(e.json().accuracy > 0.6, `a random tiny encoder still separates spam from ham above chance: ${e.json().accuracy}`);
  const p = graft(env, 'predict', model, testCsv, '--json');
  assert.equal(p.code, 0, p.stderr);
  const preds = p.json().predictions as { label: string; probabilities: Record<string, number> }[];

  // Plain onnxruntime-node, one text at a time (no padding), token ids from @huggingface/tokenizers itself.
  const tok = new Tokenizer(JSON.parse(readFileSync(join(model, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(join(model, 'tokenizer_config.json'), 'utf8')));
  const session = await ort.InferenceSession.create(join(model, 'model.onnx'));
  assert.deepEqual([...session.inputNames].sort(), ['attention_mask', 'input_ids', 'token_type_ids']);
  const texts = readTextTable(testCsv).texts;
  let worst = 0;
  for (const [i, text] of texts.entries()) {
    let ids: number[] = tok.encode(text).ids;
    if (ids.length > 128) ids = [...ids.slice(0, 127), ids.at(-1)!]; // [CLS] first 126 pieces [SEP]
    const feed = (v: (x: number) => number) => new ort.Tensor('int64', BigInt64Array.from(ids, (x: number) => BigInt(v(x))), [1, ids.length]);
    const out = await session.run({ input_ids: feed((x) => x), attention_mask: feed(() => 1), token_type_ids: feed(() => 0) });
    const probs = out['probabilities']!.data as Float32Array;
    card.labels.forEach((l, j) => (worst = Math.max(worst, Math.abs(probs[j]! - preds[i]!.probabilities[l]!))));
  }
  await session.release();
  assert.ok(worst < 1e-5, `graft predict vs plain ORT: max diff ${worst}`);
  console.log(`encoder model: test accuracy ${e.json().accuracy}, graft predict vs plain ORT max diff ${worst.toExponential(2)}`);

  // Empty and very long texts predict; a tokenizer that was changed after training is refused.
  const odd = join(dir, 'odd.csv');
  writeFileSync(odd, `text\n""\n"${'free money '.repeat(5000)}"\n`);
  const o = graft(env, 'predict', model, odd, '--json');
  assert.equal(o.code, 0, o.stderr);
  assert.match(o.stderr, /warning: 1 of 2 text\(s\) had more than 128 tokens/);
  assert.ok((o.json().predictions as { probabilities: Record<string, number> }[]).every((q) => Object.values(q.probabilities).every(Number.isFinite)));
  const tampered = join(dir, 'tampered');
  cpSync(model, tampered, { recursive: true });
  writeFileSync(join(tampered, 'tokenizer.json'), readFileSync(join(model, 'tokenizer.json'), 'utf8').replace('"[UNK]": 1', '"[UNK]": 2'));
  const c = graft(env, 'predict', tampered, odd);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /error \[E_MODEL_CORRUPT\]: .*tokenizer\.json does not match/);

  // A hub id (owner/name) from the cache, offline: the files copied where the hub client keeps them.
  const hubDir = join(dir, 'cache', 'acme', 'tiny-bert', 'main');
  cpSync(ENCODER, hubDir, { recursive: true });
  const h = graft({ ...env, GRAFT_OFFLINE: '1' }, 'train', train, '--backbone', 'acme/tiny-bert', '--cut', 'mean', '--out', join(dir, 'model-hub'), '--json');
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stderr, /300 of 300 text\(s\) from the feature cache/); // the same encoder: the same sha256
  rmSync(dir, { recursive: true, force: true });
});
