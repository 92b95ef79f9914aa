/**
 * Fine-tuning transfer for images: the pretrained backbone's own layers train (all of them, or the top
 * groups), under a policy (finetune: head first, then unfreeze with discriminative rates and one-cycle;
 * gradual: one more group per epoch). Below the lowest trainable group nothing changes, so without
 * augmentation its activations are computed once and cached on disk (like features) and every epoch
 * starts there; with augmentation the frozen prefix runs again on each epoch's augmented pixels.
 * The saved model.onnx is one graph from prepared pixels to probabilities, fine-tuned weights baked in.
 */
import { existsSync, rmSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { GraftError } from '../errors.ts';
import { type ImageBackbone, checkImageBackboneId, findCut, loadImageBackbone } from '../backbones/image.ts';
import { defaultBackbone } from '../backbones/registry.ts';
import { type BackboneNetwork, backboneNetwork } from '../backbones/trainable.ts';
import type { CutPoint, ImagePreprocess } from '../backbones/types.ts';
import { decodeAll, readImageFolder } from '../data/folders.ts';
import { augment, augmentSeed } from '../data/augment.ts';
import { embedImages } from '../features/embed.ts';
import { Session } from '../runtime/session.ts';
import { Learner, type Dataset } from '../train/learner.ts';
import { Checkpoint, EarlyStopping, ProgressBar, type Callback } from '../train/callbacks.ts';
import { crossEntropy } from '../train/losses.ts';
import { type FineTuneResult, type KeepEvidence, type PolicyKind, StageTracker, discriminativeLrs, fineTuneBeatsProbe, lowestTrainable, perExampleLossFromLogits, planStages, runStages } from '../train/policies.ts';
import { fitConvexProbe, foldStandardize } from '../probe/convex.ts';
import { SMALL_DATA_PER_CLASS } from '../probe/fit.ts';
import { trainImages } from '../probe/images.ts';
import { diagnose } from '../train/diagnose.ts';
import { accuracy, argmaxRows, macroF1 } from '../train/metrics.ts';
import { buildInferenceGraph } from '../train/compiled.ts';
import { GRAFT_VERSION, saveModel } from '../model/folder.ts';
import { type LrFindResult, lrFind } from '../train/lrfind.ts';

export interface FineTuneImagesOptions {
  data: string;
  out: string;
  backbone?: string;
  mode?: Exclude<PolicyKind, 'probe'>;
  /** Train only the top N backbone groups (plus the head). */
  unfreeze?: number;
  cut?: string;
  head?: 'linear' | 'mlp';
  epochs?: number;
  /** Head-only epochs before unfreezing (finetune). */
  freezeEpochs?: number;
  lr?: number;
  lrMult?: number;
  l2sp?: number;
  mixup?: number;
  labelSmoothing?: number;
  dropout?: number;
  weightDecay?: number;
  augment?: boolean;
  bn?: 'frozen' | 'train';
  /** Input size (square); default the backbone's. */
  size?: number;
  batchSize?: number;
  patience?: number;
  val?: number;
  seed?: number;
  threads?: number;
  cache?: boolean;
  cacheRoot?: string;
  checkpoint?: string;
  resume?: boolean;
  /** LP-FT: save the default probe instead when it scores higher on validation (default true). */
  probeFallback?: boolean;
  /**
   * Small-data protocol (smallest class < 100 images, no --val, no val/ folder): once the validation
   * split has chosen fine-tuning and its epochs, fine-tune again on every labelled image (default true).
   */
  refit?: boolean;
  /** Internal: the selection run a refit follows, recorded in graft.json. */
  refitOf?: { valAccuracy: number; probeValAccuracy: number; nVal: number; epochs: number };
  log?: (line: string) => void;
}

export interface FineTuneImagesResult extends FineTuneResult {
  cachedPrefix: string | null;
  /** The keep rule's paired comparison with the default probe on validation (null when none ran). */
  keepEvidence: KeepEvidence | null;
  trainAccuracy: number;
  skipped: number;
}

/** A copy of the backbone whose input takes any height and width (for prefixes at other sizes). */
function anySize(bb: ImageBackbone, size: [number, number]): ImageBackbone {
  const g = bb.graph.clone();
  g.inputs = g.inputs.map((v) => (v.name === bb.inputName ? { ...v, shape: ['N', 3, 'H', 'W'] } : v));
  return { ...bb, graph: g, preprocess: { ...bb.preprocess, size } };
}

interface Prepared {
  bb: ImageBackbone;
  /** The backbone at the training size (any input size). */
  bbSized: ImageBackbone;
  /** Indices into trainPaths of the rows of `train`. */
  trainKept: Int32Array;
  pre: ImagePreprocess;
  net: BackboneNetwork;
  full: BackboneNetwork;
  folder: ReturnType<typeof readImageFolder>;
  train: Dataset;
  val: Dataset | undefined;
  trainPaths: string[];
  cachedPrefix: string | null;
  augmentCallback: Callback | null;
  skipped: number;
  lowest: number;
}

async function prepare(o: FineTuneImagesOptions, kind: PolicyKind, log: (s: string) => void): Promise<Prepared> {
  const seed = o.seed ?? 0;
  const folder = readImageFolder(o.data, { valFraction: o.val ?? 0.2, seed });
  const bbId = o.backbone ?? defaultBackbone('image').id;
  checkImageBackboneId(bbId);
  const bb = await loadImageBackbone(bbId, o.cacheRoot);
  const size: [number, number] = o.size ? [o.size, o.size] : bb.preprocess.size;
  const common = {
    classes: folder.classes.length, seed, size, ...(o.cut ? { cut: o.cut } : {}), ...(o.dropout !== undefined ? { dropout: o.dropout } : {}),
    ...(o.head === 'mlp' ? { head: { kind: 'mlp' as const } } : {}), ...(o.bn ? { bn: o.bn } : {}),
  };
  const full = backboneNetwork(bb, common);
  // The lowest group the policy will train (at least the top backbone group: a head alone is a probe).
  const lowest = Math.min(lowestTrainable(full.groups.length, kind, { epochs: o.epochs ?? 5, ...(o.unfreeze !== undefined ? { unfreeze: o.unfreeze } : {}) }, String(full.config['cut'])), full.groups.length - 2);
  const augmentOn = !!o.augment;
  const net = lowest > 0 ? backboneNetwork(bb, { ...common, from: full.groups[lowest]! }) : full;
  const pre = { ...bb.preprocess, size };
  const bbSized = anySize(bb, size);
  const entry: CutPoint | null = net.fromGroup > 0 ? { name: `entry:${net.groups[0]}`, tensor: net.fromTensor, shape: net.inputShape } : null;
  const embedOpts = { ...(o.threads ? { threads: o.threads } : {}), ...(o.cacheRoot ? { cacheRoot: o.cacheRoot } : {}), cache: o.cache ?? true, onSkip: (_s: unknown, m: string) => log(`warning: ${m}`) };
  let skipped = 0;
  const load = async (paths: string[], y: Int32Array): Promise<Dataset & { kept: Int32Array }> => {
    if (entry) {
      const e = await embedImages(bbSized, paths, [entry], embedOpts);
      skipped += e.skipped.count;
      return { x: e.features.get(entry.name)!, y: Int32Array.from(e.kept, (i) => y[i]!), n: e.kept.length, kept: e.kept };
    }
    const d = await decodeAll(paths, pre, { onSkip: (_s, m) => log(`warning: ${m}`) });
    skipped += d.skipped.count;
    return { x: d.x, y: Int32Array.from(d.kept, (i) => y[i]!), n: d.kept.length, kept: d.kept };
  };
  const cachedPrefix = entry ? (augmentOn ? null : `${net.groups[0]} entry [${net.inputShape.join('x')}]`) : null;
  log(entry && !augmentOn
    ? `cached prefix: the frozen layers below ${net.groups[0]} run once; their activations [${net.inputShape.join('x')}] are cached and reused every epoch`
    : entry ? `augmentation on: the frozen prefix below ${net.groups[0]} runs again on each epoch's augmented images (no cached prefix)`
      : 'every group trains: each step runs the whole network on the pixels');
  const val = folder.val ? await load(folder.val.paths, folder.val.y) : undefined;
  let train: Dataset;
  let trainKept: Int32Array;
  let augmentCallback: Callback | null = null;
  const trainPaths = folder.train.paths;
  if (!augmentOn) {
    const t = await load(trainPaths, folder.train.y);
    train = t;
    trainKept = t.kept;
  } else {
    // Pixels decoded once; each epoch draws its own flips and crops (seeded per epoch and image), and
    // the frozen prefix, if any, runs on them.
    const d = await decodeAll(trainPaths, pre, { onSkip: (_s, m) => log(`warning: ${m}`) });
    skipped += d.skipped.count;
    const y = Int32Array.from(d.kept, (i) => folder.train.y[i]!);
    trainKept = d.kept;
    const per = 3 * size[0] * size[1];
    const prefix = entry ? await Session.create(prefixOf(bbSized, entry), o.threads ? { threads: o.threads } : {}) : null;
    const epochData = async (epoch: number): Promise<Dataset> => {
      const x = new Float32Array(d.kept.length * per);
      for (let i = 0; i < d.kept.length; i++) {
        const img = augment({ width: size[1], height: size[0], data: d.x.subarray(i * per, (i + 1) * per), channels: 3, layout: 'chw' },
          { flip: true, crop: { size, scale: [0.6, 1] } }, augmentSeed(seed, epoch, i));
        x.set(img.data as Float32Array, i * per);
      }
      if (!prefix) return { x, y, n: d.kept.length };
      const dim = net.inputShape.reduce((a, b) => a * b, 1);
      const out = new Float32Array(d.kept.length * dim);
      for (let from = 0; from < d.kept.length; from += 32) {
        const m = Math.min(32, d.kept.length - from);
        const r = await prefix.run({ [bb.inputName]: { dtype: 'float32', dims: [m, 3, size[0], size[1]], data: x.subarray(from * per, (from + m) * per) } }, [entry!.tensor]);
        out.set(r[entry!.tensor]!.data as Float32Array, from * dim);
      }
      return { x: out, y, n: d.kept.length };
    };
    train = await epochData(0);
    let epochs = 0;
    augmentCallback = {
      name: 'augment', order: -20,
      beforeEpoch: async (l) => { if (epochs > 0) l.train = await epochData(epochs); epochs++; },
    };
  }
  if (!train.n) throw new GraftError('E_EMPTY_CLASS', `no readable training images under ${o.data}`, 'Check the folder: every image was skipped.');
  return { bb, bbSized, trainKept, pre, net, full, folder, train, val: val && val.n ? val : undefined, trainPaths, cachedPrefix, augmentCallback, skipped, lowest };
}

function prefixOf(bb: ImageBackbone, entry: CutPoint) {
  const g = bb.graph.clone();
  g.outputs = [{ name: entry.tensor, dtype: 'float32', shape: null }];
  return g.prune();
}

/** Optimizer steps a default fine-tune aims for: epochs = STEP_BUDGET / batches per epoch, within EPOCH_RANGE. */
export const STEP_BUDGET = 240;
export const EPOCH_RANGE: [number, number] = [4, 20];
/** Below this many training images in the smallest class, augmentation is on by default. */
export const AUGMENT_BELOW = 100;

/**
 * LP-FT (Kumar et al., ICLR 2022): the head starts as the convex probe fitted on the frozen backbone's
 * features of the training images (penalty by cross-validation), its standardisation folded into the
 * weights, so fine-tuning starts from the probe instead of a random head that would first tear at the
 * pretrained features.
 */
async function probeHead(p: Prepared, o: FineTuneImagesOptions, log: (s: string) => void) {
  const cut = findCut(p.bbSized, String(p.full.config['cut']));
  const e = await embedImages(p.bbSized, p.trainPaths, [cut], { ...(o.threads ? { threads: o.threads } : {}), ...(o.cacheRoot ? { cacheRoot: o.cacheRoot } : {}), cache: o.cache ?? true });
  const d = e.dims.get(cut.name)!;
  const feats = e.features.get(cut.name)!;
  const row = new Map(Array.from(e.kept, (i, r) => [i, r]));
  const keep = Array.from(p.trainKept).filter((i) => row.has(i));
  const x = new Float32Array(keep.length * d);
  keep.forEach((i, r) => x.set(feats.subarray(row.get(i)! * d, (row.get(i)! + 1) * d), r * d));
  const y = Int32Array.from(keep, (i) => p.folder.train.y[i]!);
  const k = p.folder.classes.length;
  const fit = await fitConvexProbe(x, y, d, k, { seed: o.seed ?? 0, ...(o.threads ? { threads: o.threads } : {}), log });
  const { weight, bias } = foldStandardize(fit);
  return { weight, bias, C: fit.C, cvAccuracy: fit.cvAccuracy, cvStd: fit.cvStd };
}

export async function fineTuneImages(o: FineTuneImagesOptions): Promise<FineTuneImagesResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const kind = o.mode ?? 'finetune';
  const seed = o.seed ?? 0;
  if (o.size !== undefined && !(Number.isInteger(o.size) && o.size >= 32 && o.size <= 1024)) {
    throw new GraftError('E_BAD_OPTION', `--size must be an integer from 32 to 1024, got ${o.size}`, 'Use the backbone\'s own size (the default), or a smaller one such as 128 for speed.');
  }
  // Small sets get augmentation by default (then the frozen prefix runs each epoch on new pixels).
  const whole = readImageFolder(o.data, { valFraction: 0 });
  const minClass = (() => { const c = new Array<number>(whole.classes.length).fill(0); for (const v of whole.train.y) c[v]!++; return Math.min(...c); })();
  const augmentOn = o.augment ?? minClass < AUGMENT_BELOW;
  if (o.augment === undefined && augmentOn) log(`augmentation on by default: the smallest class has ${minClass} images (< ${AUGMENT_BELOW})`);
  const ckpt = o.checkpoint ?? `${o.out.replace(/\/+$/, '')}.checkpoint`;
  const resuming = !!o.resume && existsSync(ckpt);
  const lpft = kind === 'finetune' && o.head !== 'mlp';
  // LP-FT starts where the default probe ended: its cut (searched over every block output) and its
  // weights. The probe is fitted on the same training split, so its validation score is the bar the
  // fine-tune must clear. Its features are cached, so a resumed run repeats it cheaply and gets the same cut.
  const tmpProbe = `${o.out.replace(/\/+$/, '')}.probe`;
  const fallback = lpft && o.probeFallback !== false;
  const pr = fallback ? await trainImages({
    data: o.data, out: tmpProbe, backbone: o.backbone ?? defaultBackbone('image').id, val: o.val ?? 0.2, seed, ...(o.cut ? { cut: o.cut } : {}),
    ...(o.threads ? { threads: o.threads } : {}), ...(o.cacheRoot ? { cacheRoot: o.cacheRoot } : {}), cache: o.cache ?? true,
  }) : null;
  if (pr) rmSync(tmpProbe, { recursive: true, force: true });
  const cut = o.cut ?? (lpft ? pr?.cut : undefined);
  if (pr && !o.cut) log(`fine-tuning at the default probe's cut ${pr.cut} (validation accuracy ${pr.valAccuracy !== null ? (100 * pr.valAccuracy).toFixed(1) : '?'}%)`);
  const p = await prepare({ ...o, augment: augmentOn, ...(cut ? { cut } : {}) }, kind, log);
  const { net, full, folder } = p;
  const k = folder.classes.length;
  // A resumed run takes its weights from the checkpoint: the probe is fitted only on a fresh start.
  const lp = lpft && !resuming ? await probeHead(p, o, log) : null;
  if (lp) {
    net.params.find((q) => q.name === 'linear.weight')!.value = lp.weight;
    net.params.find((q) => q.name === 'linear.bias')!.value = lp.bias;
    log(`head: the convex probe (C = ${lp.C.toPrecision(2)}, cross-validated accuracy ${lp.cvAccuracy !== null ? (100 * lp.cvAccuracy).toFixed(1) : '?'}%), then fine-tuning from it (LP-FT)`);
  }
  const batches = Math.ceil(p.train.n / (o.batchSize ?? 32));
  const epochs = o.epochs ?? Math.min(EPOCH_RANGE[1], Math.max(EPOCH_RANGE[0], Math.round(STEP_BUDGET / batches)));
  if (o.epochs === undefined) log(`${epochs} epochs (${epochs * batches} steps: about ${STEP_BUDGET} steps, ${EPOCH_RANGE[0]}-${EPOCH_RANGE[1]} epochs)`);
  const stages = planStages(net.groups, kind, {
    epochs, lr: o.lr ?? 1e-3, ...(o.lrMult !== undefined ? { lrMult: o.lrMult } : {}), ...(o.freezeEpochs !== undefined ? { freezeEpochs: o.freezeEpochs } : lpft ? { freezeEpochs: 0 } : {}),
    // Groups below the cached prefix are not in `net`: count the unfreeze within it.
    ...(o.unfreeze !== undefined ? { unfreeze: Math.min(o.unfreeze, net.groups.length - 1) } : {}),
  });
  const anchors = o.l2sp ? new Map(net.params.filter((q) => q.group < net.groups.length - 1 && !q.buffer).map((q) => [q.name, Float32Array.from(q.value)])) : null;
  const early = new EarlyStopping({ monitor: p.val ? 'valLoss' : 'trainLoss', patience: o.patience ?? 3 });
  const tracker = new StageTracker();
  const callbacks: Callback[] = [new ProgressBar(), early, tracker, new Checkpoint(ckpt), ...(p.augmentCallback ? [p.augmentCallback] : [])];
  const learner = new Learner({
    net, train: p.train, ...(p.val ? { val: p.val } : {}), batchSize: o.batchSize ?? 32, seed, callbacks,
    ...(o.threads ? { threads: o.threads } : {}), optimizer: { kind: 'adamw', weightDecay: o.weightDecay ?? 0.01 },
    loss: crossEntropy({ labelSmoothing: o.labelSmoothing ?? 0 }),
    ...(anchors ? { l2sp: { alpha: o.l2sp!, anchors } } : {}), ...(o.mixup ? { mixup: o.mixup } : {}),
  });
  try {
    const useLr = (lr: number) => { for (const s of stages) if (s.name !== 'head') s.lr = discriminativeLrs(net.groups.length, lr, o.lrMult ?? 0.5); };
    if (resuming) {
      learner.loadCheckpoint(ckpt);
      log(`resuming from ${ckpt}`);
      if (tracker.lr !== null) useLr(tracker.lr);
    } else if (lp) {
      // The probe is the fallback: fine-tuning that ends below it on validation keeps the probe.
      if (p.val) {
        const e = await learner.evaluate(p.val);
        tracker.probe = { weights: learner.snapshotWeights(), acc: e.accuracy, loss: e.loss, losses: Float32Array.from(perExampleLossFromLogits(e.logits, p.val.y, k)) };
      }
      if (o.lr === undefined) {
        learner.freezeTo(Math.min(...stages.map((s) => s.trainFrom)));
        const f = await lrFind(learner, { iters: Math.min(100, Math.max(40, 8 * batches)) });
        // From a converged probe the loss starts near its minimum, so the finder's minimum often sits at the
        // bottom of the sweep; below 1e-4 the backbone barely moves (fashion10, mnist10: 1e-5 and 3e-5 left the probe unchanged).
        const lr = Math.min(3e-3, Math.max(1e-4, f.minOver10));
        useLr(lr);
        tracker.lr = lr;
        log(`learning rate ${lr.toExponential(1)} from the lr finder (loss minimum / 10${lr !== f.minOver10 ? `, clamped from ${f.minOver10.toExponential(1)}` : ''})`);
      }
    }
    const { stages: done, kept, note } = await runStages(learner, stages, log);
    const trainEval = await learner.evaluate(p.train);
    let valAccuracy: number | null = null;
    let valMacroF1: number | null = null;
    let valLogits: Float32Array | null = null;
    if (p.val) {
      const ev = await learner.evaluate(p.val);
      valLogits = ev.logits;
      const pred = argmaxRows(ev.logits, k);
      valAccuracy = accuracy(p.val.y as Int32Array, pred);
      valMacroF1 = macroF1(p.val.y as Int32Array, pred, k);
    }
    // The default probe on the same split is the bar: fine-tuning that does not beat it on validation
    // saves the default probe instead (fitted by its own protocol on every labelled image), so the
    // default never ends below it.
    // The bar: the default probe's held-out accuracy, and example by example the loss of the LP-FT start (the
    // convex probe at the same cut, fitted on the same training split).
    const evidence = pr && pr.valAccuracy !== null && tracker.probe?.losses && p.val && valAccuracy !== null
      ? fineTuneBeatsProbe({ accuracy: valAccuracy, losses: perExampleLossFromLogits(valLogits!, p.val.y, k) }, { accuracy: pr.valAccuracy, losses: tracker.probe.losses }) : null;
    if (evidence) log(`keep rule: ${evidence.why}`);
    if (evidence && !evidence.keep) {
      const why = `the default probe (cut ${pr!.cut}) against fine-tuning on validation: ${evidence.why}: saved the default probe`;
      log(why);
      const final = await trainImages({
        data: o.data, out: o.out, backbone: o.backbone ?? p.bb.id, seed, ...(o.val !== undefined ? { val: o.val } : {}), ...(o.cut ? { cut: o.cut } : {}),
        ...(o.threads ? { threads: o.threads } : {}), ...(o.cacheRoot ? { cacheRoot: o.cacheRoot } : {}), cache: o.cache ?? true, log,
      });
      rmSync(ckpt, { force: true });
      return {
        out: o.out, labels: folder.classes, backbone: p.bb.id, mode: kind, stages: done, kept: 'probe', note: note ? `${why}; ${note}` : why, trainedGroups: ['head'],
        cachedPrefix: p.cachedPrefix, trainAccuracy: final.trainAccuracy, valAccuracy: final.valAccuracy ?? pr!.valAccuracy, valMacroF1: final.valMacroF1 ?? pr!.valMacroF1,
        bestEpoch: null, skipped: p.skipped, seconds: (performance.now() - t0) / 1000, diagnosis: final.diagnosis, keepEvidence: evidence,
      };
    }
    // Small-data protocol: the split chose fine-tuning and its epochs; the saved model is fine-tuned again,
    // from the probe refitted on every labelled image, for that many epochs at the same rate.
    if (pr && valAccuracy !== null && o.refit !== false && o.val === undefined && !whole.val && minClass < SMALL_DATA_PER_CLASS) {
      // Early stopping counts epochs over both stages; the refit's --epochs is the fine-tuning stage's.
      const headEpochs = stages.find((s) => s.name === 'head')?.epochs ?? 0;
      const chosen = Math.max(1, (early.bestEpoch >= 0 ? early.bestEpoch + 1 : headEpochs + done.at(-1)!.epochsRun) - headEpochs);
      const lr = stages.at(-1)!.lr.at(-1)!;
      log(`fine-tuning beat the default probe on validation (${evidence?.why ?? 'no evidence'}): fine-tuning again on all ${whole.train.paths.length} images for ${chosen} epochs at lr ${lr.toExponential(1)} (small-data protocol)`);
      const r = await fineTuneImages({
        ...o, cut: String(full.config['cut']), val: 0, epochs: chosen, lr, patience: chosen + 1, augment: augmentOn, probeFallback: false,
        checkpoint: `${ckpt}.refit`, refitOf: { valAccuracy, probeValAccuracy: pr.valAccuracy!, nVal: p.val!.n, epochs: chosen },
      });
      rmSync(ckpt, { force: true });
      return { ...r, valAccuracy, valMacroF1, seconds: (performance.now() - t0) / 1000, keepEvidence: evidence };
    }
    const trainedGroups = net.groups.slice(Math.min(...stages.map((s) => s.trainFrom)));
    const diagnosis = diagnose({
      history: learner.history, trainAccuracy: trainEval.accuracy, valAccuracy, classes: k, nTrain: p.train.n,
      trained: trainedGroups, canFineTune: trainedGroups.length < full.groups.length,
    });
    // One graph from pixels: the frozen prefix keeps its pretrained weights, the rest the trained ones.
    const w = learner.getWeights();
    const graph = buildInferenceGraph(full, (n) => w.get(n) ?? full.params.find((q) => q.name === n)!.value, 'softmax').graph;
    graph.metadata.set('graft.backbone', `${p.bb.id}@${p.bb.sha256}`);
    const [h, wd] = p.pre.size;
    saveModel(o.out, {
      createdAt: new Date().toISOString(), task: 'classification', labels: folder.classes,
      input: { name: 'input', kind: 'image', columns: [], shape: [3, h, wd], preprocess: p.pre },
      outputs: { probabilities: 'probabilities', logits: 'logits' },
      backbone: { id: p.bb.id, sha256: p.bb.sha256, cut: String(full.config['cut']) },
      head: full.config,
      training: {
        mode: kind, stages: done, trainedGroups, cachedPrefix: p.cachedPrefix, augment: augmentOn, l2sp: o.l2sp ?? 0, mixup: o.mixup ?? 0,
        labelSmoothing: o.labelSmoothing ?? 0, bn: o.bn ?? 'frozen', size: [h, wd], batchSize: o.batchSize ?? 32, epochs, lr: stages.at(-1)!.lr.at(-1)!,
        headInit: lpft ? { kind: 'convex probe (LP-FT)', C: lp?.C ?? null, cvAccuracy: lp?.cvAccuracy ?? null } : 'random',
        lrMult: o.lrMult ?? 0.5, seed, optimizer: learner.opt.options, bestEpoch: early.bestEpoch, kept, ...(note ? { note } : {}),
        ...(evidence ? { keepRule: { gain: evidence.gain, se: evidence.se, n: evidence.n, why: evidence.why } } : {}),
        ...(o.refitOf ? { refit: { ...o.refitOf, why: 'small-data protocol: the validation split chose fine-tuning over the default probe and the epochs; this model was fine-tuned again on every labelled image' } } : {}),
      },
      metrics: { trainAccuracy: trainEval.accuracy, valAccuracy, valMacroF1, nTrain: p.train.n, nVal: p.val?.n ?? 0, skipped: p.skipped },
      history: learner.history, diagnosis,
      provenance: { data: { path: o.data, images: folder.train.paths.length + (folder.val?.paths.length ?? 0), layout: folder.layout }, graft: GRAFT_VERSION, node: process.version, onnxruntime: ort.env.versions.node ?? 'unknown' },
    }, graph.toBytes());
    rmSync(ckpt, { force: true });
    return {
      out: o.out, labels: folder.classes, backbone: p.bb.id, mode: kind, stages: done, kept, note, trainedGroups, cachedPrefix: p.cachedPrefix,
      trainAccuracy: trainEval.accuracy, valAccuracy, valMacroF1, bestEpoch: early.bestEpoch >= 0 ? early.bestEpoch : null, skipped: p.skipped,
      seconds: (performance.now() - t0) / 1000, diagnosis, keepEvidence: evidence,
    };
  } finally {
    await learner.dispose();
  }
}

/** The learning-rate finder over the fine-tuning network (the groups the policy would train). */
export async function lrFindImages(o: FineTuneImagesOptions): Promise<LrFindResult & { groups: string[] }> {
  const log = o.log ?? (() => {});
  const p = await prepare({ ...o, augment: false }, o.mode ?? 'finetune', log);
  const learner = new Learner({ net: p.net, train: p.train, batchSize: o.batchSize ?? 32, seed: o.seed ?? 0, ...(o.threads ? { threads: o.threads } : {}), optimizer: { kind: 'adamw', weightDecay: 0.01 } });
  try {
    learner.freezeTo(0);
    const r = await lrFind(learner, { iters: Math.min(100, 8 * Math.ceil(p.train.n / (o.batchSize ?? 32))) });
    return { ...r, groups: p.net.groups };
  } finally {
    await learner.dispose();
  }
}
