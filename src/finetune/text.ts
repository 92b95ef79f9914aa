/**
 * Fine-tuning transfer for text: a BERT-family ONNX encoder (backbones/textenc.ts) trains its own layers
 * under a policy from train/policies (finetune: the head first, then the layers with layer-wise decayed
 * rates and linear warm-up and decay; gradual: one more layer per epoch, ULMFiT; probe: the head only),
 * for three tasks:
 *  - classify: one text per row (CSV/JSONL `text`, `label`), a head on the pooled hidden state;
 *  - pair: two texts per row (`text`, `text_pair`), encoded as one sequence with the tokenizer's
 *    separators and segment ids (sentence-pair classification, e.g. entailment or duplicate questions);
 *  - ner: CoNLL (or JSONL tokens/tags) sentences, a head on every token; each word's first sub-token
 *    carries its tag, the rest are ignored by the loss; scored by entity-level F1 (seqeval's rules).
 * `--mode setfit` (classify) replaces the policy with SetFit (text/setfit.ts). Training batches are
 * length-bucketed (Learner, Dataset.lengths) up to the 95th percentile of the training lengths.
 * The saved model.onnx is one graph from token ids to probabilities ([batch, classes], or per token
 * [batch, sequence, tags]) with the tokenizer files beside it; predict pads per batch, sorted by length.
 */
