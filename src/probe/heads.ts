/**
 * Probe helpers on cached features: the kNN head (cosine similarity to class prototypes) and stratified
 * k-fold indices (the convex probes' penalty search and the rank scores use them).
 */
import { GraftError } from '../errors.ts';
import type { Network } from '../train/network.ts';
import { shuffle } from '../data/split.ts';

/**
 * kNN head with class prototypes: the mean of each class's L2-normalised features, normalised again.
 * logits = temperature * cos(x, prototype); nothing is trained.
 */
export function knnHead(x: Float32Array, y: Int32Array, d: number, classes: number, temperature = 10): Network {
  const proto = new Float32Array(d * classes); // [D, K], column c = prototype of class c
  const counts = new Int32Array(classes);
  for (let i = 0; i < y.length; i++) {
    let norm = 0;
    for (let j = 0; j < d; j++) norm += x[i * d + j]! ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let j = 0; j < d; j++) proto[j * classes + y[i]!]! += x[i * d + j]! / norm;
    counts[y[i]!]!++;
  }
  for (let c = 0; c < classes; c++) {
    if (!counts[c]) throw new GraftError('E_EMPTY_CLASS', `class ${c} has no training examples for its prototype`, 'Give every class at least one training image.');
    let norm = 0;
    for (let j = 0; j < d; j++) norm += proto[j * classes + c]! ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let j = 0; j < d; j++) proto[j * classes + c]! /= norm;
  }
  return {
    inputShape: [d], outputs: classes, groups: ['head'],
    params: [{ name: 'knn.prototypes', shape: [d, classes], value: proto, group: 0, decay: false }],
    config: { kind: 'knn', inputDim: d, classes, temperature, similarity: 'cosine', prototypes: 'class means' },
    forward(b, xs, ctx) {
      const norm = b.sqrt(b.add(b.reduceSum(b.mul(xs, xs), [1], true), b.like(1e-12, xs)));
      const cos = b.matmul(b.div(xs, norm), ctx.param('knn.prototypes'));
      return b.mul(cos, b.like(temperature, cos));
    },
  };
}

/** Indices split into k stratified folds (seeded). */
export function stratifiedFolds(y: Int32Array, k: number, seed: number): Int32Array[] {
  const byClass = new Map<number, number[]>();
  y.forEach((c, i) => { const l = byClass.get(c); if (l) l.push(i); else byClass.set(c, [i]); });
  const folds: number[][] = Array.from({ length: k }, () => []);
  let r = 0;
  for (const [c, list] of [...byClass].sort((a, b) => a[0] - b[0])) {
    for (const i of shuffle(Int32Array.from(list), seed * 31 + c)) folds[r++ % k]!.push(i);
  }
  return folds.map((f) => Int32Array.from(f.sort((a, b) => a - b)));
}
