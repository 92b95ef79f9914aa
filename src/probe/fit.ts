/**
 * The shared end of every feature-extraction probe: given cached features (train, and validation under
 * the hold-out protocol), choose the cut by cross-validation when there are several, fit the head and
 * save the model folder. Linear heads (logistic, SVM, ridge) are convex probes solved to convergence
 * with the penalty cross-validated and the model refitted on every training example (probe/convex.ts);
 * the MLP trains by SGD with early stopping; kNN trains nothing.
 *
 * The small-data protocol: below SMALL_DATA_PER_CLASS examples in the smallest class, no validation split
 * is held out (it would cost a fifth of a tiny set and give a noisy score); every choice is made by
 * k-fold cross-validation and the reported estimate is the cross-validated accuracy with its spread.
 */
import * as ort from 'onnxruntime-node';
import { GraftError } from '../errors.ts';
import { fitStandardize, linearHead, mlpHead } from '../heads/heads.ts';
import { Learner, type Dataset } from '../train/learner.ts';
import { EarlyStopping, ProgressBar } from '../train/callbacks.ts';
import { diagnose, diagnoseConvex, type Diagnosis } from '../train/diagnose.ts';
import { accuracy, argmaxRows, macroF1 } from '../train/metrics.ts';
import { GRAFT_VERSION, type ModelCard, saveModel } from '../model/folder.ts';
import type { Graph } from '../graph/ir.ts';
import { knnHead, stratifiedFolds } from './heads.ts';
import { type ConvexFit, type ConvexLoss, checkFinite, convexLogits, fitConvexProbe } from './convex.ts';
import { shortlist } from '../rank/rank.ts';

/** How many candidate cuts (the best by LogME) get the cross-validated probe. */
export const SHORTLIST = 3;

export type HeadKind = 'linear' | 'svm' | 'ridge' | 'mlp' | 'knn';
const CONVEX: Partial<Record<HeadKind, ConvexLoss>> = { linear: 'logistic', svm: 'squared-hinge', ridge: 'ridge' };

/** Below this many examples in the smallest class, the small-data protocol runs (no validation split). */
export const SMALL_DATA_PER_CLASS = 100;

export interface Protocol {
  kind: 'cv' | 'holdout';
  /** Fraction of the training data to hold out for validation (0 under 'cv'). */
  valFraction: number;
  reason: string;
}

/**
 * Which protocol a labelled set gets: an explicit --val is obeyed; otherwise sets whose smallest class
 * has fewer than SMALL_DATA_PER_CLASS examples are cross-validated and refitted on everything, and larger
 * ones hold out 20% for validation (early stopping, a diagnosis from learning curves).
 */
export function chooseProtocol(y: Int32Array, classes: number, val?: number): Protocol {
  const counts = new Array<number>(classes).fill(0);
  for (const c of y) counts[c]!++;
  const min = Math.min(...counts);
  if (val !== undefined) {
    return val > 0 ? { kind: 'holdout', valFraction: val, reason: `--val ${val} holds out ${(100 * val).toFixed(0)}% for validation` }
      : { kind: 'cv', valFraction: 0, reason: '--val 0: no validation split; choices by k-fold cross-validation on all the data' };
  }
  return min < SMALL_DATA_PER_CLASS
    ? { kind: 'cv', valFraction: 0, reason: `the smallest class has ${min} examples (< ${SMALL_DATA_PER_CLASS}): no validation split; every choice by k-fold cross-validation, then refit on all ${y.length} examples` }
    : { kind: 'holdout', valFraction: 0.2, reason: `every class has ${SMALL_DATA_PER_CLASS} examples or more: 20% held out for validation` };
}

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
  /** Linear heads: 'balanced' weighs each class by n / (k n_c). */
  classWeight?: 'balanced' | null;
  protocol?: Protocol;
  /** A no-transfer baseline's features (raw pixels, TF-IDF): its cross-validated probe is compared with the chosen cut's. */
  baseline?: { kind: string; x: Float32Array; d: number };
  epochs?: number;
  lr?: number;
  seed?: number;
  threads?: number;
  log?: (s: string) => void;
}

