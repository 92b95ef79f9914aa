/**
 * The shared end of every feature-extraction probe: given cached features (train and validation),
 * choose the cut by cross-validation when there are several, fit the head (linear, MLP or kNN) with
 * early stopping, diagnose the curves, and save the model folder.
 */
import * as ort from 'onnxruntime-node';
import { GraftError } from '../errors.ts';
import { fitStandardize, linearHead, mlpHead } from '../heads/heads.ts';
import { Learner, type Dataset } from '../train/learner.ts';
import { EarlyStopping, ProgressBar } from '../train/callbacks.ts';
import { diagnose, type Diagnosis } from '../train/diagnose.ts';
import { accuracy, argmaxRows, macroF1 } from '../train/metrics.ts';
import { GRAFT_VERSION, type ModelCard, saveModel } from '../model/folder.ts';
import type { Graph } from '../graph/ir.ts';
import { crossValidate, knnHead } from './heads.ts';

export type HeadKind = 'linear' | 'mlp' | 'knn';

export interface ProbeFeatures {
  /** Per cut: row-major features and their width. */
  train: Map<string, { x: Float32Array; d: number }>;
  val: Map<string, { x: Float32Array; d: number }> | null;
  yTrain: Int32Array;
  yVal: Int32Array | null;
  classes: string[];
}

export interface ProbeOptions {
  head?: HeadKind;
  epochs?: number;
  lr?: number;
  seed?: number;
  threads?: number;
  log?: (s: string) => void;
}

export interface ProbeFit {
  cut: string;
  cutScores: Record<string, number>;
  head: HeadKind;
  trainAccuracy: number;
  valAccuracy: number | null;
  valMacroF1: number | null;
  diagnosis: Diagnosis;
  learner: Learner;
  headConfig: Record<string, unknown>;
}

export function checkHead(head: string): HeadKind {
  if (head !== 'linear' && head !== 'mlp' && head !== 'knn') throw new GraftError('E_BAD_OPTION', `unknown head "${head}"`, 'Use --head linear, mlp or knn.');
  return head;
}

/** Fits the probe; the caller saves the model with the returned learner and then disposes it. */
export async function fitProbe(f: ProbeFeatures, o: ProbeOptions = {}): Promise<ProbeFit> {
  const log = o.log ?? (() => {});
  const seed = o.seed ?? 0;
  const head = checkHead(o.head ?? 'linear');
  const k = f.classes.length;
  const cuts = [...f.train.keys()];
  const cutScores: Record<string, number> = {};
  let cut = cuts.at(-1)!;
  if (cuts.length > 1) {
    let best = -1;
    for (const c of cuts) {
      const { x, d } = f.train.get(c)!;
      const s = await crossValidate(x, f.yTrain, d, k, { seed, ...(o.threads ? { threads: o.threads } : {}) });
      cutScores[c] = s;
      log(`cut ${c} (${d}-d): cross-validated probe accuracy ${s.toFixed(4)}`);
      if (s >= best) { best = s; cut = c; }
    }
  }
  const { x, d } = f.train.get(cut)!;
  const train: Dataset = { x, y: f.yTrain, n: f.yTrain.length };
  const val: Dataset | undefined = f.val && f.yVal && f.yVal.length ? { x: f.val.get(cut)!.x, y: f.yVal, n: f.yVal.length } : undefined;
  const standardize = fitStandardize(train.x, train.n, d);
  const net = head === 'knn' ? knnHead(train.x, f.yTrain, d, k)
    : head === 'mlp' ? mlpHead({ inputDim: d, classes: k, seed, standardize, hidden: [256], dropout: 0.3 })
      : linearHead({ inputDim: d, classes: k, seed, standardize });
  const early = new EarlyStopping({ monitor: val ? 'valLoss' : 'trainLoss', patience: 8 });
  const learner = new Learner({
    net, train, ...(val ? { val } : {}), batchSize: 32, seed, callbacks: [new ProgressBar(), early],
    ...(o.threads ? { threads: o.threads } : {}), optimizer: { kind: 'adamw', weightDecay: 0.01 },
  });
  if (head !== 'knn') await learner.fit(o.epochs ?? 40, { lr: o.lr ?? 3e-3, schedule: { kind: 'one-cycle' } });
  const trainAccuracy = (await learner.evaluate(train)).accuracy;
  let valAccuracy: number | null = null;
  let valMacroF1: number | null = null;
  let valLoss: number | undefined;
  if (val) {
    const ev = await learner.evaluate(val);
    const pred = argmaxRows(ev.logits, k);
    valAccuracy = accuracy(val.y as Int32Array, pred);
    valMacroF1 = macroF1(val.y as Int32Array, pred, k);
    valLoss = ev.loss;
  }
  // kNN trains nothing: its one "epoch" is the prototypes as they are.
  const history = learner.history.length ? learner.history
    : [{ epoch: 0, trainLoss: (await learner.evaluate(train)).loss, lr: [0], seconds: 0, ...(valLoss !== undefined ? { valLoss, valAccuracy: valAccuracy! } : {}) }];
  const diagnosis = diagnose({ history, trainAccuracy, valAccuracy, classes: k, nTrain: train.n, canFineTune: true });
  return { cut, cutScores, head, trainAccuracy, valAccuracy, valMacroF1, diagnosis, learner, headConfig: net.config };
}

/** Saves a fitted probe as a model folder; `graph` is the self-contained inference graph. */
export function saveProbe(out: string, p: ProbeFit, f: ProbeFeatures, o: ProbeOptions & {
  input: ModelCard['input']; backbone: ModelCard['backbone']; graph: Graph; data: Record<string, unknown>; extraMetrics?: Record<string, unknown>;
  /** Files saved beside model.onnx in the same atomic write (e.g. tokenizer.json). */
  extraFiles?: Record<string, Uint8Array>;
}): void {
  saveModel(out, {
    createdAt: new Date().toISOString(), task: 'classification', labels: f.classes, input: o.input,
    outputs: { probabilities: 'probabilities', logits: 'logits' }, backbone: o.backbone, head: p.headConfig,
    training: { head: p.head, epochs: o.epochs ?? 40, epochsRun: p.learner.history.length, lr: o.lr ?? 3e-3, seed: o.seed ?? 0, cutScores: p.cutScores, optimizer: p.learner.opt.options },
    metrics: { trainAccuracy: p.trainAccuracy, valAccuracy: p.valAccuracy, valMacroF1: p.valMacroF1, nTrain: f.yTrain.length, nVal: f.yVal?.length ?? 0, ...o.extraMetrics },
    history: p.learner.history, diagnosis: p.diagnosis,
    provenance: { data: o.data, graft: GRAFT_VERSION, node: process.version, onnxruntime: ort.env.versions.node ?? 'unknown' },
  }, o.graph.toBytes(), o.extraFiles);
}
