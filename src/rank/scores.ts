/**
 * Transferability scores for `graft rank`: which backbone and cut to fine-tune, judged from frozen
 * features alone. Higher is better for every score. Features are row-major n x d Float32Arrays, labels
 * class ids 0..k-1, and every class needs at least one example.
 *
 * - logme: LogME (You et al., ICML 2021), the mean over classes of the maximised log evidence / n of a
 *   Bayesian linear regression of each one-hot label column on the features.
 * - hScore: H-score (Bao et al., 2019) with the Ledoit-Wolf shrinkage covariance of Ibrahim et al.
 *   (2022), tr(cov_a(f)^+ (1 - a) cov(E[f|y])).
 * - nce / leep: NCE (Tran et al., 2019) and LEEP (Nguyen et al., 2020) from the backbone's own source
 *   head (its argmax labels, or its probabilities).
 * - knnAccuracy: leave-one-out (default) or k-fold accuracy of a cosine kNN classifier.
 * - transferScores: all of them for one cut, sharing the Gram matrix; what `graft rank` calls.
 * - weightedTau: scipy.stats.weightedtau's default weighted Kendall tau, to judge a ranking of cuts
 *   against their measured accuracies.
 *
 * LogME and the H-score first reduce features wider than `maxDim` (256) in both n and d to that many
 * dimensions by truncated SVD (randomized above 320); see spectrum.ts. Products above ~2e7
 * multiply-adds run on ONNX Runtime, the Gram matrix of the features in float32 (scores then agree
 * with float64 to ~1e-5 relative; see scores.test.ts), the rest in float64.
 *
 * Bad input: NaN or Infinity in the features is E_FEATURES_NOT_FINITE; a label outside 0..k-1 is
 * E_UNKNOWN_LABEL, a class without examples E_EMPTY_CLASS, fewer than two classes E_ONE_CLASS.
 * Degenerate but valid input gets a finite score: a class with one example is scored as it is (kNN
 * never gets it right, having no neighbour of its class); constant features give LogME the evidence
 * of a constant regressor, an H-score of 0 and kNN a vote among ties (nearest = lowest index); all-zero
 * features give LogME the evidence of the zero regressor.
 */
import { argmaxRows } from '../train/metrics.ts';
import { GraftError } from '../errors.ts';
import { stratifiedFolds } from '../probe/heads.ts';
import { cholesky, choleskySolveWith, symEig } from './linalg.ts';
import { ORT_ABOVE, type Products, gemm } from './products.ts';
import { type Gram, type Spectrum, type SpectrumOptions, gramOf, spectrumOf } from './spectrum.ts';

export type RankOptions = SpectrumOptions;

export interface KnnOptions {
  /** Neighbours that vote (default 5, scikit-learn's default; with 3+ examples per class a majority can form). */
  neighbors?: number;
  /** 0 (default): leave-one-out. >= 2: stratified k-fold (folds from probe/heads.ts stratifiedFolds). */
  folds?: number;
  /** Seed of the folds (default 0). */
  seed?: number;
  products?: Products;
  threads?: number;
}

export interface TransferOptions extends RankOptions {
  knn?: KnnOptions;
  /** The backbone's own source-head probabilities, n x kSource row-major: adds NCE (of their argmax) and LEEP. */
  sourceProbs?: Float32Array | Float64Array;
  kSource?: number;
}

export interface TransferScores {
  logme: number;
  hScore: number;
  knn: number;
  nce?: number;
  leep?: number;
  /** How LogME and the H-score saw the features: as given, or reduced to maxDim by exact or randomized SVD. */
  reduction: Spectrum['reduction'];
}

