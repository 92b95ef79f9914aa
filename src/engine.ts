/**
 * graft's lower-level layer, for advanced users: the building blocks the verbs of src/index.ts are
 * made of. Build an ONNX training graph with `GraphBuilder` (or take a head from `linearHead`,
 * `mlpHead`, `smallCnn`), differentiate it with `gradients`, and train it on ONNX Runtime with a
 * `Learner` and its callbacks; `Session` runs any ONNX graph.
 *
 * This layer is less stable than src/index.ts: its signatures follow the engine's needs. Nothing in
 * it imports src/index.ts or the task table (src/tasks/).
 *
 * @example
 * ```ts
 * import { Learner, mlpHead, EarlyStopping } from 'graft/engine';
 * const learner = new Learner({ net: mlpHead({ inputDim: 64, classes: 10 }), train, val, callbacks: [new EarlyStopping()] });
 * await learner.fit(30, { lr: 3e-3, schedule: { kind: 'one-cycle' } });
 * ```
 * @packageDocumentation
 */

/** The training loop: one Learner over compiled ORT train and eval steps, with callbacks, groups, checkpoints. */
export { Learner, type LearnerOptions, type FitOptions, type Dataset, type EvalResult as LearnerEvalResult } from './train/learner.ts';
/** Callbacks around fit, epoch and batch (fastai style), and the built-in ones. */
export {
  type Callback, type Event as CallbackEvent, type EpochRecord, type EarlyStoppingOptions,
  CancelFit, CancelEpoch, CancelBatch, ProgressBar, EarlyStopping, Checkpoint,
} from './train/callbacks.ts';
/** The network contract a Learner trains: params, groups, and a forward pass written with the graph builder. */
export type { Network, Param, ForwardContext } from './train/network.ts';
/** Heads: linear and MLP over features (with baked-in standardisation), and a small CNN over images. */
export { linearHead, mlpHead, fitStandardize, type HeadOptions, type MlpOptions, type Standardize } from './heads/heads.ts';
/** A small convolutional network over images. */
export { smallCnn, type SmallCnnOptions } from './heads/cnn.ts';
/** Losses as ONNX subgraphs. */
export { crossEntropy, tokenCrossEntropy, binaryCrossEntropy, mse, type Loss, type CrossEntropyOptions } from './train/losses.ts';
/** Optimizers (SGD, AdamW) as ONNX update graphs. */
export { makeOptimizer, type OptimizerOptions, type Optimizer } from './train/optim.ts';
/** Learning-rate schedules. */
export { makeSchedule, type ScheduleOptions, type Schedule } from './train/schedules.ts';
/** The learning-rate finder (loss against a swept rate). */
export { lrFind, type LrFindOptions, type LrFindResult } from './train/lrfind.ts';
/** Classification metrics. */
export { accuracy, macroF1, argmaxRows, confusionMatrix, perClass, type ClassScores } from './train/metrics.ts';
/** Fine-tuning policies: discriminative rates, staged unfreezing. */
export { planStages, discriminativeLrs, StageTracker, type PolicyKind, type PolicyOptions, type Stage } from './train/policies.ts';
/** The ONNX graph IR (read, edit, serialise) and the typed graph builder. */
export { Graph, type Node, type ValueInfo } from './graph/ir.ts';
/** The typed graph builder: ONNX ops with shape inference. */
export { GraphBuilder, type Sym, type OpOptions } from './graph/builder.ts';
/** Reverse-mode autodiff over an ONNX graph: the backward nodes, as ONNX. */
export { gradients, type GradientOptions } from './graph/autodiff.ts';
/** An ONNX Runtime session over graft's graphs and typed tensors. */
export { Session, type SessionOptions, defaultThreads } from './runtime/session.ts';
/** The run context the public API sets (abort signal, progress): lets engine code check and report the same way. */
export { checkAborted, reportProgress, withRun, type RunContext, type ProgressEvent } from './context.ts';
/** Every failure is a GraftError with a stable code and a hint. */
export { GraftError, isGraftError, type ErrorCode } from './errors.ts';
/** Backbones as trainable networks: an image backbone, or a sequence one (an LSTM/GRU encoder in an ONNX file), its layer groups, and the network a Learner fine-tunes. */
export { loadImageBackbone, type ImageBackbone } from './backbones/image.ts';
export { loadSequenceBackbone, type SequenceBackbone, type SequenceBackboneOptions } from './backbones/sequence.ts';
export { backboneNetwork, backboneGroups, type BackboneNetOptions, type BackboneNetwork, type BackboneGroup, type TrainableBackbone } from './backbones/trainable.ts';
/** Domain adaptation on features (source labelled, target unlabelled): per-domain standardisation, CORAL, self-training; and how far apart two domains are. */
export { adaptFeatures, adaptedLogits, reverseAccuracy, ADAPT_METHODS, type AdaptData, type AdaptFit, type AdaptMethod, type AdaptChoice, type AdaptOptions } from './adapt/features.ts';
export { measureShift, type ShiftReport } from './adapt/shift.ts';
export { fitDann, dannLogits, type DannFit, type DannOptions } from './adapt/dann.ts';
