/** Seeded shuffles and stratified train/validation splits. */
import { GraftError } from '../errors.ts';
import { rng } from '../rng.ts';

export function shuffle(idx: Int32Array, seed: number): Int32Array {
  const r = rng(seed);
  const a = Int32Array.from(idx);
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

/**
 * Splits indices so each class keeps its proportion on both sides. A class with at least two
 * examples keeps at least one on each side. Deterministic for a seed; indices come back sorted.
 */
export function stratifiedSplit(y: Int32Array, fraction: number, seed: number): { train: Int32Array; val: Int32Array } {
  if (!(fraction > 0 && fraction < 1)) {
    throw new GraftError('E_BAD_OPTION', `the split fraction must be between 0 and 1, got ${fraction}`, 'Use e.g. 0.2.');
  }
  const byClass = new Map<number, number[]>();
  y.forEach((c, i) => {
    const l = byClass.get(c);
    if (l) l.push(i); else byClass.set(c, [i]);
  });
  const train: number[] = [];
  const val: number[] = [];
  for (const [c, list] of [...byClass].sort((a, b) => a[0] - b[0])) {
    const s = shuffle(Int32Array.from(list), seed * 7919 + c);
    let k = Math.round(s.length * fraction);
    if (s.length >= 2) k = Math.min(Math.max(k, 1), s.length - 1);
    else k = 0;
    for (let i = 0; i < s.length; i++) (i < k ? val : train).push(s[i]!);
  }
  return { train: Int32Array.from(train.sort((a, b) => a - b)), val: Int32Array.from(val.sort((a, b) => a - b)) };
}

/** Gathers rows of a row-major matrix with d columns. */
export function take(x: Float32Array, d: number, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * d);
  const n = x.length / d;
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    if (!(r >= 0 && r < n)) throw new RangeError(`take: row ${r} is outside 0..${n - 1}`); // else subarray silently pads with zeros
    out.set(x.subarray(r * d, (r + 1) * d), i * d);
  }
  return out;
}
