/**
 * The spectral summary of a feature matrix that LogME and the H-score are computed from, after the
 * optional reduction to at most `maxDim` dimensions.
 *
 * Reduction. Features with min(n, d) > maxDim (default 256) are replaced by their rank-maxDim truncated
 * SVD, z_i = diag(s) U^T e_i (the top principal components without centering, so that LogME, which
 * has no bias term, still sees the feature mean). Up to 320 rows or columns the SVD is
 * exact (one symmetric eigendecomposition); above, it is the randomized SVD of Halko, Martinsson and
 * Tropp (2011): a seeded random start, `powerIterations` (1) products with the Gram matrix, Cholesky-QR
 * and a Rayleigh-Ritz step. Every cut goes through the same rule, so scores stay comparable across cuts,
 * and the H-score's shrinkage sees min(d, maxDim) dimensions for every cut. When min(n, d) <= maxDim
 * nothing is lost: LogME is exact, and the H-score is exact when d <= maxDim.
 *
 * Everything is computed from the smaller Gram matrix: X X^T (n x n) when n <= d ("rows"), else
 * X^T X (d x d, "cols"), so the cost is O(n d min(n, d)) for the products and O(min(n, d, maxDim)^3)
 * for the eigenvalues.
 */
import { GraftError } from '../errors.ts';
import { rng } from '../rng.ts';
import { cholesky, lowerInverseTransposed, symEig, symEigProject } from './linalg.ts';
import { type Mat, type Products, gemm } from './products.ts';

export interface SpectrumOptions {
  /** Features with more than this many rows and columns are reduced to it (default 256). */
  maxDim?: number;
  /** 'auto' (default): exact SVD up to 320 rows or columns (there it costs about what the randomized one does), randomized above. */
  svd?: 'auto' | 'exact' | 'randomized';
  /** Products with the Gram matrix in the randomized SVD (default 1). */
  powerIterations?: number;
  /** Seed of the randomized SVD's start block (default 0). */
  seed?: number;
  products?: Products;
  threads?: number;
}

export const DEFAULT_MAX_DIM = 256;
const EXACT_UP_TO = 320;

/**
 * The (reduced) features z_i (p coordinates) in the basis where Z^T Z = diag(sigma). For "rows", Z =
 * U diag(sqrt(sigma)) with U (n x p) orthonormal, and `proj` = U^T Y.
 */
export interface Spectrum {
  n: number;
  k: number;
  /** Dimensions the H-score's shrinkage target sees: min(d, maxDim). */
  dims: number;
  p: number;
  /** Eigenvalues of Z^T Z, largest first, >= 0. */
  sigma: Float64Array;
  /** p x k: the sum of z_i over each class. */
  classSums: Float64Array;
  /** p x k: U^T y_c for the one-hot label columns; only for "rows". */
  proj: Float64Array | undefined;
  /** ||z_i||^2 for each example. */
  norm2: Float64Array;
  /** z_i . sum_j z_j for each example. */
  dotSum: Float64Array;
  counts: Int32Array;
  side: 'rows' | 'cols';
  reduction: 'none' | 'exact' | 'randomized';
}

export interface Gram {
  side: 'rows' | 'cols';
  m: number;
  /** m x m, symmetric, float64. */
  g: Float64Array;
}

/** X X^T when n <= d, else X^T X; float32 on ORT above the 'auto' threshold, else float64. */
export async function gramOf(x: Float32Array, n: number, d: number, o: SpectrumOptions = {}): Promise<Gram> {
  const side = n <= d ? 'rows' : 'cols';
  const m = Math.min(n, d);
  const xm: Mat = { data: x, rows: n, cols: d };
  const g = await gemm(xm, xm, { transA: side === 'cols', transB: side === 'rows', ...opts(o) });
  for (let i = 0; i < m; i++) for (let j = 0; j < i; j++) { const v = 0.5 * (g[i * m + j]! + g[j * m + i]!); g[i * m + j] = v; g[j * m + i] = v; }
  return { side, m, g };
}

function opts(o: SpectrumOptions): { products?: Products; threads?: number } {
  return { ...(o.products ? { products: o.products } : {}), ...(o.threads ? { threads: o.threads } : {}) };
}

