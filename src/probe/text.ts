/**
 * Feature-extraction transfer for text, with one of two kinds of backbone:
 *
 * - Word vectors (`glove-100d`, offline): each text is pooled into one vector, by the mean of its
 *   known words or by SIF (smooth inverse frequency, first principal component removed). Pooling runs in
 *   graft; model.onnx holds the head over the pooled vector, and graft.json keeps what predict needs to
 *   pool the same way (vectors id, pooling, SIF component).
 * - A BERT-family ONNX encoder (a model folder, an .onnx file or a hub id; see backbones/textenc.ts): the
 *   texts are tokenized by the model's tokenizer.json and pooled in the graph, by the first token ('cls')
 *   or the mean over the attention mask ('mean'); pooled features are cached. model.onnx holds encoder,
 *   pooling and head (token ids to probabilities in one ORT call), and the tokenizer files are copied into
 *   the model folder, so predict needs nothing but the folder.
 *
 * Either way the pooling is chosen by cross-validation like a cut when --cut is not given, and a head is
 * fitted by fitProbe.
 */
import { GraftError } from '../errors.ts';
import { readTextTable } from '../data/text.ts';
import { checkClasses, encodeLabels } from '../data/csv.ts';
import { stratifiedSplit } from '../data/split.ts';
import { type SifModel, type WordVectors, fitSif, loadWordVectors, meanPool, sifPool, sifWeights } from '../backbones/wordvec.ts';
import {
  POOLINGS, TOKENIZER_FILES, type TextPooling, type TokenInputs, type TokenPreprocess, embedTexts, folderTokenizer, encoderWithHead, isTextEncoder, loadTextEncoder,
  runTokens, warnTruncated,
} from '../backbones/textenc.ts';
import { type LoadedModel, loadModel, sha256 } from '../model/folder.ts';
import { accuracy, argmaxRows, macroF1 } from '../train/metrics.ts';
import type { Diagnosis } from '../train/diagnose.ts';
import { tfidf } from '../features/tfidf.ts';
import { type ProbeFeatures, type Protocol, checkHead, chooseProtocol, fitProbe, saveProbe, type HeadKind } from './fit.ts';

/** The default text backbone: the embedded sentence encoder. */
export const DEFAULT_TEXT_BACKBONE = 'use-lite';

/** Word vectors pool by 'mean' or 'sif'; encoders by 'cls' or 'mean'. */
export type TextCut = 'mean' | 'sif' | 'cls';

export interface TrainTextOptions {
  data: string; out: string; backbone?: string; cut?: TextCut; head?: HeadKind; classWeight?: 'balanced' | null; val?: number; epochs?: number; lr?: number; seed?: number;
  threads?: number; log?: (s: string) => void;
  /** Encoders: use the feature cache (default true), and where it lives. */
  cache?: boolean; cacheRoot?: string;
  /** Encoders: a lower token limit than the encoder's own. */
  maxLength?: number;
}

export interface TrainTextResult {
  out: string; labels: string[]; backbone: string; cut: string; cutScores: Record<string, number>; head: string; trainAccuracy: number;
  valAccuracy: number | null; valMacroF1: number | null; cvAccuracy: number | null; cvStd: number | null; protocol: Protocol; oovOnly: number; truncated: number; seconds: number; diagnosis: Diagnosis;
}

function pool(wv: WordVectors, texts: string[], how: 'mean' | 'sif', sif: SifModel | null): Float32Array {
  return how === 'mean' ? meanPool(wv, texts).vectors : sifPool(wv, texts, { model: sif! }).vectors;
}

function checkCut(cut: TextCut | undefined, encoder: boolean, id: string): void {
  if (cut === undefined) return;
  const ok = encoder ? cut === 'cls' || cut === 'mean' : cut === 'mean' || cut === 'sif';
  if (!ok) {
    throw new GraftError('E_BAD_OPTION', `--cut ${cut} does not apply to ${encoder ? 'the text encoder' : 'the word vectors'} ${id}`,
      encoder ? 'A text encoder pools by --cut cls or --cut mean (or leave --cut out to choose by cross-validation).'
        : 'Word vectors pool by --cut mean or --cut sif (or leave --cut out to choose by cross-validation).');
  }
}

export async function trainText(o: TrainTextOptions): Promise<TrainTextResult> {
  // The default follows graft rank on real text sets: use-lite's mean pooling beat GloVe on SpamAssassin
  // (94.5% vs 92.3% cross-validated) and tied on Reuters corn (97.8% vs 98.0%); bench/results/rank_text.md.
  const id = o.backbone ?? DEFAULT_TEXT_BACKBONE;
  const encoder = isTextEncoder(id);
  checkCut(o.cut, encoder, id);
  return encoder ? trainEncoder(o, id) : trainWordVectors(o, id);
}