import { existsSync, rmSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { GraftError } from '../errors.ts';
import {
  TOKENIZER_FILES, type TextEncoder, type TextPooling, type TokenInputs, type TokenPreprocess, type Tokenized, TextTokenizer, folderTokenizer, isTextEncoder,
  embedTexts, loadTextEncoder, runTokens, tokenBatches, warnTruncated,
} from '../backbones/textenc.ts';
import { readTextTable } from '../data/text.ts';
import { checkClasses, encodeLabels } from '../data/csv.ts';
import { stratifiedSplit } from '../data/split.ts';
import { type ConllSentence, readConll } from '../data/conll.ts';
import { type EncoderNetwork, encoderModelGraph, encoderNetwork, tokenRows } from '../text/encoder-net.ts';
import { type NerReport, type TextEntity, alignTags, encodeTags, entitiesInText, nerScores, wordTagsFromTokens, wordTokenize } from '../text/ner.ts';
import { Learner, type Dataset, shuffled } from '../train/learner.ts';
import { Checkpoint, EarlyStopping, ProgressBar, type Callback } from '../train/callbacks.ts';
import { crossEntropy, tokenCrossEntropy, tokenTargets } from '../train/losses.ts';
import { type FineTuneResult, type PolicyKind, type StagesResult, StageTracker, discriminativeLrs, fineTuneBeatsProbe, perExampleLossFromLogits, planStages, runStages } from '../train/policies.ts';
import { lrFind } from '../train/lrfind.ts';
import { fitConvexProbe, foldStandardize } from '../probe/convex.ts';
import { trainText } from '../probe/text.ts';
import { setFit } from '../text/setfit.ts';
import { diagnose } from '../train/diagnose.ts';
import { accuracy, argmaxRows, macroF1 } from '../train/metrics.ts';
import { GRAFT_VERSION, type LoadedModel, loadModel, readCard, saveModel, sha256 } from '../model/folder.ts';
import { Session } from '../runtime/session.ts';

export type TextTask = 'classify' | 'pair' | 'ner';
export const TEXT_TASKS: readonly TextTask[] = ['classify', 'pair', 'ner'];

export interface FineTuneTextOptions {
  data: string;
  out: string;
  /** A text encoder: model folder, .onnx file or hub id. */
  backbone: string;
  task?: TextTask;
  /** A policy, or 'setfit' (few-shot classification: contrastive pairs, then a head; see text/setfit.ts). */
  mode?: PolicyKind | 'setfit';
  /** setfit: pair rounds over the examples (default 20). */
  iterations?: number;
  /** Train only the top N encoder groups (plus the head). */
  unfreeze?: number;
  epochs?: number;
  /** Head-only epochs before unfreezing (finetune; default 2). */
  freezeEpochs?: number;
  /** Rate of the head (top group) in the unfrozen stages (default 1e-4); each group down gets lr * lrMult. */
  lr?: number;
  /** Rate of the head-only stage (default 3e-3). */
  headLr?: number;
  /** Layer-wise decay of the rate per group down (default 0.9). */
  lrMult?: number;
  /** Linear warm-up over this fraction of each unfrozen stage's steps, then linear decay to 0 (default 0.1). */
  warmup?: number;
  pooling?: TextPooling;
  /** A lower token limit than the encoder's own. */
  maxLength?: number;
  /** Tokens per training example (default: the 95th percentile of the training lengths). */
  seqLen?: number;
  batchSize?: number;
  val?: number;
  /** NER: a separate validation file (CoNLL/JSONL) instead of a split. */
  valData?: string;
  /** pair: the column or field of the second text (default text_pair). */
  pairColumn?: string;
  dropout?: number;
  weightDecay?: number;
  labelSmoothing?: number;
  patience?: number;
  seed?: number;
  threads?: number;
  checkpoint?: string;
  resume?: boolean;
  /**
   * LP-FT classification: when fine-tuning does not lower the validation loss without lowering the
   * validation accuracy, save the default probe (`graft train` on the same encoder) instead (default true).
   */
  probeFallback?: boolean;
  log?: (line: string) => void;
}

export interface FineTuneTextResult extends FineTuneResult {
  task: TextTask;
  seqLen: number;
  trainAccuracy: number | null;
  /** NER: entity-level scores on the validation sentences. */
  ner: NerReport | null;
  truncated: number;
  nTrain: number;
  nVal: number;
}

interface Examples {
  tok: Tokenized;
  /** classify: the texts themselves (for the probe the fine-tune starts from). */
  texts?: string[];
  /** classify/pair: class per example; ner: label id per token (IGNORE_INDEX where ignored). */
  y: Int32Array | Int32Array[];
  /** ner: word ids per token and the gold word tags. */
  wordIds?: (number | null)[][];
  sentences?: ConllSentence[];
}

interface Prepared {
  enc: TextEncoder;
  labels: string[];
  train: Examples;
  val: Examples | null;
  truncated: number;
}

const pick = <T>(a: readonly T[], idx: ArrayLike<number>): T[] => Array.from(idx as ArrayLike<number>, (i) => a[i]!);

function nerExamples(tok: TextTokenizer, sentences: ConllSentence[], labels: string[]): Examples & { truncated: number } {
  const ids: Int32Array[] = [];
  const typeIds: Int32Array[] = [];
  const y: Int32Array[] = [];
  const wordIds: (number | null)[][] = [];
  let truncated = 0;
  const cut = new Uint8Array(sentences.length);
  sentences.forEach((s, i) => {
    const e = tok.encodeWords(s.tokens);
    if (e.truncated) { truncated++; cut[i] = 1; }
    ids.push(e.ids);
    typeIds.push(e.typeIds);
    wordIds.push(e.wordIds);
    y.push(encodeTags(alignTags(e.wordIds, s.tags), labels));
  });
  return { tok: { ids, typeIds, truncated, cut }, y, wordIds, sentences, truncated };
}

async function prepare(o: FineTuneTextOptions, task: TextTask, log: (s: string) => void): Promise<Prepared> {
  if (!isTextEncoder(o.backbone)) {
    throw new GraftError('E_BAD_OPTION', `fine-tuning text needs a transformer encoder; ${o.backbone} is not one (a model folder, an .onnx file or a hub id owner/name)`,
      'Word vectors (glove-100d) have no layers to fine-tune: train them with --mode probe, or pass a BERT-family encoder with --backbone.');
  }
  const enc = await loadTextEncoder(o.backbone, o.maxLength ? { maxLength: o.maxLength } : {});
  const tok = enc.tokenizer;
  log(`text encoder ${o.backbone}: hidden ${enc.hidden}, ${tok.vocabSize} tokens, up to ${tok.maxLength} tokens per example`);
  const seed = o.seed ?? 0;
  const frac = o.val ?? 0.2;
  if (task === 'ner') {
    const data = readConll(o.data, { log });
    const valFile = o.valData ? readConll(o.valData, { log }) : null;
    // Tags of the validation file that training never saw cannot be predicted: they join the label set.
    const labels = valFile ? [...new Set([...data.labels, ...valFile.labels])].sort((a, b) => (a === 'O' ? -1 : b === 'O' ? 1 : a < b ? -1 : a > b ? 1 : 0)) : data.labels;
    let trainS = data.sentences;
    let valS: ConllSentence[] = valFile?.sentences ?? [];
    if (!valFile && frac > 0) {
      const order = shuffled(trainS.length, seed);
      const nVal = Math.min(trainS.length - 1, Math.round(trainS.length * frac));
      valS = pick(trainS, order.subarray(0, nVal));
      trainS = pick(trainS, order.subarray(nVal));
    }
    if (!trainS.length) throw new GraftError('E_CSV_EMPTY', `${o.data} holds no sentences to train on`, 'Add sentences (one token and tag per line, blank lines between sentences).');
    const train = nerExamples(tok, trainS, labels);
    const val = valS.length ? nerExamples(tok, valS, labels) : null;
    const truncated = train.truncated + (val?.truncated ?? 0);
    if (truncated) log(`warning: ${truncated} sentence(s) had more than ${tok.maxLength} tokens; their last words were cut and are predicted O`);
    return { enc, labels, train, val, truncated };
  }
  const table = readTextTable(o.data);
  const { classes, y } = encodeLabels(table.labels!);
  checkClasses(classes, y);
  let tokd: Tokenized;
  if (task === 'pair') {
    const col = o.pairColumn ?? 'text_pair';
    const second = readTextTable(o.data, { textColumn: col }).texts;
    tokd = tok.encodePairs(table.texts, second);
  } else {
    tokd = tok.encode(table.texts);
  }
  warnTruncated(tokd.truncated, table.texts.length, tok.maxLength, log, o.backbone);
  const split = frac > 0 ? stratifiedSplit(y, frac, seed) : { train: Int32Array.from(y.keys()), val: new Int32Array(0) };
  const sub = (idx: Int32Array): Examples => ({
    tok: { ids: pick(tokd.ids, idx), typeIds: pick(tokd.typeIds, idx), truncated: 0, cut: new Uint8Array(idx.length) },
    y: Int32Array.from(idx, (i) => y[i]!),
    ...(task === 'classify' ? { texts: pick(table.texts, idx) } : {}),
  });
  return { enc, labels: classes, train: sub(split.train), val: split.val.length ? sub(split.val) : null, truncated: tokd.truncated };
}

/**
 * The training length: the 95th percentile of the training examples' token counts, rounded up to a
 * multiple of 8 (at most the encoder's limit), so a few long examples do not pad every batch; longer
 * examples are cut for training only (the saved model reads up to the encoder's limit, padded per batch).
 */
function sequenceLength(p: Prepared, fixed: number | undefined, log: (s: string) => void): number {
  const max = p.enc.tokenizer.maxLength;
  if (fixed !== undefined) {
    if (!(Number.isInteger(fixed) && fixed >= 2 && fixed <= max)) throw new GraftError('E_BAD_OPTION', `--seq-len must be an integer from 2 to ${max}, got ${fixed}`, 'Leave it out to use the 95th percentile of the training lengths.');
    return fixed;
  }
  const lens = p.train.tok.ids.map((ids) => ids.length).sort((a, b) => a - b);
  const q = lens[Math.min(lens.length - 1, Math.floor(lens.length * 0.95))] ?? 1;
  const L = Math.min(max, Math.ceil(q / 8) * 8);
  const over = lens.filter((n) => n > L).length;
  if (over) log(`training length ${L} tokens (95th percentile): ${over} longer training example(s) are cut to it for training; predictions read up to ${max}`);
  return L;
}

function dataset(e: Examples, net: EncoderNetwork, padId: number, task: TextTask, k: number): Dataset {
  const L = net.inputShape[1]!;
  const x = tokenRows(e.tok, L, net.rows, padId);
  const n = e.tok.ids.length;
  const lengths = Int32Array.from(e.tok.ids, (ids) => Math.max(1, Math.min(L, ids.length)));
  return { x, y: task === 'ner' ? tokenTargets(e.y as Int32Array[], L, k) : (e.y as Int32Array), n, lengths };
}

/** Word tags of one text from its per-token probabilities [tokens, k]: each word takes its first token's tag. */
function wordTagsOf(p: Float32Array, wordIds: (number | null)[], nWords: number, labels: string[]): string[] {
  const k = labels.length;
  const tags = wordIds.map((_, j) => {
    let best = 0;
    for (let c = 1; c < k; c++) if (p[j * k + c]! > p[j * k + best]!) best = c;
    return labels[best]!;
  });
  return wordTagsFromTokens(wordIds, tags, nWords);
}

/** Steps a default LP-FT text fine-tune aims for, within TEXT_EPOCHS epochs, and the lr finder's clamp. */
export const TEXT_STEP_BUDGET = 200;
export const TEXT_EPOCHS: [number, number] = [2, 10];
export const TEXT_LR_RANGE: [number, number] = [1e-5, 3e-4];

/**
 * The convex probe on the frozen encoder's pooled embeddings of the training texts, for each pooling
 * (or the one asked for); the best by cross-validated accuracy, standardisation folded into the weights.
 */
async function probeHead(p: Prepared, k: number, o: FineTuneTextOptions, log: (s: string) => void) {
  const ways: TextPooling[] = o.pooling ? [o.pooling] : ['cls', 'mean'];
  const emb = await embedTexts(p.enc, p.train.texts!, ways, { ...(o.threads ? { threads: o.threads } : {}) });
  const d = emb.dim;
  let best: { pooling: TextPooling; fit: Awaited<ReturnType<typeof fitConvexProbe>> } | null = null;
  for (const w of ways) {
    const fit = await fitConvexProbe(emb.features.get(w)!, p.train.y as Int32Array, d, k, { seed: o.seed ?? 0, ...(o.threads ? { threads: o.threads } : {}) });
    if (!best || (fit.cvAccuracy ?? 0) > (best.fit.cvAccuracy ?? 0)) best = { pooling: w, fit };
  }
  const { fit, pooling } = best!;
  const { weight, bias } = foldStandardize(fit);
  log(`head: the convex probe on ${pooling}-pooled embeddings (C = ${fit.C.toPrecision(2)}, cross-validated accuracy ${fit.cvAccuracy !== null ? (100 * fit.cvAccuracy).toFixed(1) : '?'}%), then fine-tuning from it (LP-FT)`);
  return { weight, bias, pooling, C: fit.C, cvAccuracy: fit.cvAccuracy };
}

export async function fineTuneText(o: FineTuneTextOptions): Promise<FineTuneTextResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const task = o.task ?? 'classify';
  if (!TEXT_TASKS.includes(task)) throw new GraftError('E_BAD_OPTION', `unknown --task "${task}"`, `Use one of ${TEXT_TASKS.join(', ')}.`);
  const kind = o.mode ?? 'finetune';
  const seed = o.seed ?? 0;
  const p = await prepare(o, task, log);
  const k = p.labels.length;
  const seqLen = sequenceLength(p, o.seqLen, log);
  const setfit = kind === 'setfit';
  if (setfit && task !== 'classify') throw new GraftError('E_BAD_OPTION', `--mode setfit classifies single texts; --task ${task} needs --mode finetune, gradual or probe`, 'Use --task classify with --mode setfit.');
  // LP-FT for classification: the head starts as the convex probe on the frozen encoder's pooled
  // embeddings (pooling chosen by its cross-validated accuracy when not given), standardisation folded in.
  const lpft = kind === 'finetune' && task === 'classify';
  const lp = lpft ? await probeHead(p, k, o, log) : null;
  // SetFit trains mean-pooled embeddings without dropout; its head sits on exactly those.
  const net = encoderNetwork(p.enc, {
    classes: k, seqLen, task: task === 'ner' ? 'token' : 'sequence', seed, ...(setfit ? { pooling: 'mean' as const, dropout: 0 } : {}),
    ...(lp ? { pooling: lp.pooling } : o.pooling && !setfit ? { pooling: o.pooling } : {}), ...(o.dropout !== undefined && !setfit ? { dropout: o.dropout } : {}),
  });
  if (lp) {
    net.params.find((q) => q.name === 'head.weight')!.value = lp.weight;
    net.params.find((q) => q.name === 'head.bias')!.value = lp.bias;
  }
  const padId = p.enc.tokenizer.padId;
  const train = dataset(p.train, net, padId, task, k);
  const val = p.val ? dataset(p.val, net, padId, task, k) : undefined;
  log(`${task}: ${train.n} training and ${val?.n ?? 0} validation examples, ${seqLen} tokens each; groups ${net.groups.join(', ')}`);
  const batch = o.batchSize ?? 16;
  // LP-FT's budget is in optimizer steps (about TEXT_STEP_BUDGET), not a fixed number of epochs.
  const epochs = o.epochs ?? (lpft ? Math.min(TEXT_EPOCHS[1], Math.max(TEXT_EPOCHS[0], Math.round(TEXT_STEP_BUDGET / Math.ceil(train.n / batch)))) : 3);
  const steps = Math.ceil(train.n / batch) * epochs;
  const warm = o.warmup ?? 0.1;
  if (!(warm >= 0 && warm < 1)) throw new GraftError('E_BAD_OPTION', `--warmup is a fraction of the steps in [0, 1), got ${warm}`, 'Use e.g. 0.1.');
  const stages = setfit ? [] : planStages(net.groups, kind as PolicyKind, {
    epochs, lr: o.lr ?? 1e-4, lrMult: o.lrMult ?? 0.9, freezeEpochs: o.freezeEpochs ?? (lpft ? 0 : 2), ...(o.headLr !== undefined ? { headLr: o.headLr } : {}),
    ...(o.unfreeze !== undefined ? { unfreeze: o.unfreeze } : {}),
    schedule: { kind: 'linear-warmup', warmup: Math.max(1, Math.round(steps * warm)), decay: 'linear' },
  });
  const early = new EarlyStopping({ monitor: val ? 'valLoss' : 'trainLoss', patience: o.patience ?? 3 });
  const ckpt = o.checkpoint ?? `${o.out.replace(/\/+$/, '')}.checkpoint`;
  const tracker = new StageTracker();
  const callbacks: Callback[] = [new ProgressBar(), early, tracker, new Checkpoint(ckpt)];
  const learner = new Learner({
    net, train, ...(val ? { val } : {}), batchSize: batch, seed, callbacks, ...(o.threads ? { threads: o.threads } : {}),
    optimizer: { kind: 'adamw', weightDecay: o.weightDecay ?? 0.01 },
    loss: task === 'ner' ? tokenCrossEntropy(k) : crossEntropy({ labelSmoothing: o.labelSmoothing ?? 0 }),
  });
  try {
    const useLr = (lr: number) => { for (const s of stages) if (s.name !== 'head') s.lr = discriminativeLrs(net.groups.length, lr, o.lrMult ?? 0.9); };
    if (o.resume && existsSync(ckpt)) {
      learner.loadCheckpoint(ckpt);
      log(`resuming from ${ckpt}`);
      if (tracker.lr !== null) useLr(tracker.lr);
    } else if (lp) {
      if (val) {
        const e = await learner.evaluate(val);
        tracker.probe = { weights: learner.snapshotWeights(), acc: e.accuracy, loss: e.loss, losses: Float32Array.from(perExampleLossFromLogits(e.logits, val.y, k)) };
      }
      if (o.lr === undefined) {
        learner.freezeTo(Math.min(...stages.map((s) => s.trainFrom)));
        const f = await lrFind(learner, { iters: Math.min(100, Math.max(40, 4 * Math.ceil(train.n / batch))) });
        const lr = Math.min(TEXT_LR_RANGE[1], Math.max(TEXT_LR_RANGE[0], f.minOver10));
        useLr(lr);
        tracker.lr = lr;
        log(`learning rate ${lr.toExponential(1)} from the lr finder (loss minimum / 10${lr !== f.minOver10 ? `, clamped from ${f.minOver10.toExponential(1)}` : ''})`);
      }
    }
    // NER's Learner accuracy is not meaningful (token targets): no accuracy-based fallback there.
    const { stages: done, kept, note } = setfit ? await runSetFit(learner, p, k, seqLen, o, log) : await runStages(learner, stages, log, { fallback: task !== 'ner' });
    // Validation scores come from the saved graph itself: full length, padded per batch as predict does.
    const w = learner.getWeights();
    const graph = encoderModelGraph(p.enc, net, (n) => w.get(n)!);
    const inputs: TokenInputs = { ...p.enc.inputs };
    let trainAccuracy: number | null = null;
    let valAccuracy: number | null = null;
    let valMacroF1: number | null = null;
    let ner: NerReport | null = null;
    if (task !== 'ner') trainAccuracy = (await learner.evaluate(train)).accuracy;
    if (p.val) {
      const session = await Session.create(graph, o.threads ? { threads: o.threads } : {});
      try {
        if (task === 'ner') {
          const probs = await runTokenModel(session, inputs, padId, p.val.tok, 'probabilities', k);
          ner = nerScores(p.val.sentences!.map((s) => s.tags), p.val.sentences!.map((s, i) => wordTagsOf(probs[i]!, p.val!.wordIds![i]!, s.tokens.length, p.labels)));
        } else {
          const probs = (await runTokens(session, inputs, padId, p.val.tok, ['probabilities'])).get('probabilities')!.x;
          const pred = argmaxRows(probs, k);
          valAccuracy = accuracy(p.val.y as Int32Array, pred);
          valMacroF1 = macroF1(p.val.y as Int32Array, pred, k);
        }
      } finally {
        await session.dispose();
      }
    }
    // As for images: LP-FT is kept only when it does not lower the accuracy of the probe it started from and
    // beats its per-example validation loss by two standard errors; else the default probe, fitted by its own protocol on every example.
    if (lp && val && tracker.probe?.losses && o.probeFallback !== false) {
      const end = await learner.evaluate(val);
      const evidence = fineTuneBeatsProbe({ accuracy: end.accuracy, losses: perExampleLossFromLogits(end.logits, val.y, k) }, { accuracy: tracker.probe.acc, losses: tracker.probe.losses });
      log(`keep rule: ${evidence.why}`);
      if (!evidence.keep) {
        const why = `the probe against fine-tuning on validation: ${evidence.why}: saved the default probe`;
        log(why);
        const pr = await trainText({ data: o.data, out: o.out, backbone: o.backbone, seed, ...(o.threads ? { threads: o.threads } : {}), log });
        rmSync(ckpt, { force: true });
        return {
          out: o.out, task, labels: pr.labels, backbone: o.backbone, mode: kind, stages: done, kept: 'probe', note: note ? `${why}; ${note}` : why, trainedGroups: ['head'], seqLen,
          trainAccuracy: pr.trainAccuracy, valAccuracy: pr.valAccuracy ?? valAccuracy, valMacroF1: pr.valMacroF1 ?? valMacroF1, ner: null, truncated: pr.truncated,
          nTrain: train.n + val.n, nVal: 0, bestEpoch: null, seconds: (performance.now() - t0) / 1000, diagnosis: pr.diagnosis,
        };
      }
    }
    const trainedGroups = setfit ? net.groups : net.groups.slice(Math.min(...stages.map((s) => s.trainFrom)));
    const diagnosis = diagnose({
      history: learner.history, trainAccuracy: trainAccuracy ?? NaN, valAccuracy: valAccuracy ?? ner?.micro.f1 ?? null, classes: k, nTrain: train.n,
      trained: trainedGroups, canFineTune: trainedGroups.length < net.groups.length,
    });
    const tok = p.enc.tokenizer;
    const files: Record<string, Uint8Array> = {};
    for (const f of TOKENIZER_FILES) if (tok.files[f]) files[f] = tok.files[f];
    const pre: TokenPreprocess = {
      encoder: o.backbone, pooling: task === 'ner' ? 'tokens' : (net.config['pooling'] as TextPooling), maxLength: tok.maxLength, padId,
      inputs: { ids: p.enc.inputs.ids, mask: p.enc.inputs.mask, types: p.enc.inputs.types }, dtypes: p.enc.inputs.dtypes,
      tokenizer: Object.fromEntries(Object.entries(files).map(([f, b]) => [f, sha256(b)])), task, ...(task === 'pair' ? { pairColumn: o.pairColumn ?? 'text_pair' } : {}),
    };
    saveModel(o.out, {
      createdAt: new Date().toISOString(), task: task === 'ner' ? 'token-classification' : 'classification', labels: p.labels,
      input: { name: p.enc.inputs.ids, kind: 'token-ids', columns: task === 'pair' ? ['text', pre.pairColumn!] : task === 'ner' ? ['tokens'] : ['text'], shape: [tok.maxLength], preprocess: pre },
      outputs: { probabilities: 'probabilities', logits: 'logits' },
      backbone: { id: o.backbone, sha256: p.enc.sha256, cut: String(pre.pooling) },
      head: net.config,
      training: {
        mode: kind, task, stages: done, trainedGroups, seqLen, val: o.valData ? 0 : o.val ?? 0.2, batchSize: batch, epochs, lr: stages.at(-1)?.lr.at(-1) ?? o.lr ?? 1e-4,
        headInit: lp ? { kind: 'convex probe (LP-FT)', pooling: lp.pooling, C: lp.C, cvAccuracy: lp.cvAccuracy } : 'random', lrMult: o.lrMult ?? 0.9, warmup: warm, seed,
        optimizer: learner.opt.options, bestEpoch: early.bestEpoch, kept, ...(note ? { note } : {}),
      },
      metrics: {
        trainAccuracy, valAccuracy, valMacroF1, nTrain: train.n, nVal: val?.n ?? 0, truncated: p.truncated,
        ...(ner ? { entityF1: ner.micro.f1, entityPrecision: ner.micro.precision, entityRecall: ner.micro.recall, perType: ner.perType } : {}),
      },
      history: learner.history, diagnosis,
      provenance: { data: { path: o.data, examples: train.n + (val?.n ?? 0) }, graft: GRAFT_VERSION, node: process.version, onnxruntime: ort.env.versions.node ?? 'unknown' },
    }, graph.toBytes(), files);
    rmSync(ckpt, { force: true });
    return {
      out: o.out, task, labels: p.labels, backbone: o.backbone, mode: kind, stages: done, kept, note, trainedGroups, seqLen, trainAccuracy, valAccuracy, valMacroF1, ner,
      truncated: p.truncated, nTrain: train.n, nVal: val?.n ?? 0, bestEpoch: early.bestEpoch >= 0 ? early.bestEpoch : null, seconds: (performance.now() - t0) / 1000, diagnosis,
    };
  } finally {
    await learner.dispose();
  }
}

