/**
 * Convex probes, solved to convergence: multinomial logistic regression (or a one-vs-rest squared-hinge
 * linear SVM, or a ridge classifier) with an L2 penalty, fitted full-batch by L-BFGS. The penalty is
 * chosen by stratified k-fold cross-validation over a log grid of C (warm-started along the path, as
 * scikit-learn's LogisticRegressionCV does), then the model is refitted on every labelled example.
 *
 * Objective, as scikit-learn's: sum_i w_i loss_i / sum_i w_i + ||W||^2 / (2 C sum_i w_i); the intercept
 * is not penalised. Features are standardised first (on all training rows, like a StandardScaler in front).
 *
 * When there are fewer examples than features (the usual case for small transfer sets), the problem is
 * solved exactly in the span of the examples: with K = X X^T = L L^T (pivoted Cholesky, rank r), the
 * problem on features X with weights W has the same logits and penalty as the problem on L with U, and
 * W = X_P^T T^-T U (P the pivot rows, T = L_P lower-triangular). Every fold's rows are rows of L, so one factorisation serves the whole search.
 */
import { GraftError } from '../errors.ts';
import { checkAborted } from '../context.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { Session } from '../runtime/session.ts';
import { fitStandardize, type Standardize } from '../heads/heads.ts';
import { lbfgs } from '../train/lbfgs.ts';
import { stratifiedFolds } from './heads.ts';

export type ConvexLoss = 'logistic' | 'squared-hinge' | 'ridge';

export interface ConvexOptions {
  loss?: ConvexLoss;
  /** Inverse penalty strengths to search (default: 10 values from 1e-4 to 1e4, as LogisticRegressionCV). */
  Cs?: number[];
  /** Folds for the search (default 5, fewer when a class has fewer examples). */
  folds?: number;
  /** Times the k-fold search is repeated with fresh folds, its scores averaged (default 1). */
  repeats?: number;
  /** 'balanced' weighs each class by n / (k n_c). */
  classWeight?: 'balanced' | null;
  seed?: number;
  /** Gradient tolerance, max |g| (default 1e-4). */
  tol?: number;
  maxIter?: number;
  threads?: number;
  log?: (s: string) => void;
}

export interface CvPoint { C: number; accuracy: number; std: number; logLoss: number; foldAccuracy: number[] }

export interface ConvexFit {
  loss: ConvexLoss;
  standardize: Standardize;
  /** [d, k] row-major, on standardised inputs. */
  weight: Float32Array;
  bias: Float32Array;
  C: number;
  /** The search, one point per C (empty when no search could run). */
  path: CvPoint[];
  folds: number;
  /** Repeats of the k-fold search (1 without repeats, 0 without a search). */
  repeats: number;
  /** Cross-validated accuracy at the chosen C and its spread over folds (null without a search). */
  cvAccuracy: number | null;
  cvStd: number | null;
  trainAccuracy: number;
  iterations: number;
  converged: boolean;
  /** Rank of the example span when the problem was solved in it, else null. */
  rank: number | null;
  seconds: number;
  warnings: string[];
}

export const DEFAULT_CS = Array.from({ length: 10 }, (_, i) => 10 ** (-4 + (8 * i) / 9));

/** Throws a typed error on NaN or infinite features (a broken backbone), naming the first bad row. */
export function checkFinite(x: Float32Array, d: number, what = 'features'): void {
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!)) {
      throw new GraftError('E_FEATURES_NOT_FINITE', `the ${what} of example ${Math.floor(i / d)} contain ${x[i]} (column ${i % d})`,
        'The backbone produced NaN or infinite values: check the input files and the backbone, or choose another cut.');
    }
  }
}

function counts(y: Int32Array, k: number): number[] {
  const c = new Array<number>(k).fill(0);
  for (const v of y) c[v]!++;
  return c;
}

/** Standardised float64 copy of x (column means and standard deviations from all rows). */
function standardized(x: Float32Array, n: number, d: number, s: Standardize): Float64Array {
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) out[i * d + j] = (x[i * d + j]! - s.mean[j]!) / s.std[j]!;
  return out;
}

/** X X^T in float64, by ORT's MatMul. */
async function gram(xs: Float64Array, n: number, d: number, threads?: number): Promise<Float64Array> {
  const b = new GraphBuilder();
  const x = b.input('x', 'float64', [n, d]);
  b.output(b.op1('Gemm', [x, x], { transB: 1 }), 'k');
  const s = await Session.create(b.graph, threads ? { threads } : {});
  try {
    return (await s.run({ x: { dtype: 'float64', dims: [n, d], data: xs } })).k!.data as Float64Array;
  } finally { await s.dispose(); }
}

