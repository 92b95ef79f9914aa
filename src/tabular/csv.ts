/**
 * Tabular (numeric CSV) training, evaluation and prediction: the convex linear probe and the MLP. The
 * numeric-CSV entry of the task table (tasks/csv.ts) calls this; the public API is src/index.ts.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { GraftError } from '../errors.ts';
import { readNumericCsv, encodeLabels, checkClasses } from '../data/csv.ts';
import { stratifiedSplit, take } from '../data/split.ts';
import { accuracy, argmaxRows, macroF1 } from '../train/metrics.ts';
import { fitStandardize, linearHead, mlpHead } from '../heads/heads.ts';
import { Learner, type Dataset } from '../train/learner.ts';
import { Checkpoint, EarlyStopping, ProgressBar, type Callback } from '../train/callbacks.ts';
import type { ScheduleOptions } from '../train/schedules.ts';
import { crossEntropy } from '../train/losses.ts';
import { diagnose, diagnoseConvex, type Diagnosis } from '../train/diagnose.ts';
import type { EpochRecord } from '../train/callbacks.ts';
import type { Network } from '../train/network.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { chooseProtocol, type Protocol } from '../probe/fit.ts';
import { convexLogits, fitConvexProbe } from '../probe/convex.ts';
import { stratifiedFolds } from '../probe/heads.ts';
import { GRAFT_VERSION, loadModel, saveModel, sha256 } from '../model/folder.ts';
import * as ort from 'onnxruntime-node';

export interface TrainCsvOptions {
  train: string;
  out: string;
  head?: 'linear' | 'mlp';
  hidden?: number[];
  dropout?: number;
  val?: number;
  epochs?: number;
  lr?: number;
  batchSize?: number;
  seed?: number;
  weightDecay?: number;
  optimizer?: 'adamw' | 'sgd';
  schedule?: ScheduleOptions['kind'];
  labelSmoothing?: number;
  patience?: number;
  /** MLP: train again on every row for the chosen number of epochs (default true); false keeps the model that was validated. */
  refit?: boolean;
  /** Checkpoint file (default: beside the output folder); kept until the model is saved. */
  checkpoint?: string;
  resume?: boolean;
  threads?: number;
  /** Progress to stderr (TTY bar, or one line per epoch when `log` is set). */
  log?: (line: string) => void;
  callbacks?: Callback[];
}

export interface TrainResult {
  out: string;
  labels: string[];
  epochs: number;
  trainAccuracy: number;
  valAccuracy: number | null;
  valMacroF1: number | null;
  valLoss: number | null;
  seconds: number;
  stoppedEarly: boolean;
  diagnosis: Diagnosis;
  /** Cross-validated accuracy and spread (linear head; MLP under the small-data protocol). */
  cvAccuracy: number | null;
  cvStd: number | null;
  protocol: Protocol;
}

