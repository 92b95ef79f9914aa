/**
 * Domain adaptation on features (issue 14, item 1 and 3): labelled source rows, unlabelled target rows of
 * the same width and classes, and a linear classifier for the target. Everything here runs on cached
 * features, with the convex probe (probe/convex.ts) as the classifier.
 *
 * Methods:
 *  - 'source-only': the probe fitted on the source, applied to the target (the baseline to beat).
 *  - 'standardize': each domain standardised by its own mean and spread (a per-domain StandardScaler); the
 *    classifier sees target rows through the target's statistics.
 *  - 'coral': CORAL (Sun, Feng and Saenko, AAAI 2016) after per-domain standardisation: the source is
 *    whitened by its covariance and re-coloured by the target's, Xs (Cs + I)^-1/2 (Ct + I)^1/2.
 *  - 'self-train' (the default): per-domain standardisation, then rounds of class-balanced pseudo-labels:
 *    each round the classifier labels the target, the most confident rows of each predicted class (a share
 *    that grows each round: a curriculum) join the source, and the probe is refitted at the source's C.
 *
 * 'auto' fits all four and keeps the one with the best reverse validation (below), which needs no target
 * labels; measured, it picks the best method too rarely to be the default yet.
 *
 * The result is a Standardize (for target inputs) and linear weights on the standardised input, so it
 * saves as an ordinary linear model folder.
 */
import { GraftError } from '../errors.ts';
import { fitStandardize, type Standardize } from '../heads/heads.ts';
import { convexLogits, fitConvexProbe } from '../probe/convex.ts';
import { accuracy, argmaxRows } from '../train/metrics.ts';

export const ADAPT_METHODS = ['source-only', 'standardize', 'coral', 'self-train'] as const;
export type AdaptMethod = (typeof ADAPT_METHODS)[number];
/** 'auto' fits every method and keeps the one with the best reverse validation (no target labels needed). */
export type AdaptChoice = AdaptMethod | 'auto';

export interface AdaptData {
  /** Source features, row-major [ns, d], and labels 0..k-1. */
  xs: Float32Array;
  ys: Int32Array;
  /** Target features [nt, d], unlabelled. */
  xt: Float32Array;
  d: number;
  k: number;
}

export interface AdaptOptions {
  method?: AdaptChoice;
  /** Self-training rounds (default 5). */
  rounds?: number;
  seed?: number;
  threads?: number;
  log?: (line: string) => void;
}

export interface AdaptFit {
  method: AdaptMethod;
  /** Applied to target inputs before the weights. */
  standardize: Standardize;
  /** [d, k] row-major, and [k]. */
  weight: Float32Array;
  bias: Float32Array;
  C: number;
  /** Source cross-validated accuracy at C (the only labelled estimate there is). */
  sourceCvAccuracy: number | null;
  /** Self-training: pseudo-labelled target rows used in the last round. */
  pseudoLabelled: number;
  /**
   * Reverse validation (Zhong et al., ECML 2010; Ganin et al., JMLR 2016): a classifier trained on the target
   * rows with this method's labels, scored on the labelled source rows. High when the target labels are
   * consistent with the source's; computed for 'auto' (every candidate) and otherwise null.
   */
  reverseAccuracy: number | null;
  /** 'auto': each candidate's reverse accuracy, in ADAPT_METHODS order. */
  candidates?: { method: AdaptMethod; reverseAccuracy: number }[];
}

/** Fewest target rows per feature for the target's statistics to mean anything. */
export const MIN_TARGET_ROWS = 10;