/**
 * Pivoted Cholesky of a positive semi-definite K [n, n]: L [n, r] with K = L L^T up to a relative
 * tolerance on the remaining diagonal. Row-major L with r columns.
 */
export function pivotedCholesky(K: Float64Array, n: number, relTol = 1e-10): { L: Float64Array; r: number; piv: Int32Array } {
  const diag = new Float64Array(n);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) { diag[i] = K[i * n + i]!; maxDiag = Math.max(maxDiag, diag[i]!); }
  const cols: Float64Array[] = [];
  const piv: number[] = [];
  const used = new Uint8Array(n);
  const tol = relTol * maxDiag;
  for (let j = 0; j < n; j++) {
    let p = -1;
    let best = tol;
    for (let i = 0; i < n; i++) if (!used[i] && diag[i]! > best) { best = diag[i]!; p = i; }
    if (p < 0) break;
    used[p] = 1;
    piv.push(p);
    const root = Math.sqrt(diag[p]!);
    const c = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (used[i] && i !== p) continue;
      let v = K[i * n + p]!;
      for (let q = 0; q < cols.length; q++) v -= cols[q]![i]! * cols[q]![p]!;
      c[i] = v / root;
    }
    for (let i = 0; i < n; i++) if (!used[i]) diag[i] = diag[i]! - c[i]! * c[i]!;
    diag[p] = 0;
    cols.push(c);
  }
  const r = cols.length;
  const L = new Float64Array(n * r);
  for (let q = 0; q < r; q++) for (let i = 0; i < n; i++) L[i * r + q] = cols[q]![i]!;
  return { L, r, piv: Int32Array.from(piv) };
}

/**
 * The data term and its gradient for every row at once, in one ORT call: inputs W [r, k], b [k] and the
 * row weights sw [n, 1] (zero for rows outside the fold); F and the targets are initializers.
 */
async function objectiveSession(F: Float64Array, n: number, r: number, y: Int32Array, k: number, loss: ConvexLoss, threads?: number, dtype: 'float32' | 'float64' = 'float32') {
  const b = new GraphBuilder();
  const A = dtype === 'float32' ? Float32Array : Float64Array;
  const f = b.init('F', { dtype, dims: [n, r], data: A.from(F) as never });
  const onehot = new A(n * k);
  for (let i = 0; i < n; i++) onehot[i * k + y[i]!] = 1;
  const Y = b.init('Y', { dtype, dims: [n, k], data: onehot as never });
  const W = b.input('W', dtype, [r, k]);
  const bias = b.input('b', dtype, [k]);
  const sw = b.input('sw', dtype, [n, 1]);
  const Z = b.add(b.matmul(f, W), bias);
  let perRow: ReturnType<typeof b.add>;
  let R: ReturnType<typeof b.add>;
  if (loss === 'logistic') {
    const m = b.op1('ReduceMax', [Z], { axes: [1], keepdims: 1 });
    const e = b.exp(b.sub(Z, m));
    const s = b.reduceSum(e, [1], true);
    const lse = b.add(m, b.log(s));
    perRow = b.sub(lse, b.reduceSum(b.mul(Y, Z), [1], true));
    R = b.mul(b.sub(b.div(e, s), Y), sw);
  } else {
    const t = b.sub(b.mul(Y, b.scalar(2, dtype)), b.scalar(1, dtype)); // +-1 targets
    if (loss === 'squared-hinge') {
      const h = b.relu(b.sub(b.scalar(1, dtype), b.mul(t, Z)));
      perRow = b.reduceSum(b.mul(h, h), [1], true);
      R = b.mul(b.mul(b.mul(t, h), b.scalar(-2, dtype)), sw);
    } else {
      const e = b.sub(Z, t);
      perRow = b.mul(b.reduceSum(b.mul(e, e), [1], true), b.scalar(0.5, dtype));
      R = b.mul(e, sw);
    }
  }
  b.output(b.reduceSum(b.mul(perRow, sw), [0, 1], false), 'loss');
  b.output(b.op1('Gemm', [f, R], { transA: 1 }), 'gW');
  b.output(b.reduceSum(R, [0], false), 'gb');
  const s = await Session.create(b.graph, threads ? { threads } : {});
  const Wt = new A(r * k);
  const bt = new A(k);
  const swt = new A(n);
  return {
    session: s,
    /** Objective at x = [W (r*k), b (k)] with the given row weights (summing to 1) and penalty lambda. */
    async evaluate(x: Float64Array, g: Float64Array, rowWeights: Float64Array, lambda: number): Promise<number> {
      Wt.set(x.subarray(0, r * k)); bt.set(x.subarray(r * k)); swt.set(rowWeights);
      const o = await s.run({ W: { dtype, dims: [r, k], data: Wt as never }, b: { dtype, dims: [k], data: bt as never }, sw: { dtype, dims: [n, 1], data: swt as never } });
      const gW = o.gW!.data as Float32Array;
      const gb = o.gb!.data as Float32Array;
      let pen = 0;
      for (let i = 0; i < r * k; i++) { const w = x[i]!; pen += w * w; g[i] = gW[i]! + lambda * w; }
      for (let c = 0; c < k; c++) g[r * k + c] = gb[c]!;
      return Number((o.loss!.data as Float32Array)[0]) + 0.5 * lambda * pen;
    },
  };
}

