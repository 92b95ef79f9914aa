/**
 * Feature-extraction transfer for images: a frozen pretrained backbone (features cached on disk), the
 * cut chosen by cross-validation when not given, a trained head (linear, MLP or kNN), and one saved
 * model.onnx that goes from prepared pixels to probabilities.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { GraftError } from '../errors.ts';
import { type ImageBackbone, findCut, loadImageBackbone } from '../backbones/image.ts';
import { defaultBackbone, findBackbone } from '../backbones/registry.ts';
import type { CutPoint } from '../backbones/types.ts';
import { readImageFolder, decodeAll } from '../data/folders.ts';
import { embedImages } from '../features/embed.ts';
import { fitStandardize, linearHead, mlpHead } from '../heads/heads.ts';
import { Learner, type Dataset } from '../train/learner.ts';
import { EarlyStopping, ProgressBar, type Callback } from '../train/callbacks.ts';
import { diagnose, type Diagnosis } from '../train/diagnose.ts';
import { accuracy, argmaxRows, macroF1 } from '../train/metrics.ts';
import { GRAFT_VERSION, loadModel, saveModel } from '../model/folder.ts';
import { Graph } from '../graph/ir.ts';
import { encodeLabels } from '../data/csv.ts';
import { crossValidate, knnHead } from './heads.ts';

export interface TrainImagesOptions {
  data: string;
  out: string;
  backbone?: string;
  cut?: string;
  head?: 'linear' | 'mlp' | 'knn';
  val?: number;
  epochs?: number;
  lr?: number;
  seed?: number;
  threads?: number;
  cache?: boolean;
  cacheRoot?: string;
  log?: (line: string) => void;
}

export interface TrainImagesResult {
  out: string;
  labels: string[];
  backbone: string;
  cut: string;
  cutScores: Record<string, number>;
  head: string;
  trainAccuracy: number;
  valAccuracy: number | null;
  valMacroF1: number | null;
  skipped: number;
  cacheHits: number;
  seconds: number;
  diagnosis: Diagnosis;
}

/** Cuts worth scoring: the backbone's own, minus its source task's classifier layers. */
function candidateCuts(bb: ImageBackbone): CutPoint[] {
  const names = bb.entry ? bb.entry.cuts.filter((c) => !c.note?.includes('own head')).map((c) => c.name) : bb.cuts.map((c) => c.name);
  return names.map((n) => findCut(bb, n));
}