/** SetFit in place of the staged policy: the learner ends on SetFit's weights (encoder and head). */
async function runSetFit(l: Learner, p: Prepared, k: number, seqLen: number, o: FineTuneTextOptions, log: (s: string) => void): Promise<StagesResult> {
  const r = await setFit(p.enc, p.train.tok, p.train.y as Int32Array, k, seqLen, {
    ...(o.iterations !== undefined ? { iterations: o.iterations } : {}), ...(o.epochs !== undefined ? { epochs: o.epochs } : {}), ...(o.lr !== undefined ? { lr: o.lr } : {}),
    ...(o.headLr !== undefined ? { headLr: o.headLr } : {}), ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}), seed: o.seed ?? 0,
    ...(o.threads ? { threads: o.threads } : {}), log,
  });
  l.restoreWeights(r.weights);
  log(`setfit: contrastive loss ${r.contrastiveLoss.first.toFixed(4)} -> ${r.contrastiveLoss.last.toFixed(4)} over ${r.pairs} pairs`);
  return { stages: [{ name: 'setfit', trainFrom: 0, groups: l.net.groups, epochs: o.epochs ?? 1, lr: [o.lr ?? 2e-5], epochsRun: o.epochs ?? 1 }], kept: 'setfit', note: null };
}

// ---- prediction ---------------------------------------------------------------------------------------------