/** Logits of the given rows of F under x = [W, b], in float64. */
function logitsOf(F: Float64Array, r: number, k: number, x: Float64Array, rows: ArrayLike<number>): Float64Array {
  const z = new Float64Array(rows.length * k);
  for (let a = 0; a < rows.length; a++) {
    const i = rows[a]!;
    for (let c = 0; c < k; c++) z[a * k + c] = x[r * k + c]!;
    for (let j = 0; j < r; j++) {
      const v = F[i * r + j]!;
      if (v === 0) continue;
      for (let c = 0; c < k; c++) z[a * k + c] += v * x[j * k + c]!;
    }
  }
  return z;
}

function scoreRows(z: Float64Array, k: number, y: Int32Array, rows: ArrayLike<number>): { correct: number; logLoss: number } {
  let correct = 0;
  let ll = 0;
  for (let a = 0; a < rows.length; a++) {
    let best = 0;
    let m = -Infinity;
    for (let c = 0; c < k; c++) { const v = z[a * k + c]!; if (v > m) { m = v; best = c; } }
    let s = 0;
    for (let c = 0; c < k; c++) s += Math.exp(z[a * k + c]! - m);
    const t = y[rows[a]!]!;
    ll += m + Math.log(s) - z[a * k + t]!;
    if (best === t) correct++;
  }
  return { correct, logLoss: ll / Math.max(1, rows.length) };
}

/**
 * Fits a convex probe on features x [n, d] with labels y in [0, k): the penalty chosen by k-fold
 * cross-validation, then refitted on all rows. With `C` in options.Cs of length one, no search runs.
 */
