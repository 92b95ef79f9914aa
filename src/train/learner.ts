/**
 * The Learner: one training loop over compiled ORT steps, with ordered callbacks, parameter groups
 * (freeze/unfreeze by group), per-group learning rates, schedules, checkpoints and resume.
 * Weights and optimizer state live in Float32Arrays owned here; each step writes the new values into
 * a second set of buffers (double buffering), so nothing is allocated per step.
 */
import { GraftError } from '../errors.ts';
import { readSafetensors, writeSafetensors, type NamedArrays } from '../io/safetensors.ts';
import { rng } from '../rng.ts';
import { type TensorData, tensor } from '../graph/tensor.ts';
import type { Graph } from '../graph/ir.ts';
import { defaultThreads, type SessionOptions } from '../runtime/session.ts';
import { checkAborted, currentRun, reportProgress } from '../context.ts';
import { CancelBatch, CancelEpoch, CancelFit, type Callback, type EpochRecord, type Event } from './callbacks.ts';
import { BN, G, P, PN, S, SN, type EvalStep, type TrainStep, buildInferenceGraph, compileEvalStep, compileTrainStep } from './compiled.ts';
import { mixSeed } from './init.ts';
import { type Loss, crossEntropy } from './losses.ts';
import type { Network } from './network.ts';
import { type Optimizer, type OptimizerOptions, type ParamGroupSettings, makeOptimizer } from './optim.ts';
import { type ScheduleOptions, makeSchedule } from './schedules.ts';

export interface Dataset {
  /** Row-major inputs, n * prod(inputShape). */
  x: Float32Array;
  /** Class indices (classification) or target rows (regression). */
  y: Int32Array | Float32Array;
  n: number;
  /**
   * Sequence data for a network with outputsAt: each example's length along the last input axis (the
   * rest is padding). Batches are then made of examples of similar length and cut to the longest one,
   * rounded up to a multiple of BUCKET, so padding does not waste compute.
   */
  lengths?: Int32Array;
}

/** Bucket lengths are multiples of this (a few compiled shapes, little padding). */
export const BUCKET = 16;
/** Examples are grouped by length within windows of this many batches. */
const MEGABATCH = 8;

export interface LearnerOptions {
  net: Network;
  train: Dataset;
  val?: Dataset;
  loss?: Loss;
  optimizer?: OptimizerOptions;
  batchSize?: number;
  evalBatchSize?: number;
  seed?: number;
  callbacks?: Callback[];
  threads?: number;
  /** ORT graph optimisation level for the compiled steps (default 'all'). */
  optimization?: SessionOptions['optimization'];
  /** Trainable groups at the start (default: all). */
  trainableFrom?: number;
  /**
   * L2-SP: pull trainable weights toward their pretrained values (the anchors) instead of toward zero,
   * applied decoupled like AdamW's decay: after each step w -= lr * alpha * (w - w0).
   */
  l2sp?: { alpha: number; anchors: Map<string, Float32Array> };
  /** Mixup: each batch is mixed with a shuffled copy of itself, lambda ~ Beta(alpha, alpha). */
  mixup?: number;
  /**
   * Checked before every batch: once aborted, fit() stops with GraftError E_ABORTED. Without it, the
   * signal of the public-API call in progress (src/context.ts) is checked.
   */
  signal?: AbortSignal;
}

export interface FitOptions {
  /** One rate for all groups, or one per group (discriminative learning rates). */
  lr: number | number[];
  schedule?: ScheduleOptions;
  /** Overrides the optimizer's weight decay: one value, or one per group. */
  weightDecay?: number | number[];
}

export interface EvalResult {
  loss: number;
  accuracy: number;
  logits: Float32Array;
}

const CHECKPOINT_VERSION = '1';

export class Learner {
  readonly net: Network;
  readonly loss: Loss;
  readonly opt: Optimizer;
  readonly batchSize: number;
  readonly evalBatchSize: number;
  readonly seed: number;
  readonly sessionOpts: SessionOptions;
  train: Dataset;
  val: Dataset | undefined;
  callbacks: Callback[];
  history: EpochRecord[] = [];
  /** Current learning rate per group; callbacks may change it in beforeBatch. */
  lrs: number[] = [];
  lastLoss = NaN;
  progress = { epoch: 0, epochs: 0, batch: 0, batches: 0, iter: 0, iters: 0 };
  /** Epochs completed in the current (or resumed) fit. */
  epochsDone = 0;

