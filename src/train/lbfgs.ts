/**
 * L-BFGS for smooth convex objectives (the convex probes): two-loop recursion over the last `memory`
 * steps, a backtracking line search on the Armijo condition, and pairs that break the curvature
 * condition skipped (so the inverse-Hessian estimate stays positive definite without a Wolfe search).
 * The state is float64; the objective may compute in float32 (ORT), so a stall in f also ends the run.
 */

export interface LbfgsOptions {
  /** Stop when max |g| <= tol (scikit-learn's lbfgs `gtol`, default 1e-4). */
  tol?: number;
  maxIter?: number;
  /** Pairs kept (default 10). */
  memory?: number;
  /** Stop when the relative decrease of f over one iteration is below this (default 1e-10). */
  ftol?: number;
}

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  gradMax: number;
  iterations: number;
  evaluations: number;
  converged: boolean;
  /** Why it stopped: 'gtol', 'ftol', 'line-search' or 'max-iter'. */
  reason: 'gtol' | 'ftol' | 'line-search' | 'max-iter';
}

/** f(x) with its gradient written into g; returns f. */
export type Objective = (x: Float64Array, g: Float64Array) => Promise<number> | number;

const dot = (a: Float64Array, b: Float64Array) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!; return s; };
const maxAbs = (a: Float64Array) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!)); return m; };

export async function lbfgs(f: Objective, x0: Float64Array, o: LbfgsOptions = {}): Promise<LbfgsResult> {
  const tol = o.tol ?? 1e-4;
  const maxIter = o.maxIter ?? 500;
  const m = o.memory ?? 10;
  const ftol = o.ftol ?? 1e-10;
  const n = x0.length;
  let x = Float64Array.from(x0);
  let g = new Float64Array(n);
  let fx = await f(x, g);
  let evaluations = 1;
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const alpha = new Float64Array(m);
  const d = new Float64Array(n);
  let xn = new Float64Array(n);
  let gn = new Float64Array(n);
  let reason: LbfgsResult['reason'] = 'max-iter';
  let it = 0;
  if (!Number.isFinite(fx)) return { x, f: fx, gradMax: NaN, iterations: 0, evaluations, converged: false, reason: 'line-search' };
  for (; it < maxIter; it++) {
    if (maxAbs(g) <= tol) { reason = 'gtol'; break; }
    // Direction d = -H g by the two-loop recursion.
    for (let i = 0; i < n; i++) d[i] = -g[i]!;
    for (let j = S.length - 1; j >= 0; j--) {
      const a = rho[j]! * dot(S[j]!, d);
      alpha[j] = a;
      const y = Y[j]!;
      for (let i = 0; i < n; i++) d[i] -= a * y[i]!;
    }
    if (S.length) {
      const y = Y.at(-1)!;
      const gamma = dot(S.at(-1)!, y) / dot(y, y);
      for (let i = 0; i < n; i++) d[i] *= gamma;
    }
    for (let j = 0; j < S.length; j++) {
      const b = rho[j]! * dot(Y[j]!, d);
      const s = S[j]!;
      const c = alpha[j]! - b;
      for (let i = 0; i < n; i++) d[i] += c * s[i]!;
    }
    let slope = dot(g, d);
    if (!(slope < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      S.length = 0; Y.length = 0; rho.length = 0;
      for (let i = 0; i < n; i++) d[i] = -g[i]!;
      slope = dot(g, d);
    }
    // First step of a fresh memory: a unit step along -g can be huge; scale it to length 1.
    let step = S.length ? 1 : Math.min(1, 1 / Math.sqrt(-slope));
    let fn = NaN;
    let accepted = false;
    for (let ls = 0; ls < 40; ls++) {
      for (let i = 0; i < n; i++) xn[i] = x[i]! + step * d[i]!;
      fn = await f(xn, gn);
      evaluations++;
      if (Number.isFinite(fn) && fn <= fx + 1e-4 * step * slope) { accepted = true; break; }
      step *= 0.5;
    }
    if (!accepted) { reason = 'line-search'; break; }
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) { s[i] = xn[i]! - x[i]!; y[i] = gn[i]! - g[i]!; }
    const sy = dot(s, y);
    if (sy > 1e-12 * Math.sqrt(dot(y, y) * dot(s, s))) {
      if (S.length === m) { S.shift(); Y.shift(); rho.shift(); }
      S.push(s); Y.push(y); rho.push(1 / sy);
    }
    const decrease = (fx - fn) / Math.max(Math.abs(fx), Math.abs(fn), 1);
    [x, xn] = [xn, x];
    [g, gn] = [gn, g];
    fx = fn;
    if (decrease <= ftol) { it++; reason = maxAbs(g) <= tol ? 'gtol' : 'ftol'; break; }
  }
  const gradMax = maxAbs(g);
  return { x, f: fx, gradMax, iterations: it, evaluations, converged: reason === 'gtol' || reason === 'ftol', reason };
}
