/**
 * A BERT-style encoder for sequence classification, written as a Network (train/network.ts) so the
 * Learner, layer-wise learning rates and gradual unfreezing work on it unchanged.
 *
 * Input: one float tensor x [batch, rows, seqLen]. Row 0 holds the token ids, row 1 the attention mask
 * (1 for a token, 0 for padding), and with `segments` row 2 the token type (segment) ids. Ids are small
 * integers stored exactly in float32 (up to 2^24) and cast to int64 in the graph for Gather.
 * `encodeTokens` builds x from id lists.
 *
 * The model is post-LN BERT: word + position + token-type embeddings, LayerNorm, dropout; then per layer
 * multi-head self-attention with the additive mask (1 - mask) * -10000, residual + LayerNorm, a GELU
 * feed-forward block, residual + LayerNorm; then pooling ('cls': the first token, optionally through BERT's
 * dense + tanh pooler; 'mean': the mean over unmasked tokens), dropout and a linear classifier.
 *
 * Layout (chosen for ONNX Runtime on CPU): the hidden states stay 2-D [batch * seqLen, hidden] so every
 * dense layer is one Gemm with its bias fused; Q, K and V come from one fused [hidden, 3 * hidden] Gemm;
 * weights are stored [in, out]. Parameter groups: 'embeddings', 'layer0' .. 'layer{L-1}', 'head' (pooler
 * and classifier).
 */
import { GraftError } from '../errors.ts';
import type { GraphBuilder, Sym } from '../graph/builder.ts';
import { tensor } from '../graph/tensor.ts';
import { mixSeed, normal } from '../train/init.ts';
import type { ForwardContext, Network, Param } from '../train/network.ts';

export interface BertConfig {
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  /** Width of the feed-forward block (BERT: 4 * hidden). */
  intermediate: number;
  /** Tokens per example (the input is padded or cut to this length). */
  seqLen: number;
  classes: number;
  /** Size of the position table (default seqLen; BERT: 512). */
  maxPositions?: number;
  /** Token types (segments) in the table (default 2). */
  typeVocabSize?: number;
  /** Whether x carries a third row of token type ids (default false: every token is type 0). */
  segments?: boolean;
  pooling?: 'cls' | 'mean';
  /** BERT's pooler (dense + tanh) on the pooled vector (default: true for 'cls', false for 'mean'). */
  pooler?: boolean;
  /** GELU: exact (erf, BERT) or the tanh approximation (GPT-2, some MiniLM exports). */
  gelu?: 'erf' | 'tanh';
  /** Dropout on embeddings, sublayer outputs and the pooled vector (default 0.1). */
  dropout?: number;
  /** Dropout on the attention probabilities (default 0.1). */
  attentionDropout?: number;
  layerNormEps?: number;
  /** Standard deviation of the normal initialisation of weights and embeddings (default 0.02). */
  initStd?: number;
  seed?: number;
}

type Resolved = Required<BertConfig>;

/** The additive attention bias for padded keys: exp(-10000 + s) is exactly 0 in float32. */
export const MASK_BIAS = -1e4;

function resolve(c: BertConfig): Resolved {
  const pooling = c.pooling ?? 'cls';
  const r: Resolved = {
    ...c,
    maxPositions: c.maxPositions ?? c.seqLen,
    typeVocabSize: c.typeVocabSize ?? 2,
    segments: c.segments ?? false,
    pooling,
    pooler: c.pooler ?? pooling === 'cls',
    gelu: c.gelu ?? 'erf',
    dropout: c.dropout ?? 0.1,
    attentionDropout: c.attentionDropout ?? 0.1,
    layerNormEps: c.layerNormEps ?? 1e-12,
    initStd: c.initStd ?? 0.02,
    seed: c.seed ?? 0,
  };
  const ints: (keyof BertConfig)[] = ['vocabSize', 'hidden', 'layers', 'heads', 'intermediate', 'seqLen', 'classes', 'maxPositions', 'typeVocabSize'];
  for (const k of ints) {
    const v = r[k] as number;
    if (!(Number.isInteger(v) && v > 0)) throw new GraftError('E_BAD_OPTION', `bertEncoder: ${k} must be a positive integer, got ${v}`, 'Check the encoder config.');
  }
  if (r.hidden % r.heads !== 0) {
    throw new GraftError('E_BAD_OPTION', `bertEncoder: hidden ${r.hidden} is not divisible by heads ${r.heads}`, 'Choose heads so that hidden / heads is an integer (e.g. 256 and 4).');
  }
  if (r.seqLen > r.maxPositions) {
    throw new GraftError('E_BAD_OPTION', `bertEncoder: seqLen ${r.seqLen} exceeds the ${r.maxPositions} positions of the position table`, 'Lower seqLen or raise maxPositions.');
  }
  if (r.pooling !== 'cls' && r.pooling !== 'mean') {
    throw new GraftError('E_BAD_OPTION', `bertEncoder: unknown pooling "${r.pooling as string}". Must be one of [cls, mean]`, 'Use pooling: "cls" or "mean".');
  }
  if (r.gelu !== 'erf' && r.gelu !== 'tanh') {
    throw new GraftError('E_BAD_OPTION', `bertEncoder: unknown gelu "${r.gelu as string}". Must be one of [erf, tanh]`, 'Use gelu: "erf" or "tanh".');
  }
  for (const k of ['dropout', 'attentionDropout'] as const) {
    if (!(r[k] >= 0 && r[k] < 1)) throw new GraftError('E_BAD_OPTION', `bertEncoder: ${k} must be in [0, 1), got ${r[k]}`, 'Use e.g. 0.1.');
  }
  return r;
}