/**
 * Q (m x l', orthonormal columns) spanning the columns of y (m x l), by Cholesky-QR: G = Y^T Y = L L^T,
 * Q = Y L^-T. Q's loss of orthogonality grows as cond(G) eps, so a second pass runs when cond(G) is
 * above `reorthogonalizeAbove`: 1e6 for the basis of the Rayleigh-Ritz step, 1e12 for the bases that only
 * feed the next product. A numerically rank-deficient block goes through G's eigendecomposition instead
 * and loses the columns whose eigenvalues fall below 1e-12 of the largest.
 */
async function orthonormalize(y: Float64Array, m: number, l: number, o: SpectrumOptions, reorthogonalizeAbove: number): Promise<{ q: Float64Array; l: number }> {
  for (let pass = 0; pass < 2; pass++) {
    const g = await gemm({ data: y, rows: m, cols: l }, { data: y, rows: m, cols: l }, { transA: true, ...opts(o) });
    const chol = cholesky(g, l);
    let maxD = 0;
    let minD = Infinity;
    for (let i = 0; chol && i < l; i++) { maxD = Math.max(maxD, chol[i * l + i]!); minD = Math.min(minD, chol[i * l + i]!); }
    const cond = chol ? (maxD / minD) ** 2 : Infinity;
    let w: Float64Array;
    let l2 = l;
    if (cond < 1e13) {
      w = lowerInverseTransposed(chol!, l);
    } else {
      const e = symEig(g, l);
      while (l2 > 0 && !(e.values[l2 - 1]! > 1e-12 * e.values[0]!)) l2--;
      if (l2 === 0) throw new GraftError('E_RUNTIME', 'randomized SVD: the Gram matrix times a random block is zero', 'The features are all zero; check the backbone cut.');
      w = new Float64Array(l * l2);
      for (let i = 0; i < l; i++) for (let j = 0; j < l2; j++) w[i * l2 + j] = e.vectors[i * l + j]! / Math.sqrt(e.values[j]!);
    }
    y = await gemm({ data: y, rows: m, cols: l }, { data: w, rows: l, cols: l2 }, opts(o));
    l = l2;
    if (cond < reorthogonalizeAbove) break;
  }
  return { q: y, l };
}

