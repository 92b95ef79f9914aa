/**
 * The learning-rate finder (Smith 2015, as in fastai): train for a few steps while the rate grows
 * exponentially, record the smoothed loss, stop when it blows up, then put the weights back.
 * The suggestion is the rate where the smoothed loss falls fastest.
 */
import { CancelFit, type Callback } from './callbacks.ts';
import type { Learner } from './learner.ts';

export interface LrFindOptions {
  start?: number;
  end?: number;
  iters?: number;
  /** Stop when the smoothed loss exceeds this multiple of its minimum. */
  divergeFactor?: number;
}

export interface LrFindResult {
  lrs: number[];
  losses: number[];
  /** Rate at the steepest descent of the smoothed loss. */
  suggestion: number;
  /** Rate at the minimum smoothed loss, divided by 10 (the fastai rule of thumb). */
  minOver10: number;
}

export async function lrFind(l: Learner, o: LrFindOptions = {}): Promise<LrFindResult> {
  const start = o.start ?? 1e-7;
  const end = o.end ?? 10;
  const iters = o.iters ?? 100;
  const factor = o.divergeFactor ?? 4;
  const saved = l.snapshotWeights();
  const lrs: number[] = [];
  const losses: number[] = [];
  let avg = 0;
  let best = Infinity;
  let i = 0;
  const finder: Callback = {
    name: 'lr-finder',
    order: -10,
    beforeBatch: (lr) => {
      const rate = start * (end / start) ** (i / Math.max(1, iters - 1));
      lr.lrs = lr.lrs.map(() => rate);
    },
    afterBatch: (lr) => {
      avg = 0.98 * avg + 0.02 * lr.lastLoss;
      const smooth = avg / (1 - 0.98 ** (i + 1));
      lrs.push(lr.lrs[0]!);
      losses.push(smooth);
      best = Math.min(best, smooth);
      i++;
      if (i >= iters || !Number.isFinite(smooth) || smooth > factor * best) throw new CancelFit('lr finder done');
    },
  };
  const others = l.callbacks;
  l.callbacks = [finder];
  const epochs = Math.ceil(iters / Math.ceil(l.train.n / l.batchSize));
  const val = l.val;
  l.val = undefined;
  try {
    await l.fit(epochs, { lr: 1 });
  } catch (e) {
    if ((e as { code?: string }).code !== 'E_DIVERGED') throw e;
  } finally {
    l.callbacks = others;
    l.val = val;
    l.restoreWeights(saved);
    l.history = [];
    l.resetOptimizer();
  }
  // Steepest descent of the smoothed loss against log(lr), ignoring the noisy ends.
  let steepest = 1;
  let slope = Infinity;
  for (let k = 1; k < losses.length - 1; k++) {
    const s = (losses[k + 1]! - losses[k - 1]!) / Math.log(lrs[k + 1]! / lrs[k - 1]!);
    if (s < slope) { slope = s; steepest = k; }
  }
  const minIdx = losses.indexOf(Math.min(...losses));
  return { lrs, losses, suggestion: lrs[steepest] ?? start, minOver10: (lrs[minIdx] ?? start * 10) / 10 };
}
