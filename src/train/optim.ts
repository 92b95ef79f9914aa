/**
 * Optimizers that run inside the training graph: new weights and optimizer states are outputs of the
 * same ORT run that computes the gradients, so a step is one native call. Learning rates (and the
 * scalars derived from them and the step count) are fed per parameter group, so schedules and
 * discriminative learning rates need no recompilation. Semantics follow PyTorch's SGD, Adam, AdamW and
 * Adagrad; optim.onnx.test.ts checks them against the ONNX backend cases of ai.onnx.preview.training's
 * Momentum, Adam and Adagrad operators too.
 */
import type { GraphBuilder, Sym } from '../graph/builder.ts';
import { GraftError } from '../errors.ts';

/** PyTorch's SGD: coupled weight decay, momentum with dampening (not applied at the first step), Nesterov. */
export interface SgdOptions { kind: 'sgd'; momentum?: number; dampening?: number; nesterov?: boolean; weightDecay?: number }
/**
 * Adam ('adam', weight decay added to the gradient, as PyTorch's Adam and ONNX's norm_coefficient) or AdamW
 * ('adamw', decoupled decay). `biasCorrection: false` drops the moment bias correction (ONNX Adam at T = 0).
 */
export interface AdamWOptions { kind: 'adamw' | 'adam'; beta1?: number; beta2?: number; eps?: number; weightDecay?: number; biasCorrection?: boolean }
/** PyTorch's Adagrad: lr / (1 + (t - 1) lrDecay), coupled weight decay, a starting accumulator value. */
export interface AdagradOptions { kind: 'adagrad'; lrDecay?: number; eps?: number; weightDecay?: number; initialAccumulatorValue?: number }
export type OptimizerOptions = SgdOptions | AdamWOptions | AdagradOptions;

export interface ParamGroupSettings {
  lr: number;
  /** Overrides the optimizer's weight decay for this group. */
  weightDecay?: number;
}

/** The scalar inputs one parameter group is fed at each step. */
export type GroupScalars = Record<string, number>;

export interface Optimizer {
  options: Required<SgdOptions> | Required<AdamWOptions> | Required<AdagradOptions>;
  /** Names of the per-parameter state slots (e.g. ['m', 'v']). */
  slots: string[];
  /** Starting value of each slot (0 when absent). */
  slotInit?: Record<string, number>;
  /** Names of the per-group scalar inputs. */
  scalarNames: string[];
  /** The scalars for a group at step t (1-based). */
  scalars(group: ParamGroupSettings, t: number): GroupScalars;
  /**
   * Writes the update for one parameter: returns the new weight and new state slots.
   * `s(name)` gives the group's scalar input symbol; `decay` is false for biases and norms.
   */
  update(b: GraphBuilder, w: Sym, g: Sym, state: Sym[], s: (name: string) => Sym, decay: boolean): { w: Sym; state: Sym[] };
}

export function makeOptimizer(o: OptimizerOptions): Optimizer {
  if (o.kind === 'sgd') return sgd(o);
  if (o.kind === 'adamw' || o.kind === 'adam') return adamw(o);
  if (o.kind === 'adagrad') return adagrad(o);
  throw new GraftError('E_BAD_OPTION', `unknown optimizer ${(o as { kind: string }).kind}`, 'Use "sgd", "adam", "adamw" or "adagrad".');
}

function checkRange(name: string, v: number, lo: number, hi: number): void {
  if (!(v >= lo && v <= hi)) throw new GraftError('E_BAD_OPTION', `${name} must be in [${lo}, ${hi}], got ${v}`, `Set ${name} within the range.`);
}