function checkLabels(y: Int32Array, k: number, what: string): void {
  if (!(Number.isInteger(k) && k >= 2)) {
    throw new GraftError('E_ONE_CLASS', `${what}: needs at least 2 classes, got k = ${k}`, 'Label the examples with two or more classes.');
  }
  const counts = new Int32Array(k);
  for (let i = 0; i < y.length; i++) {
    const c = y[i]!;
    if (!(c >= 0 && c < k)) throw new GraftError('E_UNKNOWN_LABEL', `${what}: label ${c} of example ${i} is not a class id in 0..${k - 1}`, 'Map the labels to class ids 0..k-1 first.');
    counts[c]!++;
  }
  const empty = counts.findIndex((c) => c === 0);
  if (empty >= 0) throw new GraftError('E_EMPTY_CLASS', `${what}: class ${empty} of ${k} has no examples`, 'Pass k = the number of classes that occur, with ids 0..k-1.');
}

function checkFeatures(x: Float32Array, n: number, d: number, what: string): void {
  if (!(Number.isInteger(d) && d >= 1)) throw new GraftError('E_BAD_OPTION', `${what}: d must be a positive integer, got ${d}`, 'Pass the feature dimension.');
  if (x.length !== n * d) {
    throw new GraftError('E_BAD_OPTION', `${what}: found ${x.length} feature values for ${n} labels of ${d} dimensions (expected ${n * d})`, 'Pass one row of d features per label.');
  }
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!)) {
      throw new GraftError('E_FEATURES_NOT_FINITE', `${what}: feature ${i % d} of example ${Math.floor(i / d)} is ${x[i]}`,
        'The backbone produced NaN or Infinity at this cut; check the input preprocessing, or leave the cut out.');
    }
  }
}

function check(x: Float32Array, y: Int32Array, d: number, k: number, what: string): void {
  checkLabels(y, k, what);
  if (y.length < 2) throw new GraftError('E_BAD_OPTION', `${what}: needs at least 2 examples, got ${y.length}`, 'Score a cut on more examples.');
  checkFeatures(x, y.length, d, what);
}

// ---------------------------------------------------------------- LogME

const LOG_2PI = Math.log(2 * Math.PI);

/**
 * Maximised log evidence of y ~ N(F w, 1/beta), w ~ N(0, I/alpha) for one label column, from the
 * eigenvalues sigma of F^T F and q_j = (v_j^T F^T y)^2. `z2` (= q / sigma, from an orthonormal U) with
 * res0 = ||y||^2 - sum z2 gives the residual without cancellation when known.
 *
 * Written from the paper's equations with t = beta / alpha, on which gamma, m and the residual depend:
 *   gamma = sum t s / (1 + t s),   alpha m^T m = beta sum t q / (1 + t s)^2,
 *   ||F m - y||^2 = ||y||^2 - sum t q (2 + t s) / (1 + t s)^2 = res0 + sum z2 / (1 + t s)^2,
 *   L = n/2 log beta - n/2 log 2pi - beta/2 ||F m - y||^2 - alpha/2 m^T m - 1/2 sum log(1 + t s),
 * the last term being D/2 log alpha - 1/2 log|alpha I + beta F^T F| (so L needs no D and alpha may be
 * infinite, the limit w = 0). The fixed point alpha <- gamma / m^T m, beta <- (n - gamma) / ||F m - y||^2
 * starts at alpha = beta = 1 (Algorithm 1) and stops when L changes by less than 1e-12 n, an error of
 * ~1e-11 in L / n (a relative test could wait forever on roundoff when L is near 0). It takes 20-120
 * iterations on the reference cases; after 10,000 the last L is returned.
 */
