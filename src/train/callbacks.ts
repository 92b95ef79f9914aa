/**
 * Learner callbacks, in the style of fastai: ordered async hooks around fit, epoch and batch, with
 * cancel signals thrown as exceptions. Built in: history, progress bar, early stopping, checkpoints,
 * and a stop on divergence.
 */
import type { Learner } from './learner.ts';
import { currentRun } from '../context.ts';

export class CancelFit extends Error { constructor(readonly reason = 'cancelled') { super(reason); } }
export class CancelEpoch extends Error { constructor() { super('epoch cancelled'); } }
export class CancelBatch extends Error { constructor() { super('batch cancelled'); } }

export type Event = 'beforeFit' | 'beforeEpoch' | 'beforeBatch' | 'afterBatch' | 'afterEpoch' | 'afterCancelFit' | 'afterFit';

export interface Callback {
  name: string;
  /** Lower runs first (default 0). */
  order?: number;
  beforeFit?(l: Learner): void | Promise<void>;
  beforeEpoch?(l: Learner): void | Promise<void>;
  beforeBatch?(l: Learner): void | Promise<void>;
  afterBatch?(l: Learner): void | Promise<void>;
  afterEpoch?(l: Learner): void | Promise<void>;
  afterCancelFit?(l: Learner): void | Promise<void>;
  afterFit?(l: Learner): void | Promise<void>;
  /** State to keep in checkpoints (numbers and flags; weights go through `arrays`). */
  state?(): Record<string, unknown>;
  loadState?(s: Record<string, unknown>): void;
  arrays?(): Record<string, { shape: number[]; data: Float32Array }>;
  loadArrays?(a: Record<string, Float32Array>): void;
}

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainAccuracy?: number;
  valLoss?: number;
  valAccuracy?: number;
  lr: number[];
  seconds: number;
}

/**
 * Writes a one-line progress bar to stderr, only when stderr is a terminal, and not inside a
 * public-API call that asked for none (src/context.ts: the library default).
 */
export class ProgressBar implements Callback {
  name = 'progress';
  order = 90;
  private readonly tty: boolean;
  private start = 0;
  constructor(private readonly stream: NodeJS.WriteStream = process.stderr, force = false) {
    this.tty = force || (!!stream.isTTY && currentRun()?.progressBar !== false);
  }
  beforeEpoch(): void { this.start = performance.now(); }
  afterBatch(l: Learner): void {
    if (!this.tty) return;
    const { batch, batches, epoch, epochs } = l.progress;
    const w = 24;
    const k = Math.round(((batch + 1) / batches) * w);
    const eta = ((performance.now() - this.start) / (batch + 1)) * (batches - batch - 1) / 1000;
    this.stream.write(`\repoch ${epoch + 1}/${epochs} [${'#'.repeat(k)}${'.'.repeat(w - k)}] loss ${l.lastLoss.toFixed(4)} eta ${eta.toFixed(0)}s `);
  }
  afterEpoch(l: Learner): void {
    if (!this.tty) return;
    const r = l.history.at(-1)!;
    const val = r.valLoss !== undefined ? ` val_loss ${r.valLoss.toFixed(4)} val_acc ${(r.valAccuracy ?? 0).toFixed(4)}` : '';
    this.stream.write(`\repoch ${r.epoch + 1}/${l.progress.epochs} loss ${r.trainLoss.toFixed(4)}${val} ${r.seconds.toFixed(1)}s${' '.repeat(20)}\n`);
  }
}

export interface EarlyStoppingOptions {
  monitor?: 'valLoss' | 'valAccuracy' | 'trainLoss';
  patience?: number;
  minDelta?: number;
  /** Put back the weights of the best epoch when fit ends (default true). */
  restoreBest?: boolean;
}

/** Stops when the monitored metric stops improving, and restores the best epoch's weights. */
export class EarlyStopping implements Callback {
  name = 'early-stopping';
  order = 50;
  readonly monitor: NonNullable<EarlyStoppingOptions['monitor']>;
  readonly patience: number;
  readonly minDelta: number;
  readonly restoreBest: boolean;
  best = Infinity;
  bestEpoch = -1;
  wait = 0;
  private bestWeights: Map<string, Float32Array> | null = null;
  stoppedEpoch = -1;

  constructor(o: EarlyStoppingOptions = {}) {
    this.monitor = o.monitor ?? 'valLoss';
    this.patience = o.patience ?? 3;
    this.minDelta = o.minDelta ?? 0;
    this.restoreBest = o.restoreBest ?? true;
  }

  private score(r: EpochRecord): number | undefined {
    const v = r[this.monitor];
    return v === undefined ? undefined : this.monitor === 'valAccuracy' ? -v : v;
  }

  /** A new fit (e.g. the next stage of a policy) gets its own patience; the best so far carries over. */
  beforeFit(l: Learner): void {
    if (l.epochsDone === 0) this.wait = 0;
  }

  afterEpoch(l: Learner): void {
    const s = this.score(l.history.at(-1)!);
    if (s === undefined) return;
    if (s < this.best - this.minDelta) {
      this.best = s;
      this.bestEpoch = l.history.length - 1; // counted over the whole run (all fits, all stages)
      this.wait = 0;
      if (this.restoreBest) this.bestWeights = l.snapshotWeights();
    } else if (++this.wait >= this.patience) {
      this.stoppedEpoch = l.history.at(-1)!.epoch;
      throw new CancelFit(`early stopping: ${this.monitor} did not improve for ${this.patience} epochs`);
    }
  }

  afterFit(l: Learner): void {
    if (this.restoreBest && this.bestWeights) l.restoreWeights(this.bestWeights);
  }

  state(): Record<string, unknown> {
    return { best: this.best, bestEpoch: this.bestEpoch, wait: this.wait };
  }
  loadState(s: Record<string, unknown>): void {
    this.best = Number(s['best']);
    this.bestEpoch = Number(s['bestEpoch']);
    this.wait = Number(s['wait']);
  }
  arrays(): Record<string, { shape: number[]; data: Float32Array }> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    if (this.bestWeights) for (const [k, v] of this.bestWeights) out[k] = { shape: [v.length], data: v };
    return out;
  }
  loadArrays(a: Record<string, Float32Array>): void {
    if (Object.keys(a).length) this.bestWeights = new Map(Object.entries(a));
  }
}

/** Writes a checkpoint atomically after every epoch, so `resume` continues after a kill. */
export class Checkpoint implements Callback {
  name = 'checkpoint';
  order = 80; // after early stopping updated its state
  constructor(readonly path: string) {}
  afterEpoch(l: Learner): void {
    l.saveCheckpoint(this.path);
  }
}