export async function spectrumOf(x: Float32Array, y: Int32Array, d: number, k: number, o: SpectrumOptions = {}, gram?: Gram): Promise<Spectrum> {
  const n = y.length;
  const maxDim = o.maxDim ?? DEFAULT_MAX_DIM;
  if (!(Number.isInteger(maxDim) && maxDim >= 1)) throw new GraftError('E_BAD_OPTION', `maxDim must be a positive integer, got ${maxDim}`, 'Use e.g. 256.');
  const { side, m, g } = gram ?? await gramOf(x, n, d, o);
  const counts = new Int32Array(k);
  for (const c of y) counts[c]!++;
  // The right-hand sides whose projections we need: the one-hot labels (rows) or the class sums X^T Y (cols).
  const rhs = new Float64Array(m * k);
  if (side === 'rows') for (let i = 0; i < n; i++) rhs[i * k + y[i]!] = 1;
  else for (let i = 0; i < n; i++) { const c = y[i]!; for (let j = 0; j < d; j++) rhs[j * k + c]! += x[i * d + j]!; }

  let trace = 0;
  for (let i = 0; i < m; i++) trace += g[i * m + i]!;
  let reduction: Spectrum['reduction'] = 'none';
  let q: Float64Array | undefined; // m x p basis of the kept subspace; undefined = identity
  let t = g; // p x p: Q^T G Q
  let p = m;
  if (trace === 0) {
    // All-zero features: no directions at all (LogME: the zero regressor; H-score: 0).
    const none = new Float64Array(0);
    return { n, k, dims: Math.min(d, maxDim), p: 0, sigma: none, classSums: none, proj: side === 'rows' ? none : undefined, norm2: new Float64Array(n), dotSum: new Float64Array(n), counts, side, reduction };
  }
  if (m > maxDim) {
    const exact = o.svd === 'exact' || (o.svd ?? 'auto') === 'auto' && m <= EXACT_UP_TO;
    reduction = exact ? 'exact' : 'randomized';
    if (exact) {
      const e = symEig(g, m);
      p = maxDim;
      q = new Float64Array(m * p);
      for (let i = 0; i < m; i++) for (let j = 0; j < p; j++) q[i * p + j] = e.vectors[i * m + j]!;
    } else {
      const r = rng(o.seed ?? 0);
      let l = maxDim;
      let block: Float64Array = new Float64Array(m * l);
      for (let i = 0; i < block.length; i++) block[i] = 2 * r() - 1;
      block = await gemm({ data: g, rows: m, cols: m }, { data: block, rows: m, cols: l }, opts(o));
      const power = o.powerIterations ?? 1;
      let qq = await orthonormalize(block, m, l, o, power === 0 ? 1e6 : 1e12);
      for (let it = 0; it < power; it++) {
        block = await gemm({ data: g, rows: m, cols: m }, { data: qq.q, rows: m, cols: qq.l }, opts(o));
        qq = await orthonormalize(block, m, qq.l, o, it === power - 1 ? 1e6 : 1e12);
      }
      q = qq.q;
      p = l = qq.l;
    }
    const gq = await gemm({ data: g, rows: m, cols: m }, { data: q, rows: m, cols: p }, opts(o));
    t = await gemm({ data: q, rows: m, cols: p }, { data: gq, rows: m, cols: p }, { transA: true, ...opts(o) });
    for (let i = 0; i < p; i++) for (let j = 0; j < i; j++) { const v = 0.5 * (t[i * p + j]! + t[j * p + i]!); t[i * p + j] = v; t[j * p + i] = v; }
  }
  const b = q ? projectCols(q, m, p, rhs, k) : rhs;
  const e = symEigProject(t, p, b, k);
  const sigma = e.values.map((v) => Math.max(v, 0));

  const norm2 = new Float64Array(n);
  const dotSum = new Float64Array(n);
  let classSums: Float64Array;
  let proj: Float64Array | undefined;
  if (side === 'rows') {
    proj = e.projections;
    classSums = new Float64Array(p * k);
    for (let j = 0; j < p; j++) for (let c = 0; c < k; c++) classSums[j * k + c] = Math.sqrt(sigma[j]!) * proj[j * k + c]!;
    // ||z_i||^2 = (Q T Q^T)_ii and z_i . sum_j z_j = (Q T Q^T 1)_i.
    if (!q) {
      for (let i = 0; i < n; i++) { norm2[i] = g[i * n + i]!; let s = 0; for (let j = 0; j < n; j++) s += g[i * n + j]!; dotSum[i] = s; }
    } else {
      const qt = await gemm({ data: q, rows: m, cols: p }, { data: t, rows: p, cols: p }, opts(o));
      const qSum = new Float64Array(p);
      for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) qSum[j]! += q[i * p + j]!;
      for (let i = 0; i < n; i++) {
        let s = 0;
        let u = 0;
        for (let j = 0; j < p; j++) { s += qt[i * p + j]! * q[i * p + j]!; u += qt[i * p + j]! * qSum[j]!; }
        norm2[i] = s;
        dotSum[i] = u;
      }
    }
  } else {
    classSums = e.projections;
    // z_i = W^T Q^T x_i, so ||z_i||^2 = ||Q^T x_i||^2 and z_i . sum_j z_j = (Q^T x_i) . (Q^T sum_j x_j).
    const xq = q ? await gemm({ data: x, rows: n, cols: d }, { data: q, rows: d, cols: p }, opts(o)) : Float64Array.from(x);
    const sum = new Float64Array(p);
    for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) sum[j]! += xq[i * p + j]!;
    for (let i = 0; i < n; i++) {
      let s = 0;
      let u = 0;
      for (let j = 0; j < p; j++) { const v = xq[i * p + j]!; s += v * v; u += v * sum[j]!; }
      norm2[i] = s;
      dotSum[i] = u;
    }
  }
  return { n, k, dims: Math.min(d, maxDim), p, sigma, classSums, proj, norm2, dotSum, counts, side, reduction };
}

/** Q^T B for Q (m x p) and B (m x k), through B^T Q so that both are read along rows. */
function projectCols(q: Float64Array, m: number, p: number, b: Float64Array, k: number): Float64Array {
  const bt = new Float64Array(k * p); // k x p
  for (let i = 0; i < m; i++) {
    const oq = i * p;
    for (let c = 0; c < k; c++) {
      const v = b[i * k + c]!;
      if (v === 0) continue;
      const ob = c * p;
      for (let j = 0; j < p; j++) bt[ob + j]! += v * q[oq + j]!;
    }
  }
  const out = new Float64Array(p * k);
  for (let c = 0; c < k; c++) for (let j = 0; j < p; j++) out[j * k + c] = bt[c * p + j]!;
  return out;
}