function classEvidence(n: number, sigma: Float64Array, q: Float64Array, y2: number, z2?: Float64Array): number {
  const p = sigma.length;
  let res0 = 0;
  if (z2) { res0 = y2; for (let j = 0; j < p; j++) res0 -= z2[j]!; res0 = Math.max(res0, 0); }
  let alpha = 1;
  let beta = 1;
  let prev = NaN;
  for (let iter = 0; iter < 10000; iter++) {
    const t = beta / alpha;
    let gamma = 0;
    let mm = 0; // sum q / (1 + t s)^2 = m^T m / t^2
    let logdet = 0;
    let res = z2 ? res0 : y2;
    for (let j = 0; j < p; j++) {
      const ts = t * sigma[j]!;
      const inv = 1 / (1 + ts);
      gamma += ts * inv;
      mm += q[j]! * inv * inv;
      logdet += Math.log1p(ts);
      if (z2) res += z2[j]! * inv * inv;
      else res -= t * q[j]! * (2 + ts) * inv * inv;
    }
    res = Math.max(res, 1e-300);
    const l = 0.5 * (n * Math.log(beta) - n * LOG_2PI - beta * res - beta * t * mm - logdet);
    if (Math.abs(l - prev) <= 1e-12 * n) return l;
    prev = l;
    const mTm = t * t * mm;
    alpha = mTm > 0 ? gamma / mTm : Infinity;
    beta = (n - gamma) / res;
  }
  return prev;
}

export function logmeFromSpectrum(s: Spectrum): number {
  const { n, k, p, sigma } = s;
  let total = 0;
  const q = new Float64Array(p);
  const z2 = s.proj ? new Float64Array(p) : undefined;
  for (let c = 0; c < k; c++) {
    for (let j = 0; j < p; j++) {
      // A direction of zero variance carries nothing of y (q = 0); its projection through U is 0/0.
      const zero = !(sigma[j]! > 0);
      q[j] = zero ? 0 : s.classSums[j * k + c]! ** 2;
      if (z2) z2[j] = zero || !Number.isFinite(s.proj![j * k + c]!) ? 0 : s.proj![j * k + c]! ** 2;
    }
    total += classEvidence(n, sigma, q, s.counts[c]!, z2) / n;
  }
  return total / k;
}

/**
 * LogME of features x (n x d) for labels y: the mean over the k classes of the maximised log evidence
 * / n (You et al., 2021). Above maxDim (256) rows and columns, LogME of the rank-maxDim truncated SVD.
 */
export async function logme(x: Float32Array, y: Int32Array, d: number, k: number, o: RankOptions = {}): Promise<number> {
  check(x, y, d, k, 'logme');
  return logmeFromSpectrum(await spectrumOf(x, y, d, k, o));
}

// ---------------------------------------------------------------- H-score

/**
 * Shrinkage H-score from the spectral summary. With S the covariance (1/n) of the p coordinates, in
 * `dims` dimensions (the rest have zero variance), the Ledoit-Wolf (2004) intensity is
 *   mu = tr S / D,  delta = ||S - mu I||_F^2 / D,  b = (sum_i ||x_i - xbar||^4 / n - ||S||_F^2) / (D n),
 *   a = min(b, delta) / delta (0 when delta = 0),
 * as scikit-learn's ledoit_wolf computes it, and the score is (1 - a) tr(((1 - a) S + a mu I)^+ B) with
 * B = sum_c (n_c / n)(m_c - m)(m_c - m)^T. The (1 - a) on B is Ibrahim et al.'s (2022, eq. for
 * H_alpha): both covariances are shrunk alike. The pseudo-inverse drops eigenvalues below 1e-12 of the
 * largest; it is only needed when a = 0 (constant features give S = 0 and a score of 0).
 */