  private weights = new Map<string, Float32Array>();
  private spare = new Map<string, Float32Array>();
  private slots = new Map<string, Float32Array[]>();
  private spareSlots = new Map<string, Float32Array[]>();
  private groupSteps: number[];
  private trainable: Set<number>;
  private trainSteps = new Map<string, TrainStep>();
  private evalSteps = new Map<string, EvalStep>();
  private fitting = false;
  private fitKey = '';
  private readonly l2sp: LearnerOptions['l2sp'];
  private readonly mixup: number;
  private readonly signal: AbortSignal | undefined;

  constructor(o: LearnerOptions) {
    this.net = o.net;
    this.train = o.train;
    this.val = o.val;
    this.loss = o.loss ?? crossEntropy();
    this.opt = makeOptimizer(o.optimizer ?? { kind: 'adamw' });
    this.batchSize = o.batchSize ?? 32;
    this.evalBatchSize = o.evalBatchSize ?? 256;
    this.seed = o.seed ?? 0;
    this.callbacks = [...(o.callbacks ?? [])];
    this.signal = o.signal;
    this.sessionOpts = { threads: o.threads ?? defaultThreads(), ...(o.optimization ? { optimization: o.optimization } : {}) };
    for (const p of this.net.params) this.weights.set(p.name, Float32Array.from(p.value));
    this.groupSteps = this.net.groups.map(() => 0);
    this.trainable = new Set(this.net.groups.map((_, i) => i).filter((i) => i >= (o.trainableFrom ?? 0)));
    if (o.l2sp) {
      if (!(o.l2sp.alpha >= 0 && Number.isFinite(o.l2sp.alpha))) throw new GraftError('E_BAD_OPTION', `L2-SP strength must be a finite number >= 0, got ${o.l2sp.alpha}`, 'Use e.g. --l2sp 0.1.');
      for (const [k, v] of o.l2sp.anchors) {
        if (this.weights.get(k)?.length !== v.length) throw new GraftError('E_BAD_OPTION', `L2-SP anchor ${k} does not match a parameter of the network`, 'Anchor the pretrained weights of this network.');
      }
    }
    this.l2sp = o.l2sp;
    if (o.mixup !== undefined && !(o.mixup >= 0 && Number.isFinite(o.mixup))) throw new GraftError('E_BAD_OPTION', `mixup alpha must be >= 0, got ${o.mixup}`, 'Use e.g. --mixup 0.2 (0 turns it off).');
    this.mixup = o.mixup ?? 0;
    this.checkData(this.train, 'training');
    if (this.val) this.checkData(this.val, 'validation');
  }

  private checkData(d: Dataset, what: string): void {
    const per = this.net.inputShape.reduce((a, x) => a * x, 1);
    if (d.x.length !== d.n * per) {
      throw new GraftError('E_GRAPH_SHAPE', `${what} data holds ${d.x.length} values for ${d.n} examples of shape [${this.net.inputShape}] (${d.n * per} expected)`,
        'Check that every example has the input shape the network expects.');
    }
    if (d.n === 0) throw new GraftError('E_CSV_EMPTY', `${what} data has no examples`, 'Provide at least one example per class.');
    const full = this.net.inputShape.at(-1)!;
    if (d.lengths && (d.lengths.length !== d.n || d.lengths.some((l) => !(l >= 1 && l <= full)))) {
      throw new GraftError('E_GRAPH_SHAPE', `${what} data: lengths must give one length from 1 to ${full} per example`, 'Pass each example\'s unpadded length.');
    }
  }