export async function fitConvexProbe(x: Float32Array, y: Int32Array, d: number, k: number, o: ConvexOptions = {}): Promise<ConvexFit> {
  const t0 = performance.now();
  const n = y.length;
  const log = o.log ?? (() => {});
  const loss = o.loss ?? 'logistic';
  if (!['logistic', 'squared-hinge', 'ridge'].includes(loss)) throw new GraftError('E_BAD_OPTION', `unknown probe loss "${loss}"`, 'Use logistic, squared-hinge or ridge.');
  if (x.length !== n * d) throw new GraftError('E_BAD_OPTION', `features have ${x.length} values for ${n} examples of width ${d}`, 'Pass row-major features [n, d].');
  checkFinite(x, d);
  const cnt = counts(y, k);
  if (cnt.some((c) => c === 0)) {
    throw new GraftError('E_EMPTY_CLASS', `class ${cnt.findIndex((c) => c === 0)} has no examples`, 'Give every class at least one example, or drop the empty class.');
  }
  const warnings: string[] = [];
  const warn = (s: string) => { warnings.push(s); log(`warning: ${s}`); };
  const standardize = fitStandardize(x, n, d);
  if (standardize.std.every((v) => v === 1) && standardize.mean.every((m, j) => { for (let i = 0; i < n; i++) if (x[i * d + j] !== m) return false; return true; })) {
    warn('every feature is constant across the examples: the probe can only predict the class frequencies');
  }
  const xs = standardized(x, n, d, standardize);

  // Solve in the span of the examples when that is smaller than the feature space.
  let F = xs;
  let r = d;
  let span: { L: Float64Array; piv: Int32Array } | null = null;
  if (n < d) {
    const { L, r: rank, piv } = pivotedCholesky(await gram(xs, n, d, o.threads), n);
    if (rank > 0) { F = L; r = rank; span = { L, piv }; } else { F = new Float64Array(n); r = 1; }
  }

  const balanced = o.classWeight === 'balanced';
  const classW = cnt.map((c) => (balanced ? n / (k * c) : 1));
  const rowWeights = (rows: ArrayLike<number>): { w: Float64Array; total: number } => {
    const w = new Float64Array(n);
    let total = 0;
    for (let a = 0; a < rows.length; a++) { const i = rows[a]!; w[i] = classW[y[i]!]!; total += w[i]!; }
    for (let i = 0; i < n; i++) w[i] = w[i]! / total;
    return { w, total };
  };
  const obj = await objectiveSession(F, n, r, y, k, loss, o.threads);
  const solve = async (x0: Float64Array, rows: ArrayLike<number>, C: number) => {
    const { w, total } = rowWeights(rows);
    const lambda = 1 / (C * total);
    return lbfgs((p, g) => obj.evaluate(p, g, w, lambda), x0, { tol: o.tol ?? 1e-4, maxIter: o.maxIter ?? 500 });
  };

  try {
    const Cs = [...(o.Cs ?? DEFAULT_CS)].sort((a, b) => a - b);
    if (!Cs.length || Cs.some((c) => !(c > 0))) throw new GraftError('E_BAD_OPTION', `C values must be positive, got ${Cs.join(', ')}`, 'Use e.g. 0.01, 1, 100.');
    const minCount = Math.min(...cnt);
    let nFolds = Math.min(o.folds ?? 5, minCount);
    const path: CvPoint[] = [];
    let C = Cs.length === 1 ? Cs[0]! : 1;
    let iterations = 0;
    let repeats = 0;
    let xInit: Float64Array = new Float64Array(r * k + k);
    if (Cs.length > 1 && nFolds < 2) {
      warn(`class ${cnt.indexOf(minCount)} has ${minCount} example: C cannot be chosen by cross-validation, so C = 1 (scikit-learn's default) is used`);
      nFolds = 0;
    } else if (Cs.length > 1) {
      if (nFolds < (o.folds ?? 5)) warn(`the smallest class has ${minCount} examples, so C is chosen by ${nFolds}-fold cross-validation`);
      if (o.repeats !== undefined && !(Number.isInteger(o.repeats) && o.repeats >= 1)) throw new GraftError('E_BAD_OPTION', `repeats must be a positive integer, got ${o.repeats}`, 'Use 1 for a single k-fold split.');
      repeats = o.repeats ?? 1;
      const runs = nFolds * repeats;
      const acc = Cs.map(() => new Array<number>(runs).fill(0));
      const ll = Cs.map(() => new Array<number>(runs).fill(0));
      const sols = Cs.map(() => new Float64Array(r * k + k));
      for (let rep = 0; rep < repeats; rep++) {
        const folds = stratifiedFolds(y, nFolds, (o.seed ?? 0) + 7919 * rep);
        for (let f = 0; f < nFolds; f++) {
          checkAborted();
          const held = folds[f]!;
          const train = folds.filter((_, j) => j !== f).flatMap((a) => Array.from(a));
          let w0: Float64Array = new Float64Array(r * k + k);
          for (let ci = 0; ci < Cs.length; ci++) {
            const res = await solve(w0, train, Cs[ci]!);
            iterations += res.iterations;
            w0 = res.x;
            const s = scoreRows(logitsOf(F, r, k, res.x, held), k, y, held);
            acc[ci]![rep * nFolds + f] = s.correct / held.length;
            ll[ci]![rep * nFolds + f] = s.logLoss;
            for (let i = 0; i < res.x.length; i++) sols[ci]![i]! += res.x[i]! / runs;
          }
        }
      }
      let best = 0;
      Cs.forEach((c, ci) => {
        const mean = acc[ci]!.reduce((a, b) => a + b, 0) / runs;
        const std = Math.sqrt(acc[ci]!.reduce((a, b) => a + (b - mean) ** 2, 0) / runs);
        path.push({ C: c, accuracy: mean, std, logLoss: ll[ci]!.reduce((a, b) => a + b, 0) / runs, foldAccuracy: acc[ci]! });
      });
      // Best mean accuracy; ties go to the lower held-out log-loss, then to the stronger penalty. (Choosing the
      // lowest log-loss among C's within two held-out examples of the best accuracy was measured over 5
      // draws: better on the tuned sets, 1.6 points worse on held-out gcompris; bench/results/probe_sklearn.md.)
      path.forEach((p, i) => { const q = path[best]!; if (p.accuracy > q.accuracy + 1e-12 || (Math.abs(p.accuracy - q.accuracy) <= 1e-12 && p.logLoss < q.logLoss)) best = i; });
      C = path[best]!.C;
      xInit = sols[best]!;
      log(`probe: C = ${C.toPrecision(3)} by ${nFolds}-fold cross-validation${repeats > 1 ? ` (${repeats} repeats)` : ''}, accuracy ${(100 * path[best]!.accuracy).toFixed(1)}% +- ${(100 * path[best]!.std).toFixed(1)}`);
    }
    const all = Int32Array.from({ length: n }, (_, i) => i);
    const fin = await solve(xInit, all, C);
    iterations += fin.iterations;
    if (!fin.converged) warn(`the final probe fit stopped before convergence (${fin.reason}, max |gradient| ${fin.gradMax.toExponential(2)})`);
    const tr = scoreRows(logitsOf(F, r, k, fin.x, all), k, y, all);
    // Back to weights on the standardised features.
    const weight = new Float32Array(d * k);
    if (span) {
      // The pivot rows of L form a lower-triangular T with X_P = T Q^T, so W = Q U = X_P^T T^-T U.
      const { L, piv } = span;
      const A = Float64Array.from(fin.x.subarray(0, r * k));
      for (let j = r - 1; j >= 0; j--) {
        const tjj = L[piv[j]! * r + j]!;
        for (let c = 0; c < k; c++) {
          let v = A[j * k + c]!;
          for (let i = j + 1; i < r; i++) v -= L[piv[i]! * r + j]! * A[i * k + c]!;
          A[j * k + c] = v / tjj;
        }
      }
      const w64 = new Float64Array(d * k);
      for (let j = 0; j < r; j++) {
        const row = piv[j]! * d;
        for (let f = 0; f < d; f++) { const v = xs[row + f]!; if (v) for (let c = 0; c < k; c++) w64[f * k + c] += v * A[j * k + c]!; }
      }
      weight.set(w64);
    } else if (F === xs) {
      weight.set(fin.x.subarray(0, d * k));
    }
    const bias = Float32Array.from(fin.x.subarray(r * k));
    const at = path.find((p) => p.C === C);
    return {
      loss, standardize, weight, bias, C, path, folds: nFolds, repeats, cvAccuracy: at?.accuracy ?? null, cvStd: at?.std ?? null,
      trainAccuracy: tr.correct / n, iterations, converged: fin.converged, rank: span ? r : null, seconds: (performance.now() - t0) / 1000, warnings,
    };
  } finally {
    await obj.session.dispose();
  }
}

