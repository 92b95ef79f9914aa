/**
 * The public API for tabular (numeric CSV) training, evaluation and prediction. The CLI calls only
 * this; so can any UI.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { GraftError } from './errors.ts';
import { readNumericCsv, encodeLabels, checkClasses } from './data/csv.ts';
import { stratifiedSplit, take } from './data/split.ts';
import { accuracy, argmaxRows, macroF1 } from './train/metrics.ts';
import { fitStandardize, linearHead, mlpHead } from './heads/heads.ts';
import { Learner, type Dataset } from './train/learner.ts';
import { Checkpoint, EarlyStopping, ProgressBar, type Callback } from './train/callbacks.ts';
import type { ScheduleOptions } from './train/schedules.ts';
import { crossEntropy } from './train/losses.ts';
import { diagnose, type Diagnosis } from './train/diagnose.ts';
import { GRAFT_VERSION, loadModel, saveModel, sha256 } from './model/folder.ts';
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
}

export async function trainCsv(o: TrainCsvOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const head = o.head ?? 'mlp';
  if (head !== 'linear' && head !== 'mlp') {
    throw new GraftError('E_BAD_OPTION', `unknown head "${head}"`, 'Use --head linear or --head mlp.');
  }
  const valFrac = o.val ?? 0.2;
  if (!(valFrac >= 0 && valFrac < 1)) throw new GraftError('E_BAD_OPTION', `--val must be in [0, 1), got ${valFrac}`, 'Use e.g. --val 0.2, or 0 to train on everything.');
  const seed = o.seed ?? 0;
  const table = readNumericCsv(o.train);
  const { classes, y } = encodeLabels(table.labels!);
  checkClasses(classes, y);
  const d = table.d;
  let trainIdx: Int32Array;
  let valIdx: Int32Array | null = null;
  if (valFrac > 0) {
    const s = stratifiedSplit(y, valFrac, seed);
    trainIdx = s.train;
    valIdx = s.val.length ? s.val : null;
  } else {
    trainIdx = Int32Array.from(y.keys());
  }
  const subset = (idx: Int32Array): Dataset => ({ x: take(table.x, d, idx), y: Int32Array.from(idx, (i) => y[i]!), n: idx.length });
  const train = subset(trainIdx);
  const val = valIdx ? subset(valIdx) : undefined;
  const standardize = fitStandardize(train.x, train.n, d);
  const net = head === 'linear'
    ? linearHead({ inputDim: d, classes: classes.length, seed, standardize })
    : mlpHead({ inputDim: d, classes: classes.length, seed, standardize, hidden: o.hidden ?? [256], dropout: o.dropout ?? 0.2 });
  const epochs = o.epochs ?? 30;
  const lr = o.lr ?? 1e-3;
  const bs = o.batchSize ?? 32;
  const ckpt = o.checkpoint ?? `${o.out.replace(/\/+$/, '')}.checkpoint`;
  const early = new EarlyStopping({ monitor: val ? 'valLoss' : 'trainLoss', patience: o.patience ?? 8 });
  const callbacks: Callback[] = [new ProgressBar(), early, new Checkpoint(ckpt), ...(o.callbacks ?? [])];
  if (o.log) {
    const log = o.log;
    callbacks.push({
      name: 'log', order: 95,
      afterEpoch: (l) => {
        const r = l.history.at(-1)!;
        log(`epoch ${r.epoch + 1}/${epochs} loss ${r.trainLoss.toFixed(4)}${r.valLoss !== undefined ? ` val_loss ${r.valLoss.toFixed(4)} val_acc ${r.valAccuracy!.toFixed(4)}` : ''}`);
      },
    });
  }
  const learner = new Learner({
    net, train, ...(val ? { val } : {}), batchSize: bs, seed, callbacks, ...(o.threads ? { threads: o.threads } : {}),
    loss: crossEntropy({ labelSmoothing: o.labelSmoothing ?? 0 }),
    optimizer: o.optimizer === 'sgd' ? { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay: o.weightDecay ?? 0 } : { kind: 'adamw', weightDecay: o.weightDecay ?? 0.01 },
  });
  try {
    if (o.resume && existsSync(ckpt)) learner.loadCheckpoint(ckpt);
    const schedule: ScheduleOptions = { kind: o.schedule ?? 'one-cycle' } as ScheduleOptions;
    await learner.fit(epochs, { lr, schedule });
    const tr = await learner.evaluate(train);
    const trainAccuracy = tr.accuracy;
    let valAccuracy: number | null = null;
    let valMacroF1: number | null = null;
    let valLoss: number | null = null;
    if (val) {
      const v = await learner.evaluate(val);
      const pred = argmaxRows(v.logits, classes.length);
      valAccuracy = accuracy(val.y as Int32Array, pred);
      valMacroF1 = macroF1(val.y as Int32Array, pred, classes.length);
      valLoss = v.loss;
    }
    const diagnosis = diagnose({ history: learner.history, trainAccuracy, valAccuracy, classes: classes.length, nTrain: train.n });
    const onnx = learner.exportOnnx('softmax');
    saveModel(o.out, {
      createdAt: new Date().toISOString(),
      task: 'classification',
      labels: classes,
      input: { name: 'input', kind: 'features', columns: table.columns, shape: [d] },
      outputs: { probabilities: 'probabilities', logits: 'logits' },
      backbone: null,
      head: net.config,
      training: {
        epochs, epochsRun: learner.history.length, lr, batchSize: bs, seed, val: valFrac, optimizer: learner.opt.options,
        schedule, loss: learner.loss.config, earlyStopping: { monitor: early.monitor, patience: early.patience, bestEpoch: early.bestEpoch },
      },
      metrics: { trainAccuracy, valAccuracy, valMacroF1, valLoss, nTrain: train.n, nVal: val?.n ?? 0 },
      history: learner.history,
      diagnosis,
      provenance: {
        data: { path: o.train, sha256: sha256(readFileSync(o.train)) }, graft: GRAFT_VERSION, node: process.version,
        onnxruntime: ort.env.versions.node ?? 'unknown', platform: `${process.platform}-${process.arch}`,
      },
    }, onnx);
    rmSync(ckpt, { force: true });
    return {
      out: o.out, labels: classes, epochs: learner.history.length, trainAccuracy, valAccuracy, valMacroF1, valLoss,
      seconds: (performance.now() - t0) / 1000, stoppedEarly: early.stoppedEpoch >= 0, diagnosis,
    };
  } finally {
    await learner.dispose();
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