export async function trainImages(o: TrainImagesOptions): Promise<TrainImagesResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const seed = o.seed ?? 0;
  const head = o.head ?? 'linear';
  if (!['linear', 'mlp', 'knn'].includes(head)) throw new GraftError('E_BAD_OPTION', `unknown head "${head}"`, 'Use --head linear, mlp or knn.');
  const folder = readImageFolder(o.data, { valFraction: o.val ?? 0.2, seed });
  const bbId = o.backbone ?? defaultBackbone('image').id;
  if (findBackbone(bbId).modality !== 'image') throw new GraftError('E_BAD_OPTION', `backbone ${bbId} is not an image backbone`, 'Pick an image backbone (graft backbones).');
  const bb = await loadImageBackbone(bbId, o.cacheRoot);
  const cuts = o.cut ? [findCut(bb, o.cut)] : candidateCuts(bb);
  const k = folder.classes.length;
  const embedOpts = {
    ...(o.threads ? { threads: o.threads } : {}), ...(o.cacheRoot ? { cacheRoot: o.cacheRoot } : {}), cache: o.cache ?? true,
    onSkip: (_s: unknown, m: string) => log(`warning: ${m}`),
  };
  log(`embedding ${folder.train.paths.length + (folder.val?.paths.length ?? 0)} images with ${bb.id} at ${cuts.length} cut(s)`);
  const tr = await embedImages(bb, folder.train.paths, cuts, embedOpts);
  const va = folder.val ? await embedImages(bb, folder.val.paths, cuts, embedOpts) : null;
  const skipped = tr.skipped.count + (va?.skipped.count ?? 0);
  if (skipped) log(`skipped ${skipped} unreadable image(s): ${Object.entries({ ...tr.skipped.reasons }).map(([c, n]) => `${n} ${c}`).join(', ')}`);
  const yTr = Int32Array.from(tr.kept, (i) => folder.train.y[i]!);
  const yVa = va ? Int32Array.from(va.kept, (i) => folder.val!.y[i]!) : null;

  // The cut: the given one, or the best by k-fold cross-validation of a linear probe on training features.
  const cutScores: Record<string, number> = {};
  let cut = cuts[cuts.length - 1]!;
  if (cuts.length > 1) {
    let best = -1;
    for (const c of cuts) {
      const s = await crossValidate(tr.features.get(c.name)!, yTr, tr.dims.get(c.name)!, k, { seed, ...(o.threads ? { threads: o.threads } : {}) });
      cutScores[c.name] = s;
      log(`cut ${c.name} (${tr.dims.get(c.name)}-d): cross-validated probe accuracy ${s.toFixed(4)}`);
      if (s >= best) { best = s; cut = c; }
    }
  }
  const d = tr.dims.get(cut.name)!;
  const train: Dataset = { x: tr.features.get(cut.name)!, y: yTr, n: yTr.length };
  const val: Dataset | undefined = va && yVa && yVa.length ? { x: va.features.get(cut.name)!, y: yVa, n: yVa.length } : undefined;
  const standardize = fitStandardize(train.x, train.n, d);
  const net = head === 'knn' ? knnHead(train.x, yTr, d, k)
    : head === 'mlp' ? mlpHead({ inputDim: d, classes: k, seed, standardize, hidden: [256], dropout: 0.3 })
      : linearHead({ inputDim: d, classes: k, seed, standardize });
  const early = new EarlyStopping({ monitor: val ? 'valLoss' : 'trainLoss', patience: 8 });
  const callbacks: Callback[] = [new ProgressBar(), early];
  const learner = new Learner({ net, train, ...(val ? { val } : {}), batchSize: 32, seed, callbacks, ...(o.threads ? { threads: o.threads } : {}), optimizer: { kind: 'adamw', weightDecay: 0.01 } });
  try {
    if (head !== 'knn') await learner.fit(o.epochs ?? 40, { lr: o.lr ?? 3e-3, schedule: { kind: 'one-cycle' } });
    const trainAccuracy = (await learner.evaluate(train)).accuracy;
    let valAccuracy: number | null = null;
    let valMacroF1: number | null = null;
    if (val) {
      const pred = argmaxRows((await learner.evaluate(val)).logits, k);
      valAccuracy = accuracy(val.y as Int32Array, pred);
      valMacroF1 = macroF1(val.y as Int32Array, pred, k);
    }
    const history = learner.history.length ? learner.history : [{ epoch: 0, trainLoss: NaN, lr: [0], seconds: 0 }];
    const diagnosis = diagnose({ history, trainAccuracy, valAccuracy, classes: k, nTrain: train.n, canFineTune: true });
    const onnx = combine(bb, cut, learner.inferenceGraph('softmax'));
    const [h, w] = bb.preprocess.size;
    saveModel(o.out, {
      createdAt: new Date().toISOString(), task: 'classification', labels: folder.classes,
      input: { name: bb.inputName, kind: 'image', columns: [], shape: [3, h, w], preprocess: bb.preprocess },
      outputs: { probabilities: 'probabilities', logits: 'logits' },
      backbone: { id: bb.id, sha256: bb.sha256, cut: cut.name },
      head: net.config,
      training: { head, epochs: o.epochs ?? 40, epochsRun: learner.history.length, lr: o.lr ?? 3e-3, seed, val: o.val ?? 0.2, cutScores, optimizer: learner.opt.options },
      metrics: { trainAccuracy, valAccuracy, valMacroF1, nTrain: train.n, nVal: val?.n ?? 0, skipped },
      history: learner.history, diagnosis,
      provenance: {
        data: { path: o.data, images: folder.train.paths.length + (folder.val?.paths.length ?? 0), layout: folder.layout },
        graft: GRAFT_VERSION, node: process.version, onnxruntime: ort.env.versions.node ?? 'unknown',
      },
    }, onnx);
    return {
      out: o.out, labels: folder.classes, backbone: bb.id, cut: cut.name, cutScores, head, trainAccuracy, valAccuracy, valMacroF1,
      skipped, cacheHits: tr.cacheHits + (va?.cacheHits ?? 0), seconds: (performance.now() - t0) / 1000, diagnosis,
    };
  } finally {
    await learner.dispose();
  }
}

