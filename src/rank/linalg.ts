/**
 * Dense float64 linear algebra for the transferability scores (rank/scores.ts): Gram matrices, the
 * symmetric eigendecomposition (Householder tridiagonalisation, then the implicit QL algorithm with
 * Wilkinson shifts), a Cholesky solve and a randomized top-r eigensolver.
 *
 * Matrices are row-major Float64Arrays. The eigensolver can skip the eigenvectors and instead return
 * the projections E^T B of a few right-hand sides B onto them: that is all LogME needs, and it costs
 * O(n^2 k) on top of the 4n^3/3 of the tridiagonalisation instead of the ~6n^3 of the vectors.
 */
import { GraftError } from '../errors.ts';

const EPS = 2 ** -52;

/** X X^T (n x n) of a row-major n x d matrix, in float64. */
export function gramRows(x: ArrayLike<number>, n: number, d: number): Float64Array {
  const rows: Float64Array[] = [];
  for (let i = 0; i < n; i++) rows.push(Float64Array.from({ length: d }, (_, j) => x[i * d + j]!));
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = rows[i]!;
    for (let j = 0; j <= i; j++) {
      const rj = rows[j]!;
      let s = 0;
      for (let t = 0; t < d; t++) s += ri[t]! * rj[t]!;
      g[i * n + j] = s;
      g[j * n + i] = s;
    }
  }
  return g;
}

/** X^T X (d x d) of a row-major n x d matrix, in float64. */
export function gramCols(x: ArrayLike<number>, n: number, d: number): Float64Array {
  const g = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = x[i * d + j]!;
    for (let a = 0; a < d; a++) {
      const v = row[a]!;
      if (v === 0) continue;
      const o = a * d;
      for (let b = 0; b <= a; b++) g[o + b]! += v * row[b]!;
    }
  }
  for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) g[b * d + a] = g[a * d + b]!;
  return g;
}

interface Tridiagonal {
  diag: Float64Array;
  off: Float64Array;
  /** The Householder vectors: v_k in column k below the diagonal (rows k+1..n-1). */
  house: Float64Array;
  betas: Float64Array;
}

/**
 * Householder reduction of a symmetric matrix to tridiagonal form: T = Q^T A Q with
 * Q = H_0 H_1 ... H_{n-3}, H_k = I - beta_k v_k v_k^T acting on rows k+1..n-1. Reads only the lower
 * triangle of `a` and works on a copy. off[k] couples diag[k] and diag[k+1].
 */
function tridiagonalize(a: ArrayLike<number>, n: number): Tridiagonal {
  const h = Float64Array.from(a as ArrayLike<number>);
  const diag = new Float64Array(n);
  const off = new Float64Array(n);
  const betas = new Float64Array(n);
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    const m = n - k - 1;
    let norm2 = 0;
    for (let i = 0; i < m; i++) { v[i] = h[(k + 1 + i) * n + k]!; norm2 += v[i]! * v[i]!; }
    diag[k] = h[k * n + k]!;
    const x0 = v[0]!;
    if (norm2 - x0 * x0 === 0) { off[k] = x0; betas[k] = 0; for (let i = 0; i < m; i++) h[(k + 1 + i) * n + k] = 0; continue; }
    const norm = Math.sqrt(norm2);
    const alpha = x0 >= 0 ? -norm : norm; // H x = alpha e_1, with v_0 = x_0 - alpha kept away from cancellation
    v[0] = x0 - alpha;
    const beta = 1 / (norm2 - x0 * alpha); // 2 / (v^T v), as v^T v = 2 (norm^2 - x_0 alpha)
    off[k] = alpha;
    betas[k] = beta;
    // p = beta B v over the trailing block B, from its lower triangle (each stored entry used twice).
    // Two rows at a time: each pass over p[0..i) serves both (the loops are memory-bound).
    p.fill(0, 0, m);
    let i0 = 0;
    for (; i0 + 1 < m; i0 += 2) {
      const o0 = (k + 1 + i0) * n + k + 1;
      const o1 = o0 + n;
      const v0 = v[i0]!;
      const v1 = v[i0 + 1]!;
      let acc0 = 0;
      let acc1 = 0;
      for (let j = 0; j < i0; j++) {
        const b0 = h[o0 + j]!;
        const b1 = h[o1 + j]!;
        const vj = v[j]!;
        acc0 += b0 * vj;
        acc1 += b1 * vj;
        p[j]! += b0 * v0 + b1 * v1;
      }
      const c = h[o1 + i0]!; // B[i0+1][i0]
      p[i0]! += acc0 + h[o0 + i0]! * v0 + c * v1;
      p[i0 + 1]! += acc1 + c * v0 + h[o1 + i0 + 1]! * v1;
    }
    if (i0 < m) {
      const o = (k + 1 + i0) * n + k + 1;
      const vi = v[i0]!;
      let acc = 0;
      for (let j = 0; j < i0; j++) { const b = h[o + j]!; acc += b * v[j]!; p[j]! += b * vi; }
      p[i0]! += acc + h[o + i0]! * vi;
    }
    let pv = 0;
    for (let i = 0; i < m; i++) { p[i]! *= beta; pv += p[i]! * v[i]!; }
    const kk = 0.5 * beta * pv;
    for (let i = 0; i < m; i++) p[i]! -= kk * v[i]!; // p is now w, and B <- B - v w^T - w v^T
    let i1 = 0;
    for (; i1 + 1 < m; i1 += 2) {
      const o0 = (k + 1 + i1) * n + k + 1;
      const o1 = o0 + n;
      const v0 = v[i1]!;
      const w0 = p[i1]!;
      const v1 = v[i1 + 1]!;
      const w1 = p[i1 + 1]!;
      for (let j = 0; j <= i1; j++) {
        const pj = p[j]!;
        const vj = v[j]!;
        h[o0 + j]! -= v0 * pj + w0 * vj;
        h[o1 + j]! -= v1 * pj + w1 * vj;
      }
      h[o1 + i1 + 1]! -= 2 * v1 * w1;
    }
    if (i1 < m) {
      const o = (k + 1 + i1) * n + k + 1;
      const vi = v[i1]!;
      const wi = p[i1]!;
      for (let j = 0; j <= i1; j++) h[o + j]! -= vi * p[j]! + wi * v[j]!;
    }
    for (let i = 0; i < m; i++) h[(k + 1 + i) * n + k] = v[i]!;
  }
  if (n >= 2) { diag[n - 2] = h[(n - 2) * n + n - 2]!; off[n - 2] = h[(n - 1) * n + n - 2]!; }
  if (n >= 1) diag[n - 1] = h[(n - 1) * n + n - 1]!;
  off[n - 1] = 0;
  return { diag, off, house: h, betas };
}