export function hScoreFromSpectrum(s: Spectrum): number {
  const { n, k, p, sigma, classSums, counts } = s;
  const D = s.dims;
  // In the spectral basis S = diag(sigma / n) - mean mean^T: a diagonal minus a rank-one term.
  const mean = new Float64Array(p);
  for (let j = 0; j < p; j++) { let v = 0; for (let c = 0; c < k; c++) v += classSums[j * k + c]!; mean[j] = v / n; }
  let meanNorm2 = 0;
  let tr = 0;
  let diag2 = 0;
  let cross = 0;
  for (let j = 0; j < p; j++) {
    const dj = sigma[j]! / n;
    meanNorm2 += mean[j]! ** 2;
    tr += dj;
    diag2 += dj * dj;
    cross += dj * mean[j]! ** 2;
  }
  const energy = tr; // mean of ||z_i||^2
  tr -= meanNorm2;
  // Constant features: the covariance is roundoff from energy - ||mean||^2. Score 0, as for S = 0.
  if (!(tr > 1e-9 * energy)) return 0;
  const fro2 = diag2 - 2 * cross + meanNorm2 * meanNorm2;
  const mu = tr / D;
  const delta = (fro2 - D * mu * mu) / D;
  let sum4 = 0;
  for (let i = 0; i < n; i++) sum4 += (s.norm2[i]! - 2 * s.dotSum[i]! / n + meanNorm2) ** 2;
  const b = Math.max(0, (sum4 / n - fro2) / (D * n));
  const a = delta > 0 ? Math.min(b, delta) / delta : 0;
  if (a >= 1) return 0;
  const m = new Float64Array(p * k); // columns sqrt(n_c / n)(m_c - m)
  for (let c = 0; c < k; c++) {
    const w = Math.sqrt(counts[c]! / n);
    for (let j = 0; j < p; j++) m[j * k + c] = w * (classSums[j * k + c]! / counts[c]! - mean[j]!);
  }
  // Shrunk covariance = diag(e) - (1 - a) mean mean^T with e = (1 - a) sigma / n + a mu: Sherman-Morrison,
  // unless it is (nearly) singular, where the pseudo-inverse takes over.
  const e = Float64Array.from(sigma, (v) => (1 - a) * v / n + a * mu);
  let minE = Infinity;
  let maxE = 0;
  let uEu = 0;
  for (let j = 0; j < p; j++) { minE = Math.min(minE, e[j]!); maxE = Math.max(maxE, e[j]!); uEu += mean[j]! ** 2 / e[j]!; }
  const denom = 1 - (1 - a) * uEu;
  let h = 0;
  if (minE > 1e-12 * maxE && denom > 1e-8) {
    for (let c = 0; c < k; c++) {
      let quad = 0;
      let uEm = 0;
      for (let j = 0; j < p; j++) { const v = m[j * k + c]!; quad += v * v / e[j]!; uEm += mean[j]! * v / e[j]!; }
      h += quad + (1 - a) * uEm * uEm / denom;
    }
  } else {
    const shrunk = new Float64Array(p * p);
    for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) shrunk[i * p + j] = (i === j ? e[i]! : 0) - (1 - a) * mean[i]! * mean[j]!;
    const sol = solvePinv(shrunk, p, m, k);
    for (let i = 0; i < p * k; i++) h += m[i]! * sol[i]!;
  }
  return (1 - a) * h;
}

/** A^+ B for symmetric positive semi-definite A: Cholesky when A is well conditioned, else the eigendecomposition. */
function solvePinv(a: Float64Array, p: number, b: Float64Array, k: number): Float64Array {
  const l = cholesky(a, p);
  if (l) {
    let maxD = 0;
    let minD = Infinity;
    for (let i = 0; i < p; i++) { maxD = Math.max(maxD, l[i * p + i]!); minD = Math.min(minD, l[i * p + i]!); }
    if ((minD / maxD) ** 2 > 1e-10) return choleskySolveWith(l, p, b, k);
  }
  const e = symEig(a, p);
  const out = new Float64Array(p * k);
  const tol = 1e-12 * Math.max(e.values[0]!, 0);
  for (let j = 0; j < p; j++) {
    const lam = e.values[j]!;
    if (!(lam > tol)) continue;
    for (let c = 0; c < k; c++) {
      let v = 0;
      for (let i = 0; i < p; i++) v += e.vectors[i * p + j]! * b[i * k + c]!;
      v /= lam;
      for (let i = 0; i < p; i++) out[i * k + c]! += e.vectors[i * p + j]! * v;
    }
  }
  return out;
}

/**
 * Shrinkage H-score of features x (n x d) for labels y (Bao et al., 2019; Ibrahim et al., 2022).
 * Features wider than maxDim (256) are reduced to maxDim dimensions first, so that every cut's
 * covariance is estimated in the same dimension.
 */