/** Rows of x per example. */
export function inputRows(c: Pick<BertConfig, 'segments'>): number {
  return c.segments ? 3 : 2;
}

/**
 * x for a batch of token id lists: ids (padded with `padId`, cut at seqLen), the mask, and with segments
 * the token type ids. Returns [n, rows, seqLen] row-major.
 */
export function encodeTokens(seqs: number[][], seqLen: number, o: { segments?: number[][]; padId?: number } = {}): Float32Array {
  const rows = o.segments ? 3 : 2;
  const x = new Float32Array(seqs.length * rows * seqLen);
  seqs.forEach((ids, i) => {
    const base = i * rows * seqLen;
    for (let t = 0; t < seqLen; t++) {
      const real = t < ids.length;
      const id = real ? ids[t]! : o.padId ?? 0;
      if (!(Number.isInteger(id) && id >= 0 && id < 2 ** 24)) {
        throw new GraftError('E_BAD_OPTION', `token id ${id} at position ${t} of sequence ${i} is not an integer in [0, 2^24)`, 'Pass token ids from the tokenizer.');
      }
      x[base + t] = id;
      x[base + seqLen + t] = real ? 1 : 0;
      if (o.segments) x[base + 2 * seqLen + t] = real ? o.segments[i]![t] ?? 0 : 0;
    }
  });
  return x;
}

export function bertEncoder(config: BertConfig): Network {
  const c = resolve(config);
  const { hidden: H, intermediate: F, layers: nL } = c;
  const groups = ['embeddings', ...Array.from({ length: nL }, (_, i) => `layer${i}`), 'head'];
  const head = groups.length - 1;
  const params: Param[] = [];
  const weight = (name: string, shape: number[], group: number) => {
    const n = shape.reduce((a, d) => a * d, 1);
    const v = normal(n, mixSeed(c.seed, name));
    for (let i = 0; i < n; i++) v[i]! *= c.initStd;
    params.push({ name, shape, value: v, group, decay: true });
  };
  const bias = (name: string, n: number, group: number) => params.push({ name, shape: [n], value: new Float32Array(n), group, decay: false });
  const norm = (name: string, group: number) => {
    params.push({ name: `${name}.weight`, shape: [H], value: new Float32Array(H).fill(1), group, decay: false });
    bias(`${name}.bias`, H, group);
  };
  const dense = (name: string, fanIn: number, fanOut: number, group: number) => {
    weight(`${name}.weight`, [fanIn, fanOut], group);
    bias(`${name}.bias`, fanOut, group);
  };
  weight('embeddings.word', [c.vocabSize, H], 0);
  weight('embeddings.position', [c.maxPositions, H], 0);
  weight('embeddings.token_type', [c.typeVocabSize, H], 0);
  norm('embeddings.ln', 0);
  for (let i = 0; i < nL; i++) {
    const g = i + 1;
    dense(`layer${i}.attn.qkv`, H, 3 * H, g);
    dense(`layer${i}.attn.out`, H, H, g);
    norm(`layer${i}.attn.ln`, g);
    dense(`layer${i}.ffn.in`, H, F, g);
    dense(`layer${i}.ffn.out`, F, H, g);
    norm(`layer${i}.ffn.ln`, g);
  }
  if (c.pooler) dense('pooler', H, H, head);
  dense('classifier', H, c.classes, head);

  return {
    inputShape: [inputRows(c), c.seqLen],
    outputs: c.classes,
    groups,
    params,
    config: { kind: 'bert', ...c },
    forward: (b, x, ctx) => forward(c, b, x, ctx),
  };
}