  // ---- freezing ---------------------------------------------------------------------------------------
  /** Trains only the top group. */
  freeze(): void { this.freezeTo(this.net.groups.length - 1); }
  /** Trains every group. */
  unfreeze(): void { this.freezeTo(0); }
  /** Trains groups n and above; freezes the rest. */
  freezeTo(n: number): void {
    const k = this.net.groups.length;
    const from = n < 0 ? k + n : n;
    if (from < 0 || from >= k) {
      throw new GraftError('E_BAD_OPTION', `cannot train from group ${n}: the network has ${k} groups (${this.net.groups.join(', ')})`,
        `Use a group index from 0 to ${k - 1}, or a negative index from the top.`);
    }
    this.trainable = new Set([...Array(k).keys()].filter((i) => i >= from));
    this.dropTrainSteps();
  }
  get trainableGroups(): number[] { return [...this.trainable].sort((a, b) => a - b); }

  private dropTrainSteps(): void {
    for (const s of this.trainSteps.values()) void s.session.dispose();
    this.trainSteps.clear();
  }

  // ---- weights ------------------------------------------------------------------------------------------
  getWeights(): Map<string, Float32Array> { return this.weights; }
  snapshotWeights(): Map<string, Float32Array> {
    return new Map([...this.weights].map(([k, v]) => [k, Float32Array.from(v)]));
  }
  restoreWeights(w: Map<string, Float32Array>): void {
    for (const [k, v] of w) this.weights.get(k)?.set(v);
    this.dropTrainSteps(); // frozen weights are baked into train steps
  }

  /** Clears optimizer state (moments, step counts), e.g. after an LR-finder run. */
  resetOptimizer(): void {
    this.slots.clear();
    this.spareSlots.clear();
    this.groupSteps = this.net.groups.map(() => 0);
  }

  private slotsOf(name: string, spare: boolean): Float32Array[] {
    const map = spare ? this.spareSlots : this.slots;
    let s = map.get(name);
    if (!s) {
      const n = this.weights.get(name)!.length;
      s = this.opt.slots.map((slot) => new Float32Array(n).fill(this.opt.slotInit?.[slot] ?? 0));
      map.set(name, s);
    }
    return s;
  }

  // ---- compiled steps -------------------------------------------------------------------------------------
  /** The network's input shape and output width at a bucket length (the full ones without). */
  private shapeAt(len?: number): { inputShape: number[]; outputs: number } {
    const full = this.net.inputShape;
    if (len === undefined || len === full.at(-1) || !this.net.outputsAt) return { inputShape: full, outputs: this.net.outputs };
    return { inputShape: [...full.slice(0, -1), len], outputs: this.net.outputsAt(len) };
  }

  private async trainStep(batch: number, len?: number): Promise<TrainStep> {
    const key = `${batch}x${len ?? ''}`;
    let s = this.trainSteps.get(key);
    if (!s) {
      s = await compileTrainStep({ ...this.net, ...this.shapeAt(len) }, this.loss, this.opt, this.trainable, batch, (n) => this.weights.get(n)!, this.sessionOpts);
      this.trainSteps.set(key, s);
    }
    return s;
  }

  private async evalStep(batch: number, len?: number): Promise<EvalStep> {
    const key = `${batch}x${len ?? ''}`;
    let s = this.evalSteps.get(key);
    if (!s) {
      s = await compileEvalStep({ ...this.net, ...this.shapeAt(len) }, this.loss, batch, this.sessionOpts);
      this.evalSteps.set(key, s);
    }
    return s;
  }

  /** Whether batches of d are cut to their examples' lengths. */
  private bucketed(d: Dataset): boolean {
    return !!d.lengths && !!this.net.outputsAt;
  }

  /** The bucket length of examples idx[from..to): their longest, rounded up to BUCKET, at most the full length. */
  private bucketOf(d: Dataset, idx: ArrayLike<number>, from: number, to: number): number | undefined {
    if (!this.bucketed(d)) return undefined;
    const full = this.net.inputShape.at(-1)!;
    let m = 1;
    for (let i = from; i < to; i++) m = Math.max(m, d.lengths![idx[i]!]!);
    return Math.min(full, Math.ceil(m / BUCKET) * BUCKET);
  }