export async function hScore(x: Float32Array, y: Int32Array, d: number, k: number, o: RankOptions = {}): Promise<number> {
  check(x, y, d, k, 'hScore');
  return hScoreFromSpectrum(await spectrumOf(x, y, d, k, o));
}

// ---------------------------------------------------------------- NCE and LEEP

/**
 * NCE (Tran et al., 2019): the negative conditional entropy -H(Y | Z) in nats of the target labels y
 * given the source model's labels z (its argmax class, 0..kSource-1), from their empirical joint
 * distribution. 0 is the best possible value (z determines y).
 */
export function nce(sourceLabels: Int32Array, y: Int32Array, kSource: number, k: number): number {
  checkLabels(y, k, 'nce');
  const n = y.length;
  if (sourceLabels.length !== n) throw new GraftError('E_BAD_OPTION', `nce: ${sourceLabels.length} source labels for ${n} target labels`, 'Pass one source label per example.');
  const joint = new Float64Array(kSource * k);
  const pz = new Float64Array(kSource);
  for (let i = 0; i < n; i++) {
    const z = sourceLabels[i]!;
    if (!(Number.isInteger(z) && z >= 0 && z < kSource)) throw new GraftError('E_UNKNOWN_LABEL', `nce: source label ${z} of example ${i} is not in 0..${kSource - 1}`, 'Pass the argmax class of the source head.');
    joint[z * k + y[i]!]!++;
    pz[z]!++;
  }
  let h = 0;
  for (let z = 0; z < kSource; z++) for (let c = 0; c < k; c++) { const v = joint[z * k + c]!; if (v > 0) h += (v / n) * Math.log(v / pz[z]!); }
  return h;
}

/**
 * LEEP (Nguyen et al., 2020): (1/n) sum_i log sum_z P(y_i | z) theta_i(z), where theta_i are the source
 * head's probabilities (n x kSource row-major, rows summing to 1 within 1e-3) and P(y | z) comes from
 * the empirical joint P(y, z) = (1/n) sum_{i: y_i = y} theta_i(z). At most 0.
 */
export function leep(sourceProbs: Float32Array | Float64Array, y: Int32Array, kSource: number, k: number): number {
  checkLabels(y, k, 'leep');
  const n = y.length;
  if (!(Number.isInteger(kSource) && kSource >= 1) || sourceProbs.length !== n * kSource) {
    throw new GraftError('E_BAD_OPTION', `leep: found ${sourceProbs.length} source probabilities for ${n} examples of ${kSource} source classes`, 'Pass an n x kSource row-major matrix of source-head probabilities.');
  }
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let z = 0; z < kSource; z++) {
      const v = sourceProbs[i * kSource + z]!;
      if (!(v >= 0 && v <= 1 + 1e-6)) throw new GraftError('E_BAD_OPTION', `leep: source probability ${z} of example ${i} is ${v}`, 'Pass probabilities (softmax outputs), not logits.');
      s += v;
    }
    if (Math.abs(s - 1) > 1e-3) throw new GraftError('E_BAD_OPTION', `leep: the source probabilities of example ${i} sum to ${s}`, 'Pass probabilities (softmax outputs), not logits.');
  }
  const joint = new Float64Array(kSource * k); // sum over examples of class y of theta(z)
  const pz = new Float64Array(kSource);
  for (let i = 0; i < n; i++) {
    for (let z = 0; z < kSource; z++) { const v = sourceProbs[i * kSource + z]!; joint[z * k + y[i]!]! += v; pz[z]! += v; }
  }
  let total = 0;
  for (let i = 0; i < n; i++) {
    let e = 0;
    for (let z = 0; z < kSource; z++) { const v = sourceProbs[i * kSource + z]!; if (v > 0) e += (joint[z * k + y[i]!]! / pz[z]!) * v; }
    total += Math.log(e);
  }
  return total / n;
}

/** Argmax class of each row of n x kSource probabilities (lowest index on ties): the metrics' own. */
export { argmaxRows };

// ---------------------------------------------------------------- kNN

