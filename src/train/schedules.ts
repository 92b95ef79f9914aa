/**
 * Learning-rate schedules as pure functions of progress, so a resumed run gets the same rates.
 * Each returns a multiplier or rate for step i of n (0-based).
 */
import { GraftError } from '../errors.ts';

export type ScheduleOptions =
  | { kind: 'constant' }
  | { kind: 'cosine'; minFactor?: number; warmup?: number }
  | { kind: 'linear-warmup'; warmup: number; decay?: 'none' | 'linear' }
  | { kind: 'one-cycle'; pctStart?: number; divFactor?: number; finalDivFactor?: number };

export type Schedule = (i: number, n: number, maxLr: number) => number;

const cosAnneal = (a: number, b: number, p: number) => b + ((a - b) * (1 + Math.cos(Math.PI * Math.min(Math.max(p, 0), 1)))) / 2;

export function makeSchedule(o: ScheduleOptions): Schedule {
  switch (o.kind) {
    case 'constant':
      return (_i, _n, lr) => lr;
    case 'cosine': {
      const minF = o.minFactor ?? 0;
      const warm = o.warmup ?? 0;
      return (i, n, lr) => {
        if (i < warm) return (lr * (i + 1)) / warm;
        return cosAnneal(lr, lr * minF, (i - warm) / Math.max(1, n - warm - 1));
      };
    }
    case 'linear-warmup': {
      const warm = o.warmup;
      return (i, n, lr) => {
        if (i < warm) return (lr * (i + 1)) / warm;
        if (o.decay === 'linear') return (lr * Math.max(0, n - i)) / Math.max(1, n - warm);
        return lr;
      };
    }
    case 'one-cycle': {
      // PyTorch OneCycleLR (cosine annealing, two phases): starts at max/div, peaks at pctStart, ends at start/finalDiv.
      const pct = o.pctStart ?? 0.25;
      const div = o.divFactor ?? 25;
      const fdiv = o.finalDivFactor ?? 1e4;
      return (i, n, lr) => {
        const start = lr / div;
        const end = start / fdiv;
        const up = pct * n - 1;
        const down = n - 1;
        if (i <= up) return cosAnneal(start, lr, up <= 0 ? 1 : i / up);
        return cosAnneal(lr, end, (i - up) / Math.max(1e-12, down - up));
      };
    }
    default:
      throw new GraftError('E_BAD_OPTION', `unknown schedule ${(o as { kind: string }).kind}`,
        'Use one of: constant, cosine, linear-warmup, one-cycle.');
  }
}