/** Backbone prefix up to the cut, with the head's inference graph grafted on: one self-contained graph. */
function combine(bb: ImageBackbone, cut: CutPoint, headGraph: Graph): Uint8Array {
  const g = bb.graph.cut(cut.tensor);
  const [logits, probs] = g.append(headGraph, { input: cut.tensor }, 'head/');
  g.addNode('Identity', [logits!], ['logits']);
  g.addNode('Identity', [probs!], ['probabilities']);
  g.outputs = [
    { name: 'logits', dtype: 'float32', shape: ['N', headGraph.outputs[0]!.shape![1]!] },
    { name: 'probabilities', dtype: 'float32', shape: ['N', headGraph.outputs[1]!.shape![1]!] },
  ];
  g.metadata.set('graft.backbone', `${bb.id}@${bb.sha256}`);
  g.metadata.set('graft.cut', cut.name);
  return g.toBytes();
}

export interface ImagePrediction { path: string; label: string; probabilities: Record<string, number> }

/** Predicts every image under a path (a folder, searched recursively, or one file). */
export async function predictImages(dir: string, data: string, log: (s: string) => void = () => {}): Promise<{ predictions: ImagePrediction[]; truth: (string | null)[] }> {
  const model = await loadModel(dir);
  try {
    if (model.card.input.kind !== 'image') throw new GraftError('E_BAD_OPTION', `model ${dir} takes numeric CSV rows, not images`, 'Pass a CSV file.');
    const pre = model.card.input.preprocess as Parameters<typeof decodeAll>[1];
    let paths: string[];
    let truth: (string | null)[];
    if (existsSync(data) && statSync(data).isFile()) { paths = [data]; truth = [null]; } else {
      const f = readImageFolder(data, { valFraction: 0 });
      paths = f.train.paths;
      truth = Array.from(f.train.y, (c) => f.classes[c]!);
    }
    const k = model.card.labels.length;
    const out: ImagePrediction[] = [];
    const keptTruth: (string | null)[] = [];
    for (let from = 0; from < paths.length; from += 64) {
      const chunk = paths.slice(from, from + 64);
      const dec = await decodeAll(chunk, pre, { onSkip: (_s, m) => log(`warning: ${m}`) });
      if (!dec.kept.length) continue;
      const probs = await model.predict(dec.x, dec.kept.length);
      Array.from(dec.kept).forEach((ci, r) => {
        let best = 0;
        for (let j = 1; j < k; j++) if (probs[r * k + j]! > probs[r * k + best]!) best = j;
        out.push({ path: chunk[ci]!, label: model.card.labels[best]!, probabilities: Object.fromEntries(model.card.labels.map((l, j) => [l, probs[r * k + j]!])) });
        keptTruth.push(truth[from + ci]!);
      });
    }
    return { predictions: out, truth: keptTruth };
  } finally {
    await model.dispose();
  }
}

export async function evalImages(dir: string, data: string): Promise<{ accuracy: number; macroF1: number; n: number }> {
  const { predictions, truth } = await predictImages(dir, data);
  const card = JSON.parse(readFileSync(`${dir}/graft.json`, 'utf8'));
  const { y } = encodeLabels(truth.map((t) => t ?? ''), card.labels);
  const { y: p } = encodeLabels(predictions.map((q) => q.label), card.labels);
  return { accuracy: accuracy(y, p), macroF1: macroF1(y, p, card.labels.length), n: y.length };
}