/**
 * Accuracy of a cosine-similarity kNN classifier on the features. Each example votes among its
 * `neighbors` most similar others (leave-one-out), or, with `folds` >= 2, among those of the other
 * folds. Similarity ties go to the lower index; a vote tie to the class with the larger summed
 * similarity, then the lower class id. All-zero rows have similarity 0 to everything.
 */
export async function knnAccuracy(x: Float32Array, y: Int32Array, d: number, k: number, o: KnnOptions = {}): Promise<number> {
  check(x, y, d, k, 'knnAccuracy');
  const n = y.length;
  // float32 where the product goes to ORT (as float32), float64 where JavaScript computes it.
  const products = o.products ?? 'auto';
  const xn = products === 'ort' || (products === 'auto' && n * n * d > ORT_ABOVE) ? new Float32Array(n * d) : new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[i * d + j]! ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < d; j++) xn[i * d + j] = x[i * d + j]! * inv;
  }
  const vote = voter(y, k, o);
  const block = Math.max(1, Math.floor(4e6 / n));
  let correct = 0;
  for (let r0 = 0; r0 < n; r0 += block) {
    const rows = Math.min(block, n - r0);
    const sims = await gemm({ data: xn.subarray(r0 * d, (r0 + rows) * d), rows, cols: d }, { data: xn, rows: n, cols: d }, {
      transB: true, ...(o.products ? { products: o.products } : {}), ...(o.threads ? { threads: o.threads } : {}),
    });
    for (let r = 0; r < rows; r++) correct += vote(r0 + r, sims.subarray(r * n, (r + 1) * n));
  }
  return correct / n;
}

/** kNN accuracy from the Gram matrix X X^T (n x n): cosine similarity K_ij / sqrt(K_ii K_jj). */
export function knnFromGram(g: Float64Array, y: Int32Array, k: number, o: KnnOptions = {}): number {
  const n = y.length;
  const inv = Float64Array.from({ length: n }, (_, i) => (g[i * n + i]! > 0 ? 1 / Math.sqrt(g[i * n + i]!) : 0));
  const vote = voter(y, k, o);
  const row = new Float64Array(n);
  let correct = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) row[j] = g[i * n + j]! * inv[i]! * inv[j]!;
    correct += vote(i, row);
  }
  return correct / n;
}

/** A function that, given example i and its similarities to all examples, returns 1 if kNN classifies it correctly. */
function voter(y: Int32Array, k: number, o: KnnOptions): (i: number, sims: ArrayLike<number>) => number {
  const n = y.length;
  const nb = o.neighbors ?? 5;
  if (!(Number.isInteger(nb) && nb >= 1)) throw new GraftError('E_BAD_OPTION', `knn: neighbors must be a positive integer, got ${nb}`, 'Use e.g. 5.');
  const folds = o.folds ?? 0;
  if (!(folds === 0 || Number.isInteger(folds) && folds >= 2 && folds <= n)) {
    throw new GraftError('E_BAD_OPTION', `knn: folds must be 0 (leave-one-out) or an integer from 2 to ${n}, got ${folds}`, 'Use 0, or e.g. 5.');
  }
  const fold = new Int32Array(n).fill(-1);
  if (folds) stratifiedFolds(y, folds, o.seed ?? 0).forEach((f, fi) => { for (const i of f) fold[i] = fi; });
  const idx = new Int32Array(nb);
  const sim = new Float64Array(nb);
  const count = new Int32Array(k);
  const sum = new Float64Array(k);
  return (i, sims) => {
    let have = 0;
    for (let j = 0; j < n; j++) {
      if (j === i || (folds && fold[j] === fold[i])) continue;
      const s = sims[j]!;
      if (have === nb && !(s > sim[nb - 1]!)) continue;
      let at = have < nb ? have++ : nb - 1;
      while (at > 0 && s > sim[at - 1]!) { sim[at] = sim[at - 1]!; idx[at] = idx[at - 1]!; at--; }
      sim[at] = s;
      idx[at] = j;
    }
    count.fill(0);
    sum.fill(0);
    for (let t = 0; t < have; t++) { count[y[idx[t]!]!]!++; sum[y[idx[t]!]!]! += sim[t]!; }
    let best = 0;
    for (let c = 1; c < k; c++) if (count[c]! > count[best]! || (count[c] === count[best] && sum[c]! > sum[best]!)) best = c;
    return have > 0 && best === y[i] ? 1 : 0;
  };
}