/**
 * Runs a per-token model over tokenized texts, sorted by length and padded per batch; returns per text
 * its token rows [tokens, k] (the model's probabilities).
 */
async function runTokenModel(session: Session, inputs: TokenInputs, padId: number, t: Pick<Tokenized, 'ids' | 'typeIds'>, output: string, k: number): Promise<Float32Array[]> {
  const out: Float32Array[] = new Array(t.ids.length);
  for (const { idx, s, feeds } of tokenBatches(inputs, padId, t)) {
    const data = (await session.run(feeds, [output]))[output]!.data as Float32Array;
    idx.forEach((i, row) => (out[i] = data.slice(row * s * k, (row * s + t.ids[i]!.length) * k)));
  }
  return out;
}

export interface TextEntities {
  text: string;
  entities: (TextEntity & { score: number })[];
  /** Words and their predicted tags. */
  words: { text: string; start: number; end: number; tag: string }[];
}

function tokenModel(model: LoadedModel, dir: string): { pre: TokenPreprocess; tok: TextTokenizer; inputs: TokenInputs } {
  if (model.card.input.kind !== 'token-ids') {
    throw new GraftError('E_BAD_OPTION', `model ${dir} does not take text (its input is ${model.card.input.kind})`, 'Pass a model trained on text.');
  }
  const pre = model.card.input.preprocess as TokenPreprocess;
  return { pre, tok: folderTokenizer(dir, pre), inputs: { ...pre.inputs, dtypes: pre.dtypes ?? {} } };
}