/** b <- Q^T b for b an n x k row-major block: H_0 first. */
function applyQt(t: Tridiagonal, n: number, b: Float64Array, k: number): void {
  const dot = new Float64Array(k);
  for (let q = 0; q < n - 2; q++) {
    const beta = t.betas[q]!;
    if (beta === 0) continue;
    dot.fill(0);
    for (let i = q + 1; i < n; i++) {
      const vi = t.house[i * n + q]!;
      for (let c = 0; c < k; c++) dot[c]! += vi * b[i * k + c]!;
    }
    for (let c = 0; c < k; c++) dot[c]! *= beta;
    for (let i = q + 1; i < n; i++) {
      const vi = t.house[i * n + q]!;
      for (let c = 0; c < k; c++) b[i * k + c]! -= vi * dot[c]!;
    }
  }
}

/**
 * Eigenvalues of the tridiagonal (diag, off) by the implicit QL algorithm with Wilkinson shifts, left
 * in diag. Each plane rotation is also applied to rows i, i+1 of the n x k block z, so z becomes
 * W^T z where T = W diag W^T.
 */
function tridiagonalQL(diag: Float64Array, off: Float64Array, n: number, z: Float64Array | undefined, k: number): void {
  const d = diag;
  const e = off;
  e[n - 1] = 0;
  // An off-diagonal entry is negligible below eps ||T||, not eps (|d_m| + |d_m+1|): where a block of
  // eigenvalues ~1e-28 ||T|| sits among larger ones (a rank-one Gram matrix), the roundoff of each sweep
  // is larger than that local bound, and the iteration would never stop.
  let norm = 0;
  for (let i = 0; i < n; i++) norm = Math.max(norm, Math.abs(d[i]!) + Math.abs(e[i]!) + (i > 0 ? Math.abs(e[i - 1]!) : 0));
  const tiny = EPS * norm;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    for (;;) {
      let m = l;
      for (; m < n - 1; m++) if (Math.abs(e[m]!) <= tiny) break;
      if (m === l) break;
      if (++iter > 60) {
        throw new GraftError('E_RUNTIME', `symmetric eigendecomposition: eigenvalue ${l} of ${n} did not converge in 60 QL iterations`,
          'The matrix holds NaN, Infinity or values near the float64 limits; check the features.');
      }
      // Shift: the eigenvalue of the leading 2x2 block nearer to d[l].
      let g = (d[l + 1]! - d[l]!) / (2 * e[l]!);
      let r = Math.hypot(g, 1);
      g = d[m]! - d[l]! + e[l]! / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      for (; i >= l; i--) {
        const f = s * e[i]!;
        const b = c * e[i]!;
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) { d[i + 1]! -= p; e[m] = 0; break; }
        s = f / r;
        c = g / r;
        g = d[i + 1]! - p;
        r = (d[i]! - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        if (z) {
          const oi = i * k;
          const oj = oi + k;
          for (let col = 0; col < k; col++) {
            const zi = z[oi + col]!;
            const zj = z[oj + col]!;
            z[oj + col] = s * zi + c * zj;
            z[oi + col] = c * zi - s * zj;
          }
        }
      }
      if (r === 0 && i >= l) continue;
      d[l]! -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
}

/** Indices that sort values in decreasing order. */
function descending(values: Float64Array): number[] {
  return [...values.keys()].sort((a, b) => values[b]! - values[a]! || a - b);
}

export interface SymEig {
  /** Eigenvalues, largest first. */
  values: Float64Array;
  /** n x n row-major; column j is the unit eigenvector of values[j]. */
  vectors: Float64Array;
}

/** Eigendecomposition A = V diag(values) V^T of a symmetric n x n matrix (its lower triangle is read). */
export function symEig(a: ArrayLike<number>, n: number): SymEig {
  const t = tridiagonalize(a, n);
  const z = new Float64Array(n * n);
  for (let i = 0; i < n; i++) z[i * n + i] = 1;
  applyQt(t, n, z, n); // z = Q^T
  tridiagonalQL(t.diag, t.off, n, z, n); // z = W^T Q^T: row j is eigenvector j
  const order = descending(t.diag);
  const values = Float64Array.from(order, (j) => t.diag[j]!);
  const vectors = new Float64Array(n * n);
  order.forEach((j, col) => { for (let i = 0; i < n; i++) vectors[i * n + col] = z[j * n + i]!; });
  return { values, vectors };
}

export interface SymEigProjection {
  /** Eigenvalues, largest first. */
  values: Float64Array;
  /** n x k row-major: row j holds v_j^T B, the projections of B's columns on eigenvector j. */
  projections: Float64Array;
}

/** Eigenvalues of a symmetric n x n matrix and the projections V^T B of an n x k block B, without V. */
export function symEigProject(a: ArrayLike<number>, n: number, b: ArrayLike<number>, k: number): SymEigProjection {
  const t = tridiagonalize(a, n);
  const z = Float64Array.from(b as ArrayLike<number>);
  applyQt(t, n, z, k);
  tridiagonalQL(t.diag, t.off, n, z, k);
  const order = descending(t.diag);
  const projections = new Float64Array(n * k);
  order.forEach((j, r) => projections.set(z.subarray(j * k, (j + 1) * k), r * k));
  return { values: Float64Array.from(order, (j) => t.diag[j]!), projections };
}

/** Eigenvalues of a symmetric n x n matrix, largest first. */
export function symEigValues(a: ArrayLike<number>, n: number): Float64Array {
  const t = tridiagonalize(a, n);
  tridiagonalQL(t.diag, t.off, n, undefined, 0);
  return Float64Array.from(descending(t.diag), (j) => t.diag[j]!);
}

/**
 * Cholesky factor L (lower, row-major, A = L L^T) of a symmetric n x n matrix (lower triangle read), or
 * undefined when A is not numerically positive definite.
 */
export function cholesky(a: ArrayLike<number>, n: number): Float64Array | undefined {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const oi = i * n;
    for (let j = 0; j <= i; j++) {
      const oj = j * n;
      let s = a[oi + j]!;
      for (let t = 0; t < j; t++) s -= l[oi + t]! * l[oj + t]!;
      if (i === j) {
        if (!(s > 0)) return undefined;
        l[oi + i] = Math.sqrt(s);
      } else {
        l[oi + j] = s / l[oj + j]!;
      }
    }
  }
  return l;
}

