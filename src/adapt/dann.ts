/**
 * DANN on features (Ganin et al., JMLR 2016): two small feature layers over the (cached) input features, a
 * label head trained on the source, and a domain classifier trained on both domains through a
 * GradientReversal node, so the feature layer learns features the domain classifier cannot separate.
 * lambda follows the paper's schedule, 2 / (1 + exp(-10 p)) - 1 over the training progress p, and the learning
 * rate lr / (1 + 10 p)^0.75. One ORT session computes both losses and every gradient; Adam runs in TS.
 */
import { GraphBuilder, type Sym } from '../graph/builder.ts';
import { gradients } from '../graph/autodiff.ts';
import { tensor } from '../graph/tensor.ts';
import { Session } from '../runtime/session.ts';
import { rng } from '../rng.ts';
import { fitStandardize, type Standardize } from '../heads/heads.ts';
import { type AdaptData, checkAdaptData } from './features.ts';

export interface DannOptions {
  /** Width of the feature layer and of the domain classifier's hidden layer (default 32). */
  hidden?: number;
  /** Full-batch steps (default 3000). */
  steps?: number;
  lr?: number;
  /** Largest weight of the domain loss (default 1). */
  lambda?: number;
  seed?: number;
  threads?: number;
  log?: (line: string) => void;
}

export interface DannFit {
  standardize: Standardize;
  /** Feature layers [d, h], [h] and [h, h], [h]; label head [h, k], [k]. */
  w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array; wc: Float32Array; bc: Float32Array;
  hidden: number;
  /** Domain classifier accuracy on the training rows at the end (near 0.5 when the features are domain-invariant). */
  domainAccuracy: number;
  finalLoss: { label: number; domain: number };
}

const PARAMS = ['w1', 'b1', 'w2', 'b2', 'wc', 'bc', 'wd1', 'bd1', 'wd2', 'bd2'] as const;

