/**
 * Losses. Each one writes its scalar loss and, in closed form, its gradient with respect to the logits
 * (the seed for autodiff), and turns a batch of labels into the target tensor it is fed.
 * Targets are computed in TypeScript, so class weights, label smoothing and mixup are only inputs.
 */
import type { GraphBuilder, Sym } from '../graph/builder.ts';
import { GraftError } from '../errors.ts';

export interface LossGraph {
  loss: Sym;
  dlogits: Sym;
}

export interface Loss {
  kind: 'cross-entropy' | 'binary-cross-entropy' | 'mse';
  /** Writes loss and d loss / d logits for logits of shape [B, K] and a target input of shape [B, K]. */
  build(b: GraphBuilder, logits: Sym, target: Sym): LossGraph;
  /** The fed target [B, K] for a batch of class indices (or regression rows). */
  targets(y: Int32Array | Float32Array, k: number): Float32Array;
  config: Record<string, unknown>;
}

export interface CrossEntropyOptions {
  /** Per-class weights (PyTorch semantics: the mean divides by the sum of the weights of the targets). */
  classWeights?: number[];
  /** Label smoothing in [0, 1). */
  labelSmoothing?: number;
}

/**
 * Softmax cross-entropy. The fed target T already folds in weights, smoothing and the 1/denominator,
 * so loss = -sum(T * logsoftmax(z)) and d loss / dz = softmax(z) * rowsum(T) - T.
 */
export function crossEntropy(opts: CrossEntropyOptions = {}): Loss {
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps < 1)) {
    throw new GraftError('E_BAD_OPTION', `label smoothing must be in [0, 1), got ${eps}`, 'Use a value such as 0.1.');
  }
  return {
    kind: 'cross-entropy',
    config: { kind: 'cross-entropy', labelSmoothing: eps, ...(opts.classWeights ? { classWeights: opts.classWeights } : {}) },
    build(b, z, t) {
      const logp = b.op1('LogSoftmax', [z], { axis: -1 });
      const loss = b.neg(b.op1('ReduceSum', [b.mul(t, logp)], { keepdims: 0 }));
      const rows = b.reduceSum(t, [1], true);
      const dlogits = b.sub(b.mul(b.exp(logp), rows), t);
      return { loss, dlogits };
    },
    targets(y, k) {
      const n = y.length;
      const w = opts.classWeights;
      if (w && w.length !== k) {
        throw new GraftError('E_BAD_OPTION', `class weights has ${w.length} entries for ${k} classes`, 'Give one weight per class, in label order.');
      }
      const t = new Float32Array(n * k);
      let denom = 0;
      for (let i = 0; i < n; i++) denom += w ? w[y[i]!]! : 1;
      for (let i = 0; i < n; i++) {
        const c = y[i]!;
        const wy = w ? w[c]! : 1;
        for (let j = 0; j < k; j++) t[i * k + j] = (eps / k) * (w ? w[j]! : 1) / denom;
        t[i * k + c]! += ((1 - eps) * wy) / denom;
      }
      return t;
    },
  };
}

/**
 * Softmax cross-entropy per token, for token classification: logits [B, L * K] hold K scores per token
 * (token-major). The target rows are one-hot per token, all zero for tokens the loss ignores (padding,
 * special tokens, a word's later sub-tokens: PyTorch's ignore_index); the fed target divides them by the
 * batch's count of labelled tokens, so the loss is the mean over labelled tokens.
 */
export function tokenCrossEntropy(classes: number): Loss {
  if (!(Number.isInteger(classes) && classes >= 2)) throw new GraftError('E_BAD_OPTION', `token classification needs at least 2 tags, got ${classes}`, 'Check the tag set.');
  const k = classes;
  return {
    kind: 'cross-entropy',
    config: { kind: 'token-cross-entropy', classes: k },
    build(b, z, t) {
      const shape = z.shape.map(Number);
      const per = [-1, shape[1]! / k, k];
      const logp = b.op1('LogSoftmax', [b.reshape(z, per)], { axis: -1 });
      const tt = b.reshape(t, per);
      const loss = b.neg(b.op1('ReduceSum', [b.mul(tt, logp)], { keepdims: 0 }));
      const dz = b.sub(b.mul(b.exp(logp), b.reduceSum(tt, [2], true)), tt);
      return { loss, dlogits: b.reshape(dz, shape) };
    },
    targets(y) {
      if (!(y instanceof Float32Array)) throw new GraftError('E_BAD_OPTION', 'token targets are one-hot rows per token (Float32Array)', 'Build them with tokenTargets().');
      let count = 0;
      for (let i = 0; i < y.length; i++) count += y[i]!;
      const t = new Float32Array(y.length);
      const inv = 1 / Math.max(1, count);
      for (let i = 0; i < y.length; i++) t[i] = y[i]! * inv;
      return t;
    },
  };
}

/** One-hot token targets [n, L * K] from label ids per token (IGNORE_INDEX or any negative: all zero). */
export function tokenTargets(labels: readonly Int32Array[], seqLen: number, classes: number): Float32Array {
  const t = new Float32Array(labels.length * seqLen * classes);
  labels.forEach((row, i) => {
    for (let j = 0; j < Math.min(row.length, seqLen); j++) {
      const c = row[j]!;
      if (c >= 0) t[(i * seqLen + j) * classes + c] = 1;
    }
  });
  return t;
}

/** Binary cross-entropy on logits (sigmoid), mean over all elements; targets are 0/1 per output. */
export function binaryCrossEntropy(): Loss {
  return {
    kind: 'binary-cross-entropy',
    config: { kind: 'binary-cross-entropy' },
    build(b, z, t) {
      const shape = z.shape.map(Number);
      const count = shape.reduce((a, x) => a * x, 1);
      // softplus(z) - t*z, written stably: relu(z) - t*z + log(1 + exp(-|z|))
      const sp = b.add(b.relu(z), b.op1('Log', [b.add(b.like(1, z), b.exp(b.neg(b.op1('Abs', [z]))))]));
      const per = b.sub(sp, b.mul(t, z));
      const loss = b.mul(b.op1('ReduceSum', [per], { keepdims: 0 }), b.like(1 / count, z));
      const dlogits = b.mul(b.sub(b.sigmoid(z), t), b.like(1 / count, z));
      return { loss, dlogits };
    },
    targets(y, k) {
      if (y instanceof Float32Array) return y;
      // Class indices with k == 1 are 0/1 labels; with k > 1 they become one-hot rows.
      const t = new Float32Array(y.length * k);
      for (let i = 0; i < y.length; i++) {
        if (k === 1) t[i] = y[i]!;
        else t[i * k + y[i]!] = 1;
      }
      return t;
    },
  };
}

/** Mean squared error over all elements. */
export function mse(): Loss {
  return {
    kind: 'mse',
    config: { kind: 'mse' },
    build(b, z, t) {
      const shape = z.shape.map(Number);
      const count = shape.reduce((a, x) => a * x, 1);
      const d = b.sub(z, t);
      const loss = b.mul(b.op1('ReduceSum', [b.mul(d, d)], { keepdims: 0 }), b.like(1 / count, z));
      const dlogits = b.mul(d, b.like(2 / count, z));
      return { loss, dlogits };
    },
    targets(y, k) {
      if (y instanceof Float32Array) return y;
      const t = new Float32Array(y.length * k);
      for (let i = 0; i < y.length; i++) t[i * k + y[i]!] = 1;
      return t;
    },
  };
}
