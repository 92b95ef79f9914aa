/**
 * Checks gradient rules against central finite differences. The checked function f is reduced to a
 * scalar with a fixed random projection, loss = sum(f(x) * R), so every output element matters.
 * At a kink (ReLU-like ops at 0, ties in Min/Max, Shrink at lambda) the central difference averages two
 * slopes that no rule gives; there, when the one-sided differences disagree, a gradient between them (a
 * Clarke subgradient along that coordinate, as PyTorch's conventions pick) passes, and is counted. The
 * same bracket holds the true derivative where the curvature is too large for the step (Tan near a pole
 * in float32): the function is convex or concave across it.
 */
import { GraphBuilder, type Sym, type TargetHints } from '../graph/builder.ts';
import { gradients } from '../graph/autodiff.ts';
import { rng } from '../rng.ts';
import { Session } from './session.ts';
import { type DType, type TensorData, sizeOf, tensor } from '../graph/tensor.ts';
import type { Dim } from '../graph/ir.ts';

export interface CheckInput {
  name: string;
  shape: number[];
  /** Values (default: seeded uniform in [lo, hi)). */
  values?: number[];
  lo?: number;
  hi?: number;
  /** Differentiate with respect to this input (default true). */
  wrt?: boolean;
  dtype?: DType;
}

export interface GradcheckOptions {
  dtype?: DType; // float64 by default
  eps?: number;
  rtol?: number;
  atol?: number;
  seed?: number;
  /** At most this many elements per input are perturbed (chosen evenly). */
  maxElems?: number;
  /** Target hints set on the builder before the graph is built (gradient rules may read them). */
  hints?: TargetHints;
  /** A rewrite of the built graph before it runs (e.g. lowering ops for the runtime). */
  lower?: (b: GraphBuilder) => void;
}

export interface GradcheckResult {
  maxAbsErr: number;
  maxRelErr: number;
  checked: number;
  /** Elements whose one-sided differences disagree (a kink, or curvature) and whose gradient passed between them. */
  kinks: number;
  /** Elements on the edge of the op's domain (one side NaN) checked by the one-sided difference from inside. */
  edges: number;
  /** Elements with no derivative (NaN on both sides, or a jump), left out of `checked`. */
  undefinedAt: number;
  analytic: Record<string, Float64Array>;
  numeric: Record<string, Float64Array>;
  ok: boolean;
}

export { rng } from '../rng.ts';

