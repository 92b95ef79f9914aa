/**
 * How different two domains are, before adapting (issue 14, item 5): a domain classifier (the convex
 * probe, source against target, equal numbers of each) and its cross-validated accuracy, turned into the
 * proxy A-distance of Ben-David et al. (2007), PAD = 2 (1 - 2 err), 0 for domains a linear classifier
 * cannot tell apart and 2 for ones it separates perfectly; and a sentence that says what it means.
 */
import { fitConvexProbe } from '../probe/convex.ts';
import { shuffled } from '../train/learner.ts';
import { fitStandardize } from '../heads/heads.ts';
import { rng } from '../rng.ts';
import { type AdaptData, checkAdaptData } from './features.ts';

export interface ShiftReport {
  /** Cross-validated accuracy of a linear source-vs-target classifier on balanced rows. */
  domainAccuracy: number;
  proxyADistance: number;
  rows: number;
  words: string;
  /** Both domains on the first two principal axes of their pooled, standardised rows (a sample of each), for the report's picture. */
  projection: DomainProjection;
}

export interface DomainProjection {
  source: [number, number][];
  target: [number, number][];
  /** Share of the pooled variance on each of the two axes. */
  explained: [number, number];
}

/** The two domains' rows (up to `max` of each, seeded) on the top two principal axes of the pooled rows, each standardised the same way. */
export function projectDomains(a: AdaptData, max = 300, seed = 0): DomainProjection {
  const { d } = a;
  const ns = a.ys.length;
  const nt = a.xt.length / d;
  const both = new Float32Array(a.xs.length + a.xt.length);
  both.set(a.xs);
  both.set(a.xt, a.xs.length);
  const st = fitStandardize(both, ns + nt, d);
  const z = both.map((v, i) => (v - st.mean[i % d]!) / st.std[i % d]!);
  // The top two principal axes by power iteration on (a sample of) the rows: O(rows x d) a step, so wide features stay cheap.
  const rows = Array.from(shuffled(ns + nt, seed + 5).slice(0, Math.min(2000, ns + nt)));
  const r = rng(seed + 6);
  const axes: Float64Array[] = [];
  const vars: number[] = [];
  for (let k = 0; k < 2; k++) {
    let v = Float64Array.from({ length: d }, () => r() - 0.5);
    let lambda = 0;
    for (let it = 0; it < 100; it++) {
      for (const u of axes) { let p = 0; for (let j = 0; j < d; j++) p += v[j]! * u[j]!; for (let j = 0; j < d; j++) v[j]! -= p * u[j]!; }
      const next = new Float64Array(d);
      for (const i of rows) {
        let p = 0;
        for (let j = 0; j < d; j++) p += z[i * d + j]! * v[j]!;
        for (let j = 0; j < d; j++) next[j] += p * z[i * d + j]!;
      }
      let norm = 0;
      for (let j = 0; j < d; j++) norm += next[j]! ** 2;
      norm = Math.sqrt(norm);
      if (!(norm > 0)) break;
      lambda = norm / rows.length;
      v = next.map((x) => x / norm);
    }
    axes.push(v);
    vars.push(lambda);
  }
  let total = 0;
  for (const i of rows) for (let j = 0; j < d; j++) total += z[i * d + j]! ** 2;
  total = total / rows.length || 1;
  const pick = (n: number, offset: number, sd: number): [number, number][] => Array.from(shuffled(n, sd).slice(0, Math.min(max, n)), (i) => {
    const row = offset + i;
    const xy = axes.map((u) => { let s = 0; for (let j = 0; j < d; j++) s += z[row * d + j]! * u[j]!; return Math.round(s * 1000) / 1000; });
    return [xy[0] ?? 0, xy[1] ?? 0];
  });
  return {
    source: pick(ns, 0, seed + 3), target: pick(nt, ns, seed + 4),
    explained: [vars[0]! / total, vars[1]! / total],
  };
}

export async function measureShift(a: AdaptData, o: { seed?: number; threads?: number } = {}): Promise<ShiftReport> {
  checkAdaptData(a);
  const { d } = a;
  const ns = a.ys.length;
  const nt = a.xt.length / d;
  const m = Math.min(ns, nt);
  const s = shuffled(ns, (o.seed ?? 0) + 1);
  const t = shuffled(nt, (o.seed ?? 0) + 2);
  const x = new Float32Array(2 * m * d);
  for (let i = 0; i < m; i++) {
    x.set(a.xs.subarray(s[i]! * d, (s[i]! + 1) * d), i * d);
    x.set(a.xt.subarray(t[i]! * d, (t[i]! + 1) * d), (m + i) * d);
  }
  const y = Int32Array.from({ length: 2 * m }, (_, i) => (i < m ? 0 : 1));
  const fit = await fitConvexProbe(x, y, d, 2, { seed: o.seed ?? 0, ...(o.threads ? { threads: o.threads } : {}) });
  const acc = fit.cvAccuracy ?? fit.trainAccuracy;
  const pad = Math.max(0, Math.min(2, 2 * (1 - 2 * (1 - acc))));
  const pct = (100 * acc).toFixed(1);
  const words = pad < 0.5
    ? `the domains look alike: a linear classifier tells source from target rows ${pct}% of the time (proxy A-distance ${pad.toFixed(2)}), so the source model should carry over`
    : pad < 1.5
      ? `the domains differ: a linear classifier tells source from target rows ${pct}% of the time (proxy A-distance ${pad.toFixed(2)}); expect the source model to lose accuracy on the target, and adaptation to help`
      : `the domains are far apart: a linear classifier tells source from target rows ${pct}% of the time (proxy A-distance ${pad.toFixed(2)}); a source-only model will lose much of its accuracy on the target`;
  return { domainAccuracy: acc, proxyADistance: pad, rows: 2 * m, words, projection: projectDomains(a, 300, o.seed ?? 0) };
}
