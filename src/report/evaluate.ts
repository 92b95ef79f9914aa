/**
 * Evaluation for reports: a model folder's predictions on labelled data (a CSV file, an image or audio
 * folder, a text table), summarised as a confusion matrix, per-class scores and the most confidently
 * wrong examples. Without explicit data it uses the data graft.json records, and when it can, only
 * the part that training held out (the same seeded split), saying so in `description`.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import sharp from 'sharp';
import { GraftError } from '../errors.ts';
import { type ModelCard, loadModel, readCard, sha256 } from '../model/folder.ts';
import { encodeLabels, readNumericCsv } from '../data/csv.ts';
import { stratifiedSplit, take } from '../data/split.ts';
import { readImageFolder, decodeAll, type ImageFolder } from '../data/folders.ts';
import { readTextTable } from '../data/text.ts';
import { argmaxRows, confusionMatrix, perClass, type ClassScores } from '../train/metrics.ts';
import { predictTexts } from '../probe/text.ts';
import { predictPairs, tagSentences } from '../finetune/text.ts';
import { nerScores } from '../text/ner.ts';
import { AUDIO_EXTENSIONS, embedAudio } from '../probe/audio.ts';

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

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();
const pct = (x: number) => `${Math.round(100 * x)}%`;

/**
 * Training's held-out split of `y`, reproduced from the recorded val fraction (default 0.2) and seed;
 * null when training used no validation data or the sizes do not match what graft.json records.
 */
/** Whether the saved model was refitted on every labelled example after validation (convex probes, the CSV MLP). */
function refitted(card: ModelCard): boolean {
  const has = (o: unknown) => typeof o === 'object' && o !== null && (o as Record<string, unknown>)['refit'] !== undefined;
  return has(card.training) || has(card.head) || has(card.metrics);
}

const REFIT_CAVEAT = 'The model was refitted on every labelled example after its validation split was scored, so these are training data and the scores are optimistic; graft.json records the held-out estimate (metrics.valAccuracy, metrics.cvAccuracy).';

