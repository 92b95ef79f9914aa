/**
 * Transfer policies, each a few lines over the Learner's freeze/unfreeze: a plan of stages (which
 * groups train, for how many epochs, at which rates), then one runner that fits them in order and can
 * resume mid-plan from a checkpoint.
 *  - probe: the head only.
 *  - fineTune: the head first with the backbone frozen, then unfreeze (all, or the top N groups) with
 *    discriminative rates (each group down gets lr * lrMult) and one-cycle (as fastai's fine_tune).
 *  - gradualUnfreeze: one more group each epoch, from the top down (ULMFiT).
 */
import { GraftError } from '../errors.ts';
import type { Callback } from './callbacks.ts';
import type { Learner } from './learner.ts';
import type { ScheduleOptions } from './schedules.ts';
import type { Diagnosis } from './diagnose.ts';

export type PolicyKind = 'probe' | 'finetune' | 'gradual';

export interface PolicyOptions {
  /** Epochs in all (for finetune: after the head-only epochs). */
  epochs: number;
  /** Learning rate of the head (the top group); lower groups get lr * lrMult^depth. */
  lr: number;
  /** Factor per group down from the head (default 0.5). */
  lrMult?: number;
  /** Train only the top N backbone groups (plus the head); default all. */
  unfreeze?: number;
  /** Head-only epochs before unfreezing (finetune; default 3: a real probe to fall back on). */
  freezeEpochs?: number;
  /** Rate of the head-only stage (default 3e-3, a probe's rate: its weights start from scratch). */
  headLr?: number;
  /** Schedule of the unfrozen stages (default one-cycle; text encoders use linear warm-up and decay). */
  schedule?: ScheduleOptions;
}

export interface Stage {
  name: string;
  /** First trainable group (index into net.groups). */
  trainFrom: number;
  epochs: number;
  lr: number[];
  schedule: ScheduleOptions;
}

/** lr for the top group, lr * mult for the one below, and so on down. */
export function discriminativeLrs(groups: number, lr: number, mult: number): number[] {
  return Array.from({ length: groups }, (_, g) => lr * Math.pow(mult, groups - 1 - g));
}

/** The lowest group a policy will ever train (what a cached prefix can start at). */
export function lowestTrainable(groups: number, kind: PolicyKind, o: Pick<PolicyOptions, 'unfreeze' | 'epochs'>, cut?: string): number {
  const backbone = groups - 1;
  if (o.unfreeze !== undefined && !(Number.isInteger(o.unfreeze) && o.unfreeze >= 0 && o.unfreeze <= backbone)) {
    throw new GraftError('E_BAD_OPTION', `cannot unfreeze ${o.unfreeze} groups: the backbone has ${backbone}${cut ? ` below cut ${cut}` : ''} (plus the head)`,
      `Use --unfreeze 0 to ${backbone} (graft backbones show ID lists the groups).`);
  }
  if (kind === 'probe') return groups - 1;
  const n = o.unfreeze ?? backbone;
  if (kind === 'gradual') return Math.max(groups - 1 - Math.min(n, Math.max(0, o.epochs - 1)), 0);
  return groups - 1 - n;
}

export function planStages(groups: string[], kind: PolicyKind, o: PolicyOptions): Stage[] {
  const k = groups.length;
  if (!(Number.isInteger(o.epochs) && o.epochs > 0)) throw new GraftError('E_BAD_OPTION', `epochs must be a positive integer, got ${o.epochs}`, 'Pass e.g. --epochs 5.');
  if (!(o.lr > 0 && Number.isFinite(o.lr))) throw new GraftError('E_BAD_OPTION', `the learning rate must be > 0, got ${o.lr}`, 'Pass e.g. --lr 1e-3, or find one with graft lr-find.');
  const mult = o.lrMult ?? 0.5;
  if (!(mult > 0 && mult <= 1)) throw new GraftError('E_BAD_OPTION', `--lr-mult must be in (0, 1], got ${mult}`, 'Earlier groups get smaller rates: use e.g. 0.5.');
  const lowest = lowestTrainable(k, kind, o);
  const oneCycle: ScheduleOptions = { kind: 'one-cycle' };
  const headLr = o.headLr ?? 3e-3;
  if (kind === 'probe') return [{ name: 'head', trainFrom: k - 1, epochs: o.epochs, lr: groups.map(() => o.lr), schedule: oneCycle }];
  if (kind === 'finetune') {
    const fe = o.freezeEpochs ?? 3;
    const stages: Stage[] = [];
    if (fe > 0 && lowest < k - 1) stages.push({ name: 'head', trainFrom: k - 1, epochs: fe, lr: groups.map(() => headLr), schedule: oneCycle });
    stages.push({ name: 'fine-tune', trainFrom: lowest, epochs: o.epochs, lr: discriminativeLrs(k, o.lr, mult), schedule: o.schedule ?? oneCycle });
    return stages;
  }
  // gradual: epoch e trains the top e groups + head (epoch 0: head only), never below `lowest`.
  return Array.from({ length: o.epochs }, (_, e) => {
    const from = Math.max(k - 1 - e, lowest);
    return { name: from === k - 1 ? 'head' : `from ${groups[from]}`, trainFrom: from, epochs: 1, lr: discriminativeLrs(k, e === 0 ? headLr : o.lr, mult), schedule: e > 0 && o.schedule ? o.schedule : { kind: 'cosine' } };
  });
}