/**
 * Named entities in raw texts with character offsets: each text is cut into words (text/ner.ts
 * wordTokenize, as the training fixtures were), tagged by the model, and decoded as seqeval does. An
 * entity's score is the mean probability of its words' tags.
 */
export async function predictEntities(dir: string, texts: string[], o: { threads?: number; log?: (s: string) => void } = {}): Promise<TextEntities[]> {
  const model = await loadModel(dir, o.threads ? { threads: o.threads } : {});
  try {
    if (model.card.task !== 'token-classification') {
      throw new GraftError('E_BAD_OPTION', `model ${dir} classifies whole texts, not tokens`, 'Use graft predict without entities, or train with --task ner.');
    }
    const { pre, tok, inputs } = tokenModel(model, dir);
    const labels = model.card.labels;
    const k = labels.length;
    const words = texts.map((t) => wordTokenize(t));
    const enc = words.map((ws) => tok.encodeWords(ws.map((w) => w.text)));
    const cut = enc.filter((e) => e.truncated).length;
    if (cut) o.log?.(`warning: ${cut} of ${texts.length} text(s) had more than ${tok.maxLength} tokens; their last words are predicted O`);
    const probs = await runTokenModel(model.session, inputs, pre.padId ?? tok.padId, { ids: enc.map((e) => e.ids), typeIds: enc.map((e) => e.typeIds) }, model.card.outputs.probabilities, k);
    return texts.map((text, i) => {
      const p = probs[i]!;
      const tokenTags: string[] = [];
      const tokenScore: number[] = [];
      for (let j = 0; j < enc[i]!.ids.length; j++) {
        let best = 0;
        for (let c = 1; c < k; c++) if (p[j * k + c]! > p[j * k + best]!) best = c;
        tokenTags.push(labels[best]!);
        tokenScore.push(p[j * k + best]!);
      }
      const ws = words[i]!;
      const wordTags = wordTagsFromTokens(enc[i]!.wordIds, tokenTags, ws.length);
      const wordScore = new Array<number>(ws.length).fill(1);
      enc[i]!.wordIds.forEach((w, j) => { if (w !== null && wordScore[w] === 1) wordScore[w] = tokenScore[j]!; });
      const ents = entitiesInText(text, ws, wordTags).map((e) => {
        const inside = ws.map((w, wi) => (w.start >= e.start && w.end <= e.end ? wordScore[wi]! : NaN)).filter((v) => !Number.isNaN(v));
        return { ...e, score: inside.reduce((a, b) => a + b, 0) / Math.max(1, inside.length) };
      });
      return { text, entities: ents, words: ws.map((w, wi) => ({ ...w, tag: wordTags[wi]! })) };
    });
  } finally {
    await model.dispose();
  }
}