function sgd(o: SgdOptions): Optimizer {
  const options = { kind: 'sgd' as const, momentum: o.momentum ?? 0, dampening: o.dampening ?? 0, nesterov: o.nesterov ?? false, weightDecay: o.weightDecay ?? 0 };
  if (options.nesterov && options.momentum <= 0) {
    throw new GraftError('E_BAD_OPTION', 'Nesterov momentum needs momentum > 0', 'Set momentum, e.g. 0.9.');
  }
  checkRange('momentum', options.momentum, 0, 1);
  checkRange('dampening', options.dampening, 0, 1);
  const mu = options.momentum;
  const damped = mu > 0 && options.dampening > 0;
  return {
    options,
    slots: mu > 0 ? ['buf'] : [],
    scalarNames: damped ? ['lr', 'wd', 'gs'] : ['lr', 'wd'],
    // PyTorch starts the buffer at the first gradient, undampened: gs = 1 at t = 1.
    scalars: (grp, t) => ({ lr: grp.lr, wd: grp.weightDecay ?? options.weightDecay, ...(damped ? { gs: t <= 1 ? 1 : 1 - options.dampening } : {}) }),
    update(b, w, g, state, s, decay) {
      // PyTorch: g += wd*w (coupled decay); buf = mu*buf + (1-dampening)*g; step = nesterov ? g + mu*buf : buf
      let grad = decay ? b.add(g, b.mul(s('wd'), w)) : g;
      const out: Sym[] = [];
      if (mu > 0) {
        const buf = b.add(b.mul(state[0]!, b.like(mu, w)), damped ? b.mul(grad, s('gs')) : grad);
        out.push(buf);
        grad = options.nesterov ? b.add(grad, b.mul(buf, b.like(mu, w))) : buf;
      }
      return { w: b.sub(w, b.mul(s('lr'), grad)), state: out };
    },
  };
}

function adamw(o: AdamWOptions): Optimizer {
  const coupled = o.kind === 'adam';
  const options = { kind: o.kind, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? (coupled ? 0 : 0.01), biasCorrection: o.biasCorrection ?? true };
  const { beta1, beta2, eps } = options;
  checkRange('beta1', beta1, 0, 1);
  checkRange('beta2', beta2, 0, 1);
  return {
    options,
    slots: ['m', 'v'],
    scalarNames: coupled ? ['wd', 'step', 'rbc2'] : ['decay', 'step', 'rbc2'],
    scalars: (grp, t) => {
      const lr = grp.lr;
      const wd = grp.weightDecay ?? options.weightDecay;
      const bc1 = options.biasCorrection ? 1 - beta1 ** t : 1;
      const bc2 = options.biasCorrection ? 1 - beta2 ** t : 1;
      return { ...(coupled ? { wd } : { decay: 1 - lr * wd }), step: lr / bc1, rbc2: 1 / Math.sqrt(bc2) };
    },
    update(b, w, g, state, s, decay) {
      // PyTorch Adam: g += wd*w. AdamW: w *= 1 - lr*wd. Then m,v moments; w -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
      const w1 = decay && !coupled ? b.mul(w, s('decay')) : w;
      const grad = decay && coupled ? b.add(g, b.mul(s('wd'), w)) : g;
      const m = b.add(b.mul(state[0]!, b.like(beta1, w)), b.mul(grad, b.like(1 - beta1, w)));
      const v = b.add(b.mul(state[1]!, b.like(beta2, w)), b.mul(b.mul(grad, grad), b.like(1 - beta2, w)));
      const denom = b.add(b.mul(b.sqrt(v), s('rbc2')), b.like(eps, w));
      const nw = b.sub(w1, b.mul(s('step'), b.div(m, denom)));
      return { w: nw, state: [m, v] };
    },
  };
}

function adagrad(o: AdagradOptions): Optimizer {
  const options = { kind: 'adagrad' as const, lrDecay: o.lrDecay ?? 0, eps: o.eps ?? 1e-10, weightDecay: o.weightDecay ?? 0, initialAccumulatorValue: o.initialAccumulatorValue ?? 0 };
  if (!(options.lrDecay >= 0) || !(options.initialAccumulatorValue >= 0)) {
    throw new GraftError('E_BAD_OPTION', `Adagrad's lrDecay and initialAccumulatorValue must be >= 0, got ${options.lrDecay} and ${options.initialAccumulatorValue}`, 'Use 0 for neither.');
  }
  return {
    options,
    slots: ['sum'],
    slotInit: { sum: options.initialAccumulatorValue },
    scalarNames: ['clr', 'wd'],
    scalars: (grp, t) => ({ clr: grp.lr / (1 + (t - 1) * options.lrDecay), wd: grp.weightDecay ?? options.weightDecay }),
    update(b, w, g, state, s, decay) {
      // PyTorch Adagrad: g += wd*w; sum += g*g; w -= clr * g / (sqrt(sum) + eps)
      const grad = decay ? b.add(g, b.mul(s('wd'), w)) : g;
      const sum = b.add(state[0]!, b.mul(grad, grad));
      const nw = b.sub(w, b.mul(s('clr'), b.div(grad, b.add(b.sqrt(sum), b.like(options.eps, w)))));
      return { w: nw, state: [sum] };
    },
  };
}