/** A labelled text table with its labels encoded and checked (two classes or more, none empty). */
function labelledTexts(path: string): { table: ReturnType<typeof readTextTable>; classes: string[]; y: Int32Array } {
  const table = readTextTable(path);
  const { classes, y } = encodeLabels(table.labels!);
  checkClasses(classes, y);
  return { table, classes, y };
}

/** TF-IDF of the training texts: the no-transfer baseline the probe is compared with. */
function tfidfBaseline(texts: string[], rows: Int32Array): { kind: string; x: Float32Array; d: number } {
  const t = tfidf(Array.from(rows, (i) => texts[i]!));
  return { kind: `TF-IDF (${t.d} terms)`, x: t.x, d: t.d };
}

/** The stratified train/validation split of the table, as indices, by the small-data protocol unless --val is given. */
function splitOf(y: Int32Array, k: number, o: TrainTextOptions): { train: Int32Array; val: Int32Array; protocol: Protocol } {
  const protocol = chooseProtocol(y, k, o.val);
  o.log?.(`protocol: ${protocol.reason}`);
  const s = protocol.valFraction > 0 ? stratifiedSplit(y, protocol.valFraction, o.seed ?? 0) : { train: Int32Array.from(y.keys()), val: new Int32Array(0) };
  return { ...s, protocol };
}

async function trainWordVectors(o: TrainTextOptions, id: string): Promise<TrainTextResult> {
  const t0 = performance.now();
  const head = checkHead(o.head ?? 'linear');
  const { table, classes, y } = labelledTexts(o.data);
  const wv = loadWordVectors(id);
  o.log?.(`word vectors ${id}: ${wv.size} words x ${wv.dim} (${wv.loadedFrom}, ${wv.seconds.toFixed(1)} s)`);
  const split = splitOf(y, classes.length, o);
  const pick = (idx: Int32Array) => Array.from(idx, (i) => table.texts[i]!);
  const trTexts = pick(split.train);
  const vaTexts = pick(split.val);
  const sif = fitSif(wv, trTexts);
  const ways = o.cut ? [o.cut as 'mean' | 'sif'] : (['mean', 'sif'] as const);
  const feats: ProbeFeatures = {
    train: new Map(ways.map((w) => [w, { x: pool(wv, trTexts, w, sif), d: wv.dim }])),
    val: vaTexts.length ? new Map(ways.map((w) => [w, { x: pool(wv, vaTexts, w, sif), d: wv.dim }])) : null,
    yTrain: Int32Array.from(split.train, (i) => y[i]!), yVal: vaTexts.length ? Int32Array.from(split.val, (i) => y[i]!) : null, classes,
  };
  const oovOnly = meanPool(wv, table.texts).oovOnly;
  if (oovOnly) o.log?.(`warning: ${oovOnly} text(s) have no word the vectors know; they pool to zeros`);
  const p = await fitProbe(feats, { ...o, head, protocol: split.protocol, baseline: tfidfBaseline(table.texts, split.train) });
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
      valMacroF1: p.valMacroF1, cvAccuracy: p.cvAccuracy, cvStd: p.cvStd, protocol: split.protocol, oovOnly, truncated: 0, seconds: (performance.now() - t0) / 1000, diagnosis: p.diagnosis,
    };
  } finally {
    await p.learner.dispose();
  }
}