/** Solves L L^T X = B for a Cholesky factor L (n x n) and an n x k block B. */
export function choleskySolveWith(l: Float64Array, n: number, b: ArrayLike<number>, k: number): Float64Array {
  const x = Float64Array.from(b as ArrayLike<number>);
  for (let i = 0; i < n; i++) { // L y = b
    for (let t = 0; t < i; t++) { const lit = l[i * n + t]!; for (let c = 0; c < k; c++) x[i * k + c]! -= lit * x[t * k + c]!; }
    const lii = l[i * n + i]!;
    for (let c = 0; c < k; c++) x[i * k + c]! /= lii;
  }
  for (let i = n - 1; i >= 0; i--) { // L^T x = y
    const lii = l[i * n + i]!;
    for (let c = 0; c < k; c++) x[i * k + c]! /= lii;
    for (let t = 0; t < i; t++) { const lit = l[i * n + t]!; for (let c = 0; c < k; c++) x[t * k + c]! -= lit * x[i * k + c]!; }
  }
  return x;
}

/**
 * Solves A X = B for a symmetric positive definite n x n matrix A (lower triangle read) and an n x k
 * block B, by Cholesky. Returns undefined when A is not numerically positive definite.
 */
export function choleskySolve(a: ArrayLike<number>, n: number, b: ArrayLike<number>, k: number): Float64Array | undefined {
  const l = cholesky(a, n);
  return l && choleskySolveWith(l, n, b, k);
}

/** L^-T (upper triangular, row-major) of a lower triangular n x n L. */
export function lowerInverseTransposed(l: Float64Array, n: number): Float64Array {
  // Column j of L^-1 solves L x = e_j; it is row j of L^-T.
  const out = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const o = j * n;
    out[o + j] = 1 / l[j * n + j]!;
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let t = j; t < i; t++) s -= l[i * n + t]! * out[o + t]!;
      out[o + i] = s / l[i * n + i]!;
    }
  }
  return out;
}
