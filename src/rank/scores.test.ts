import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { shuffle } from '../data/split.ts';
import { rng } from '../rng.ts';
import { symEig } from './linalg.ts';
import { disposeProducts } from './products.ts';
import { argmaxRows, hScore, knnAccuracy, leep, logme, nce, transferScores, weightedTau } from './scores.ts';

// fixtures/rank/reference.json: scripts/gen_rank_fixture.py, each score written from its paper in numpy.
interface FeatureCase { name: string; n: number; d: number; k: number; maxDim: number; x: number[]; y: number[]; logme: number; hScore: number; knn5: number; knn1: number }
interface SourceCase { name: string; n: number; kSource: number; k: number; probs: number[]; y: number[]; nce: number; leep: number }
const ref = JSON.parse(readFileSync(new URL('../../fixtures/rank/reference.json', import.meta.url), 'utf8')) as {
  features: FeatureCase[]; sources: SourceCase[]; weightedTau: { x: number[]; y: number[]; tau: number }[];
};

after(() => disposeProducts());

function close(actual: number, expected: number, rel: number, what: string): void {
  assert.ok(Number.isFinite(actual), `${what}: ${actual}`);
  const err = Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-12);
  assert.ok(err <= rel, `${what}: ${actual} vs reference ${expected} (relative error ${err.toExponential(2)} > ${rel})`);
}

const data = (c: FeatureCase) => ({ x: Float32Array.from(c.x), y: Int32Array.from(c.y) });

test('LogME, H-score and kNN accuracy match the numpy reference to 1e-6 (float64 products)', async () => {
  for (const c of ref.features) {
    const { x, y } = data(c);
    const o = { maxDim: c.maxDim, products: 'js' as const };
    close(await logme(x, y, c.d, c.k, o), c.logme, 1e-6, `${c.name}: LogME`);
    close(await hScore(x, y, c.d, c.k, o), c.hScore, 1e-6, `${c.name}: H-score`);
    assert.equal(await knnAccuracy(x, y, c.d, c.k), c.knn5, `${c.name}: 5-NN`);
    assert.equal(await knnAccuracy(x, y, c.d, c.k, { neighbors: 1 }), c.knn1, `${c.name}: 1-NN`);
    const all = await transferScores(x, y, c.d, c.k, o);
    close(all.logme, c.logme, 1e-6, `${c.name}: transferScores LogME`);
    close(all.hScore, c.hScore, 1e-6, `${c.name}: transferScores H-score`);
    assert.equal(all.knn, c.knn5, `${c.name}: transferScores kNN`);
    assert.equal(all.reduction, Math.min(c.n, c.d) > c.maxDim ? 'exact' : 'none');
  }
});

test('with float32 Gram matrices on ORT the scores stay within 1e-5 of the reference', async () => {
  for (const c of ref.features) {
    const { x, y } = data(c);
    const all = await transferScores(x, y, c.d, c.k, { maxDim: c.maxDim, products: 'ort' });
    close(all.logme, c.logme, 1e-5, `${c.name}: LogME`);
    close(all.hScore, c.hScore, 1e-5, `${c.name}: H-score`);
    assert.equal(all.knn, c.knn5, `${c.name}: kNN`);
  }
});

test('NCE and LEEP match the reference; transferScores adds them from source probabilities', async () => {
  for (const s of ref.sources) {
    const p = Float32Array.from(s.probs);
    const y = Int32Array.from(s.y);
    close(nce(argmaxRows(p, s.kSource), y, s.kSource, s.k), s.nce, 1e-9, `${s.name}: NCE`);
    close(leep(p, y, s.kSource, s.k), s.leep, 1e-9, `${s.name}: LEEP`);
    assert.ok(s.nce <= 0 && s.leep <= 0);
  }
  const s = ref.sources[0]!;
  const x = Float32Array.from({ length: s.n * 4 }, (_, i) => Math.sin(i));
  const all = await transferScores(x, Int32Array.from(s.y), 4, s.k, { sourceProbs: Float32Array.from(s.probs), kSource: s.kSource });
  close(all.nce!, s.nce, 1e-9, 'transferScores NCE');
  close(all.leep!, s.leep, 1e-9, 'transferScores LEEP');
  // A source label that determines the target label: NCE reaches its maximum, 0.
  assert.equal(nce(Int32Array.from([0, 0, 1, 2, 2]), Int32Array.from([1, 1, 0, 1, 1]), 3, 2), 0);
});

test('weighted tau matches scipy.stats.weightedtau (ties included); 1 for the same ranking, -1 reversed', () => {
  for (const t of ref.weightedTau) close(weightedTau(t.x, t.y), t.tau, 1e-12, `weightedtau of ${t.x.length}`);
  const a = [0.3, 0.9, 0.1, 0.5, 0.7];
  assert.ok(Math.abs(weightedTau(a, a) - 1) < 1e-15);
  assert.ok(Math.abs(weightedTau(a, a.map((v) => -v)) + 1) < 1e-15);
  // Swapping the two best hurts more than swapping the two worst.
  const acc = [1, 2, 3, 4, 5];
  assert.ok(weightedTau([1, 2, 3, 5, 4], acc) < weightedTau([2, 1, 3, 4, 5], acc));
  assert.equal(weightedTau([1, 1, 1], [1, 2, 3]), 0, 'a constant list (scipy: NaN) gives 0');
  assert.throws(() => weightedTau([1, 2], [1]), { code: 'E_BAD_OPTION' });
});