export async function gradcheck(
  build: (b: GraphBuilder, xs: Sym[]) => Sym,
  inputs: CheckInput[],
  opts: GradcheckOptions = {},
): Promise<GradcheckResult> {
  const dtype = opts.dtype ?? 'float64';
  const eps = opts.eps ?? (dtype === 'float64' ? 1e-6 : 1e-2);
  const rtol = opts.rtol ?? (dtype === 'float64' ? 1e-5 : 2e-2);
  const atol = opts.atol ?? (dtype === 'float64' ? 1e-7 : 2e-3);
  const rand = rng(opts.seed ?? 1);
  const b = new GraphBuilder();
  b.hints = { ...opts.hints };
  const feeds: Record<string, TensorData> = {};
  const xs = inputs.map((inp) => {
    const dt = inp.dtype ?? dtype;
    const n = sizeOf(inp.shape);
    const lo = inp.lo ?? -1;
    const hi = inp.hi ?? 1;
    const vals = inp.values ?? Array.from({ length: n }, () => lo + (hi - lo) * rand());
    feeds[inp.name] = tensor(dt, inp.shape, vals);
    return b.input(inp.name, dt, inp.shape as Dim[]);
  });
  const y = build(b, xs);
  const ys = y.shape.map(Number);
  const R = b.init('R', tensor(y.dtype, ys, Array.from({ length: sizeOf(ys) }, () => rand() * 2 - 1)));
  const loss = b.op1('ReduceSum', [b.mul(y, R)], { keepdims: 0 });
  const wrt = inputs.filter((i) => i.wrt !== false).map((i) => i.name);
  const grads = gradients(b, loss.name, wrt);
  b.output(loss, 'loss');
  const gradNames: Record<string, string> = {};
  for (const w of wrt) {
    const g = grads.get(w);
    if (!g) throw new Error(`gradcheck: no gradient reached ${w}`);
    gradNames[w] = b.output(g, `grad_${w}`);
  }
  opts.lower?.(b);
  const s = await Session.create(b.graph, { threads: 1, optimization: 'disabled' });
  const base = await s.run(feeds);
  const analytic: Record<string, Float64Array> = {};
  const numeric: Record<string, Float64Array> = {};
  let maxAbsErr = 0;
  let maxRelErr = 0;
  let checked = 0;
  let kinks = 0;
  let edges = 0;
  let undefinedAt = 0;
  let ok = true;
  const l0 = Number(base['loss']!.data[0]);
  for (const w of wrt) {
    const a = Float64Array.from(base[gradNames[w]!]!.data as Float64Array);
    analytic[w] = a;
    const x = feeds[w]!;
    const n = x.data.length;
    const num = new Float64Array(n).fill(NaN);
    const max = opts.maxElems ?? 64;
    const stride = Math.max(1, Math.floor(n / max));
    for (let i = 0; i < n; i += stride) {
      const orig = Number(x.data[i]);
      (x.data as Float64Array)[i] = orig + eps;
      const lp = Number((await s.run(feeds, ['loss'])).loss!.data[0]);
      (x.data as Float64Array)[i] = orig - eps;
      const lm = Number((await s.run(feeds, ['loss'])).loss!.data[0]);
      (x.data as Float64Array)[i] = orig;
      num[i] = (lp - lm) / (2 * eps);
      const err = Math.abs(num[i]! - a[i]!);
      const rel = err / Math.max(Math.abs(num[i]!), Math.abs(a[i]!), 1e-12);
      maxAbsErr = Math.max(maxAbsErr, err);
      if (err > atol) maxRelErr = Math.max(maxRelErr, rel);
      checked++;
      if (err <= atol + rtol * Math.abs(num[i]!)) continue; // NaN falls through
      // Undefined on both sides (a negative base to a perturbed exponent): no derivative exists to check.
      if (Number.isNaN(lp) && Number.isNaN(lm) && Number.isFinite(l0)) { undefinedAt++; checked--; continue; }
      // On the edge of the op's domain (x^y at x = 0 for a fractional y) one side is NaN: the other side's
      // one-sided difference is the derivative from inside the domain.
      if (Number.isNaN(lp) !== Number.isNaN(lm) && Number.isFinite(l0)) {
        const side = Number.isNaN(lm) ? (lp - l0) / eps : (l0 - lm) / eps;
        // A one-sided difference divides the loss's rounding by eps, not 2 eps: allow for it (64 ulps of the loss).
        const roundoff = (64 * Number.EPSILON * Math.abs(l0)) / eps;
        if (Math.abs(side - a[i]!) <= atol + roundoff + rtol * Math.abs(side)) { num[i] = side; edges++; continue; }
        // An infinite derivative there (acosh at 1): the one-sided difference must grow without bound as the
        // step shrinks (at 1/16 of the step, by more than twice), with the gradient's sign.
        if (!Number.isFinite(a[i]!) && !Number.isNaN(a[i]!) && Math.sign(side) === Math.sign(a[i]!)) {
          const dir = Number.isNaN(lm) ? 1 : -1;
          (x.data as Float64Array)[i] = orig + (dir * eps) / 16;
          const l16 = Number((await s.run(feeds, ['loss'])).loss!.data[0]);
          (x.data as Float64Array)[i] = orig;
          const side16 = (dir * (l16 - l0)) / (eps / 16);
          if (Math.sign(side16) === Math.sign(side) && Math.abs(side16) > 2 * Math.abs(side)) { edges++; continue; }
        }
      }
      // A kink: the two one-sided slopes differ by more than the tolerance; any gradient between them passes.
      const fwd = (lp - l0) / eps;
      const bwd = (l0 - lm) / eps;
      const tol = (v: number) => atol + rtol * Math.abs(v);
      const kink = Number.isFinite(fwd) && Number.isFinite(bwd) && Math.abs(fwd - bwd) > tol(fwd) + tol(bwd);
      if (kink && a[i]! >= Math.min(fwd, bwd) - tol(Math.min(fwd, bwd)) && a[i]! <= Math.max(fwd, bwd) + tol(Math.max(fwd, bwd))) { kinks++; continue; }
      // A jump (Sign at 0, Floor at an integer): a change of the loss that does not shrink with the step (at
      // 1/16 of it, still more than half; and more than 100 steps' worth) has no derivative to check.
      const at = async (h: number) => { (x.data as Float64Array)[i] = orig + h; const v = Number((await s.run(feeds, ['loss'])).loss!.data[0]); (x.data as Float64Array)[i] = orig; return v; };
      const jump = async (l: number, h: number) => Math.abs(l - l0) > 100 * eps && Math.abs((await at(h / 16)) - l0) > 0.5 * Math.abs(l - l0);
      if (await jump(lp, eps) || await jump(lm, -eps)) { undefinedAt++; checked--; continue; }
      ok = false;
    }
    numeric[w] = num;
  }
  await s.dispose();
  return { maxAbsErr, maxRelErr, checked, kinks, edges, undefinedAt, analytic, numeric, ok };
}

/** Runs gradcheck and throws (failing the calling test) unless every checked element agrees. */
export async function assertGradcheck(name: string, build: (b: GraphBuilder, xs: Sym[]) => Sym, inputs: CheckInput[], opts: GradcheckOptions = {}): Promise<GradcheckResult> {
  const r = await gradcheck(build, inputs, opts);
  if (!r.ok || r.checked === 0) throw new Error(`${name}: max abs err ${r.maxAbsErr}, max rel err ${r.maxRelErr} over ${r.checked} elements`);
  return r;
}

/** A gradcheck input named `name`, for tests: `input('a')([3, 4], { lo: 0.5 })`. */
export const input = (name: string) => (shape: number[], extra: Partial<CheckInput> = {}): CheckInput => ({ name, shape, ...extra });
