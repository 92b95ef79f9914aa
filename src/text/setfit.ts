/**
 * SetFit-style few-shot classification (Tunstall et al. 2022): with a handful of labelled texts per class,
 * first fine-tune the encoder contrastively on pairs made from them (same class: cosine similarity toward
 * 1; different classes: toward 0; mean pooling, mean squared error, as SetFit's CosineSimilarityLoss), then
 * fit a classification head on the frozen, adapted embeddings. The pairs multiply a few examples into
 * many training signals, which is why it beats plain fine-tuning at 8 or 16 examples per class.
 */
import { GraftError } from '../errors.ts';
import type { TextEncoder, Tokenized } from '../backbones/textenc.ts';
import { rng } from '../rng.ts';
import { Learner } from '../train/learner.ts';
import { mse } from '../train/losses.ts';
import type { Callback } from '../train/callbacks.ts';
import { type EncoderNetwork, encoderNetwork, siameseNetwork, tokenRows } from './encoder-net.ts';

export interface SetFitOptions {
  /** Pair rounds: each round gives every example one positive and one negative partner (SetFit's num_iterations; default 20). */
  iterations?: number;
  /** Contrastive epochs over the pairs (default 1). */
  epochs?: number;
  /** Contrastive learning rate of the encoder (default 2e-5, SetFit's body rate). */
  lr?: number;
  /** Head: epochs and rate on the frozen embeddings (defaults 50 and 1e-2). */
  headEpochs?: number;
  headLr?: number;
  batchSize?: number;
  seed?: number;
  threads?: number;
  callbacks?: Callback[];
  log?: (s: string) => void;
}

export interface SetFitResult {
  /** The classification network (encoder + mean pooling + linear head) and its trained weights. */
  net: EncoderNetwork;
  weights: Map<string, Float32Array>;
  pairs: number;
  contrastiveLoss: { first: number; last: number };
}

/** Positive and negative partner pairs, `iterations` rounds over every example (seeded). */
export function contrastivePairs(y: Int32Array, iterations: number, seed: number): { a: Int32Array; b: Int32Array; same: Float32Array } {
  const r = rng(seed);
  const byClass = new Map<number, number[]>();
  y.forEach((c, i) => byClass.set(c, [...(byClass.get(c) ?? []), i]));
  const a: number[] = [];
  const b: number[] = [];
  const same: number[] = [];
  const draw = (list: number[], not: number) => {
    for (;;) {
      const j = list[Math.floor(r() * list.length)]!;
      if (j !== not || list.length === 1) return j;
    }
  };
  for (let it = 0; it < iterations; it++) {
    for (let i = 0; i < y.length; i++) {
      const mine = byClass.get(y[i]!)!;
      if (mine.length > 1) { a.push(i); b.push(draw(mine, i)); same.push(1); }
      const others = y.filter((c) => c !== y[i]).length;
      if (others) {
        let j = i;
        while (y[j] === y[i]) j = Math.floor(r() * y.length);
        a.push(i); b.push(j); same.push(0);
      }
    }
  }
  return { a: Int32Array.from(a), b: Int32Array.from(b), same: Float32Array.from(same) };
}

export async function setFit(enc: TextEncoder, tok: Pick<Tokenized, 'ids' | 'typeIds'>, y: Int32Array, classes: number, seqLen: number, o: SetFitOptions = {}): Promise<SetFitResult> {
  const n = y.length;
  if (n !== tok.ids.length) throw new GraftError('E_BAD_OPTION', `setFit: ${n} labels for ${tok.ids.length} texts`, 'Pass one label per text.');
  const seed = o.seed ?? 0;
  const log = o.log ?? (() => {});
  const pairs = contrastivePairs(y, o.iterations ?? 20, seed);
  if (!pairs.same.some((v) => v === 1)) throw new GraftError('E_EMPTY_CLASS', 'SetFit needs at least two examples of some class to make positive pairs', 'Label two or more texts per class.');
  const siamese = siameseNetwork(enc, { seqLen, pooling: 'mean' });
  const rows = siamese.replay.rows;
  const per = rows * seqLen;
  const single = tokenRows(tok, seqLen, rows, enc.tokenizer.padId);
  const P = pairs.a.length;
  const x = new Float32Array(P * 2 * per);
  for (let i = 0; i < P; i++) {
    x.set(single.subarray(pairs.a[i]! * per, (pairs.a[i]! + 1) * per), (2 * i) * per);
    x.set(single.subarray(pairs.b[i]! * per, (pairs.b[i]! + 1) * per), (2 * i + 1) * per);
  }
  const len = (i: number) => Math.max(1, Math.min(seqLen, tok.ids[i]!.length));
  const lengths = Int32Array.from(pairs.a, (a, i) => Math.max(len(a), len(pairs.b[i]!)));
  const batch = o.batchSize ?? 16;
  const epochs = o.epochs ?? 1;
  log(`setfit: ${P} pairs from ${n} examples (${pairs.same.filter((v) => v === 1).length} positive), ${epochs} contrastive epoch(s) at lr ${o.lr ?? 2e-5}`);
  const body = new Learner({
    net: siamese, train: { x, y: pairs.same, n: P, lengths }, loss: mse(), batchSize: batch, seed, optimizer: { kind: 'adamw', weightDecay: 0.01 },
    ...(o.threads ? { threads: o.threads } : {}), ...(o.callbacks ? { callbacks: o.callbacks } : {}),
  });
  let encoderWeights: Map<string, Float32Array>;
  let first = NaN;
  let last = NaN;
  try {
    const steps = Math.ceil(P / batch) * epochs;
    // The pairs' loss before and after (eval mode): how far the embeddings moved toward the labels' similarity.
    first = (await body.evaluate(body.train)).loss;
    await body.fit(epochs, { lr: o.lr ?? 2e-5, schedule: { kind: 'linear-warmup', warmup: Math.max(1, Math.round(steps * 0.1)), decay: 'linear' } });
    last = (await body.evaluate(body.train)).loss;
    encoderWeights = body.snapshotWeights();
  } finally {
    await body.dispose();
  }
  // The head on the adapted, frozen encoder (mean pooling, as in training).
  const net = encoderNetwork(enc, { classes, seqLen, pooling: 'mean', dropout: 0, seed });
  for (const p of net.params) {
    const w = encoderWeights.get(p.name);
    if (w) p.value.set(w);
  }
  const head = new Learner({
    net, train: { x: single, y, n, lengths: Int32Array.from(y, (_, i) => len(i)) }, batchSize: batch, seed, optimizer: { kind: 'adamw', weightDecay: 0.01 },
    trainableFrom: net.groups.length - 1, ...(o.threads ? { threads: o.threads } : {}),
  });
  try {
    await head.fit(o.headEpochs ?? 50, { lr: o.headLr ?? 1e-2, schedule: { kind: 'cosine' } });
    return { net, weights: head.snapshotWeights(), pairs: P, contrastiveLoss: { first, last } };
  } finally {
    await head.dispose();
  }
}