export async function fitDann(a: AdaptData, o: DannOptions = {}): Promise<DannFit> {
  checkAdaptData(a);
  const { d, k } = a;
  const ns = a.ys.length;
  const nt = a.xt.length / d;
  const h = o.hidden ?? 32;
  const steps = o.steps ?? 3000;
  const lr0 = o.lr ?? 1e-2;
  const lambdaMax = o.lambda ?? 1;
  // One standardisation for both domains: the network itself has to make them alike.
  const both = new Float32Array(a.xs.length + a.xt.length);
  both.set(a.xs);
  both.set(a.xt, a.xs.length);
  const st = fitStandardize(both, ns + nt, d);
  const std = (x: Float32Array) => x.map((v, i) => (v - st.mean[i % d]!) / st.std[i % d]!);
  const xs = std(a.xs);
  const xt = std(a.xt);

  const shapes: Record<(typeof PARAMS)[number], number[]> = { w1: [d, h], b1: [h], w2: [h, h], b2: [h], wc: [h, k], bc: [k], wd1: [h, h], bd1: [h], wd2: [h, 2], bd2: [2] };
  const r = rng(o.seed ?? 0);
  const init = (shape: number[]) => {
    const fan = shape.length === 2 ? shape[0]! : 0;
    const n = shape.reduce((p, q) => p * q, 1);
    return Float32Array.from({ length: n }, () => (fan ? (r() * 2 - 1) * Math.sqrt(6 / fan) : 0));
  };
  const w = Object.fromEntries(PARAMS.map((p) => [p, init(shapes[p])])) as Record<(typeof PARAMS)[number], Float32Array>;

  const b = new GraphBuilder();
  const sx = b.input('xs', 'float32', [ns, d]);
  const tx = b.input('xt', 'float32', [nt, d]);
  const ys = b.input('ys', 'float32', [ns, k]);
  const dom = b.input('dom', 'float32', [ns + nt, 2]);
  const lambda = b.input('lambda', 'float32', []);
  const P = Object.fromEntries(PARAMS.map((p) => [p, b.input(p, 'float32', shapes[p])])) as Record<(typeof PARAMS)[number], Sym>;
  const dense = (x: Sym, wt: Sym, bias: Sym) => b.op1('Relu', [b.add(b.op1('MatMul', [x, wt]), bias)]);
  const feat = (x: Sym) => dense(dense(x, P.w1, P.b1), P.w2, P.b2);
  const ce = (z: Sym, t: Sym, n: number) => b.mul(b.op1('ReduceSum', [b.mul(b.op1('LogSoftmax', [z], { axis: 1 }), t)], { keepdims: 0 }), b.scalar(-1 / n));
  const fs = feat(sx);
  const ft = feat(tx);
  const labelLoss = ce(b.add(b.op1('MatMul', [fs, P.wc]), P.bc), ys, ns);
  const rev = b.op1('GradientReversal', [b.op1('Concat', [fs, ft], { axis: 0 }), lambda], {}, { domain: 'ai.graft' });
  const hd = b.op1('Relu', [b.add(b.op1('MatMul', [rev, P.wd1]), P.bd1)]);
  const dz = b.add(b.op1('MatMul', [hd, P.wd2]), P.bd2);
  const domainLoss = ce(dz, dom, ns + nt);
  const loss = b.add(labelLoss, domainLoss);
  b.output(labelLoss, 'labelLoss');
  b.output(domainLoss, 'domainLoss');
  b.output(dz, 'domainLogits');
  const g = gradients(b, loss.name, [...PARAMS]);
  for (const p of PARAMS) b.output(g.get(p)!, `g_${p}`);
  const session = await Session.create(b.graph, o.threads ? { threads: o.threads } : {});

  const onehot = new Float32Array(ns * k);
  a.ys.forEach((c, i) => { onehot[i * k + c] = 1; });
  const domT = new Float32Array((ns + nt) * 2);
  for (let i = 0; i < ns + nt; i++) domT[i * 2 + (i < ns ? 0 : 1)] = 1;
  const feeds = {
    xs: tensor('float32', [ns, d], xs), xt: tensor('float32', [nt, d], xt), ys: tensor('float32', [ns, k], onehot), dom: tensor('float32', [ns + nt, 2], domT),
  };
  // Adam (beta 0.9, 0.999), bias-corrected.
  const m = Object.fromEntries(PARAMS.map((p) => [p, new Float32Array(w[p].length)]));
  const v = Object.fromEntries(PARAMS.map((p) => [p, new Float32Array(w[p].length)]));
  let last = { label: NaN, domain: NaN };
  let domAcc = NaN;
  try {
    for (let s = 0; s < steps; s++) {
      const p = s / steps;
      const lam = lambdaMax * (2 / (1 + Math.exp(-10 * p)) - 1);
      const lr = lr0 / Math.pow(1 + 10 * p, 0.75);
      const out = await session.run({ ...feeds, lambda: tensor('float32', [], [lam]), ...Object.fromEntries(PARAMS.map((q) => [q, tensor('float32', shapes[q], w[q])])) });
      last = { label: Number(out['labelLoss']!.data[0]), domain: Number(out['domainLoss']!.data[0]) };
      if (s === steps - 1) {
        const z = out['domainLogits']!.data as Float32Array;
        let ok = 0;
        for (let i = 0; i < ns + nt; i++) if ((z[i * 2 + 1]! > z[i * 2]! ? 1 : 0) === (i < ns ? 0 : 1)) ok++;
        domAcc = ok / (ns + nt);
      }
      const t = s + 1;
      for (const q of PARAMS) {
        const gq = out[`g_${q}`]!.data as Float32Array;
        const wq = w[q], mq = m[q]!, vq = v[q]!;
        for (let i = 0; i < wq.length; i++) {
          mq[i] = 0.9 * mq[i]! + 0.1 * gq[i]!;
          vq[i] = 0.999 * vq[i]! + 0.001 * gq[i]! * gq[i]!;
          wq[i]! -= (lr * (mq[i]! / (1 - 0.9 ** t))) / (Math.sqrt(vq[i]! / (1 - 0.999 ** t)) + 1e-8);
        }
      }
      if (s % 500 === 0) o.log?.(`dann: step ${s}/${steps}, lambda ${lam.toFixed(2)}, label loss ${last.label.toFixed(3)}, domain loss ${last.domain.toFixed(3)}`);
    }
  } finally {
    await session.dispose();
  }
  return { standardize: st, w1: w.w1, b1: w.b1, w2: w.w2, b2: w.b2, wc: w.wc, bc: w.bc, hidden: h, domainAccuracy: domAcc, finalLoss: last };
}

/** Label logits [n, k] of a DANN fit on rows of the input features. */
export function dannLogits(f: DannFit, x: Float32Array, d: number): Float64Array {
  const k = f.bc.length;
  const h = f.hidden;
  const n = x.length / d;
  const z = new Float64Array(n * k);
  const h1 = new Float64Array(h);
  const hid = new Float64Array(h);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < h; j++) {
      let s = f.b1[j]!;
      for (let q = 0; q < d; q++) s += ((x[i * d + q]! - f.standardize.mean[q]!) / f.standardize.std[q]!) * f.w1[q * h + j]!;
      h1[j] = Math.max(0, s);
    }
    for (let j = 0; j < h; j++) {
      let s = f.b2[j]!;
      for (let q = 0; q < h; q++) s += h1[q]! * f.w2[q * h + j]!;
      hid[j] = Math.max(0, s);
    }
    for (let c = 0; c < k; c++) {
      let s = f.bc[c]!;
      for (let j = 0; j < h; j++) s += hid[j]! * f.wc[j * k + c]!;
      z[i * k + c] = s;
    }
  }
  return z;
}