// ---------------------------------------------------------------- all scores of one cut

/**
 * LogME, H-score and kNN accuracy of one cut's features (plus NCE and LEEP with `sourceProbs`),
 * sharing one Gram matrix between them.
 */
export async function transferScores(x: Float32Array, y: Int32Array, d: number, k: number, o: TransferOptions = {}): Promise<TransferScores> {
  check(x, y, d, k, 'transferScores');
  const gram: Gram = await gramOf(x, y.length, d, o);
  const spec = await spectrumOf(x, y, d, k, o, gram);
  const knnOpts: KnnOptions = { ...(o.products ? { products: o.products } : {}), ...(o.threads ? { threads: o.threads } : {}), ...o.knn };
  const out: TransferScores = {
    logme: logmeFromSpectrum(spec),
    hScore: hScoreFromSpectrum(spec),
    knn: gram.side === 'rows' ? knnFromGram(gram.g, y, k, knnOpts) : await knnAccuracy(x, y, d, k, knnOpts),
    reduction: spec.reduction,
  };
  if (o.sourceProbs) {
    const kSource = o.kSource ?? o.sourceProbs.length / y.length;
    out.leep = leep(o.sourceProbs, y, kSource, k);
    out.nce = nce(argmaxRows(o.sourceProbs, kSource), y, kSource, k);
  }
  return out;
}

// ---------------------------------------------------------------- weighted tau

/**
 * Weighted Kendall tau with scipy.stats.weightedtau's defaults (Vigna, 2015): the hyperbolic weigher
 * 1/(r + 1) of each element's rank r (0 = largest), additive pair weights w(r_i) + w(r_j), ties counted
 * as in Kendall's tau-b, and the mean of the values ranked by decreasing (x, y) and by decreasing
 * (y, x). O(n^2), for rankings of tens to hundreds of candidates. Where scipy returns NaN (x or y
 * constant) this returns 0: no ranking information.
 */
export function weightedTau(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (y.length !== n || n < 2) throw new GraftError('E_BAD_OPTION', `weightedTau: needs two equally long lists of at least 2 values, got ${n} and ${y.length}`, 'Pass one score and one accuracy per candidate.');
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(x[i]!) || !Number.isFinite(y[i]!)) throw new GraftError('E_BAD_OPTION', `weightedTau: value ${i} is not finite (${x[i]}, ${y[i]})`, 'Leave out candidates without a score.');
  }
  const a = rankedTau(x, y);
  const b = rankedTau(y, x);
  return Number.isNaN(a) || Number.isNaN(b) ? 0 : (a + b) / 2;
}

function rankedTau(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  const order = [...Array(n).keys()].sort((i, j) => x[j]! - x[i]! || y[j]! - y[i]!);
  const w = new Float64Array(n);
  order.forEach((i, r) => { w[i] = 1 / (r + 1); });
  let tot = 0;
  let tx = 0;
  let ty = 0;
  let txy = 0;
  let disc = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const wij = w[i]! + w[j]!;
      tot += wij;
      const dx = Math.sign(x[i]! - x[j]!);
      const dy = Math.sign(y[i]! - y[j]!);
      if (dx === 0) tx += wij;
      if (dy === 0) ty += wij;
      if (dx === 0 && dy === 0) txy += wij;
      if (dx * dy < 0) disc += wij;
    }
  }
  if (tot - tx <= 0 || tot - ty <= 0) return NaN;
  const tau = (tot - (tx + ty - txy) - 2 * disc) / Math.sqrt(tot - tx) / Math.sqrt(tot - ty);
  return Math.min(1, Math.max(-1, tau));
}
