/**
 * The task table's contract: what one entry (numeric CSV, images, audio, text classification,
 * sentence pairs, NER) provides, and the option and result types the public API (src/index.ts) shares
 * with it. Adding a task is adding an entry that implements `Task` to tasks/table.ts.
 */
import type { ProgressEvent } from '../context.ts';
import type { LoadedModel, ModelCard } from '../model/folder.ts';
import type { HeadKind } from '../probe/fit.ts';
import type { TrainResult as TrainCsvResult, Prediction } from '../tabular/csv.ts';
import type { TrainImagesResult } from '../probe/images.ts';
import type { TrainAudioResult } from '../probe/audio.ts';
import type { TrainTextResult } from '../probe/text.ts';
import type { FineTuneImagesResult } from '../finetune/images.ts';
import type { FineTuneTextResult, TextEntities, TextTask } from '../finetune/text.ts';
import type { NerReport } from '../text/ner.ts';
import type { RankResult } from '../rank/rank.ts';
import type { EvalResult as ReportEvalResult } from './evalkit.ts';

/** The entries of the task table. */
export type TaskId = 'csv' | 'images' | 'audio' | 'text' | 'pair' | 'ner';

/** How to train: a head on frozen features (probe), the backbone too (finetune, gradual), or few-shot text (setfit). */
export type Mode = 'probe' | 'finetune' | 'gradual' | 'setfit';

export type { TextTask, HeadKind };

/** Options every verb takes: progress, cancellation, threads. */
export interface RunOptions {
  /** Progress lines, as the CLI prints them to stderr (warnings start with "warning:"). */
  log?: (line: string) => void;
  /** Structured progress: phases, epochs, and every log line. */
  onProgress?: (event: ProgressEvent) => void;
  /** Aborting it stops the run at the next check (before each phase, between batches) with GraftError E_ABORTED. */
  signal?: AbortSignal;
  /** Draw a progress bar on stderr when stderr is a terminal (default false: the library writes nothing itself). */
  progressBar?: boolean;
  /** ORT intra-op threads (default: GRAFT_THREADS, else the machine's cores). */
  threads?: number;
}

/** Options of `train()` and `fineTune()`. Each entry uses the ones that apply to its data and ignores the rest. */
export interface TrainOptions extends RunOptions {
  /** The model folder to write (default "graft-model"). */
  out?: string;
  /** Default: probe, or finetune for the pair and ner text tasks. */
  mode?: Mode;
  /** Text data only: classify (default), pair (text,text_pair,label) or ner (CoNLL or JSONL tokens/tags). */
  task?: TextTask;
  /** Images: a registry id, an .onnx file or a hub id; text: use-lite, glove-100d or an encoder; numeric CSV: "none". */
  backbone?: string;
  /** The layer (images) or the pooling (text: mean, sif, cls) the head reads; default: chosen by cross-validation. */
  cut?: string;
  /** Probe head (default linear; MLP for numeric CSV); fine-tuning takes linear or mlp. */
  head?: HeadKind;
  /** balanced weighs each class n / (k n_c) in the convex probes. */
  classWeight?: 'balanced' | 'none';
  /** Validation fraction; default by the small-data protocol. */
  val?: number;
  epochs?: number;
  lr?: number;
  seed?: number;
  batchSize?: number;
  /** Use the feature cache (default true). */
  cache?: boolean;
  /** Numeric-CSV MLP: hidden layer widths (default [256]). */
  hidden?: number[];
  dropout?: number;
  weightDecay?: number;
  optimizer?: 'adamw' | 'sgd';
  schedule?: 'one-cycle' | 'cosine' | 'constant';
  labelSmoothing?: number;
  /** Early-stopping patience in epochs. */
  patience?: number;
  /** Checkpoint file (default: beside the output folder). */
  checkpoint?: string;
  /** Continue from the checkpoint of a killed (or aborted) run. */
  resume?: boolean;
  /** Fine-tuning: train the top N layer groups (plus the head). */
  unfreeze?: number;
  /** Fine-tuning: each group down trains at lr * lrMult. */
  lrMult?: number;
  /** Fine-tuning: head-only epochs before unfreezing. */
  freezeEpochs?: number;
  /** Image fine-tuning: L2-SP strength (pull toward the pretrained weights). */
  l2sp?: number;
  /** Image fine-tuning: mixup alpha. */
  mixup?: number;
  /** Image fine-tuning: augment (default: below 100 images per class). */
  augment?: boolean;
  /** Image fine-tuning: BatchNorm statistics frozen (default) or trained. */
  bn?: 'frozen' | 'train';
  /** Image fine-tuning: the square input size. */
  size?: number;
  /** Image fine-tuning: save the probe instead when it scores higher on validation (default true). */
  probeFallback?: boolean;
  /** Text fine-tuning: warm-up fraction of each unfrozen stage. */
  warmup?: number;
  /** Text encoders: a lower token limit than the encoder's own. */
  maxLength?: number;
  /** Sentence pairs: the second text's column (default text_pair). */
  pairColumn?: string;
  /** NER: a separate validation file instead of a split. */
  valData?: string;
}

/** Numeric-CSV training's result (the convex probe or the MLP). */
export type { TrainCsvResult };