/**
 * A NER model on a CoNLL (or JSONL) file: the gold sentences, each word's tag probabilities (its first
 * token's; [words, k] row-major per sentence; a word cut off by the token limit gets O with probability 1)
 * and the predicted word tags.
 */
export async function tagSentences(dir: string, data: string, o: { threads?: number; log?: (s: string) => void } = {}): Promise<{ labels: string[]; sentences: ConllSentence[]; probs: Float32Array[]; pred: string[][] }> {
  const model = await loadModel(dir, o.threads ? { threads: o.threads } : {});
  try {
    if (model.card.task !== 'token-classification') throw new GraftError('E_BAD_OPTION', `model ${dir} classifies whole texts, not tokens`, 'Evaluate it on a CSV/JSONL of labelled texts.');
    const { pre, tok, inputs } = tokenModel(model, dir);
    const labels = model.card.labels;
    const gold = readConll(data, o.log ? { log: o.log } : {});
    const unknown = gold.labels.filter((l) => !labels.includes(l));
    if (unknown.length) o.log?.(`warning: tag(s) ${unknown.join(', ')} in ${data} are not among the model's labels; those entities count as missed`);
    const enc = gold.sentences.map((s) => tok.encodeWords(s.tokens));
    const k = labels.length;
    const tokenProbs = await runTokenModel(model.session, inputs, pre.padId ?? tok.padId, { ids: enc.map((e) => e.ids), typeIds: enc.map((e) => e.typeIds) }, model.card.outputs.probabilities, k);
    const probs = gold.sentences.map((s, i) => {
      const w = new Float32Array(s.tokens.length * k);
      for (let j = 0; j < s.tokens.length; j++) w[j * k + labels.indexOf('O')] = 1;
      const seen = new Set<number>();
      enc[i]!.wordIds.forEach((wi, j) => {
        if (wi === null || seen.has(wi)) return;
        seen.add(wi);
        w.set(tokenProbs[i]!.subarray(j * k, (j + 1) * k), wi * k);
      });
      return w;
    });
    const pred = gold.sentences.map((s, i) => wordTagsOf(tokenProbs[i]!, enc[i]!.wordIds, s.tokens.length, labels));
    return { labels, sentences: gold.sentences, probs, pred };
  } finally {
    await model.dispose();
  }
}