export interface ProbeFit {
  cut: string;
  /** Cross-validated probe accuracy of each shortlisted cut. */
  cutScores: Record<string, number>;
  /** LogME of every candidate cut, when there were more than the shortlist. */
  cutLogme: Record<string, number>;
  head: HeadKind;
  trainAccuracy: number;
  valAccuracy: number | null;
  valMacroF1: number | null;
  diagnosis: Diagnosis;
  learner: Learner;
  headConfig: Record<string, unknown>;
  protocol: Protocol;
  /** Cross-validated accuracy of the chosen cut's probe and its spread over folds (convex heads). */
  cvAccuracy: number | null;
  cvStd: number | null;
  /** The convex fit (linear, svm, ridge heads). */
  convex: ConvexFit | null;
  warnings: string[];
  /** The no-transfer baseline's cross-validated accuracy, where one was given. */
  baseline: { kind: string; cvAccuracy: number } | null;
}

export function checkHead(head: string): HeadKind {
  if (!['linear', 'svm', 'ridge', 'mlp', 'knn'].includes(head)) throw new GraftError('E_BAD_OPTION', `unknown head "${head}"`, 'Use --head linear, svm, ridge, mlp or knn.');
  return head as HeadKind;
}

/** Mean softmax cross-entropy of logits [n, k]. */
function softmaxLoss(z: Float64Array, y: Int32Array, k: number): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) {
    let m = -Infinity;
    for (let c = 0; c < k; c++) m = Math.max(m, z[i * k + c]!);
    let e = 0;
    for (let c = 0; c < k; c++) e += Math.exp(z[i * k + c]! - m);
    s += m + Math.log(e) - z[i * k + y[i]!]!;
  }
  return s / Math.max(1, y.length);
}

/** k-fold accuracy of the kNN head (cosine to class-mean prototypes), for the small-data protocol's estimate. */
function prototypeCv(x: Float32Array, y: Int32Array, d: number, k: number, seed: number): { accuracy: number; std: number } | null {
  const counts = new Array<number>(k).fill(0);
  for (const c of y) counts[c]!++;
  const nf = Math.min(5, ...counts);
  if (nf < 2) return null;
  const unit = (i: number) => { let s = 0; for (let j = 0; j < d; j++) s += x[i * d + j]! ** 2; return Math.sqrt(s) || 1; };
  const norms = Float64Array.from({ length: y.length }, (_, i) => unit(i));
  const accs = stratifiedFolds(y, nf, seed).map((held) => {
    const inFold = new Set(held);
    const proto = new Float64Array(k * d);
    for (let i = 0; i < y.length; i++) if (!inFold.has(i)) for (let j = 0; j < d; j++) proto[y[i]! * d + j] += x[i * d + j]! / norms[i]!;
    let correct = 0;
    for (const i of held) {
      let best = -1; let bs = -Infinity;
      for (let c = 0; c < k; c++) {
        let dot = 0; let pn = 0;
        for (let j = 0; j < d; j++) { dot += proto[c * d + j]! * x[i * d + j]!; pn += proto[c * d + j]! ** 2; }
        const sc = dot / (Math.sqrt(pn) || 1);
        if (sc > bs) { bs = sc; best = c; }
      }
      if (best === y[i]) correct++;
    }
    return correct / held.length;
  });
  const m = accs.reduce((a, b) => a + b, 0) / nf;
  return { accuracy: m, std: Math.sqrt(accs.reduce((a, b) => a + (b - m) ** 2, 0) / nf) };
}