test('on real data (sklearn digits) and on clustered features, true labels outscore shuffled ones', async () => {
  const digits = ref.features.find((c) => c.name.startsWith('sklearn digits'))!;
  const gauss = (r: () => number) => Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
  const r = rng(7);
  const n = 300;
  const d = 40;
  const yc = Int32Array.from({ length: n }, (_, i) => i % 3);
  const centres = Float64Array.from({ length: 3 * d }, () => gauss(r));
  const clustered = Float32Array.from({ length: n * d }, (_, i) => centres[yc[Math.floor(i / d)]! * d + (i % d)]! + 1.5 * gauss(r));
  for (const [name, x, y, d_, k] of [
    ['digits', Float32Array.from(digits.x), Int32Array.from(digits.y), digits.d, digits.k],
    ['clustered', clustered, yc, d, 3],
  ] as const) {
    const shuffled = Int32Array.from(shuffle(Int32Array.from(y.keys()), 3), (i) => y[i]!);
    const real = await transferScores(x, y, d_, k);
    const fake = await transferScores(x, shuffled, d_, k);
    assert.ok(real.logme > fake.logme + 0.05, `${name}: LogME ${real.logme} vs shuffled ${fake.logme}`);
    assert.ok(real.hScore > 2 * fake.hScore, `${name}: H-score ${real.hScore} vs shuffled ${fake.hScore}`);
    assert.ok(real.knn > fake.knn + 0.3, `${name}: kNN ${real.knn} vs shuffled ${fake.knn}`);
  }
  // Digits: 5-fold kNN is close to leave-one-out and repeatable for a seed.
  const x = Float32Array.from(digits.x);
  const y = Int32Array.from(digits.y);
  const folds = await knnAccuracy(x, y, digits.d, digits.k, { folds: 5 });
  assert.equal(folds, await knnAccuracy(x, y, digits.d, digits.k, { folds: 5 }));
  assert.ok(Math.abs(folds - digits.knn5) < 0.05, `5-fold ${folds} vs leave-one-out ${digits.knn5}`);
});

test('LogME and the H-score do not change when the features are rotated', async () => {
  const c = ref.features.find((f) => f.name === 'n>d')!;
  const { x, y } = data(c);
  const r = rng(5);
  const { vectors: rot } = symEig(Float64Array.from({ length: c.d * c.d }, (_, i) => { const a = Math.floor(i / c.d); const b = i % c.d; return a >= b ? Math.sin(a * 7 + b * 3 + r()) : 0; }), c.d);
  const xr = new Float32Array(x.length);
  for (let i = 0; i < c.n; i++) for (let j = 0; j < c.d; j++) { let s = 0; for (let t = 0; t < c.d; t++) s += x[i * c.d + t]! * rot[t * c.d + j]!; xr[i * c.d + j] = s; }
  close(await logme(xr, y, c.d, c.k), c.logme, 1e-5, 'rotated LogME');
  close(await hScore(xr, y, c.d, c.k), c.hScore, 1e-5, 'rotated H-score');
});

test('the randomized SVD loses nothing on low-rank features and little on a decaying spectrum', async () => {
  const r = rng(9);
  const n = 420;
  const d = 400;
  const k = 4;
  const y = Int32Array.from({ length: n }, (_, i) => i % k);
  // Rank 20 < maxDim 32: the randomized range finder spans the whole column space.
  const a = Float64Array.from({ length: n * 20 }, (_, i) => r() - 0.5 + (i % 20 < 3 ? 0.3 * y[Math.floor(i / 20)]! : 0));
  const b = Float64Array.from({ length: 20 * d }, () => r() - 0.5);
  const low = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) { let s = 0; for (let t = 0; t < 20; t++) s += a[i * 20 + t]! * b[t * d + j]!; low[i * d + j] = s; }
  const exact = await transferScores(low, y, d, k, { maxDim: 32, svd: 'exact', products: 'js' });
  const rand = await transferScores(low, y, d, k, { maxDim: 32, svd: 'randomized', products: 'js' });
  const full = await logme(low, y, d, k, { maxDim: 400, products: 'js' });
  assert.equal(exact.reduction, 'exact');
  assert.equal(rand.reduction, 'randomized');
  close(rand.logme, exact.logme, 1e-6, 'low rank: randomized vs exact LogME');
  close(rand.logme, full, 1e-6, 'low rank: reduced vs unreduced LogME');
  close(rand.hScore, exact.hScore, 1e-6, 'low rank: randomized vs exact H-score');
  // Full rank with a decaying spectrum: a few per cent at most.
  const dec = Float32Array.from({ length: n * d }, (_, i) => Math.max(0, (r() - 0.3) * Math.exp(-(i % d) / 40) + 0.05 * y[Math.floor(i / d)]! * ((i % d) < 10 ? 1 : 0)));
  const e2 = await transferScores(dec, y, d, k, { maxDim: 64, svd: 'exact' });
  const r2 = await transferScores(dec, y, d, k, { maxDim: 64, svd: 'randomized' });
  close(r2.logme, e2.logme, 0.03, 'decaying spectrum: LogME');
  close(r2.hScore, e2.hScore, 0.03, 'decaying spectrum: H-score');
  assert.equal(r2.knn, e2.knn, 'kNN is never reduced');
});

