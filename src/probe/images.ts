/**
 * Feature-extraction transfer for images: a frozen pretrained backbone (features cached on disk), the
 * cut chosen by cross-validation when not given, a trained head (linear, MLP or kNN), and one saved
 * model.onnx that goes from prepared pixels to probabilities.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { GraftError } from '../errors.ts';
import { type ImageBackbone, checkImageBackboneId, findCut, loadImageBackbone } from '../backbones/image.ts';
import { candidateCuts } from '../rank/rank.ts';
import { pixelRows } from '../data/photos.ts';
import { take } from '../data/split.ts';

import { defaultBackbone } from '../backbones/registry.ts';
import type { CutPoint } from '../backbones/types.ts';
import { readImageFolder, decodeAll } from '../data/folders.ts';
import { prepareImage } from '../data/images.ts';
import { embedImages } from '../features/embed.ts';
import type { Diagnosis } from '../train/diagnose.ts';
import { accuracy, macroF1 } from '../train/metrics.ts';
import { type LoadedModel, loadModel } from '../model/folder.ts';
import type { Graph } from '../graph/ir.ts';
import { encodeLabels } from '../data/csv.ts';
import { type ProbeFeatures, type Protocol, checkHead, chooseProtocol, fitProbe, saveProbe, type HeadKind } from './fit.ts';

export interface TrainImagesOptions {
  data: string;
  out: string;
  backbone?: string;
  cut?: string;
  head?: HeadKind;
  classWeight?: 'balanced' | null;
  /** Validation fraction; default: by the small-data protocol (none below 100 examples per class, else 0.2). */
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
  cvAccuracy: number | null;
  cvStd: number | null;
  protocol: Protocol;
  skipped: number;
  cacheHits: number;
  seconds: number;
  diagnosis: Diagnosis;
}

export async function trainImages(o: TrainImagesOptions): Promise<TrainImagesResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const seed = o.seed ?? 0;
  const head = checkHead(o.head ?? 'linear');
  const all = readImageFolder(o.data, { valFraction: 0, seed });
  const protocol: Protocol = all.val ? { kind: 'holdout', valFraction: 0, reason: 'the folder has its own val/ split' } : chooseProtocol(all.train.y, all.classes.length, o.val);
  const folder = protocol.valFraction > 0 ? readImageFolder(o.data, { valFraction: protocol.valFraction, seed }) : all;
  log(`protocol: ${protocol.reason}`);
  const bbId = o.backbone ?? defaultBackbone('image').id;
  checkImageBackboneId(bbId);
  const bb = await loadImageBackbone(bbId, o.cacheRoot, o.cut);
  const cuts = o.cut ? [findCut(bb, o.cut)] : candidateCuts(bb);
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
  const asMap = (e: typeof tr) => new Map(cuts.map((c) => [c.name, { x: e.features.get(c.name)!, d: e.dims.get(c.name)! }]));
  const feats: ProbeFeatures = { train: asMap(tr), val: va ? asMap(va) : null, yTrain: yTr, yVal: yVa, classes: folder.classes };
  // Raw pixels (32x32 RGB) as the no-transfer baseline, for the rows that were embedded.
  const px = await pixelRows(o.data, 32, 3, folder.train.paths);
  const keepPx = new Map(Array.from(px.kept, (i, r) => [i, r]));
  const rowsPx = Array.from(tr.kept).filter((i) => keepPx.has(i));
  const baseline = rowsPx.length === tr.kept.length ? { kind: 'raw pixels (32x32 RGB)', d: px.dim, x: take(px.x, px.dim, rowsPx.map((i) => keepPx.get(i)!)) } : undefined;
  const p = await fitProbe(feats, { ...o, head, log, protocol, ...(baseline ? { baseline } : {}) });
  try {
    const cut = findCut(bb, p.cut);
    const [h, w] = bb.preprocess.size;
    saveProbe(o.out, p, feats, {
      ...o,
      input: { name: bb.inputName, kind: 'image', columns: [], shape: [3, h, w], preprocess: bb.preprocess },
      backbone: { id: bb.id, sha256: bb.sha256, cut: cut.name },
      graph: combine(bb, cut, p.learner.inferenceGraph('softmax')),
      data: { path: o.data, images: folder.train.paths.length + (folder.val?.paths.length ?? 0), layout: folder.layout },
      extraMetrics: { skipped },
    });
    return {
      out: o.out, labels: folder.classes, backbone: bb.id, cut: p.cut, cutScores: p.cutScores, head, trainAccuracy: p.trainAccuracy,
      valAccuracy: p.valAccuracy, valMacroF1: p.valMacroF1, cvAccuracy: p.cvAccuracy, cvStd: p.cvStd, protocol, skipped, cacheHits: tr.cacheHits + (va?.cacheHits ?? 0),
      seconds: (performance.now() - t0) / 1000, diagnosis: p.diagnosis,
    };
  } finally {
    await p.learner.dispose();
  }
}

