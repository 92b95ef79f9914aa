/**
 * What the task entries share to evaluate a model for `graft report`: the result types, the summary
 * (confusion matrix, per-class scores, confidently wrong examples), training's held-out split
 * reproduced from graft.json, and a labelled folder's evaluation set.
 */
import sharp from 'sharp';
import { GraftError } from '../errors.ts';
import type { ModelCard } from '../model/folder.ts';
import { stratifiedSplit } from '../data/split.ts';
import { readImageFolder, type ImageFolder } from '../data/folders.ts';
import { argmaxRows, confusionMatrix, perClass, type ClassScores } from '../train/metrics.ts';
import { isDir } from './detect.ts';
import type { ReportData } from './types.ts';

export interface WorstExample {
  /** Position in the evaluated set. */
  index: number;
  truth: string;
  predicted: string;
  /** Probability of the predicted (wrong) class. */
  confidence: number;
  /** Probability the model gave the true class. */
  truthProbability: number;
  /** Image and audio examples: the file. */
  path?: string;
  /** Image examples: a small JPEG thumbnail as a data: URI. */
  thumbnail?: string;
  /** CSV and text examples: the 1-based line in the file. */
  line?: number;
  /** CSV examples: the feature values, by column. */
  values?: [string, number][];
  /** Text examples: the text. */
  text?: string;
}

export interface EvalResult {
  /** The data evaluated on. */
  data: string;
  /** Where the data came from: the --data option, or the path recorded in graft.json. */
  origin: 'option' | 'model card';
  /** Which part of the data was used, in words. */
  description: string;
  /** Why the scores may be optimistic or otherwise off (e.g. training examples included). */
  caveat?: string;
  n: number;
  /** Examples that could not be read (unreadable images or clips). */
  skipped: number;
  labels: string[];
  /** confusion[t][p]: examples of true class t predicted as p. */
  confusion: number[][];
  perClass: ClassScores[];
  accuracy: number;
  macroF1: number;
  worst: WorstExample[];
}

export interface EvaluateOptions {
  /** Labelled data; default: the data recorded in graft.json. */
  data?: string;
  /** How many confidently wrong examples to keep (default 12). */
  worst?: number;
  log?: (line: string) => void;
}

/** The data path graft.json records (provenance.data.path), or null. */
export function recordedData(card: ModelCard): string | null {
  const d = (card.provenance as { data?: unknown } | undefined)?.data;
  const p = d && typeof d === 'object' ? (d as { path?: unknown }).path : undefined;
  return typeof p === 'string' && p ? p : null;
}

export const pct = (x: number): string => `${Math.round(100 * x)}%`;

/**
 * Training's held-out split of `y`, reproduced from the recorded val fraction (default 0.2) and seed;
 * null when training used no validation data or the sizes do not match what graft.json records.
 */
/** Whether the saved model was refitted on every labelled example after validation (convex probes, the CSV MLP). */
export function refitted(card: ModelCard): boolean {
  const has = (o: unknown) => typeof o === 'object' && o !== null && (o as Record<string, unknown>)['refit'] !== undefined;
  return has(card.training) || has(card.head) || has(card.metrics);
}

export const REFIT_CAVEAT = 'The model was refitted on every labelled example after its validation split was scored, so these are training data and the scores are optimistic; graft.json records the held-out estimate (metrics.valAccuracy, metrics.cvAccuracy).';

export function heldOut(card: ModelCard, y: Int32Array, slack = 0): { idx: Int32Array; fraction: number; seed: number } | null {
  if (refitted(card)) return null;
  const t = card.training ?? {};
  const fraction = typeof t['val'] === 'number' ? t['val'] : 0.2;
  const seed = typeof t['seed'] === 'number' ? t['seed'] : 0;
  if (!(fraction > 0 && fraction < 1)) return null;
  let idx: Int32Array;
  try {
    idx = stratifiedSplit(y, fraction, seed).val;
  } catch {
    return null;
  }
  const nVal = card.metrics?.['nVal'];
  if (typeof nVal === 'number' && (nVal === 0 || Math.abs(idx.length - nVal) > slack)) return null;
  return idx.length ? { idx, fraction, seed } : null;
}

