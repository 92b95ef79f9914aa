/** Option checks and small helpers the task entries share. */
import { GraftError } from '../errors.ts';
import type { Prediction } from '../tabular/csv.ts';
import type { Mode, TrainOptions } from './types.ts';

/** The object without its undefined values (for options under exactOptionalPropertyTypes). */
export function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/** The fine-tuning options' own checks: BatchNorm mode and a head that can be fine-tuned through. */
export function checkFineTune(o: TrainOptions): void {
  if (o.bn !== undefined && o.bn !== 'frozen' && o.bn !== 'train') throw new GraftError('E_BAD_OPTION', `--bn takes frozen or train, not "${o.bn}"`, 'Keep BatchNorm statistics frozen (the default for small data), or update them with --bn train.');
  if (o.head !== undefined && o.head !== 'linear' && o.head !== 'mlp') throw new GraftError('E_BAD_OPTION', `fine-tuning takes --head linear or mlp, not "${o.head}"`, 'A kNN head has nothing to fine-tune through: use --mode probe --head knn.');
}

/** The class weighting of the convex probes, checked. */
export function classWeightOf(o: TrainOptions): { classWeight?: 'balanced' } {
  const cw = o.classWeight as string | undefined;
  if (cw !== undefined && cw !== 'balanced' && cw !== 'none') throw new GraftError('E_BAD_OPTION', `unknown --class-weight "${cw}"`, 'Use --class-weight balanced (each class weighs n / (k n_c)) or none.');
  return cw === 'balanced' ? { classWeight: 'balanced' } : {};
}

/** The errors for a mode the data cannot train with (numeric CSV, audio). */
export function probeOnly(data: string, mode: Mode): void {
  if (mode === 'setfit') throw new GraftError('E_BAD_OPTION', `--mode setfit is few-shot text classification; ${data} is not a text file`, 'Pass a CSV/JSONL of texts, or use --mode finetune for images.');
  if (mode !== 'probe') throw new GraftError('E_BAD_OPTION', `--mode ${mode} fine-tunes image backbones; ${data} is not an image folder`, 'Use --mode probe for CSV, text and audio data.');
}

/** The shared option of the probes: validation fraction, epochs, rate, seed, threads. */
export function probeCommon(o: TrainOptions): { val?: number; epochs?: number; lr?: number; seed?: number; threads?: number } {
  return defined({ val: o.val, epochs: o.epochs, lr: o.lr, seed: o.seed, threads: o.threads });
}

/** The progress line sink: `log` and `onProgress` both receive each line. */
export function logOf(o: { log?: (line: string) => void; onProgress?: (e: { type: 'log'; message: string }) => void }): ((line: string) => void) | undefined {
  if (!o.log && !o.onProgress) return undefined;
  return (line) => {
    o.log?.(line);
    o.onProgress?.({ type: 'log', message: line });
  };
}

/** Row-major n x k probabilities as predictions: the most probable label and every label's probability. */
export function toPredictions(labels: readonly string[], probs: Float32Array, n: number): Prediction[] {
  const k = labels.length;
  return Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let j = 1; j < k; j++) if (probs[i * k + j]! > probs[i * k + best]!) best = j;
    return { label: labels[best]!, probabilities: Object.fromEntries(labels.map((l, j) => [l, probs[i * k + j]!])) };
  });
}

/** The error for an input a model cannot take. */
export function wrongInput(dir: string, takes: string, got: string): GraftError {
  return new GraftError('E_BAD_OPTION', `model ${dir} takes ${takes}, not ${got}`, 'Pass data of the kind the model was trained on.');
}