  /** Examples idx[from..to) as a batch; with a bucket length, inputs cut along the last axis and outputs to their width there. */
  private gather(d: Dataset, idx: ArrayLike<number>, from: number, to: number, len?: number): { x: Float32Array; y: Int32Array | Float32Array } {
    const per = d.x.length / d.n;
    const m = to - from;
    const full = this.net.inputShape.at(-1)!;
    const cut = len !== undefined && len < full;
    const xPer = cut ? (per / full) * len : per;
    const x = new Float32Array(m * xPer);
    const yPer = d.y.length / d.n;
    const yOut = cut && !(d.y instanceof Int32Array) ? this.net.outputsAt!(len) : yPer;
    const y = d.y instanceof Int32Array ? new Int32Array(m * yPer) : new Float32Array(m * yOut);
    for (let i = 0; i < m; i++) {
      const r = idx[from + i]!;
      if (!cut) x.set(d.x.subarray(r * per, (r + 1) * per), i * per);
      else for (let row = 0; row < per / full; row++) x.set(d.x.subarray(r * per + row * full, r * per + row * full + len), i * xPer + row * len);
      for (let j = 0; j < yOut; j++) y[i * yOut + j] = d.y[r * yPer + j]!;
    }
    return { x, y };
  }

  /**
   * An epoch's batches as [from, to) ranges over a permutation. With lengths, the shuffled examples are
   * sorted (stably) by bucket, cut into batches, and the batches shuffled: each batch holds examples of
   * similar length, and the order still changes every epoch.
   */
  private epochPlan(d: Dataset, ep: number): { order: Int32Array; ranges: [number, number][] } {
    const n = d.n;
    let order = shuffled(n, mixSeed(this.seed, 'epoch', ep));
    const ranges: [number, number][] = [];
    for (let from = 0; from < n; from += this.batchSize) ranges.push([from, Math.min(n, from + this.batchSize)]);
    if (!this.bucketed(d)) return { order, ranges };
    const b = (i: number) => Math.ceil(d.lengths![i]! / BUCKET);
    // Sorted within windows of MEGABATCH batches of the shuffled order (as Hugging Face's group_by_length):
    // a whole-epoch sort makes batches of one length, which on data whose length follows the label
    // (short ham, long spam) makes them batches of one class.
    const w = MEGABATCH * this.batchSize;
    const sorted: number[] = [];
    for (let from = 0; from < n; from += w) sorted.push(...[...order.subarray(from, Math.min(n, from + w))].sort((i, j) => b(i) - b(j)));
    order = Int32Array.from(sorted);
    const perm = shuffled(ranges.length, mixSeed(this.seed, 'batches', ep));
    return { order, ranges: Array.from(perm, (k) => ranges[k]!) };
  }