function heldOut(card: ModelCard, y: Int32Array, slack = 0): { idx: Int32Array; fraction: number; seed: number } | null {
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

async function thumbnail(path: string): Promise<string | undefined> {
  try {
    const jpg = await sharp(path, { limitInputPixels: 1e8, animated: false }).rotate().resize(112, 112, { fit: 'inside', withoutEnlargement: false })
      .flatten({ background: '#ffffff' }).jpeg({ quality: 80 }).toBuffer();
    return `data:image/jpeg;base64,${jpg.toString('base64')}`;
  } catch {
    return undefined;
  }
}

interface Chosen { data: string; origin: EvalResult['origin']; fromCard: boolean }

/** A labelled folder's evaluation set: test/, else val/, else training's held-out split, else all. */
function folderSet(card: ModelCard, c: Chosen, extensions?: readonly string[]): { paths: string[]; truth: string[]; description: string; caveat?: string } {
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

/**
 * Evaluates a model folder for a report. Returns null (with the reason) when there is no data to
 * evaluate on: no --data and no recorded data path that still exists.
 */
export async function evaluateForReport(dir: string, o: EvaluateOptions = {}): Promise<{ result: EvalResult | null; reason?: string }> {
  const card = readCard(dir);
  const worstN = o.worst ?? 12;
  let c: Chosen;
  if (o.data !== undefined) {
    if (!existsSync(o.data)) throw new GraftError('E_FILE_MISSING', `evaluation data not found: ${o.data}`, 'Pass --data with a labelled CSV file or a labelled folder.');
    c = { data: o.data, origin: 'option', fromCard: false };
  } else {
    const rec = recordedData(card);
    if (!rec) return { result: null, reason: 'graft.json records no training data path; pass --data to evaluate the model.' };
    if (!existsSync(rec)) return { result: null, reason: `graft.json records the training data at ${rec}, which no longer exists; pass --data to evaluate the model.` };
    c = { data: rec, origin: 'model card', fromCard: true };
  }
  const labels = card.labels;
  const kind = card.input.kind;

  if (kind === 'features') {
    if (isDir(c.data)) throw new GraftError('E_BAD_OPTION', `model ${dir} takes numeric CSV rows, not a folder (${c.data})`, 'Pass --data with a labelled CSV file.');
    const table = readNumericCsv(c.data, { requireLabel: true, featureColumns: card.input.columns });
    let idx: Int32Array = Int32Array.from({ length: table.n }, (_, i) => i);
    let description = `all ${table.n} rows of ${c.data}`;
    let caveat: string | undefined;
    const recorded = recordedData(card);
    if (c.fromCard || recorded === c.data) {
      const want = (card.provenance as { data?: { sha256?: unknown } }).data?.sha256;
      const same = typeof want !== 'string' || want === sha256(readFileSync(c.data));
      const h = same ? heldOut(card, encodeLabels(table.labels!).y) : null;
      if (h) {
        idx = h.idx;
        description = `the ${idx.length} validation rows of ${c.data} (${pct(h.fraction)} held out with seed ${h.seed}, as in training)`;
      } else {
        caveat = same
          ? (refitted(card) ? REFIT_CAVEAT : 'The model was trained on these rows (no validation split could be reproduced), so the scores are optimistic.')
          : 'The file has changed since training (its sha256 differs); it may include rows the model was trained on.';
      }
    }
    const { y } = encodeLabels(idx.length === table.n ? table.labels! : Array.from(idx, (i) => table.labels![i]!), labels);
    const x = idx.length === table.n ? table.x : take(table.x, table.d, idx);
    const model = await loadModel(dir);
    let probs: Float32Array;
    try { probs = await model.predict(x, idx.length); } finally { await model.dispose(); }
    const s = summarise(labels, y, probs, worstN);
    const worst = s.wrong.map((w) => {
      const row = idx[w.index]!;
      return { ...w, line: table.rowNumbers[row]!, values: table.columns.map((col, j): [string, number] => [col, table.x[row * table.d + j]!]) };
    });
    return { result: { data: c.data, origin: c.origin, description, ...(caveat ? { caveat } : {}), skipped: 0, labels, ...omitWrong(s), worst } };
  }

  if (card.task === 'token-classification') {
    // NER: word-level tag scores (each word's first token), the entity-level F1 in the description.
    if (isDir(c.data)) throw new GraftError('E_BAD_OPTION', `model ${dir} tags words, not a folder (${c.data})`, 'Pass --data with a CoNLL file.');
    const r = await tagSentences(dir, c.data, o.log ? { log: o.log } : {});
    const words = r.sentences.flatMap((s, si) => s.tokens.map((w, wi) => ({ si, wi, w })));
    const k = labels.length;
    const probs = new Float32Array(words.length * k);
    let at = 0;
    for (const p of r.probs) { probs.set(p, at); at += p.length; }
    const y = Int32Array.from(r.sentences.flatMap((s) => s.tags.map((t) => Math.max(0, labels.indexOf(t)))));
    const s = summarise(labels, y, probs, worstN);
    const ner = nerScores(r.sentences.map((q) => q.tags), r.pred);
    const worst = s.wrong.map((w) => {
      const { si, wi } = words[w.index]!;
      const toks = r.sentences[si]!.tokens;
      return { ...w, line: r.sentences[si]!.line + wi, text: `${toks.slice(Math.max(0, wi - 6), wi).join(' ')} [${toks[wi]}] ${toks.slice(wi + 1, wi + 7).join(' ')}` };
    });
    const description = `the ${words.length} words of ${r.sentences.length} sentences in ${c.data}, scored per word tag; entities (seqeval): precision ${ner.micro.precision.toFixed(4)}, recall ${ner.micro.recall.toFixed(4)}, F1 ${ner.micro.f1.toFixed(4)}`;
    const caveat = c.fromCard ? 'This is the training file (graft.json records no separate test file): the scores are optimistic. Pass --data test.conll.' : undefined;
    return { result: { data: c.data, origin: c.origin, description, ...(caveat ? { caveat } : {}), skipped: 0, labels, ...omitWrong(s), worst } };
  }

  if (kind === 'pooled-word-vectors' || kind === 'token-ids') {
    if (isDir(c.data)) throw new GraftError('E_BAD_OPTION', `model ${dir} takes texts, not a folder (${c.data})`, 'Pass --data with a labelled CSV (text,label) or JSONL file.');
    const t = readTextTable(c.data);
    let idx: Int32Array = Int32Array.from({ length: t.texts.length }, (_, i) => i);
    let description = `all ${t.texts.length} texts of ${c.data}`;
    let caveat: string | undefined;
    if (c.fromCard || recordedData(card) === c.data) {
      const h = heldOut(card, encodeLabels(t.labels!).y);
      if (h) {
        idx = h.idx;
        description = `the ${idx.length} validation texts of ${c.data} (${pct(h.fraction)} held out with seed ${h.seed}, as in training)`;
      } else caveat = refitted(card) ? REFIT_CAVEAT : 'The model was trained on these texts (no validation split could be reproduced), so the scores are optimistic.';
    }
    const texts = Array.from(idx, (i) => t.texts[i]!);
    const { y } = encodeLabels(Array.from(idx, (i) => t.labels![i]!), labels);
    const pairCol = (card.input.preprocess as { task?: string; pairColumn?: string } | undefined)?.task === 'pair'
      ? (card.input.preprocess as { pairColumn?: string }).pairColumn ?? 'text_pair' : null;
    const second = pairCol ? readTextTable(c.data, { textColumn: pairCol }).texts : null;
    const { probs } = second ? await predictPairs(dir, texts, Array.from(idx, (i) => second[i]!)) : await predictTexts(dir, texts);
    const s = summarise(labels, y, probs, worstN);
    const worst = s.wrong.map((w) => ({ ...w, text: texts[w.index]!, line: t.lines[idx[w.index]!]! }));
    return { result: { data: c.data, origin: c.origin, description, ...(caveat ? { caveat } : {}), skipped: 0, labels, ...omitWrong(s), worst } };
  }

  const audio = kind === 'speech-embedding';
  const set = folderSet(card, c, audio ? AUDIO_EXTENSIONS : undefined);
  const model = await loadModel(dir);
  const keptPaths: string[] = [];
  const keptTruth: string[] = [];
  const chunks: Float32Array[] = [];
  let skipped = 0;
  try {
    if (audio) {
      const e = await embedAudio(set.paths);
      skipped = set.paths.length - e.kept.length;
      for (const i of e.kept) { keptPaths.push(set.paths[i]!); keptTruth.push(set.truth[i]!); }
      if (e.kept.length) chunks.push(await model.predict(e.x, e.kept.length));
    } else {
      const pre = card.input.preprocess as Parameters<typeof decodeAll>[1];
      for (let from = 0; from < set.paths.length; from += 64) {
        const part = set.paths.slice(from, from + 64);
        const dec = await decodeAll(part, pre, { onSkip: (_s, m) => o.log?.(`warning: ${m}`) });
        skipped += part.length - dec.kept.length;
        if (!dec.kept.length) continue;
        for (const i of dec.kept) { keptPaths.push(part[i]!); keptTruth.push(set.truth[from + i]!); }
        chunks.push(await model.predict(dec.x, dec.kept.length));
      }
    }
  } finally {
    await model.dispose();
  }
  const probs = new Float32Array(keptPaths.length * labels.length);
  let off = 0;
  for (const ch of chunks) { probs.set(ch, off); off += ch.length; }
  const { y } = encodeLabels(keptTruth, labels);
  const s = summarise(labels, y, probs, worstN);
  const worst: WorstExample[] = [];
  for (const w of s.wrong) {
    const path = keptPaths[w.index]!;
    const thumb = audio ? undefined : await thumbnail(path);
    worst.push({ ...w, path, ...(thumb ? { thumbnail: thumb } : {}) });
  }
  return {
    result: {
      data: c.data, origin: c.origin, description: set.description, ...(set.caveat ? { caveat: set.caveat } : {}), skipped, labels, ...omitWrong(s), worst,
    },
  };
}

function omitWrong<T extends { wrong: unknown }>(s: T): Omit<T, 'wrong'> {
  const { wrong: _w, ...rest } = s;
  return rest;
}
