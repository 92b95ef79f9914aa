/**
 * Heads: the trainable layers grafted on top of features. `linear` is softmax regression; `mlp` adds
 * hidden layers with ReLU and dropout. Both can start with a fixed standardisation of their inputs,
 * baked into the graph so the saved model needs no preprocessing code.
 */
import { GraftError } from '../errors.ts';
import type { GraphBuilder, Sym } from '../graph/builder.ts';
import { initWeights, mixSeed } from '../train/init.ts';
import type { ForwardContext, Network, Param } from '../train/network.ts';

export interface Standardize {
  mean: Float32Array;
  std: Float32Array;
}

export interface HeadOptions {
  inputDim: number;
  classes: number;
  seed?: number;
  /** Per-feature standardisation applied first (from the training data). */
  standardize?: Standardize;
}

export interface MlpOptions extends HeadOptions {
  hidden?: number[];
  dropout?: number;
  /** Dropout on the head's input (before the first layer). */
  inputDropout?: number;
}

/** Mean and standard deviation per column (std 1 where a column is constant). */
export function fitStandardize(x: Float32Array, n: number, d: number): Standardize {
  const mean = new Float32Array(d);
  const std = new Float32Array(d);
  const s = new Float64Array(d);
  const s2 = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) { const v = x[i * d + j]!; s[j] += v; s2[j] += v * v; }
  for (let j = 0; j < d; j++) {
    const m = s[j]! / n;
    const v = Math.max(0, s2[j]! / n - m * m);
    mean[j] = m;
    std[j] = v > 1e-12 ? Math.sqrt(v) : 1;
  }
  return { mean, std };
}

function dense(name: string, fanIn: number, fanOut: number, group: number, seed: number, init: 'he' | 'glorot'): Param[] {
  return [
    { name: `${name}.weight`, shape: [fanIn, fanOut], value: initWeights(init, fanIn * fanOut, fanIn, fanOut, mixSeed(seed, name)), group, decay: true },
    { name: `${name}.bias`, shape: [fanOut], value: new Float32Array(fanOut), group, decay: false },
  ];
}

function check(o: HeadOptions): void {
  if (!(o.inputDim > 0) || !(o.classes > 0)) {
    throw new GraftError('E_BAD_OPTION', `a head needs inputDim > 0 and classes > 0, got ${o.inputDim} and ${o.classes}`, 'Check the feature columns and labels.');
  }
  if (o.standardize && (o.standardize.mean.length !== o.inputDim || o.standardize.std.length !== o.inputDim)) {
    throw new GraftError('E_BAD_OPTION', `standardisation has ${o.standardize.mean.length} columns for ${o.inputDim} inputs`, 'Fit it on the same features.');
  }
}

function standardizeInput(b: GraphBuilder, x: Sym, s: Standardize | undefined): Sym {
  if (!s) return x;
  const inv = s.std.map((v) => 1 / v);
  return b.mul(b.sub(x, b.constant({ dtype: 'float32', dims: [s.mean.length], data: s.mean })), b.constant({ dtype: 'float32', dims: [inv.length], data: inv }));
}

function standardizeConfig(s: Standardize | undefined): Record<string, unknown> {
  return s ? { standardize: { mean: Array.from(s.mean), std: Array.from(s.std) } } : {};
}

export function linearHead(o: HeadOptions): Network {
  check(o);
  const seed = o.seed ?? 0;
  const params = dense('linear', o.inputDim, o.classes, 0, seed, 'glorot');
  return {
    inputShape: [o.inputDim],
    outputs: o.classes,
    groups: ['head'],
    params,
    config: { kind: 'linear', inputDim: o.inputDim, classes: o.classes, ...standardizeConfig(o.standardize) },
    forward(b, x, ctx: ForwardContext) {
      const h = standardizeInput(b, x, o.standardize);
      return b.op1('Gemm', [h, ctx.param('linear.weight'), ctx.param('linear.bias')]);
    },
  };
}

export function mlpHead(o: MlpOptions): Network {
  check(o);
  const seed = o.seed ?? 0;
  const hidden = o.hidden ?? [256];
  const p = o.dropout ?? 0.2;
  if (!(p >= 0 && p < 1) || !((o.inputDropout ?? 0) >= 0 && (o.inputDropout ?? 0) < 1)) {
    throw new GraftError('E_BAD_OPTION', `dropout must be in [0, 1), got ${p}`, 'Use e.g. 0.2.');
  }
  const sizes = [o.inputDim, ...hidden];
  const params: Param[] = [];
  hidden.forEach((h, i) => params.push(...dense(`hidden${i}`, sizes[i]!, h, 0, seed, 'he')));
  params.push(...dense('out', sizes.at(-1)!, o.classes, 0, seed, 'glorot'));
  return {
    inputShape: [o.inputDim],
    outputs: o.classes,
    groups: ['head'],
    params,
    config: { kind: 'mlp', inputDim: o.inputDim, classes: o.classes, hidden, dropout: p, inputDropout: o.inputDropout ?? 0, ...standardizeConfig(o.standardize) },
    forward(b, x, ctx) {
      let h = standardizeInput(b, x, o.standardize);
      h = ctx.dropout(h, o.inputDropout ?? 0, 'input');
      hidden.forEach((_, i) => {
        h = b.relu(b.op1('Gemm', [h, ctx.param(`hidden${i}.weight`), ctx.param(`hidden${i}.bias`)]));
        h = ctx.dropout(h, p, `hidden${i}`);
      });
      return b.op1('Gemm', [h, ctx.param('out.weight'), ctx.param('out.bias')]);
    },
  };
}