test('bad input: typed errors for NaN, unknown or missing classes, wrong shapes; finite scores for degenerate features', async () => {
  const n = 30;
  const d = 6;
  const y = Int32Array.from({ length: n }, (_, i) => i % 3);
  const good = Float32Array.from({ length: n * d }, (_, i) => Math.cos(i * 1.3) + y[Math.floor(i / d)]! * (i % d === 0 ? 1 : 0));
  const withNaN = Float32Array.from(good);
  withNaN[17] = NaN;
  const withInf = Float32Array.from(good);
  withInf[3] = Infinity;
  for (const bad of [withNaN, withInf]) {
    await assert.rejects(logme(bad, y, d, 3), { code: 'E_FEATURES_NOT_FINITE' });
    await assert.rejects(hScore(bad, y, d, 3), { code: 'E_FEATURES_NOT_FINITE' });
    await assert.rejects(knnAccuracy(bad, y, d, 3), { code: 'E_FEATURES_NOT_FINITE' });
    await assert.rejects(transferScores(bad, y, d, 3), { code: 'E_FEATURES_NOT_FINITE' });
  }
  await assert.rejects(logme(good, y, d, 4), { code: 'E_EMPTY_CLASS' });
  await assert.rejects(logme(good, Int32Array.from(y, (c) => (c === 2 ? 5 : c)), d, 3), { code: 'E_UNKNOWN_LABEL' });
  await assert.rejects(hScore(good, new Int32Array(n), d, 1), { code: 'E_ONE_CLASS' });
  await assert.rejects(knnAccuracy(good, y, d + 1, 3), { code: 'E_BAD_OPTION' });
  await assert.rejects(knnAccuracy(good, y, d, 3, { neighbors: 0 }), { code: 'E_BAD_OPTION' });
  assert.throws(() => leep(Float32Array.from({ length: n * 2 }, () => 3), y, 2, 3), { code: 'E_BAD_OPTION' }, 'logits, not probabilities');
  assert.throws(() => nce(new Int32Array(n).fill(7), y, 2, 3), { code: 'E_UNKNOWN_LABEL' });

  // Degenerate features get finite scores: every row the same, or all zeros; on float64 and float32 paths.
  const informative = await transferScores(good, y, d, 3);
  for (const [name, x] of [
    ['constant', Float32Array.from({ length: n * d }, (_, i) => 1 + (i % d))],
    ['zero', new Float32Array(n * d)],
  ] as const) {
    for (const o of [{}, { products: 'ort' as const }]) {
      const s = await transferScores(x, y, d, 3, o);
      for (const v of [s.logme, s.hScore, s.knn]) assert.ok(Number.isFinite(v), `${name}: ${JSON.stringify(s)}`);
      assert.equal(s.hScore, 0, `${name}: H-score`);
      assert.ok(s.logme < informative.logme, `${name}: LogME ${s.logme} vs ${informative.logme}`);
    }
  }
  // Wide constant features go through the reduction (exact and randomized) and stay finite.
  const wide = Float32Array.from({ length: 300 * 400 }, (_, i) => 1 + (i % 400) * 0.01);
  const yw = Int32Array.from({ length: 300 }, (_, i) => i % 3);
  for (const svd of ['exact', 'randomized'] as const) {
    const s = await transferScores(wide, yw, 400, 3, { svd });
    assert.ok(Number.isFinite(s.logme) && s.hScore === 0 && Number.isFinite(s.knn), `${svd}: ${JSON.stringify(s)}`);
  }
  // A class with a single example: finite, and kNN cannot classify it (the fixture checks the values).
  const one = Int32Array.from(y, (c, i) => (i === 0 ? 3 : c));
  const s = await transferScores(good, one, d, 4);
  assert.ok(Number.isFinite(s.logme) && Number.isFinite(s.hScore) && s.knn < 1);
});

test('LogME stays finite when some feature directions have zero variance (a dead channel, n > d)', async () => {
  const n = 400; const d = 40; const k = 4;
  let seed = 7;
  const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const y = Int32Array.from({ length: n }, (_, i) => i % k);
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) x[i * d + j] = j < 3 ? 0 : rand() + (j % k === y[i] ? 0.5 : 0);
  const v = await logme(x, y, d, k);
  assert.ok(Number.isFinite(v), `LogME ${v}`);
  const s = await transferScores(x, y, d, k);
  assert.ok(Number.isFinite(s.logme) && Number.isFinite(s.hScore) && Number.isFinite(s.knn));
});