/** Confusion matrix, per-class scores and the confidently wrong examples of n x k probabilities. */
export function summarise(labels: string[], y: Int32Array, probs: Float32Array, worstN: number): Pick<EvalResult, 'confusion' | 'perClass' | 'accuracy' | 'macroF1' | 'n'> & { wrong: WorstExample[] } {
  const k = labels.length;
  const pred = argmaxRows(probs, k);
  const confusion = confusionMatrix(y, pred, k);
  const scores = perClass(confusion);
  let right = 0;
  const wrong: WorstExample[] = [];
  for (let i = 0; i < y.length; i++) {
    const t = y[i]!;
    const p = pred[i]!;
    if (t === p) { right++; continue; }
    wrong.push({ index: i, truth: labels[t]!, predicted: labels[p]!, confidence: probs[i * k + p]!, truthProbability: probs[i * k + t]! });
  }
  wrong.sort((a, b) => b.confidence - a.confidence || a.index - b.index);
  return {
    n: y.length, confusion, perClass: scores, accuracy: y.length ? right / y.length : 0,
    macroF1: scores.reduce((a, s) => a + s.f1, 0) / k, wrong: wrong.slice(0, worstN),
  };
}

export async function thumbnail(path: string): Promise<string | undefined> {
  try {
    const jpg = await sharp(path, { limitInputPixels: 1e8, animated: false }).rotate().resize(112, 112, { fit: 'inside', withoutEnlargement: false })
      .flatten({ background: '#ffffff' }).jpeg({ quality: 80 }).toBuffer();
    return `data:image/jpeg;base64,${jpg.toString('base64')}`;
  } catch {
    return undefined;
  }
}


/** A labelled folder's evaluation set: test/, else val/, else training's held-out split, else all. */
export function folderSet(card: ModelCard, c: ReportData, extensions?: readonly string[]): { paths: string[]; truth: string[]; description: string; caveat?: string } {
  if (!isDir(c.data)) {
    throw new GraftError('E_BAD_OPTION', `a report on this model needs a labelled folder (root/<label>/files), got ${c.data}`, 'Pass --data with a folder of labelled examples.');
  }
  const opts = extensions ? { extensions } : {};
  const f = readImageFolder(c.data, { valFraction: 0, ...opts });
  const of = (s: { paths: string[]; y: Int32Array }, classes: string[]) => ({ paths: s.paths, truth: Array.from(s.y, (i) => classes[i]!) });
  if (f.test) return { ...of(f.test, f.classes), description: `the ${f.test.paths.length} files in ${c.data}/test/` };
  if (f.val) return { ...of(f.val, f.classes), description: `the ${f.val.paths.length} files in ${c.data}/val/` };
  const recorded = recordedData(card);
  const sameAsTraining = c.fromCard || recorded === c.data;
  if (sameAsTraining && !refitted(card)) {
    const t = card.training ?? {};
    const fraction = typeof t['val'] === 'number' ? t['val'] : 0.2;
    const seed = typeof t['seed'] === 'number' ? t['seed'] : 0;
    const nVal = card.metrics?.['nVal'];
    const skipped = typeof card.metrics?.['skipped'] === 'number' ? card.metrics['skipped'] : 0;
    if (fraction > 0 && fraction < 1 && typeof nVal === 'number' && nVal > 0) {
      let g: ImageFolder | null = null;
      try { g = readImageFolder(c.data, { valFraction: fraction, seed, ...opts }); } catch { g = null; }
      if (g?.val && g.val.paths.length >= nVal && g.val.paths.length - nVal <= skipped) {
        return { ...of(g.val, g.classes), description: `the validation split of ${c.data} (${pct(fraction)} held out with seed ${seed}, as in training): ${g.val.paths.length} files` };
      }
    }
  }
  const all = of(f.train, f.classes);
  return {
    ...all, description: `all ${all.paths.length} files of ${c.data}`,
    ...(sameAsTraining ? { caveat: refitted(card) ? REFIT_CAVEAT : 'These include the examples the model was trained on, so the scores are optimistic.' } : {}),
  };
}

/** The summary without its list of wrong examples (each entry adds its own details to them). */
export function omitWrong<T extends { wrong: unknown }>(s: T): Omit<T, 'wrong'> {
  const { wrong: _w, ...rest } = s;
  return rest;
}