export function checkAdaptData(a: AdaptData): void {
  const ns = a.ys.length;
  const nt = a.xt.length / a.d;
  if (a.xs.length !== ns * a.d) throw new GraftError('E_GRAPH_SHAPE', `source features hold ${a.xs.length} values, not ${ns} rows of ${a.d}`, 'Source and target must have the same feature width.');
  if (!Number.isInteger(nt)) throw new GraftError('E_GRAPH_SHAPE', `target features hold ${a.xt.length} values, not a whole number of rows of ${a.d}`, 'Source and target must have the same feature width: embed both with the same backbone and cut.');
  if (nt < MIN_TARGET_ROWS) throw new GraftError('E_TARGET_TOO_SMALL', `the target has ${nt} rows; adapting needs at least ${MIN_TARGET_ROWS} to estimate its statistics`, 'Add more unlabelled target examples.');
  for (const v of [a.xs, a.xt]) for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) throw new GraftError('E_FEATURES_NOT_FINITE', `feature ${i % a.d} of row ${Math.floor(i / a.d)} is not finite`, 'Check the backbone or the data: features must be finite numbers.');
}

const apply = (x: Float32Array, s: Standardize, d: number): Float32Array => {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (x[i]! - s.mean[i % d]!) / s.std[i % d]!;
  return out;
};

/** The standardisation z = (x - m1) / s1, then (z - m2) / s2, as one. */
export function composeStandardize(a: Standardize, b: Standardize): Standardize {
  return { mean: a.mean.map((m, j) => m + a.std[j]! * b.mean[j]!), std: a.std.map((s, j) => s * b.std[j]!) };
}

/** Symmetric eigendecomposition by cyclic Jacobi rotations: A = V diag(w) V^T (V column-major in rows). */
export function symmetricEigen(a: Float64Array, d: number, tol = 1e-12, maxSweeps = 60): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    let diag = 0;
    for (let p = 0; p < d; p++) { diag += m[p * d + p]! ** 2; for (let q = p + 1; q < d; q++) off += m[p * d + q]! ** 2; }
    if (off <= tol * tol * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q * d + q]! - m[p * d + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let r = 0; r < d; r++) {
          const mrp = m[r * d + p]!, mrq = m[r * d + q]!;
          m[r * d + p] = c * mrp - s * mrq;
          m[r * d + q] = s * mrp + c * mrq;
        }
        for (let r = 0; r < d; r++) {
          const mpr = m[p * d + r]!, mqr = m[q * d + r]!;
          m[p * d + r] = c * mpr - s * mqr;
          m[q * d + r] = s * mpr + c * mqr;
        }
        for (let r = 0; r < d; r++) {
          const vrp = v[r * d + p]!, vrq = v[r * d + q]!;
          v[r * d + p] = c * vrp - s * vrq;
          v[r * d + q] = s * vrp + c * vrq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: d }, (_, i) => m[i * d + i]!), vectors: v };
}

/** Covariance (rows centred by their mean), [d, d]. */
export function covariance(x: Float32Array, d: number): Float64Array {
  const n = x.length / d;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j]! / n;
  const c = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = x[i * d + j]! - mean[j]!;
    for (let p = 0; p < d; p++) { const rp = row[p]!; if (rp === 0) continue; for (let q = p; q < d; q++) c[p * d + q] += rp * row[q]!; }
  }
  const div = Math.max(1, n - 1);
  for (let p = 0; p < d; p++) for (let q = p; q < d; q++) { c[p * d + q] /= div; c[q * d + p] = c[p * d + q]!; }
  return c;
}

/** A symmetric positive definite matrix to the power e (V diag(w^e) V^T). */
function matPow(a: Float64Array, d: number, e: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const w = Math.pow(Math.max(values[k]!, 1e-12), e);
    for (let p = 0; p < d; p++) { const vp = vectors[p * d + k]! * w; if (vp === 0) continue; for (let q = 0; q < d; q++) out[p * d + q] += vp * vectors[q * d + k]!; }
  }
  return out;
}