/** The checkpoint array that holds the probe's per-example validation losses (not a weight name: it has a slash and a colon). */
const LOSSES_KEY = 'policy:probe/val-losses';

/** Remembers which stage a checkpoint was written in, so a resumed run continues there. */
export class StageTracker implements Callback {
  name = 'policy-stage';
  order = 10;
  stage = 0;
  /** The head-only stage's weights and validation accuracy (the fallback), kept across a resume. */
  probe: { weights: Map<string, Float32Array>; acc: number; loss?: number; losses?: Float32Array } | null = null;
  /** A learning rate chosen before the first stage (the lr finder's), so a resumed run uses it again. */
  lr: number | null = null;
  state(): Record<string, unknown> { return { stage: this.stage, probeAcc: this.probe?.acc ?? null, probeLoss: this.probe?.loss ?? null, lr: this.lr }; }
  loadState(s: Record<string, unknown>): void {
    this.stage = Number(s['stage'] ?? 0);
    this.lr = typeof s['lr'] === 'number' ? s['lr'] : null;
    this.pendingAcc = typeof s['probeAcc'] === 'number' ? s['probeAcc'] : null;
    this.pendingLoss = typeof s['probeLoss'] === 'number' ? s['probeLoss'] : undefined;
  }
  arrays(): Record<string, { shape: number[]; data: Float32Array }> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    if (this.probe) for (const [k, v] of this.probe.weights) out[k] = { shape: [v.length], data: v };
    if (this.probe?.losses) out[LOSSES_KEY] = { shape: [this.probe.losses.length], data: this.probe.losses };
    return out;
  }
  loadArrays(a: Record<string, Float32Array>): void {
    const { [LOSSES_KEY]: losses, ...weights } = a;
    if (this.pendingAcc !== null && Object.keys(weights).length) {
      this.probe = { weights: new Map(Object.entries(weights)), acc: this.pendingAcc, ...(this.pendingLoss !== undefined ? { loss: this.pendingLoss } : {}), ...(losses ? { losses } : {}) };
    }
  }
  private pendingAcc: number | null = null;
  private pendingLoss: number | undefined;
}

/** Per-example cross-entropy of softmax(logits) at the labels. */
export function perExampleLossFromLogits(logits: ArrayLike<number>, y: ArrayLike<number>, k: number): Float64Array {
  return Float64Array.from({ length: y.length }, (_, i) => {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, logits[i * k + j]!);
    let z = 0;
    for (let j = 0; j < k; j++) z += Math.exp(logits[i * k + j]! - m);
    return m + Math.log(z) - logits[i * k + y[i]!]!;
  });
}

/** What the keep rule saw: the paired loss gain (probe minus fine-tune, mean over validation) and its standard error. */
export interface KeepEvidence { keep: boolean; gain: number; se: number; n: number; why: string }

/** How many standard errors the paired loss gain must clear: one-sided, about a 2.5% chance of keeping a fine-tune no better than the probe. */
export const KEEP_Z = 2;

/**
 * LP-FT's keep rule, paired over the same validation examples: the fine-tune is kept only when it does not
 * lower the accuracy and lowers the per-example loss by more than KEEP_Z standard errors of the paired
 * difference. The mean loss alone could not tell a real gain from noise on a 20-image split (mnist10: a
 * fine-tune with a lower loss and one more image right lost 7.7 points on 1,000 test images).
 */
export function fineTuneBeatsProbe(ft: { accuracy: number; losses: ArrayLike<number> }, probe: { accuracy: number; losses: ArrayLike<number> }): KeepEvidence {
  const n = ft.losses.length;
  if (n !== probe.losses.length) throw new GraftError('E_GRAPH_SHAPE', `keep rule: ${n} fine-tune losses against ${probe.losses.length} probe losses`, 'Both must be measured on the same validation examples.');
  const d = Float64Array.from({ length: n }, (_, i) => probe.losses[i]! - ft.losses[i]!);
  const gain = n ? d.reduce((a, b) => a + b, 0) / n : 0;
  const se = n > 1 ? Math.sqrt(d.reduce((a, b) => a + (b - gain) ** 2, 0) / (n - 1) / n) : Infinity;
  const accOk = ft.accuracy >= probe.accuracy;
  const keep = accOk && gain > KEEP_Z * se;
  const why = !accOk ? `validation accuracy ${ft.accuracy.toFixed(4)} below the probe's ${probe.accuracy.toFixed(4)}`
    : `validation loss gain ${gain.toFixed(4)} ${keep ? '>' : '<='} ${KEEP_Z} x its standard error ${se.toFixed(4)} over ${n} paired examples (accuracy ${ft.accuracy.toFixed(4)} vs ${probe.accuracy.toFixed(4)})`;
  return { keep, gain, se, n, why };
}