  /** One optimizer step on a batch; returns the batch loss. */
  async step(x: Float32Array, y: Int32Array | Float32Array, maskKey: (string | number)[], targets?: Float32Array, len?: number): Promise<number> {
    const shape = this.shapeAt(len);
    const batch = y.length / (y instanceof Int32Array ? 1 : shape.outputs);
    const st = await this.trainStep(batch, len);
    const feeds: Record<string, TensorData> = {
      x: { dtype: 'float32', dims: [batch, ...shape.inputShape], data: x },
      target: { dtype: 'float32', dims: [batch, shape.outputs], data: targets ?? this.loss.targets(y, shape.outputs) },
    };
    for (const site of st.dropout) {
      const r = rng(mixSeed(this.seed, ...maskKey, site.key));
      const n = site.shape.reduce((a, v) => a * v, 1);
      const m = new Float32Array(n);
      const keep = 1 / (1 - site.p);
      for (let i = 0; i < n; i++) m[i] = r() >= site.p ? keep : 0;
      feeds[site.input] = { dtype: 'float32', dims: site.shape, data: m };
    }
    const nextSteps = this.groupSteps.map((t, gi) => (this.trainable.has(gi) ? t + 1 : t));
    for (const gi of st.groupsUsed) {
      const wd = Array.isArray(this.groupWd) ? this.groupWd[gi] : this.groupWd;
      const grp: ParamGroupSettings = { lr: this.lrs[gi] ?? this.lrs[0]!, ...(wd !== undefined ? { weightDecay: wd } : {}) };
      const sc = this.opt.scalars(grp, nextSteps[gi]!);
      for (const name of st.scalarNames) feeds[G(gi, name)] = tensor('float32', [], [sc[name]!]);
    }
    const into: Record<string, TensorData> = {};
    for (const p of st.trainable) {
      feeds[P(p.name)] = { dtype: 'float32', dims: p.shape, data: this.weights.get(p.name)! };
      let sp = this.spare.get(p.name);
      if (!sp) this.spare.set(p.name, (sp = new Float32Array(p.value.length)));
      into[PN(p.name)] = { dtype: 'float32', dims: p.shape, data: sp };
      const cur = this.slotsOf(p.name, false);
      const nxt = this.slotsOf(p.name, true);
      st.slots.forEach((slot, i) => {
        feeds[S(p.name, slot)] = { dtype: 'float32', dims: p.shape, data: cur[i]! };
        into[SN(p.name, slot)] = { dtype: 'float32', dims: p.shape, data: nxt[i]! };
      });
    }
    for (const p of st.liveBuffers) feeds[P(p.name)] = { dtype: 'float32', dims: p.shape, data: this.weights.get(p.name)! };
    for (const p of st.updated) {
      let sp = this.spare.get(p.name);
      if (!sp) this.spare.set(p.name, (sp = new Float32Array(p.value.length)));
      into[BN(p.name)] = { dtype: 'float32', dims: p.shape, data: sp };
    }
    const out = await st.session.run(feeds, undefined, into);
    const loss = Number(out['loss']!.data[0]);
    if (!Number.isFinite(loss)) {
      // The new weights went to the spare buffers; the current ones are still the last good ones.
      throw new GraftError('E_DIVERGED', `training diverged: the loss became ${loss} at epoch ${this.progress.epoch + 1}, batch ${this.progress.batch + 1}`,
        'Lower the learning rate (try graft lr-find), standardise the inputs, or freeze more layers. The weights of the last good step were kept.');
    }
    for (const p of st.updated) {
      const a = this.weights.get(p.name)!;
      this.weights.set(p.name, this.spare.get(p.name)!);
      this.spare.set(p.name, a);
    }
    for (const p of st.trainable) {
      const a = this.weights.get(p.name)!;
      this.weights.set(p.name, this.spare.get(p.name)!);
      this.spare.set(p.name, a);
      const s = this.slots.get(p.name)!;
      this.slots.set(p.name, this.spareSlots.get(p.name)!);
      this.spareSlots.set(p.name, s);
      const w0 = this.l2sp?.anchors.get(p.name);
      if (w0 && this.l2sp!.alpha > 0) {
        const w = this.weights.get(p.name)!;
        const k = (this.lrs[p.group] ?? this.lrs[0]!) * this.l2sp!.alpha;
        for (let i = 0; i < w.length; i++) w[i]! -= k * (w[i]! - w0[i]!);
      }
    }
    this.groupSteps = nextSteps;
    this.lastLoss = loss;
    return loss;
  }
  private groupWd: number | number[] | undefined;

  private async fire(ev: Event): Promise<void> {
    const cbs = [...this.callbacks].sort((a, b) => (a.order ?? 0) - (b.order ?? 0));
    for (const cb of cbs) await cb[ev]?.(this);
  }

