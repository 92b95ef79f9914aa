/**
 * `npm start`: the main job on embedded defaults. It splits sklearn's digits (Debian python3-sklearn),
 * trains an MLP head with graft's engine, evaluates it on the held-out split, and predicts with the
 * saved model.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evalCsv, trainCsv } from '../api.ts';
import { writeDigitsSplit } from '../data/digits.ts';

export async function runDemo(print: (s: string) => void, log: (s: string) => void): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'graft-demo-'));
  const { train, test } = writeDigitsSplit(dir, 0.25, 0);
  print(`graft demo: sklearn digits (8x8 images as 64 numeric columns), train ${train} / test ${test}`);
  for (const head of ['linear', 'mlp'] as const) {
    const out = join(dir, `model-${head}`);
    const r = await trainCsv({ train, out, head, epochs: 40, lr: 3e-3, seed: 0, log });
    const e = await evalCsv(out, test);
    print(`${head.padEnd(6)} head: ${r.epochs} epochs in ${r.seconds.toFixed(1)} s, test accuracy ${e.accuracy.toFixed(4)}, macro-F1 ${e.macroF1.toFixed(4)} (n=${e.n}) -> ${out}`);
  }
  return 0;
}