export async function trainCsv(o: TrainCsvOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const head = o.head ?? 'mlp';
  if (head !== 'linear' && head !== 'mlp') {
    throw new GraftError('E_BAD_OPTION', `unknown head "${head}"`, 'Use --head linear or --head mlp.');
  }
  if (o.val !== undefined && !(o.val >= 0 && o.val < 1)) throw new GraftError('E_BAD_OPTION', `--val must be in [0, 1), got ${o.val}`, 'Use e.g. --val 0.2, or 0 to train on everything.');
  const seed = o.seed ?? 0;
  const table = readNumericCsv(o.train);
  const { classes, y } = encodeLabels(table.labels!);
  checkClasses(classes, y);
  const d = table.d;
  const k = classes.length;
  const protocol = chooseProtocol(y, k, o.val);
  o.log?.(`protocol: ${protocol.reason}`);
  const subset = (idx: ArrayLike<number>): Dataset => ({ x: take(table.x, d, Int32Array.from(idx)), y: Int32Array.from(idx, (i) => y[i]!), n: idx.length });
  const all = Int32Array.from(y.keys());
  const card = (net: Network, training: Record<string, unknown>, metrics: Record<string, unknown>, history: EpochRecord[], diagnosis: Diagnosis) => ({
    createdAt: new Date().toISOString(), task: 'classification' as const, labels: classes,
    input: { name: 'input', kind: 'features' as const, columns: table.columns, shape: [d] },
    outputs: { probabilities: 'probabilities', logits: 'logits' }, backbone: null, head: net.config, training: { ...training, protocol }, metrics, history, diagnosis,
    provenance: {
      data: { path: o.train, sha256: sha256(readFileSync(o.train)) }, graft: GRAFT_VERSION, node: process.version,
      onnxruntime: ort.env.versions.node ?? 'unknown', platform: `${process.platform}-${process.arch}`,
    },
  });

  if (head === 'linear') {
    // The convex probe: C by k-fold cross-validation, refitted on every row; a --val split is still scored.
    const split = protocol.valFraction > 0 ? stratifiedSplit(y, protocol.valFraction, seed) : { train: all, val: new Int32Array(0) };
    const train = subset(split.train);
    const copts = { seed, ...(o.threads ? { threads: o.threads } : {}), ...(o.log ? { log: o.log } : {}) };
    const chosen = await fitConvexProbe(train.x, train.y as Int32Array, d, k, copts);
    let valAccuracy: number | null = null;
    let valMacroF1: number | null = null;
    let valLoss: number | null = null;
    if (split.val.length) {
      // Scored as fitted on the training part, then refitted on every row at the chosen C.
      const val = subset(split.val);
      const z = convexLogits(chosen, val.x, d);
      const pred = argmaxRows(Float32Array.from(z), k);
      valAccuracy = accuracy(val.y as Int32Array, pred);
      valMacroF1 = macroF1(val.y as Int32Array, pred, k);
    }
    const fit = split.val.length ? { ...await fitConvexProbe(table.x, y, d, k, { ...copts, Cs: [chosen.C] }), path: chosen.path, folds: chosen.folds, repeats: chosen.repeats, cvAccuracy: chosen.cvAccuracy, cvStd: chosen.cvStd } : chosen;
    const net = linearHead({ inputDim: d, classes: k, seed, standardize: fit.standardize });
    net.params[0]!.value = fit.weight;
    net.params[1]!.value = fit.bias;
    net.config = { ...net.config, solver: 'lbfgs', loss: fit.loss, C: fit.C, folds: fit.folds, repeats: fit.repeats, converged: fit.converged, iterations: fit.iterations };
    const learner = new Learner({ net, train, seed, ...(o.threads ? { threads: o.threads } : {}) });
    try {
      const diagnosis = diagnoseConvex({
        trainAccuracy: fit.trainAccuracy, heldOut: valAccuracy ?? fit.cvAccuracy, heldOutStd: valAccuracy === null ? fit.cvStd : null,
        protocol: valAccuracy === null ? 'cv' : 'holdout', classes: k, nTrain: train.n, path: fit.path, C: fit.C, canFineTune: false,
      });
      saveModel(o.out, card(net, { solver: 'lbfgs', loss: fit.loss, C: fit.C, folds: fit.folds, repeats: fit.repeats, penaltyPath: fit.path.map(({ C, accuracy: a, std }) => ({ C, accuracy: a, std })), seed, val: protocol.valFraction },
        { trainAccuracy: fit.trainAccuracy, valAccuracy, valMacroF1, cvAccuracy: fit.cvAccuracy, cvStd: fit.cvStd, nTrain: y.length, nVal: split.val.length, refit: y.length }, [], diagnosis), learner.exportOnnx('softmax'));
      return {
        out: o.out, labels: classes, epochs: 0, trainAccuracy: fit.trainAccuracy, valAccuracy, valMacroF1, valLoss, cvAccuracy: fit.cvAccuracy, cvStd: fit.cvStd, protocol,
        seconds: (performance.now() - t0) / 1000, stoppedEarly: false, diagnosis,
      };
    } finally {
      await learner.dispose();
    }
  }

  // The MLP: epochs chosen on held-out data (the validation split, or k folds under the small-data
  // protocol), then refitted on every row for that many epochs.
  const epochs = o.epochs ?? 30;
  const lr = o.lr ?? 1e-3;
  const bs = o.batchSize ?? 32;
  const ckpt = o.checkpoint ?? `${o.out.replace(/\/+$/, '')}.checkpoint`;
  const selectFile = `${ckpt}.select.json`;
  const refitCkpt = `${ckpt}.refit`;
  const makeNet = (train: Dataset) => mlpHead({ inputDim: d, classes: k, seed, standardize: fitStandardize(train.x, train.n, d), hidden: o.hidden ?? [256], dropout: o.dropout ?? 0.2 });
  const schedule: ScheduleOptions = { kind: o.schedule ?? 'one-cycle' } as ScheduleOptions;
  const makeLearner = (net: Network, train: Dataset, val: Dataset | undefined, callbacks: Callback[]) => new Learner({
    net, train, ...(val ? { val } : {}), batchSize: bs, seed, callbacks, ...(o.threads ? { threads: o.threads } : {}),
    loss: crossEntropy({ labelSmoothing: o.labelSmoothing ?? 0 }),
    optimizer: o.optimizer === 'sgd' ? { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay: o.weightDecay ?? 0 } : { kind: 'adamw', weightDecay: o.weightDecay ?? 0.01 },
  });
  const logCb = (stage: string): Callback[] => (o.log ? [{
    name: 'log', order: 95,
    afterEpoch: (l) => {
      const r = l.history.at(-1)!;
      o.log!(`${stage}epoch ${r.epoch + 1}/${l.progress.epochs} loss ${r.trainLoss.toFixed(4)}${r.valLoss !== undefined ? ` val_loss ${r.valLoss.toFixed(4)} val_acc ${r.valAccuracy!.toFixed(4)}` : ''}`);
    },
  }] : []);
  interface Selected { bestEpochs: number; trainAccuracy: number; valAccuracy: number | null; valMacroF1: number | null; valLoss: number | null; cvAccuracy: number | null; cvStd: number | null; nVal: number; history: EpochRecord[]; stoppedEarly: boolean }
  let sel: Selected | null = o.resume && existsSync(selectFile) && o.refit !== false ? JSON.parse(readFileSync(selectFile, 'utf8')) as Selected : null;
  let kept: { learner: Learner; net: Network; n: number } | null = null;
  if (!sel) {
    if (protocol.valFraction > 0) {
      const s = stratifiedSplit(y, protocol.valFraction, seed);
      const train = subset(s.train);
      const val = subset(s.val);
      const early = new EarlyStopping({ monitor: 'valLoss', patience: o.patience ?? 8 });
      const net = makeNet(train);
      const learner = makeLearner(net, train, val, [new ProgressBar(), early, new Checkpoint(ckpt), ...(o.callbacks ?? []), ...logCb('')]);
      let keep = false;
      try {
        if (o.resume && existsSync(ckpt)) learner.loadCheckpoint(ckpt);
        await learner.fit(epochs, { lr, schedule });
        const v = await learner.evaluate(val);
        const pred = argmaxRows(v.logits, k);
        sel = {
          bestEpochs: Math.max(1, early.bestEpoch + 1), trainAccuracy: (await learner.evaluate(train)).accuracy, valAccuracy: accuracy(val.y as Int32Array, pred),
          valMacroF1: macroF1(val.y as Int32Array, pred, k), valLoss: v.loss, cvAccuracy: null, cvStd: null, nVal: val.n, history: learner.history, stoppedEarly: early.stoppedEpoch >= 0,
        };
        if (o.refit === false) { kept = { learner, net, n: train.n }; keep = true; }
      } finally {
        if (!keep) await learner.dispose();
      }
    } else {
      // k folds (at most 3): the mean validation loss per epoch picks the epoch count.
      const minCount = Math.min(...Array.from({ length: k }, (_, c) => y.filter((v) => v === c).length));
      const nf = Math.min(3, minCount);
      if (nf < 2) {
        o.log?.(`warning: a class has ${minCount} example: the number of epochs cannot be cross-validated, so all ${epochs} run`);
        sel = { bestEpochs: epochs, trainAccuracy: NaN, valAccuracy: null, valMacroF1: null, valLoss: null, cvAccuracy: null, cvStd: null, nVal: 0, history: [], stoppedEarly: false };
      } else {
        const folds = stratifiedFolds(y, nf, seed);
        const losses = new Float64Array(epochs);
        const accs: number[][] = Array.from({ length: epochs }, () => []);
        for (let f = 0; f < nf; f++) {
          const train = subset(folds.filter((_, j) => j !== f).flatMap((a) => Array.from(a)));
          const val = subset(folds[f]!);
          const learner = makeLearner(makeNet(train), train, val, [...logCb(`fold ${f + 1}/${nf} `)]);
          try {
            await learner.fit(epochs, { lr, schedule });
            learner.history.forEach((r, e) => { losses[e] += r.valLoss! / nf; accs[e]!.push(r.valAccuracy!); });
          } finally {
            await learner.dispose();
          }
        }
        const best = losses.indexOf(Math.min(...losses));
        const m = accs[best]!.reduce((a, b) => a + b, 0) / nf;
        sel = {
          bestEpochs: best + 1, trainAccuracy: NaN, valAccuracy: null, valMacroF1: null, valLoss: null, cvAccuracy: m,
          cvStd: Math.sqrt(accs[best]!.reduce((a, b) => a + (b - m) ** 2, 0) / nf), nVal: 0, history: [], stoppedEarly: false,
        };
        o.log?.(`${nf}-fold cross-validation: ${sel.bestEpochs} epochs, accuracy ${(100 * m).toFixed(1)}% +- ${(100 * sel.cvStd!).toFixed(1)}`);
      }
    }
    if (!kept) {
      writeFileAtomic(selectFile, JSON.stringify(sel));
      rmSync(ckpt, { force: true });
    }
  }
  const save = (l: Learner, net: Network, s: Selected, trainAccuracy: number, nTrain: number, refitted: boolean): TrainResult => {
    // The curves that chose the epochs are the ones that say whether the MLP over- or underfits.
    const diagnosis = s.history.length ? diagnose({ history: s.history, trainAccuracy: s.trainAccuracy, valAccuracy: s.valAccuracy, classes: k, nTrain: nTrain - (refitted ? s.nVal : 0) })
      : diagnose({ history: l.history, trainAccuracy, valAccuracy: null, classes: k, nTrain });
    saveModel(o.out, card(net, {
      epochs, epochsRun: s.bestEpochs, ...(refitted ? { refit: { rows: nTrain, epochs: s.bestEpochs } } : {}), lr, batchSize: bs, seed, val: protocol.valFraction, optimizer: l.opt.options,
      schedule, loss: l.loss.config,
    }, { trainAccuracy, valAccuracy: s.valAccuracy, valMacroF1: s.valMacroF1, valLoss: s.valLoss, cvAccuracy: s.cvAccuracy, cvStd: s.cvStd, nTrain, nVal: s.nVal },
    s.history.length ? s.history : l.history, diagnosis), l.exportOnnx('softmax'));
    for (const f of [ckpt, refitCkpt, selectFile]) rmSync(f, { force: true });
    return {
      out: o.out, labels: classes, epochs: s.bestEpochs, trainAccuracy, valAccuracy: s.valAccuracy, valMacroF1: s.valMacroF1, valLoss: s.valLoss,
      cvAccuracy: s.cvAccuracy, cvStd: s.cvStd, protocol, seconds: (performance.now() - t0) / 1000, stoppedEarly: s.stoppedEarly, diagnosis,
    };
  };
  if (kept) {
    try { return save(kept.learner, kept.net, sel, sel.trainAccuracy, kept.n, false); } finally { await kept.learner.dispose(); }
  }
  const train = subset(all);
  const net = makeNet(train);
  const refit = makeLearner(net, train, undefined, [new ProgressBar(), new Checkpoint(refitCkpt), ...(o.callbacks ?? []), ...logCb('refit on all rows: ')]);
  try {
    if (o.resume && existsSync(refitCkpt)) refit.loadCheckpoint(refitCkpt);
    await refit.fit(sel.bestEpochs, { lr, schedule });
    return save(refit, net, sel, (await refit.evaluate(train)).accuracy, train.n, true);
  } finally {
    await refit.dispose();
  }
}