export interface StageRecord { name: string; trainFrom: number; groups: string[]; epochs: number; lr: number[]; epochsRun: number; diverged?: boolean; valAccuracy?: number }

/** What a fine-tuning run (images or text) reports, whatever the data. */
export interface FineTuneResult {
  out: string;
  labels: string[];
  backbone: string;
  mode: string;
  stages: StageRecord[];
  /** The stage whose weights were kept ('head' when fine-tuning ended below the head-only stage). */
  kept: string;
  note: string | null;
  trainedGroups: string[];
  valAccuracy: number | null;
  valMacroF1: number | null;
  bestEpoch: number | null;
  seconds: number;
  diagnosis: Diagnosis;
}

/** How a staged run ended: which stage's weights were kept, and why. */
export interface StagesResult { stages: StageRecord[]; kept: string; note: string | null }

/**
 * Fits the stages in order. Unless `fallback` is false, a run whose final validation accuracy is below
 * its head-only stage's ends on the head-only weights (the learner's validation set must then be held
 * out for selection, not the test set). With a StageTracker among the learner's callbacks and a checkpoint loaded,
 * stages before the tracked one are skipped and the tracked one continues where it stopped.
 */
export async function runStages(l: Learner, stages: Stage[], log: (s: string) => void = () => {}, o: { fallback?: boolean } = {}): Promise<StagesResult> {
  const tracker = l.callbacks.find((c): c is StageTracker => c instanceof StageTracker);
  const start = tracker?.stage ?? 0;
  const out: StageRecord[] = [];
  const top = l.net.groups.length - 1;
  // The head-only stage is a probe of the frozen backbone: fine-tuning must not end below it.
  let probe: { weights: Map<string, Float32Array>; acc: number } | null = tracker?.probe ?? null;
  let note: string | null = null;
  for (let i = 0; i < stages.length; i++) {
    const s = stages[i]!;
    const rec: StageRecord = { name: s.name, trainFrom: s.trainFrom, groups: l.net.groups.slice(s.trainFrom), epochs: s.epochs, lr: s.lr, epochsRun: 0 };
    out.push(rec);
    if (i < start) continue;
    if (tracker) tracker.stage = i;
    const resumed = i === start && l.epochsDone > 0;
    if (!resumed) {
      l.freezeTo(s.trainFrom);
      if (i > start || start === 0) l.resetOptimizer();
    }
    log(`stage ${i + 1}/${stages.length}: ${s.name} [${rec.groups.join(', ')}], ${s.epochs} epoch(s), lr ${fmtLrs(s.lr.slice(s.trainFrom))}`);
    const before = l.history.length;
    try {
      await l.fit(s.epochs, { lr: s.lr, schedule: s.schedule });
    } catch (e) {
      // A later stage that diverges ends the run on the best weights so far instead of losing it.
      if (!(e instanceof GraftError && e.code === 'E_DIVERGED') || i === 0) throw e;
      rec.diverged = true;
      note = `stage ${s.name} diverged (${e.message}); kept the best weights before it. Lower the learning rate or unfreeze fewer groups.`;
      log(`warning: ${note}`);
      rec.epochsRun = l.history.length - before;
      break;
    }
    rec.epochsRun = l.history.length - before;
    if (l.val) rec.valAccuracy = (await l.evaluate(l.val)).accuracy;
    if (s.trainFrom === top && l.val && i < stages.length - 1) {
      probe = { weights: l.snapshotWeights(), acc: rec.valAccuracy! };
      if (tracker) tracker.probe = probe;
    }
  }
  let kept = out.at(-1)?.name ?? 'none';
  if (probe && l.val && o.fallback !== false) {
    const acc = (await l.evaluate(l.val)).accuracy;
    if (acc < probe.acc) {
      l.restoreWeights(probe.weights);
      kept = 'head';
      note = `fine-tuning ended at validation accuracy ${acc.toFixed(4)}, below the head-only stage (${probe.acc.toFixed(4)}): kept the head-only weights.${note ? ` ${note}` : ''}`;
      log(note);
    }
  }
  return { stages: out, kept, note };
}

function fmtLrs(lrs: number[]): string {
  const lo = Math.min(...lrs);
  const hi = Math.max(...lrs);
  return lo === hi ? hi.toExponential(1) : `${lo.toExponential(1)}..${hi.toExponential(1)}`;
}