/** CORAL: source rows re-coloured to the target's covariance, Xs (Cs + lambda I)^-1/2 (Ct + lambda I)^1/2 (rows centred, then the target mean added). */
export function coral(xs: Float32Array, xt: Float32Array, d: number, lambda = 1): Float32Array {
  const reg = (c: Float64Array) => { for (let j = 0; j < d; j++) c[j * d + j] += lambda; return c; };
  const a = matPow(reg(covariance(xs, d)), d, -0.5);
  const b = matPow(reg(covariance(xt, d)), d, 0.5);
  const m = new Float64Array(d * d); // a @ b
  for (let p = 0; p < d; p++) for (let r = 0; r < d; r++) { const apr = a[p * d + r]!; if (apr === 0) continue; for (let q = 0; q < d; q++) m[p * d + q] += apr * b[r * d + q]!; }
  const ns = xs.length / d;
  const nt = xt.length / d;
  const ms = new Float64Array(d);
  const mt = new Float64Array(d);
  for (let i = 0; i < ns; i++) for (let j = 0; j < d; j++) ms[j] += xs[i * d + j]! / ns;
  for (let i = 0; i < nt; i++) for (let j = 0; j < d; j++) mt[j] += xt[i * d + j]! / nt;
  const out = new Float32Array(xs.length);
  const row = new Float64Array(d);
  for (let i = 0; i < ns; i++) {
    for (let j = 0; j < d; j++) row[j] = xs[i * d + j]! - ms[j]!;
    for (let q = 0; q < d; q++) { let s = mt[q]!; for (let p = 0; p < d; p++) s += row[p]! * m[p * d + q]!; out[i * d + q] = s; }
  }
  return out;
}

function softmaxRows(z: Float64Array, k: number): { label: Int32Array; conf: Float64Array } {
  const n = z.length / k;
  const label = new Int32Array(n);
  const conf = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (z[i * k + c]! > z[i * k + best]!) best = c;
    let s = 0;
    for (let c = 0; c < k; c++) s += Math.exp(z[i * k + c]! - z[i * k + best]!);
    label[i] = best;
    conf[i] = 1 / s;
  }
  return { label, conf };
}

/**
 * Fits the adapted classifier for the target: one method (default 'self-train'), or 'auto': every method,
 * keeping the one whose target labels best predict the source labels back (reverse validation). 'auto' is
 * not the default: on the digits <-> MNIST shifts it never picked the best method (bench/results/adapt.md).
 */
export async function adaptFeatures(a: AdaptData, o: AdaptOptions = {}): Promise<AdaptFit> {
  checkAdaptData(a);
  const method = o.method ?? 'self-train';
  if (method !== 'auto' && !(ADAPT_METHODS as readonly string[]).includes(method)) {
    throw new GraftError('E_BAD_OPTION', `unknown adaptation method "${method}"`, `Use auto or one of ${ADAPT_METHODS.join(', ')}.`);
  }
  if (method !== 'auto') return fitMethod(a, method, o);
  const log = o.log ?? (() => {});
  const fits: AdaptFit[] = [];
  for (const m of ADAPT_METHODS) {
    const f = await fitMethod(a, m, { ...o, log: () => {} });
    f.reverseAccuracy = await reverseAccuracy(a, f, o);
    fits.push(f);
  }
  // The best reverse accuracy; a tie keeps the earlier (simpler) method.
  const best = fits.reduce((b, f) => (f.reverseAccuracy! > b.reverseAccuracy! + 1e-12 ? f : b));
  const candidates = fits.map((f) => ({ method: f.method, reverseAccuracy: f.reverseAccuracy! }));
  log(`adapt (auto): reverse validation ${candidates.map((c) => `${c.method} ${(100 * c.reverseAccuracy).toFixed(1)}%`).join(', ')}: chose ${best.method}`);
  return { ...best, candidates };
}

/**
 * Reverse validation: the target rows labelled by the adapted classifier train a probe (at the classifier's
 * C), which then labels the source rows; its accuracy against the source labels. Each side is read in the
 * method's own space (the source's standardisation for source-only; each domain's own otherwise).
 */