export interface EvalCsvResult { accuracy: number; macroF1: number; n: number }

/** Reads a CSV with the model's feature columns (and a label column for eval). */
async function readFor(dir: string, csv: string, requireLabel: boolean) {
  const model = await loadModel(dir);
  const table = readNumericCsv(csv, { requireLabel, featureColumns: model.card.input.columns });
  return { model, table };
}

export async function evalCsv(dir: string, csv: string): Promise<EvalCsvResult> {
  const { model, table } = await readFor(dir, csv, true);
  try {
    const { y } = encodeLabels(table.labels!, model.card.labels);
    const probs = await model.predict(table.x, table.n);
    const pred = argmaxRows(probs, model.card.labels.length);
    return { accuracy: accuracy(y, pred), macroF1: macroF1(y, pred, model.card.labels.length), n: table.n };
  } finally {
    await model.dispose();
  }
}

export interface Prediction { label: string; probabilities: Record<string, number> }

export async function predictCsv(dir: string, csv: string): Promise<Prediction[]> {
  const { model, table } = await readFor(dir, csv, false);
  try {
    const k = model.card.labels.length;
    const probs = await model.predict(table.x, table.n);
    const pred = argmaxRows(probs, k);
    return Array.from(pred, (c, i) => ({
      label: model.card.labels[c]!,
      probabilities: Object.fromEntries(model.card.labels.map((lab, j) => [lab, probs[i * k + j]!])),
    }));
  } finally {
    await model.dispose();
  }
}