/** Fits the probe; the caller saves the model with the returned learner and then disposes it. */
export async function fitProbe(f: ProbeFeatures, o: ProbeOptions = {}): Promise<ProbeFit> {
  const log = o.log ?? (() => {});
  const seed = o.seed ?? 0;
  const head = checkHead(o.head ?? 'linear');
  const k = f.classes.length;
  const protocol = o.protocol ?? (f.val && f.yVal?.length ? { kind: 'holdout', valFraction: 0, reason: 'a validation split was given' } as Protocol : chooseProtocol(f.yTrain, k, 0));
  for (const [c, { x, d }] of f.train) checkFinite(x, d, `features at cut ${c}`);
  const cuts = [...f.train.keys()];
  const cutScores: Record<string, number> = {};
  const lossKind = CONVEX[head] ?? 'logistic';
  const convexOpts = { loss: lossKind, seed, classWeight: o.classWeight ?? null, ...(o.threads ? { threads: o.threads } : {}), log };
  // Candidate cuts are shortlisted by LogME (closed form), the shortlist scored by the cross-validated
  // convex probe; a convex head keeps the winner's fit.
  let cut = cuts.at(-1)!;
  let convex: ConvexFit | null = null;
  const short = await shortlist(f.train, f.yTrain, k, SHORTLIST, o.threads ? { threads: o.threads } : {});
  if (cuts.length > SHORTLIST) log(`${cuts.length} candidate cuts; by LogME the best ${SHORTLIST}: ${short.keep.join(', ')}`);
  if (cuts.length > 1 || CONVEX[head]) {
    let best = -1;
    for (const c of short.keep) {
      const { x, d } = f.train.get(c)!;
      const fit = await fitConvexProbe(x, f.yTrain, d, k, convexOpts);
      const s = fit.cvAccuracy ?? fit.trainAccuracy;
      if (cuts.length > 1) {
        cutScores[c] = s;
        log(`cut ${c} (${d}-d): cross-validated probe accuracy ${s.toFixed(4)}${fit.cvStd !== null ? ` +- ${fit.cvStd.toFixed(4)}` : ''}`);
      }
      if (s > best) { best = s; cut = c; convex = fit; }
    }
  }
  const warnings = convex?.warnings ?? [];
  const { x, d } = f.train.get(cut)!;
  const train: Dataset = { x, y: f.yTrain, n: f.yTrain.length };
  const val: Dataset | undefined = f.val && f.yVal && f.yVal.length ? { x: f.val.get(cut)!.x, y: f.yVal, n: f.yVal.length } : undefined;
  let valAccuracy: number | null = null;
  let valMacroF1: number | null = null;
  let valLoss: number | undefined;
  const scoreVal = (logits: Float32Array | Float64Array, loss: number) => {
    const pred = argmaxRows(Float32Array.from(logits), k);
    valAccuracy = accuracy(val!.y as Int32Array, pred);
    valMacroF1 = macroF1(val!.y as Int32Array, pred, k);
    valLoss = loss;
  };
  let net;
  if (CONVEX[head]) {
    // Scored on the validation split as fitted on the training part, then refitted on every labelled
    // example at the chosen C: the validation rows are not lost to the saved model.
    if (val) {
      const z = convexLogits(convex!, val.x, d);
      scoreVal(z, softmaxLoss(z, val.y as Int32Array, k));
      const xs = new Float32Array((train.n + val.n) * d);
      xs.set(train.x); xs.set(val.x, train.n * d);
      const ys = new Int32Array(train.n + val.n);
      ys.set(f.yTrain); ys.set(val.y as Int32Array, train.n);
      convex = { ...await fitConvexProbe(xs, ys, d, k, { ...convexOpts, Cs: [convex!.C] }), path: convex!.path, folds: convex!.folds, repeats: convex!.repeats, cvAccuracy: convex!.cvAccuracy, cvStd: convex!.cvStd };
    }
    net = linearHead({ inputDim: d, classes: k, seed, standardize: convex!.standardize });
    net.params.find((p) => p.name === 'linear.weight')!.value = convex!.weight;
    net.params.find((p) => p.name === 'linear.bias')!.value = convex!.bias;
    net.config = { ...net.config, solver: 'lbfgs', loss: lossKind, C: convex!.C, folds: convex!.folds, repeats: convex!.repeats, converged: convex!.converged, iterations: convex!.iterations, refit: train.n + (val?.n ?? 0), ...(o.classWeight ? { classWeight: o.classWeight } : {}) };
  } else {
    const standardize = fitStandardize(train.x, train.n, d);
    net = head === 'knn' ? knnHead(train.x, f.yTrain, d, k) : mlpHead({ inputDim: d, classes: k, seed, standardize, hidden: [256], dropout: 0.3 });
  }
  const early = new EarlyStopping({ monitor: val ? 'valLoss' : 'trainLoss', patience: 8 });
  const learner = new Learner({
    net, train, ...(val && !CONVEX[head] ? { val } : {}), batchSize: 32, seed, callbacks: [new ProgressBar(), early],
    ...(o.threads ? { threads: o.threads } : {}), optimizer: { kind: 'adamw', weightDecay: 0.01 },
  });
  if (head === 'mlp') await learner.fit(o.epochs ?? 40, { lr: o.lr ?? 3e-3, schedule: { kind: 'one-cycle' } });
  const trainAccuracy = CONVEX[head] ? convex!.trainAccuracy : (await learner.evaluate(train)).accuracy;
  if (val && !CONVEX[head]) {
    const ev = await learner.evaluate(val);
    scoreVal(ev.logits, ev.loss);
  }
  const knnCv = head === 'knn' && !val ? prototypeCv(train.x, f.yTrain, d, k, seed) : null;
  const cvAccuracy = knnCv?.accuracy ?? convex?.cvAccuracy ?? null;
  const cvStd = knnCv?.std ?? convex?.cvStd ?? null;
  let diagnosis: Diagnosis;
  if (CONVEX[head]) {
    diagnosis = diagnoseConvex({
      trainAccuracy, heldOut: valAccuracy ?? cvAccuracy, heldOutStd: valAccuracy === null ? cvStd : null, protocol: valAccuracy === null ? 'cv' : 'holdout',
      classes: k, nTrain: train.n, path: convex!.path, C: convex!.C, canFineTune: true,
    });
  } else {
    // kNN trains nothing: its one "epoch" is the prototypes as they are.
    const history = learner.history.length ? learner.history
      : [{ epoch: 0, trainLoss: (await learner.evaluate(train)).loss, lr: [0], seconds: 0, ...(valLoss !== undefined ? { valLoss, valAccuracy: valAccuracy! } : {}) }];
    diagnosis = diagnose({ history, trainAccuracy, valAccuracy, classes: k, nTrain: train.n, canFineTune: true });
  }
  if (warnings.length) diagnosis.evidence.push(...warnings.map((w) => `warning: ${w}`));
  let baseline: { kind: string; cvAccuracy: number } | null = null;
  if (o.baseline && cvAccuracy !== null) {
    const b = await fitConvexProbe(o.baseline.x, f.yTrain, o.baseline.d, k, { seed, ...(o.threads ? { threads: o.threads } : {}) });
    baseline = { kind: o.baseline.kind, cvAccuracy: b.cvAccuracy ?? b.trainAccuracy };
    diagnosis.evidence.push(`no-transfer baseline (${o.baseline.kind}): ${(100 * baseline.cvAccuracy).toFixed(1)}% cross-validated, against ${(100 * cvAccuracy).toFixed(1)}% with the backbone`);
    if (baseline.cvAccuracy >= cvAccuracy) {
      diagnosis.summary = `Negative transfer: a probe on ${o.baseline.kind} (${(100 * baseline.cvAccuracy).toFixed(1)}%) does at least as well as the pretrained features (${(100 * cvAccuracy).toFixed(1)}%). ${diagnosis.summary}`;
      diagnosis.advice.unshift('The backbone does not help on this data: train on the raw data, or try another backbone (graft rank compares them with the baseline).');
      log(`warning: negative transfer: ${o.baseline.kind} gives ${(100 * baseline.cvAccuracy).toFixed(1)}% cross-validated, the backbone ${(100 * cvAccuracy).toFixed(1)}%`);
    }
  }
  return { baseline, cut, cutScores, cutLogme: short.logme, head, trainAccuracy, valAccuracy, valMacroF1, diagnosis, learner, headConfig: net.config, protocol, cvAccuracy, cvStd, convex, warnings };
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
    training: {
      head: p.head, seed: o.seed ?? 0, cutScores: p.cutScores, cutLogme: p.cutLogme, protocol: p.protocol,
      ...(p.convex ? { solver: 'lbfgs', loss: p.convex.loss, C: p.convex.C, folds: p.convex.folds, repeats: p.convex.repeats, penaltyPath: p.convex.path.map(({ C, accuracy, std }) => ({ C, accuracy, std })), converged: p.convex.converged }
        : { epochs: o.epochs ?? 40, epochsRun: p.learner.history.length, lr: o.lr ?? 3e-3, optimizer: p.learner.opt.options }),
    },
    metrics: { trainAccuracy: p.trainAccuracy, valAccuracy: p.valAccuracy, valMacroF1: p.valMacroF1, cvAccuracy: p.cvAccuracy, cvStd: p.cvStd, baseline: p.baseline, nTrain: f.yTrain.length, nVal: f.yVal?.length ?? 0, ...o.extraMetrics },
    history: p.learner.history, diagnosis: p.diagnosis,
    provenance: { data: o.data, graft: GRAFT_VERSION, node: process.version, onnxruntime: ort.env.versions.node ?? 'unknown' },
  }, o.graph.toBytes(), o.extraFiles);
}