/** GELU, 0.5 x (1 + erf(x / sqrt 2)), or its tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function gelu(b: GraphBuilder, x: Sym, form: 'erf' | 'tanh'): Sym {
  const k = (v: number) => b.like(v, x);
  if (form === 'erf') return b.mul(b.mul(x, k(0.5)), b.add(k(1), b.op1('Erf', [b.mul(x, k(Math.SQRT1_2))])));
  const inner = b.mul(x, b.add(k(Math.sqrt(2 / Math.PI)), b.mul(b.mul(x, x), k(0.044715 * Math.sqrt(2 / Math.PI)))));
  return b.mul(b.mul(x, k(0.5)), b.add(k(1), b.op1('Tanh', [inner])));
}

function forward(c: Resolved, b: GraphBuilder, x: Sym, ctx: ForwardContext): Sym {
  // The batch axis may be symbolic (the exported inference graph): reshapes leave it as -1.
  const { seqLen: L, hidden: H, heads: nh } = c;
  const dh = H / nh;
  const p = (name: string) => ctx.param(name);
  const row = (r: number) => b.op1('Gather', [x, b.constant(tensor('int64', [], [r]))], { axis: 1 }); // [B, L]
  const gemm = (h: Sym, name: string) => b.op1('Gemm', [h, p(`${name}.weight`), p(`${name}.bias`)]);
  const ln = (h: Sym, name: string) => b.op1('LayerNormalization', [h, p(`${name}.weight`), p(`${name}.bias`)], { axis: -1, epsilon: c.layerNormEps });
  const firstRows = (t: Sym, n: number) => b.op1('Slice', [t, b.ints([0]), b.ints([n]), b.ints([0])]);

  // ---- embeddings: [B, L, H] -> [B*L, H]
  let e = b.op1('Gather', [p('embeddings.word'), b.cast(row(0), 'int64')]);
  e = b.add(e, firstRows(p('embeddings.position'), L));
  e = b.add(e, c.segments ? b.op1('Gather', [p('embeddings.token_type'), b.cast(row(2), 'int64')]) : firstRows(p('embeddings.token_type'), 1));
  let h = ctx.dropout(ln(b.reshape(e, [-1, H]), 'embeddings.ln'), c.dropout, 'embeddings');

  // ---- attention bias for padded keys, [B, 1, 1, L]
  const mask = row(1);
  const keyBias = b.reshape(b.mul(b.sub(b.like(1, mask), mask), b.like(MASK_BIAS, mask)), [-1, 1, 1, L]);

  for (let i = 0; i < c.layers; i++) {
    const n = `layer${i}`;
    // Q, K, V from one Gemm, split into heads: [B*L, 3H] -> [B, L, 3, nh, dh] -> [3, B, nh, L, dh].
    const qkv = b.transpose(b.reshape(gemm(h, `${n}.attn.qkv`), [-1, L, 3, nh, dh]), [2, 0, 3, 1, 4]);
    const [q, k, v] = b.op('Split', [qkv, b.ints([1, 1, 1])], { axis: 0 }, { outputs: 3 }).map((s) => b.op1('Squeeze', [s, b.ints([0])]));
    const qs = b.mul(q!, b.like(1 / Math.sqrt(dh), q!));
    const scores = b.add(b.matmul(qs, b.transpose(k!, [0, 1, 3, 2])), keyBias); // [B, nh, L, L]
    const probs = ctx.dropout(b.op1('Softmax', [scores], { axis: -1 }), c.attentionDropout, `${n}.attn.probs`);
    const heads = b.reshape(b.transpose(b.matmul(probs, v!), [0, 2, 1, 3]), [-1, H]);
    h = ln(b.add(h, ctx.dropout(gemm(heads, `${n}.attn.out`), c.dropout, `${n}.attn.out`)), `${n}.attn.ln`);
    const f = gemm(gelu(b, gemm(h, `${n}.ffn.in`), c.gelu), `${n}.ffn.out`);
    h = ln(b.add(h, ctx.dropout(f, c.dropout, `${n}.ffn.out`)), `${n}.ffn.ln`);
  }

  // ---- pooling and the head
  let pooled: Sym;
  if (c.pooling === 'cls') {
    pooled = b.op1('Slice', [b.reshape(h, [-1, L * H]), b.ints([0]), b.ints([H]), b.ints([1])]); // [B, H]: token 0
  } else {
    const sum = b.matmul(b.reshape(mask, [-1, 1, L]), b.reshape(h, [-1, L, H])); // [B, 1, H]
    const count = b.op1('Max', [b.reduceSum(mask, [1], true), b.like(1, mask)]); // [B, 1]
    pooled = b.div(b.reshape(sum, [-1, H]), count);
  }
  if (c.pooler) pooled = b.op1('Tanh', [gemm(pooled, 'pooler')]);
  return gemm(ctx.dropout(pooled, c.dropout, 'head'), 'classifier');
}