export async function reverseAccuracy(a: AdaptData, f: AdaptFit, o: { seed?: number; threads?: number } = {}): Promise<number> {
  const { d, k } = a;
  const nt = a.xt.length / d;
  const { label } = softmaxRows(adaptedLogits(f, a.xt, d), k);
  const present = new Set(label);
  if (present.size < 2) return 0; // every target row in one class: nothing to train back from
  const perDomain = f.method !== 'source-only';
  const xt = perDomain ? apply(a.xt, fitStandardize(a.xt, nt, d), d) : a.xt;
  const xs = perDomain ? apply(a.xs, fitStandardize(a.xs, a.ys.length, d), d) : a.xs;
  const back = await fitConvexProbe(xt, label, d, k, { seed: o.seed ?? 0, Cs: [f.C], ...(o.threads ? { threads: o.threads } : {}) });
  return accuracy(a.ys, argmaxRows(Float32Array.from(convexLogits(back, xs, d)), k));
}

async function fitMethod(a: AdaptData, method: AdaptMethod, o: AdaptOptions): Promise<AdaptFit> {
  const { d, k } = a;
  const nt = a.xt.length / d;
  const log = o.log ?? (() => {});
  const copts = { seed: o.seed ?? 0, ...(o.threads ? { threads: o.threads } : {}) };
  // Source-only: the source's own standardisation (inside the probe) is applied to the target too.
  if (method === 'source-only') {
    const fit = await fitConvexProbe(a.xs, a.ys, d, k, copts);
    return { method, standardize: fit.standardize, weight: fit.weight, bias: fit.bias, C: fit.C, sourceCvAccuracy: fit.cvAccuracy, pseudoLabelled: 0, reverseAccuracy: null };
  }
  const ss = fitStandardize(a.xs, a.ys.length, d);
  const st = fitStandardize(a.xt, nt, d);
  const zs = apply(a.xs, ss, d);
  const zt = apply(a.xt, st, d);
  const srcRows = method === 'coral' ? coral(zs, zt, d) : zs;
  const first = await fitConvexProbe(srcRows, a.ys, d, k, copts);
  log(`adapt (${method}): source probe C = ${first.C.toPrecision(2)}, source CV accuracy ${first.cvAccuracy !== null ? (100 * first.cvAccuracy).toFixed(1) : '?'}%`);
  let fit = first;
  let pseudo = 0;
  if (method === 'self-train') {
    const rounds = o.rounds ?? 5;
    for (let r = 1; r <= rounds; r++) {
      const { label, conf } = softmaxRows(convexLogits(fit, zt, d), k);
      // Class-balanced: at most (r / rounds) of an equal share per predicted class, the most confident first.
      const share = Math.floor((nt / k) * (r / rounds));
      const keep: number[] = [];
      for (let c = 0; c < k; c++) {
        const rows = [];
        for (let i = 0; i < nt; i++) if (label[i] === c) rows.push(i);
        rows.sort((i, j) => conf[j]! - conf[i]!);
        keep.push(...rows.slice(0, share));
      }
      const x = new Float32Array((a.ys.length + keep.length) * d);
      x.set(zs);
      keep.forEach((i, m) => x.set(zt.subarray(i * d, (i + 1) * d), (a.ys.length + m) * d));
      const y = Int32Array.from([...a.ys, ...keep.map((i) => label[i]!)]);
      fit = await fitConvexProbe(x, y, d, k, { ...copts, Cs: [first.C] });
      pseudo = keep.length;
      log(`adapt (self-train): round ${r}/${rounds}, ${keep.length} pseudo-labelled target rows`);
    }
  }
  // The classifier reads target rows standardised by the target's statistics, then by the probe's own.
  return {
    method, standardize: composeStandardize(st, fit.standardize), weight: fit.weight, bias: fit.bias, C: fit.C,
    sourceCvAccuracy: first.cvAccuracy, pseudoLabelled: pseudo, reverseAccuracy: null,
  };
}

/** Logits of an adapted classifier on target rows [n, k] (a linear model on standardised rows, as a probe's). */
export function adaptedLogits(f: AdaptFit, x: Float32Array, d: number): Float64Array {
  return convexLogits(f, x, d);
}