/**
 * The probe's weights on raw (unstandardised) features: W' = W / std per row, b' = b - mean . W', so a
 * plain linear layer (a fine-tuning head) computes the same logits.
 */
export function foldStandardize(p: ConvexFit): { weight: Float32Array; bias: Float32Array } {
  const k = p.bias.length;
  const d = p.weight.length / k;
  const weight = new Float32Array(d * k);
  const bias = Float64Array.from(p.bias);
  for (let j = 0; j < d; j++) {
    for (let c = 0; c < k; c++) {
      const w = p.weight[j * k + c]! / p.standardize.std[j]!;
      weight[j * k + c] = w;
      bias[c] = bias[c]! - p.standardize.mean[j]! * w;
    }
  }
  return { weight, bias: Float32Array.from(bias) };
}

/** Logits of a fitted probe on raw features x [m, d] (standardisation applied), float64. */
export function convexLogits(p: Pick<ConvexFit, 'standardize' | 'weight' | 'bias'>, x: Float32Array, d: number): Float64Array {
  const k = p.bias.length;
  const m = x.length / d;
  const z = new Float64Array(m * k);
  for (let i = 0; i < m; i++) {
    for (let c = 0; c < k; c++) z[i * k + c] = p.bias[c]!;
    for (let j = 0; j < d; j++) {
      const v = (x[i * d + j]! - p.standardize.mean[j]!) / p.standardize.std[j]!;
      if (v) for (let c = 0; c < k; c++) z[i * k + c] += v * p.weight[j * k + c]!;
    }
  }
  return z;
}