async function trainEncoder(o: TrainTextOptions, id: string): Promise<TrainTextResult> {
  const t0 = performance.now();
  const head = checkHead(o.head ?? 'linear');
  const { table, classes, y } = labelledTexts(o.data);
  const enc = await loadTextEncoder(id, o.maxLength ? { maxLength: o.maxLength } : {});
  const tok = enc.tokenizer;
  o.log?.(`text encoder ${id}: hidden ${enc.hidden}, ${tok.vocabSize} tokens, up to ${tok.maxLength} tokens per text (${enc.modelPath})`);
  const ways: TextPooling[] = o.cut ? [o.cut as TextPooling] : [...POOLINGS];
  const emb = await embedTexts(enc, table.texts, ways, {
    ...(o.threads ? { threads: o.threads } : {}), ...(o.cacheRoot ? { cacheRoot: o.cacheRoot } : {}), cache: o.cache ?? true, ...(o.log ? { log: o.log } : {}),
  });
  if (emb.cacheHits) o.log?.(`${emb.cacheHits} of ${table.texts.length} text(s) from the feature cache`);
  const split = splitOf(y, classes.length, o);
  const d = emb.dim;
  const rows = (x: Float32Array, idx: Int32Array) => {
    const out = new Float32Array(idx.length * d);
    idx.forEach((i, r) => out.set(x.subarray(i * d, (i + 1) * d), r * d));
    return out;
  };
  const hasVal = split.val.length > 0;
  const feats: ProbeFeatures = {
    train: new Map(ways.map((w) => [w, { x: rows(emb.features.get(w)!, split.train), d }])),
    val: hasVal ? new Map(ways.map((w) => [w, { x: rows(emb.features.get(w)!, split.val), d }])) : null,
    yTrain: Int32Array.from(split.train, (i) => y[i]!), yVal: hasVal ? Int32Array.from(split.val, (i) => y[i]!) : null, classes,
  };
  const p = await fitProbe(feats, { ...o, head, protocol: split.protocol, baseline: tfidfBaseline(table.texts, split.train) });
  try {
    const cut = p.cut as TextPooling;
    const { graph, inputs } = encoderWithHead(enc, cut, p.learner.inferenceGraph('softmax'));
    const files: Record<string, Uint8Array> = {};
    for (const f of TOKENIZER_FILES) if (tok.files[f]) files[f] = tok.files[f];
    const pre: TokenPreprocess = {
      encoder: id, pooling: cut, maxLength: tok.maxLength, padId: tok.padId, inputs: { ids: inputs.ids, mask: inputs.mask, types: inputs.types }, dtypes: inputs.dtypes,
      tokenizer: Object.fromEntries(Object.entries(files).map(([f, b]) => [f, sha256(b)])),
    };
    saveProbe(o.out, p, feats, {
      ...o,
      input: { name: inputs.ids, kind: 'token-ids', columns: [], shape: [tok.maxLength], preprocess: pre },
      backbone: { id, sha256: enc.sha256, cut },
      graph,
      data: { path: o.data, texts: table.texts.length },
      extraMetrics: { truncated: emb.truncated },
      extraFiles: files,
    });
    return {
      out: o.out, labels: classes, backbone: id, cut, cutScores: p.cutScores, head, trainAccuracy: p.trainAccuracy, valAccuracy: p.valAccuracy,
      valMacroF1: p.valMacroF1, cvAccuracy: p.cvAccuracy, cvStd: p.cvStd, protocol: split.protocol, oovOnly: 0, truncated: emb.truncated, seconds: (performance.now() - t0) / 1000, diagnosis: p.diagnosis,
    };
  } finally {
    await p.learner.dispose();
  }
}

export interface PredictTextOptions {
  threads?: number;
  /** Receives the warning when texts are truncated. */
  log?: (s: string) => void;
}

async function predictTokens(model: LoadedModel, dir: string, texts: string[], o: PredictTextOptions): Promise<Float32Array> {
  const pre = model.card.input.preprocess as TokenPreprocess;
  const tok = folderTokenizer(dir, pre);
  const t = tok.encode(texts);
  warnTruncated(t.truncated, texts.length, tok.maxLength, o.log, `the encoder ${pre.encoder}`);
  const inputs: TokenInputs = { ...pre.inputs, dtypes: pre.dtypes ?? {} };
  const name = model.card.outputs.probabilities;
  const r = await runTokens(model.session, inputs, pre.padId ?? tok.padId, t, [name], o);
  return r.get(name)!.x;
}

/** Class probabilities for texts, pooled (or tokenized) as the model was trained. */
export async function predictTexts(dir: string, texts: string[], o: PredictTextOptions = {}): Promise<{ labels: string[]; probs: Float32Array }> {
  const model = await loadModel(dir, o.threads ? { threads: o.threads } : {});
  try {
    if (model.card.input.kind === 'token-ids') return { labels: model.card.labels, probs: await predictTokens(model, dir, texts, o) };
    if (model.card.input.kind !== 'pooled-word-vectors') {
      throw new GraftError('E_BAD_OPTION', `model ${dir} takes ${model.card.input.kind === 'features' ? 'numeric CSV rows' : model.card.input.kind === 'image' ? 'images' : 'audio clips'}, not texts`,
        'Pass data of the kind the model was trained on.');
    }
    const pre = model.card.input.preprocess as { vectors: string; pooling: 'mean' | 'sif'; sif?: { a: number; component: number[] } };
    const wv = loadWordVectors(pre.vectors);
    const sif: SifModel | null = pre.sif ? { a: pre.sif.a, component: Float32Array.from(pre.sif.component), freq: 'zipf', weights: sifWeights(wv, { a: pre.sif.a }).weights } : null;
    const x = pool(wv, texts, pre.pooling, sif);
    return { labels: model.card.labels, probs: await model.predict(x, texts.length) };
  } finally {
    await model.dispose();
  }
}

export async function evalText(dir: string, data: string, o: PredictTextOptions = {}): Promise<{ accuracy: number; macroF1: number; n: number }> {
  const t = readTextTable(data);
  const { labels, probs } = await predictTexts(dir, t.texts, o);
  const { y } = encodeLabels(t.labels!, labels);
  const pred = argmaxRows(probs, labels.length);
  return { accuracy: accuracy(y, pred), macroF1: macroF1(y, pred, labels.length), n: y.length };
}