/** Backbone prefix up to the cut, with the head's inference graph grafted on: one self-contained graph. */
function combine(bb: ImageBackbone, cut: CutPoint, headGraph: Graph): Graph {
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
  return g;
}

export interface ImagePrediction { path: string; label: string; probabilities: Record<string, number> }

/** Predicts every image under a path (a folder, searched recursively, or one file), or a list of image files. */
export async function predictImages(dir: string, data: string | readonly string[], log: (s: string) => void = () => {}, loaded?: LoadedModel): Promise<{ predictions: ImagePrediction[]; truth: (string | null)[] }> {
  const model = loaded ?? await loadModel(dir);
  try {
    if (model.card.input.kind !== 'image') throw new GraftError('E_BAD_OPTION', `model ${dir} takes numeric CSV rows, not images`, 'Pass a CSV file.');
    const pre = model.card.input.preprocess as Parameters<typeof decodeAll>[1];
    let paths: string[];
    let truth: (string | null)[];
    if (typeof data !== 'string') { paths = [...data]; truth = paths.map(() => null); } else if (existsSync(data) && statSync(data).isFile()) { paths = [data]; truth = [null]; } else {
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
    if (!loaded) await model.dispose();
  }
}

/**
 * Predictions for images held in memory (encoded PNG/JPEG/WebP/GIF bytes), strictly: an unreadable
 * image or one whose header claims more than the pixel limit fails the whole call with its GraftError
 * (E_IMAGE_CORRUPT, E_IMAGE_TOO_LARGE) naming it "image N", the header checked before any decoding.
 */
export async function predictImageBytes(dir: string, images: readonly Uint8Array[], loaded?: LoadedModel): Promise<ImagePrediction[]> {
  const model = loaded ?? await loadModel(dir);
  try {
    if (model.card.input.kind !== 'image') throw new GraftError('E_BAD_OPTION', `model ${dir} does not take images`, 'Pass data of the kind the model was trained on.');
    const pre = model.card.input.preprocess as Parameters<typeof decodeAll>[1];
    const d = 3 * pre.size[0] * pre.size[1];
    const k = model.card.labels.length;
    const out: ImagePrediction[] = [];
    for (let from = 0; from < images.length; from += 64) {
      const chunk = images.slice(from, from + 64);
      const x = new Float32Array(chunk.length * d);
      for (let i = 0; i < chunk.length; i++) {
        const img = chunk[i];
        const name = `image ${from + i + 1}`;
        if (!(img instanceof Uint8Array)) throw new GraftError('E_IMAGE_CORRUPT', `${name} is not bytes`, 'Pass each image as a Uint8Array of PNG, JPEG, WebP or GIF data.');
        x.set(await prepareImage(img, pre, { name }), i * d);
      }
      const probs = await model.predict(x, chunk.length);
      for (let r = 0; r < chunk.length; r++) {
        let best = 0;
        for (let j = 1; j < k; j++) if (probs[r * k + j]! > probs[r * k + best]!) best = j;
        out.push({ path: `image ${from + r + 1}`, label: model.card.labels[best]!, probabilities: Object.fromEntries(model.card.labels.map((l, j) => [l, probs[r * k + j]!])) });
      }
    }
    return out;
  } finally {
    if (!loaded) await model.dispose();
  }
}

export async function evalImages(dir: string, data: string): Promise<{ accuracy: number; macroF1: number; n: number }> {
  const { predictions, truth } = await predictImages(dir, data);
  const card = JSON.parse(readFileSync(`${dir}/graft.json`, 'utf8'));
  const { y } = encodeLabels(truth.map((t) => t ?? ''), card.labels);
  const { y: p } = encodeLabels(predictions.map((q) => q.label), card.labels);
  return { accuracy: accuracy(y, p), macroF1: macroF1(y, p, card.labels.length), n: y.length };
}