  /** Trains for `epochs` epochs (continuing a resumed fit where it stopped). */
  async fit(epochs: number, o: FitOptions): Promise<EpochRecord[]> {
    if (this.fitting) throw new GraftError('E_FIT_RUNNING', 'fit() is already running on this learner', 'Wait for the running fit to finish.');
    if (!(Number.isInteger(epochs) && epochs > 0)) throw new GraftError('E_BAD_OPTION', `epochs must be a positive integer, got ${epochs}`, 'Pass e.g. --epochs 20.');
    const lrs = Array.isArray(o.lr) ? o.lr : this.net.groups.map(() => o.lr as number);
    if (lrs.length !== this.net.groups.length || lrs.some((x) => !(x >= 0 && Number.isFinite(x)))) {
      throw new GraftError('E_BAD_OPTION', `need one finite learning rate >= 0 per group (${this.net.groups.length}), got [${lrs}]`, 'Pass one rate, or one per layer group.');
    }
    const key = JSON.stringify({ epochs, lr: lrs, schedule: o.schedule ?? null, wd: o.weightDecay ?? null, bs: this.batchSize, l2sp: this.l2sp?.alpha ?? 0, mixup: this.mixup });
    if (this.epochsDone > 0 && this.fitKey && this.fitKey !== key) {
      throw new GraftError('E_CHECKPOINT', 'the resumed checkpoint was written by a fit with other settings', 'Resume with the same epochs, learning rate, schedule and batch size.');
    }
    this.fitKey = key;
    this.groupWd = o.weightDecay;
    const schedule = makeSchedule(o.schedule ?? { kind: 'constant' });
    const n = this.train.n;
    const batches = Math.ceil(n / this.batchSize);
    this.fitting = true;
    this.progress = { epoch: this.epochsDone, epochs, batch: 0, batches, iter: this.epochsDone * batches, iters: epochs * batches };
    try {
      await this.fire('beforeFit');
      for (let ep = this.epochsDone; ep < epochs; ep++) {
        this.progress.epoch = ep;
        const t0 = performance.now();
        const { order, ranges } = this.epochPlan(this.train, ep);
        let lossSum = 0;
        let seen = 0;
        try {
          await this.fire('beforeEpoch');
          for (let bi = 0; bi < batches; bi++) {
            this.progress.batch = bi;
            this.progress.iter = ep * batches + bi;
            this.lrs = lrs.map((lr) => schedule(this.progress.iter, this.progress.iters, lr));
            const [from, to] = ranges[bi]!;
            checkAborted(this.signal ?? currentRun()?.signal);
            try {
              await this.fire('beforeBatch');
              const len = this.bucketOf(this.train, order, from, to);
              const { x, y } = this.gather(this.train, order, from, to, len);
              const mixed = this.mixup > 0 && y instanceof Int32Array ? mixBatch(x, this.loss.targets(y, this.shapeAt(len).outputs), to - from, this.mixup, mixSeed(this.seed, 'mixup', ep, bi)) : null;
              const loss = await this.step(mixed?.x ?? x, y, ['batch', ep, bi], mixed?.t, len);
              lossSum += loss * (to - from);
              seen += to - from;
              await this.fire('afterBatch');
            } catch (e) {
              if (!(e instanceof CancelBatch)) throw e;
            }
          }
        } catch (e) {
          if (!(e instanceof CancelEpoch)) throw e;
        }
        const rec: EpochRecord = { epoch: ep, trainLoss: seen ? lossSum / seen : NaN, lr: [...this.lrs], seconds: 0 };
        if (this.val) {
          const v = await this.evaluate(this.val);
          rec.valLoss = v.loss;
          rec.valAccuracy = v.accuracy;
        }
        rec.seconds = (performance.now() - t0) / 1000;
        this.history.push(rec);
        this.epochsDone = ep + 1;
        await this.fire('afterEpoch');
        reportProgress({ type: 'epoch', epoch: ep, epochs, trainLoss: rec.trainLoss, ...(rec.valLoss !== undefined ? { valLoss: rec.valLoss, valAccuracy: rec.valAccuracy! } : {}), seconds: rec.seconds });
      }
    } catch (e) {
      if (!(e instanceof CancelFit)) {
        // A diverged fit still ends like a fit (early stopping puts back its best weights) before the
        // error goes up; the current weights are the last good step's.
        if (e instanceof GraftError && e.code === 'E_DIVERGED') {
          try { await this.fire('afterFit'); } catch { /* the divergence is the error to report */ }
          this.epochsDone = 0;
          this.fitKey = '';
        }
        this.fitting = false;
        throw e;
      }
      await this.fire('afterCancelFit');
    }
    try {
      await this.fire('afterFit');
    } finally {
      this.fitting = false;
      this.epochsDone = 0;
      this.fitKey = '';
    }
    return this.history;
  }

