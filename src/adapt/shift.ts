/**
 * How different two domains are, before adapting (issue 14, item 5): a domain classifier (the convex
 * probe, source against target, equal numbers of each) and its cross-validated accuracy, turned into the
 * proxy A-distance of Ben-David et al. (2007), PAD = 2 (1 - 2 err), 0 for domains a linear classifier
 * cannot tell apart and 2 for ones it separates perfectly; and a sentence that says what it means.
 */
import { fitConvexProbe } from '../probe/convex.ts';
import { shuffled } from '../train/learner.ts';
import { type AdaptData, checkAdaptData } from './features.ts';

export interface ShiftReport {
  /** Cross-validated accuracy of a linear source-vs-target classifier on balanced rows. */
  domainAccuracy: number;
  proxyADistance: number;
  rows: number;
  words: string;
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
  return { domainAccuracy: acc, proxyADistance: pad, rows: 2 * m, words };
}
