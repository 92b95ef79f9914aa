import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadWordVectors, meanPool } from './wordvec.ts';

const fx = (f: string) => new URL(`../../fixtures/wordvec/${f}`, import.meta.url).pathname;
const cacheDir = mkdtempSync(join(tmpdir(), 'graft-wv-'));

test('GloVe text, word2vec text and binary, and fastText .vec load to the same vectors', () => {
  const ref = loadWordVectors(fx('tiny.glove.txt'), { cacheDir });
  assert.equal(ref.dim, 4);
  assert.equal(ref.size, 8);
  assert.deepEqual(Array.from(ref.lookup('the')!), [0.1, 0.2, 0.3, 0.4].map(Math.fround));
  for (const f of ['tiny.w2v.txt', 'tiny.w2v.bin', 'tiny.vec']) {
    const wv = loadWordVectors(fx(f), { cacheDir });
    assert.deepEqual(wv.words, ref.words, f);
    assert.deepEqual(wv.vectors, ref.vectors, f);
  }
  // The second load of a file comes from the parsed cache, with the same values.
  const again = loadWordVectors(fx('tiny.glove.txt'), { cacheDir });
  assert.equal(again.loadedFrom, 'cache');
  assert.deepEqual(again.vectors, ref.vectors);
});

test('mean pooling by hand, and bad files as typed errors', () => {
  const wv = loadWordVectors(fx('tiny.glove.txt'), { cacheDir });
  const p = meanPool(wv, ['The king', 'zzz unknown']);
  const want = [0, 1, 2, 3].map((j) => (wv.lookup('the')![j]! + wv.lookup('king')![j]!) / 2);
  want.forEach((w, j) => assert.ok(Math.abs(p.vectors[j]! - w) < 1e-6));
  assert.equal(p.oovOnly, 1);
  assert.ok(p.vectors.subarray(4).every((v) => v === 0));
  const bad = join(cacheDir, 'bad.txt');
  writeFileSync(bad, 'a 1 2 3\nb 1 two 3\n');
  assert.throws(() => loadWordVectors(bad, { cacheDir, cache: false }), { code: 'E_MODEL_CORRUPT' });
  assert.throws(() => loadWordVectors(join(cacheDir, 'missing.txt'), { cacheDir }), { code: 'E_FILE_MISSING' });
});