  /** Loss, accuracy and logits on a dataset, in eval mode (no dropout). */
  async evaluate(d: Dataset): Promise<EvalResult> {
    const k = this.net.outputs;
    const logits = new Float32Array(d.n * k);
    let lossSum = 0;
    let correct = 0;
    // Sequence data in length order, so each batch is cut to the length of its examples.
    const idx = this.bucketed(d) ? Array.from(d.n ? [...Array(d.n).keys()] : []).sort((i, j) => d.lengths![i]! - d.lengths![j]! || i - j) : [...Array(d.n).keys()];
    for (let from = 0; from < d.n; from += this.evalBatchSize) {
      const to = Math.min(d.n, from + this.evalBatchSize);
      const m = to - from;
      const len = this.bucketOf(d, idx, from, to);
      const shape = this.shapeAt(len);
      const kb = shape.outputs;
      const st = await this.evalStep(m, len);
      const { x, y } = this.gather(d, idx, from, to, len);
      const feeds: Record<string, TensorData> = {
        x: { dtype: 'float32', dims: [m, ...shape.inputShape], data: x },
        target: { dtype: 'float32', dims: [m, kb], data: this.loss.targets(y, kb) },
      };
      for (const p of this.net.params) feeds[P(p.name)] = { dtype: 'float32', dims: p.shape, data: this.weights.get(p.name)! };
      const out = await st.session.run(feeds);
      const lg = out['logits']!.data as Float32Array;
      // Rows in the dataset's order, at full width (scores past a cut length stay 0).
      for (let i = 0; i < m; i++) logits.set(lg.subarray(i * kb, (i + 1) * kb), idx[from + i]! * k);
      lossSum += Number(out['loss']!.data[0]) * m;
      if (y instanceof Int32Array) {
        for (let i = 0; i < m; i++) {
          let best = 0;
          for (let j = 1; j < kb; j++) if (lg[i * kb + j]! > lg[i * kb + best]!) best = j;
          if (kb === 1 ? (lg[i]! > 0 ? 1 : 0) === y[i] : best === y[i]) correct++;
        }
      }
    }
    return { loss: lossSum / d.n, accuracy: correct / d.n, logits };
  }

  /** The self-contained inference graph (weights baked in), as ONNX bytes. */
  exportOnnx(head: 'softmax' | 'sigmoid' | 'none' = 'softmax'): Uint8Array {
    return this.inferenceGraph(head).toBytes();
  }

  /** The inference graph (input 'input', outputs 'logits' and 'probabilities'), weights baked in. */
  inferenceGraph(head: 'softmax' | 'sigmoid' | 'none' = 'softmax'): Graph {
    return buildInferenceGraph(this.net, (n) => this.weights.get(n)!, head).graph;
  }

  // ---- checkpoints ----------------------------------------------------------------------------------------------
  saveCheckpoint(path: string): void {
    const arrays: NamedArrays = {};
    for (const [k, v] of this.weights) arrays[`w/${k}`] = { shape: [v.length], data: v };
    for (const [k, s] of this.slots) s.forEach((a, i) => (arrays[`s/${k}/${this.opt.slots[i]}`] = { shape: [a.length], data: a }));
    const cbState: Record<string, unknown> = {};
    for (const cb of this.callbacks) {
      if (cb.state) cbState[cb.name] = cb.state();
      for (const [k, v] of Object.entries(cb.arrays?.() ?? {})) arrays[`cb/${cb.name}/${k}`] = v;
    }
    writeSafetensors(path, arrays, {
      format: 'graft-checkpoint',
      version: CHECKPOINT_VERSION,
      state: JSON.stringify({
        epochsDone: this.epochsDone, groupSteps: this.groupSteps, trainable: this.trainableGroups, history: this.history,
        fitKey: this.fitKey, callbacks: cbState, seed: this.seed, optimizer: this.opt.options, params: this.net.params.map((p) => p.name),
      }),
    });
  }