/** Entity-level precision, recall and F1 of a NER model on a CoNLL (or JSONL) file. */
export async function evalNer(dir: string, data: string, o: { threads?: number; log?: (s: string) => void } = {}): Promise<NerReport & { n: number }> {
  const r = await tagSentences(dir, data, o);
  return { ...nerScores(r.sentences.map((s) => s.tags), r.pred), n: r.sentences.length };
}

/** Class probabilities for sentence pairs with a fine-tuned pair model. */
export async function predictPairs(dir: string, a: string[], b: string[], o: { threads?: number; log?: (s: string) => void } = {}): Promise<{ labels: string[]; probs: Float32Array }> {
  const model = await loadModel(dir, o.threads ? { threads: o.threads } : {});
  try {
    const { pre, tok, inputs } = tokenModel(model, dir);
    const t = tok.encodePairs(a, b);
    warnTruncated(t.truncated, a.length, tok.maxLength, o.log, `the encoder ${pre.encoder}`);
    const k = model.card.labels.length;
    const name = model.card.outputs.probabilities;
    const x = (await runTokens(model.session, inputs, pre.padId ?? tok.padId, t, [name], o)).get(name)!.x;
    if (x.length !== a.length * k) throw new GraftError('E_MODEL_CORRUPT', `model ${dir} returned ${x.length} values for ${a.length} pairs of ${k} classes`, 'Train the model again.');
    return { labels: model.card.labels, probs: x };
  } finally {
    await model.dispose();
  }
}

/** Accuracy and macro-F1 of a pair model on a labelled CSV/JSONL with both text columns. */
export async function evalPairs(dir: string, data: string, o: { threads?: number; log?: (s: string) => void } = {}): Promise<{ accuracy: number; macroF1: number; n: number }> {
  const card = readCard(dir);
  const col = (card.input.preprocess as TokenPreprocess | undefined)?.pairColumn ?? 'text_pair';
  const t = readTextTable(data);
  const second = readTextTable(data, { textColumn: col }).texts;
  const { labels, probs } = await predictPairs(dir, t.texts, second, o);
  const { y } = encodeLabels(t.labels!, labels);
  const pred = argmaxRows(probs, labels.length);
  return { accuracy: accuracy(y, pred), macroF1: macroF1(y, pred, labels.length), n: y.length };
}

/** The text task a model folder was trained for: 'ner', 'pair', or 'classify' (probes included). */
export function textTaskOf(dir: string): TextTask {
  const card = readCard(dir);
  if (card.task === 'token-classification') return 'ner';
  return (card.input.preprocess as TokenPreprocess | undefined)?.task === 'pair' ? 'pair' : 'classify';
}