/** What each trainer returns, by the trainer's name. */
export interface TrainerResults {
  tabular: TrainCsvResult;
  'image-probe': TrainImagesResult;
  'image-finetune': FineTuneImagesResult;
  'audio-probe': TrainAudioResult & { cut: string };
  'text-probe': TrainTextResult;
  'text-finetune': FineTuneTextResult;
}

/** The trainers a task entry can run. */
export type Trainer = keyof TrainerResults;

/**
 * What `train()` will do with the data and options, decided before anything long runs; `run()` does it.
 * `trainer` tells the result's type.
 */
export type TrainPlan = { [K in Trainer]: { task: TaskId; trainer: K; mode: Mode; run(): Promise<TrainerResults[K]> } }[Trainer];

/** The result of any training run. */
export type TrainResult = TrainerResults[Trainer];

/** Accuracy and macro-F1 on labelled data. */
export interface EvalScores { accuracy: number; macroF1: number; n: number }

/** A NER model's entity-level scores (seqeval's rules) over `n` sentences. */
export type NerEvalResult = NerReport & { n: number };

/** The result of `evaluate()`: accuracy and macro-F1, or entity scores for NER models. */
export type EvaluateResult = EvalScores | NerEvalResult;

export type { Prediction, TextEntities };

/** A prediction for one file (an image or a clip). */
export interface FilePrediction extends Prediction { path: string }

/** The result of `predict()`: one prediction per input, tagged with the task of the model. */
export type PredictResult =
  | { task: 'csv' | 'text' | 'pair'; predictions: Prediction[] }
  | { task: 'images' | 'audio'; predictions: FilePrediction[] }
  | { task: 'ner'; predictions: TextEntities[] };

/**
 * What to predict: a path (a CSV or JSONL file, an image, a folder of images or clips), a list of
 * image or clip files, texts (and second texts, for pair models), rows of numeric features by column,
 * or `{ images }`: encoded image bytes (PNG, JPEG, WebP, GIF) in memory, for image models, decoded as
 * files are (same preprocessing and pixel limit) but strictly: an unreadable image fails the call.
 */
export type PredictInput =
  | string
  | readonly string[]
  | { texts: readonly string[]; pairs?: readonly string[] }
  | { rows: readonly Record<string, number>[] }
  | { images: readonly Uint8Array[] };

/** The data a report evaluates on: the --data option, or what graft.json records. */
export interface ReportData { data: string; origin: 'option' | 'model card'; fromCard: boolean }

/** What a report's evaluation needs from an entry. */
export interface ReportContext {
  dir: string;
  card: ModelCard;
  chosen: ReportData;
  /** How many confidently wrong examples to keep. */
  worst: number;
  log?: (line: string) => void;
}

/** Options of `rank()`. */
export interface RankOptions extends RunOptions {
  /** Backbones to compare (default: every one of the data's modality). */
  backbones?: string[];
  /** Candidates per backbone probed by k-fold cross-validation (default 3). */
  top?: number;
  seed?: number;
  /** Use the feature cache (default true). */
  cache?: boolean;
}

/** Options of `embed()`. */
export interface EmbedOptions extends RunOptions {
  /** The safetensors file to write. */
  out: string;
  /** Image backbone (default mobilenet_v2). */
  backbone?: string;
  /** The layer to export (default: the backbone's default cut). */
  cut?: string;
  /** Use the feature cache (default true). */
  cache?: boolean;
}

/** What `embed()` wrote. */
export interface EmbedResult {
  out: string;
  /** Rows written (unreadable files are skipped). */
  n: number;
  dim: number;
  /** Whether the file has labels (a folder of class folders) or only file names. */
  labelled: boolean;
  cacheHits: number;
  skipped: number;
  seconds: number;
}

/** One entry of the task table. */
export interface Task {
  readonly id: TaskId;
  /** What data the entry takes, in words. */
  readonly description: string;
  /**
   * Among entries that detect the same data (the text tasks), the `task` option value that picks this
   * one; 'classify' for the others.
   */
  readonly textTask: TextTask;
  /** Whether the data at `path` is of this entry's kind. */
  detect(path: string): boolean;
  /** Whether a model folder (its graft.json) was trained by this entry. */
  owns(card: ModelCard): boolean;
  /** The training run for this data and options; validates the options first (GraftError E_BAD_OPTION). */
  train(data: string, o: TrainOptions, mode: Mode): TrainPlan;
  evaluate(dir: string, data: string, o: RunOptions): Promise<EvaluateResult>;
  /** `o.model`: the model folder already loaded (a Predictor's), reused instead of loading it again where the entry can. */
  predict(dir: string, input: PredictInput, o: RunOptions & { model?: LoadedModel }): Promise<PredictResult>;
  /** The confusion matrix, per-class scores and worst examples for `graft report`. */
  report(ctx: ReportContext): Promise<ReportEvalResult>;
  /** Backbone x cut ranking without training, when the entry has one. */
  rank?(data: string, o: RankOptions): Promise<RankResult>;
  /** Features of the data at a backbone's layer, written as safetensors, when the entry has an embedder. */
  embed?(data: string | readonly string[], o: EmbedOptions): Promise<EmbedResult>;
}
