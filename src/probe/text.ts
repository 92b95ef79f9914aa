/**
 * Feature-extraction transfer for text with word vectors (default `glove-100d`, offline): each text is
 * pooled into one vector, by the mean of its known words or by SIF (smooth inverse frequency, first
 * principal component removed), the pooling is chosen by cross-validation like a cut, and a head is
 * fitted. Pooling runs in graft; model.onnx holds the head over the pooled vector, and graft.json keeps
 * what predict needs to pool the same way (vectors id, pooling, SIF component).
 */
import { readTextTable } from '../data/text.ts';
import { checkClasses, encodeLabels } from '../data/csv.ts';
import { stratifiedSplit } from '../data/split.ts';
import { type SifModel, type WordVectors, fitSif, loadWordVectors, meanPool, sifPool, sifWeights } from '../backbones/wordvec.ts';
import { loadModel, sha256 } from '../model/folder.ts';
import { accuracy, argmaxRows, macroF1 } from '../train/metrics.ts';
import type { Diagnosis } from '../train/diagnose.ts';
import { type ProbeFeatures, checkHead, fitProbe, saveProbe } from './fit.ts';

export interface TrainTextOptions { data: string; out: string; backbone?: string; cut?: 'mean' | 'sif'; head?: 'linear' | 'mlp' | 'knn'; val?: number; epochs?: number; lr?: number; seed?: number; threads?: number; log?: (s: string) => void }

export interface TrainTextResult {
  out: string; labels: string[]; backbone: string; cut: string; cutScores: Record<string, number>; head: string; trainAccuracy: number;
  valAccuracy: number | null; valMacroF1: number | null; oovOnly: number; seconds: number; diagnosis: Diagnosis;
}

function pool(wv: WordVectors, texts: string[], how: 'mean' | 'sif', sif: SifModel | null): Float32Array {
  return how === 'mean' ? meanPool(wv, texts).vectors : sifPool(wv, texts, { model: sif! }).vectors;
}

export async function trainText(o: TrainTextOptions): Promise<TrainTextResult> {
  const t0 = performance.now();
  const head = checkHead(o.head ?? 'linear');
  const seed = o.seed ?? 0;
  const id = o.backbone ?? 'glove-100d';
  const table = readTextTable(o.data);
  const { classes, y } = encodeLabels(table.labels!);
  checkClasses(classes, y);
  const wv = loadWordVectors(id);
  o.log?.(`word vectors ${id}: ${wv.size} words x ${wv.dim} (${wv.loadedFrom}, ${wv.seconds.toFixed(1)} s)`);
  const split = (o.val ?? 0.2) > 0 ? stratifiedSplit(y, o.val ?? 0.2, seed) : { train: Int32Array.from(y.keys()), val: new Int32Array(0) };
  const pick = (idx: Int32Array) => Array.from(idx, (i) => table.texts[i]!);
  const trTexts = pick(split.train);
  const vaTexts = pick(split.val);
  const sif = fitSif(wv, trTexts);
  const ways = o.cut ? [o.cut] : (['mean', 'sif'] as const);
  const feats: ProbeFeatures = {
    train: new Map(ways.map((w) => [w, { x: pool(wv, trTexts, w, sif), d: wv.dim }])),
    val: vaTexts.length ? new Map(ways.map((w) => [w, { x: pool(wv, vaTexts, w, sif), d: wv.dim }])) : null,
    yTrain: Int32Array.from(split.train, (i) => y[i]!), yVal: vaTexts.length ? Int32Array.from(split.val, (i) => y[i]!) : null, classes,
  };
  const oovOnly = meanPool(wv, table.texts).oovOnly;
  if (oovOnly) o.log?.(`warning: ${oovOnly} text(s) have no word the vectors know; they pool to zeros`);
  const p = await fitProbe(feats, { ...o, head });
  try {
    saveProbe(o.out, p, feats, {
      ...o,
      input: { name: 'input', kind: 'pooled-word-vectors', columns: [], shape: [wv.dim], preprocess: { vectors: id, pooling: p.cut, ...(p.cut === 'sif' ? { sif: { a: sif.a, freq: sif.freq, component: Array.from(sif.component) } } : {}) } },
      backbone: { id, sha256: sha256(`${wv.source}:${wv.size}x${wv.dim}`), cut: p.cut },
      graph: p.learner.inferenceGraph('softmax'),
      data: { path: o.data, texts: table.texts.length },
      extraMetrics: { oovOnly },
    });
    return {
      out: o.out, labels: classes, backbone: id, cut: p.cut, cutScores: p.cutScores, head, trainAccuracy: p.trainAccuracy, valAccuracy: p.valAccuracy,
      valMacroF1: p.valMacroF1, oovOnly, seconds: (performance.now() - t0) / 1000, diagnosis: p.diagnosis,
    };
  } finally {
    await p.learner.dispose();
  }
}

/** Class probabilities for texts, pooled as the model was trained. */
export async function predictTexts(dir: string, texts: string[]): Promise<{ labels: string[]; probs: Float32Array }> {
  const model = await loadModel(dir);
  try {
    const pre = model.card.input.preprocess as { vectors: string; pooling: 'mean' | 'sif'; sif?: { a: number; component: number[] } };
    const wv = loadWordVectors(pre.vectors);
    const sif: SifModel | null = pre.sif ? { a: pre.sif.a, component: Float32Array.from(pre.sif.component), freq: 'zipf', weights: sifWeights(wv, { a: pre.sif.a }).weights } : null;
    const x = pool(wv, texts, pre.pooling, sif);
    return { labels: model.card.labels, probs: await model.predict(x, texts.length) };
  } finally {
    await model.dispose();
  }
}

export async function evalText(dir: string, data: string): Promise<{ accuracy: number; macroF1: number; n: number }> {
  const t = readTextTable(data);
  const { labels, probs } = await predictTexts(dir, t.texts);
  const { y } = encodeLabels(t.labels!, labels);
  const pred = argmaxRows(probs, labels.length);
  return { accuracy: accuracy(y, pred), macroF1: macroF1(y, pred, labels.length), n: y.length };
}