  loadCheckpoint(path: string): void {
    const { arrays, metadata } = readSafetensors(path);
    const bad = (why: string) => new GraftError('E_CHECKPOINT', `checkpoint ${path} does not fit this run: ${why}`,
      'Resume with the same data, head and options as the run that wrote it, or start afresh without --resume.');
    if (metadata['format'] !== 'graft-checkpoint') throw bad('it is not a graft checkpoint');
    const st = JSON.parse(metadata['state'] ?? '{}');
    const names = this.net.params.map((p) => p.name);
    if (JSON.stringify(st.params) !== JSON.stringify(names)) throw bad('the network has other parameters');
    if (JSON.stringify(st.optimizer) !== JSON.stringify(this.opt.options)) throw bad('the optimizer settings differ');
    if (st.seed !== this.seed) throw bad(`it was trained with seed ${st.seed}, not ${this.seed}`);
    for (const p of this.net.params) {
      const a = arrays[`w/${p.name}`];
      if (!a || a.data.length !== p.value.length) throw bad(`weights of ${p.name} are missing or of the wrong size`);
      this.weights.set(p.name, a.data as Float32Array);
      const s = this.opt.slots.map((slot) => arrays[`s/${p.name}/${slot}`]?.data as Float32Array | undefined);
      if (s.every((x) => x)) this.slots.set(p.name, s as Float32Array[]);
    }
    this.spare.clear();
    this.spareSlots.clear();
    this.epochsDone = st.epochsDone;
    this.groupSteps = st.groupSteps;
    this.trainable = new Set(st.trainable);
    this.history = st.history;
    this.fitKey = st.fitKey;
    for (const cb of this.callbacks) {
      const s = st.callbacks?.[cb.name];
      if (s && cb.loadState) cb.loadState(s);
      const prefix = `cb/${cb.name}/`;
      const mine: Record<string, Float32Array> = {};
      for (const [k, v] of Object.entries(arrays)) if (k.startsWith(prefix)) mine[k.slice(prefix.length)] = v.data as Float32Array;
      cb.loadArrays?.(mine);
    }
    this.dropTrainSteps();
  }

  async dispose(): Promise<void> {
    this.dropTrainSteps();
    for (const s of this.evalSteps.values()) await s.session.dispose();
    this.evalSteps.clear();
  }
}

/** Gamma(a, 1) by Marsaglia and Tsang (a < 1 boosted), from a uniform generator. */
function gamma(a: number, r: () => number): number {
  if (a < 1) return gamma(a + 1, r) * Math.pow(r() || 1e-12, 1 / a);
  const d = a - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let z: number;
    let v: number;
    do {
      z = Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r());
      v = 1 + c * z;
    } while (v <= 0);
    v = v * v * v;
    const u = r();
    if (Math.log(u || 1e-12) < 0.5 * z * z + d - d * v + d * Math.log(v)) return d * v;
  }
}

/**
 * Mixup (Zhang et al. 2018): x' = l x + (1 - l) x[perm], t' = l t + (1 - l) t[perm], one lambda per batch
 * from Beta(alpha, alpha), seeded so that a resumed run mixes the same way.
 */
export function mixBatch(x: Float32Array, t: Float32Array, m: number, alpha: number, seed: number): { x: Float32Array; t: Float32Array; lambda: number } {
  const r = rng(seed);
  const g1 = gamma(alpha, r);
  const g2 = gamma(alpha, r);
  const lambda = g1 / (g1 + g2);
  const perm = shuffled(m, mixSeed(seed, 'perm'));
  const px = x.length / m;
  const pt = t.length / m;
  const xo = new Float32Array(x.length);
  const to = new Float32Array(t.length);
  for (let i = 0; i < m; i++) {
    const j = perm[i]!;
    for (let k = 0; k < px; k++) xo[i * px + k] = lambda * x[i * px + k]! + (1 - lambda) * x[j * px + k]!;
    for (let k = 0; k < pt; k++) to[i * pt + k] = lambda * t[i * pt + k]! + (1 - lambda) * t[j * pt + k]!;
  }
  return { x: xo, t: to, lambda };
}

/** A seeded permutation of 0..n-1. */
export function shuffled(n: number, seed: number): Int32Array {
  const r = rng(seed);
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}
