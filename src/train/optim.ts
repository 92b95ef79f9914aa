/**
 * Optimizers that run inside the training graph: new weights and optimizer states are outputs of the
 * same ORT run that computes the gradients, so a step is one native call. Learning rates (and the
 * scalars derived from them and the step count) are fed per parameter group, so schedules and
 * discriminative learning rates need no recompilation. Semantics follow PyTorch's SGD and AdamW.
 */
import type { GraphBuilder, Sym } from '../graph/builder.ts';
import { GraftError } from '../errors.ts';

export interface SgdOptions { kind: 'sgd'; momentum?: number; nesterov?: boolean; weightDecay?: number }
export interface AdamWOptions { kind: 'adamw'; beta1?: number; beta2?: number; eps?: number; weightDecay?: number }
export type OptimizerOptions = SgdOptions | AdamWOptions;

export interface ParamGroupSettings {
  lr: number;
  /** Overrides the optimizer's weight decay for this group. */
  weightDecay?: number;
}

/** The scalar inputs one parameter group is fed at each step. */
export type GroupScalars = Record<string, number>;

export interface Optimizer {
  options: Required<SgdOptions> | Required<AdamWOptions>;
  /** Names of the per-parameter state slots (e.g. ['m', 'v']). */
  slots: string[];
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
  if (o.kind === 'adamw') return adamw(o);
  throw new GraftError('E_BAD_OPTION', `unknown optimizer ${(o as { kind: string }).kind}`, 'Use "sgd" or "adamw".');
}

function sgd(o: SgdOptions): Optimizer {
  const options = { kind: 'sgd' as const, momentum: o.momentum ?? 0, nesterov: o.nesterov ?? false, weightDecay: o.weightDecay ?? 0 };
  if (options.nesterov && options.momentum <= 0) {
    throw new GraftError('E_BAD_OPTION', 'Nesterov momentum needs momentum > 0', 'Set momentum, e.g. 0.9.');
  }
  const mu = options.momentum;
  return {
    options,
    slots: mu > 0 ? ['buf'] : [],
    scalarNames: ['lr', 'wd'],
    scalars: (grp) => ({ lr: grp.lr, wd: grp.weightDecay ?? options.weightDecay }),
    update(b, w, g, state, s, decay) {
      // PyTorch: g += wd*w (coupled decay); buf = mu*buf + g; step = nesterov ? g + mu*buf : buf
      let grad = decay ? b.add(g, b.mul(s('wd'), w)) : g;
      const out: Sym[] = [];
      if (mu > 0) {
        const buf = b.add(b.mul(state[0]!, b.like(mu, w)), grad);
        out.push(buf);
        grad = options.nesterov ? b.add(grad, b.mul(buf, b.like(mu, w))) : buf;
      }
      return { w: b.sub(w, b.mul(s('lr'), grad)), state: out };
    },
  };
}

function adamw(o: AdamWOptions): Optimizer {
  const options = { kind: 'adamw' as const, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? 0.01 };
  const { beta1, beta2, eps } = options;
  return {
    options,
    slots: ['m', 'v'],
    scalarNames: ['decay', 'step', 'rbc2'],
    scalars: (grp, t) => {
      const lr = grp.lr;
      const wd = grp.weightDecay ?? options.weightDecay;
      const bc1 = 1 - beta1 ** t;
      const bc2 = 1 - beta2 ** t;
      return { decay: 1 - lr * wd, step: lr / bc1, rbc2: 1 / Math.sqrt(bc2) };
    },
    update(b, w, g, state, s, decay) {
      // PyTorch AdamW: w *= 1 - lr*wd; m,v moments; w -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
      const w1 = decay ? b.mul(w, s('decay')) : w;
      const m = b.add(b.mul(state[0]!, b.like(beta1, w)), b.mul(g, b.like(1 - beta1, w)));
      const v = b.add(b.mul(state[1]!, b.like(beta2, w)), b.mul(b.mul(g, g), b.like(1 - beta2, w)));
      const denom = b.add(b.mul(b.sqrt(v), s('rbc2')), b.like(eps, w));
      const nw = b.sub(w1, b.mul(s('step'), b.div(m, denom)));
      return { w: nw, state: [m, v] };
    },
  };
}
