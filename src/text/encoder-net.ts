/**
 * A pretrained ONNX text encoder (backbones/textenc.ts) as a trainable Network: its nodes are replayed into
 * graft's training graph, its float weights become parameters in layer groups (embeddings, one group per
 * encoder layer, the pooler where the graph has one, then the new head), so the Learner's freezing,
 * discriminative (layer-wise decayed) learning rates and gradual unfreezing work on it as on images.
 *
 * Input: one float tensor x [batch, rows, seqLen], as for bertEncoder: row 0 the token ids, row 1 the
 * attention mask, and row 2 the token type ids when the encoder takes them. Ids are exact in float32 (up to
 * 2^24) and cast to the encoder's integer input types in the graph. `tokenRows` builds x.
 *
 * Tasks: 'sequence' pools the last hidden state (the first token, 'cls', or the mean over the mask) and
 * puts a linear head on it ([batch, classes]); 'token' puts the head on every token ([batch, seqLen *
 * classes], token-major), for NER. Dropout (default 0.1) sits on the hidden states before the head:
 * exported encoders are inference graphs and carry no dropout of their own.
 *
 * `encoderModelGraph` writes the trained network back as one inference graph from token ids, the encoder's
 * own graph with the trained weights in its initializers (same names), so the saved model keeps the
 * exporter's layout, per-batch padding and symbolic shapes.
 */
import { GraftError } from '../errors.ts';
import { GraphBuilder, type Sym } from '../graph/builder.ts';
import type { Graph, Node } from '../graph/ir.ts';
import type { AttrInput } from '../graph/ops/registry.ts';
import { replayLookup } from '../graph/replay.ts';
import { tensor } from '../graph/tensor.ts';
import { mixSeed, normal } from '../train/init.ts';
import type { ForwardContext, Network, Param } from '../train/network.ts';
import { type TextEncoder, type TextPooling, type Tokenized, encoderWithHead } from '../backbones/textenc.ts';

export type EncoderTask = 'sequence' | 'token';

export interface EncoderNetOptions {
  classes: number;
  /** Tokens per example: x is padded or cut to this length. */
  seqLen: number;
  task?: EncoderTask;
  /** Sequence task: how the hidden states are pooled (default 'cls'). */
  pooling?: TextPooling;
  /** Dropout on the hidden states before the head (default 0.1). */
  dropout?: number;
  seed?: number;
}

export interface EncoderGroup {
  name: string;
  params: string[];
  paramCount: number;
}

export interface EncoderNetwork extends Network {
  encoderGroups: EncoderGroup[];
  /** The encoder graph the network replays (tied initializers untied), for encoderModelGraph. */
  graph: Graph;
  rows: number;
}

/** `layer.3`, `layers.3`, `layer_3`, `block.3`, `h.3`: the encoder layer a node or weight belongs to. */
const LAYER = /(?:^|[/.])(?:layers?|blocks?|h)[._](\d+)(?=[/._]|$)/;

/**
 * The encoder graph, pruned to the hidden output, with every initializer passed through an Identity
 * replaced by a copy under the Identity's output name: exporters tie weights that are equal at export time
 * (e.g. freshly initialised LayerNorms), which fine-tuning must not keep tied.
 */
function untied(enc: TextEncoder): Graph {
  const g = enc.graph.clone();
  g.outputs = g.outputs.filter((v) => v.name === enc.hiddenOutput);
  const keep: Node[] = [];
  for (const n of g.nodes) {
    const src = n.op === 'Identity' ? g.initializers.get(n.inputs[0]!) : undefined;
    if (src) {
      const t = src.data;
      g.initializers.set(n.outputs[0]!, { dtype: src.dtype, dims: [...src.dims], data: t.slice() as typeof t });
    } else keep.push(n);
  }
  g.nodes = keep;
  return g.prune();
}

function analyse(g: Graph): { groups: EncoderGroup[]; weights: Map<string, number>; decay: Set<string> } {
  const layerOf = (s: string): number | null => {
    const m = LAYER.exec(s);
    return m ? Number(m[1]) : null;
  };
  // Per node: its layer from the scope in its name, else the highest of its inputs' (activations, adds).
  const tensorLayer = new Map<string, number>();
  const nodeLayer = new Map<Node, number>();
  let maxLayer = -1;
  let pooler = false;
  for (const n of g.nodes) {
    let k = layerOf(n.name);
    if (k === null) {
      k = -1;
      for (const i of n.inputs) if (tensorLayer.has(i)) k = Math.max(k, tensorLayer.get(i)!);
    }
    if (/(^|[/.])pooler([/.]|$)/.test(n.name)) { k = Number.MAX_SAFE_INTEGER; pooler = true; }
    nodeLayer.set(n, k);
    if (k !== Number.MAX_SAFE_INTEGER) maxLayer = Math.max(maxLayer, k);
    for (const o of n.outputs) tensorLayer.set(o, k);
  }
  const names = ['embeddings', ...Array.from({ length: maxLayer + 1 }, (_, i) => `layer${i}`), ...(pooler ? ['pooler'] : [])];
  const groupOfLayer = (k: number) => (k === Number.MAX_SAFE_INTEGER ? names.length - 1 : k + 1);
  const weights = new Map<string, number>();
  const decay = new Set<string>();
  for (const n of g.nodes) {
    n.inputs.forEach((i, slot) => {
      const t = g.initializers.get(i);
      if (!t || t.dtype !== 'float32' || t.data.length < 2 || weights.has(i)) return;
      // Weights are found by their consumers; an index input of a Gather or a shape is never float.
      weights.set(i, groupOfLayer(layerOf(i) ?? nodeLayer.get(n)!));
      // Decay on matrices (dense kernels and embedding tables), not on biases or LayerNorm scales.
      if (t.dims.length >= 2 && !(n.op === 'Gather' && slot === 1)) decay.add(i);
    });
  }
  const groups: EncoderGroup[] = names.map((name) => ({ name, params: [], paramCount: 0 }));
  for (const [w, gi] of weights) {
    groups[gi]!.params.push(w);
    groups[gi]!.paramCount += g.initializers.get(w)!.data.length;
  }
  return { groups, weights, decay };
}

/** The layer groups of an encoder (embeddings, layer0.., pooler), with their weights. */
export function encoderGroups(enc: TextEncoder): EncoderGroup[] {
  return analyse(untied(enc)).groups;
}

/** Rows of x per example for this encoder. */
export const encoderRows = (enc: TextEncoder): number => (enc.inputs.types ? 3 : 2);

/**
 * x [n, rows, seqLen] from tokenized texts: ids padded with padId, mask, type ids. Sequences longer than
 * seqLen are cut (keeping the first seqLen tokens).
 */
export function tokenRows(t: Pick<Tokenized, 'ids' | 'typeIds'>, seqLen: number, rows: number, padId: number): Float32Array {
  const n = t.ids.length;
  const x = new Float32Array(n * rows * seqLen);
  for (let i = 0; i < n; i++) {
    const ids = t.ids[i]!;
    const base = i * rows * seqLen;
    const m = Math.min(ids.length, seqLen);
    x.fill(padId, base, base + seqLen);
    for (let j = 0; j < m; j++) x[base + j] = ids[j]!;
    // A tokenizer without special tokens gives an empty text no tokens: one attended pad keeps the
    // attention softmax defined (as runTokens does).
    x.fill(1, base + seqLen, base + seqLen + Math.max(m, 1));
    if (rows > 2) for (let j = 0; j < m; j++) x[base + 2 * seqLen + j] = t.typeIds[i]![j] ?? 0;
  }
  return x;
}

/** The encoder's weights as parameters and its nodes replayed into a builder: x [B, rows, L] -> hidden [B, L, H]. */
export interface EncoderReplay {
  params: Param[];
  groups: EncoderGroup[];
  graph: Graph;
  rows: number;
  hidden(b: GraphBuilder, x: Sym, ctx: ForwardContext): Sym;
}

export function encoderReplay(enc: TextEncoder): EncoderReplay {
  const g = untied(enc);
  const { groups, weights, decay } = analyse(g);
  const used = groups.filter((gr) => gr.params.length);
  const params: Param[] = [];
  used.forEach((gr, gi) => {
    for (const w of gr.params) {
      const t = g.initializers.get(w)!;
      params.push({ name: w, shape: [...t.dims], value: Float32Array.from(t.data as Float32Array), group: gi, decay: decay.has(w) });
    }
  });
  const inits = g.initializers;
  const inputs = enc.inputs;
  const inputRow: [string | null, number][] = [[inputs.ids, 0], [inputs.mask, 1], [inputs.types, 2]];
  return {
    params, groups: used, graph: g, rows: encoderRows(enc),
    hidden(b, x, ctx) {
      const row = (r: number) => b.op1('Gather', [x, b.constant(tensor('int64', [], [r]))], { axis: 1 }); // [B, L]
      const vals = new Map<string, Sym>();
      for (const [name, r] of inputRow) if (name) vals.set(name, b.cast(row(r), inputs.dtypes[name] ?? 'int64'));
      const get = replayLookup(b, vals, (i) => weights.has(i), (i) => ctx.param(i), inits, 'enc:', (i) => `encoder ${enc.id}: tensor "${i}" is not computed`);
      for (const n of g.nodes) {
        const outs = b.op(n.op, n.inputs.map(get), n.attrs as Record<string, AttrInput>, { outputs: n.outputs.length, name: b.graph.fresh(`enc/${n.name}`) });
        n.outputs.forEach((t, i) => vals.set(t, outs[i]!));
      }
      return vals.get(enc.hiddenOutput)!;
    },
  };
}

/** Pooled hidden states [B, H] of hidden [B, L, H]: the first token, or the mean over the mask [B, L]. */
export function poolHidden(b: GraphBuilder, h: Sym, mask: Sym, pooling: TextPooling): Sym {
  const [L, H] = [Number(h.shape[1]), Number(h.shape[2])];
  if (pooling === 'cls') return b.op1('Slice', [b.reshape(h, [-1, L * H]), b.ints([0]), b.ints([H]), b.ints([1])]);
  const sum = b.matmul(b.reshape(mask, [-1, 1, L]), h); // [B, 1, H]
  const count = b.op1('Max', [b.reduceSum(mask, [1], true), b.like(1, mask)]);
  return b.div(b.reshape(sum, [-1, H]), count);
}

export function encoderNetwork(enc: TextEncoder, o: EncoderNetOptions): EncoderNetwork {
  if (!(Number.isInteger(o.classes) && o.classes >= 2)) throw new GraftError('E_BAD_OPTION', `a classifier needs at least 2 classes, got ${o.classes}`, 'Check the labels.');
  checkSeqLen(enc, o.seqLen);
  const task = o.task ?? 'sequence';
  const pooling = o.pooling ?? 'cls';
  const dropout = o.dropout ?? 0.1;
  if (!(dropout >= 0 && dropout < 1)) throw new GraftError('E_BAD_OPTION', `dropout must be in [0, 1), got ${dropout}`, 'Use e.g. 0.1.');
  const r = encoderReplay(enc);
  const params = [...r.params];
  const H = enc.hidden;
  const K = o.classes;
  const head = r.groups.length;
  const std = 0.02; // BERT's initialiser for new dense layers
  const hw = normal(H * K, mixSeed(o.seed ?? 0, 'encoder-head'));
  for (let i = 0; i < hw.length; i++) hw[i]! *= std;
  params.push({ name: 'head.weight', shape: [H, K], value: hw, group: head, decay: true });
  params.push({ name: 'head.bias', shape: [K], value: new Float32Array(K), group: head, decay: false });
  const L = o.seqLen;
  return {
    inputShape: [r.rows, L],
    outputs: task === 'token' ? L * K : K,
    groups: [...r.groups.map((gr) => gr.name), 'head'],
    params,
    encoderGroups: r.groups,
    graph: r.graph,
    rows: r.rows,
    config: { kind: 'text-encoder', encoder: enc.id, task, pooling, seqLen: L, classes: K, dropout, hidden: H },
    // Length bucketing: any length up to seqLen (per-token outputs are token-major, so a shorter length's are a prefix).
    outputsAt: (len) => (task === 'token' ? len * K : K),
    forward(b: GraphBuilder, x: Sym, ctx: ForwardContext): Sym {
      const L = Number(x.shape[2]);
      const h = r.hidden(b, x, ctx); // [B, L, H]
      const w = ctx.param('head.weight');
      const bias = ctx.param('head.bias');
      if (task === 'token') {
        const flat = ctx.dropout(b.reshape(h, [-1, H]), dropout, 'hidden');
        return b.reshape(b.op1('Gemm', [flat, w, bias]), [-1, L * K]);
      }
      const mask = b.op1('Gather', [x, b.constant(tensor('int64', [], [1]))], { axis: 1 });
      return b.op1('Gemm', [ctx.dropout(poolHidden(b, h, mask, pooling), dropout, 'pooled'), w, bias]);
    },
  };
}

function checkSeqLen(enc: TextEncoder, n: number): void {
  if (!(Number.isInteger(n) && n >= 1 && n <= enc.tokenizer.maxLength)) {
    throw new GraftError('E_BAD_OPTION', `seqLen must be an integer from 1 to the encoder's ${enc.tokenizer.maxLength} tokens, got ${n}`, 'Use a shorter length.');
  }
}

/**
 * SetFit's contrastive network: x [B, 2, rows, L] holds a pair of texts per example; both go through the
 * same encoder (one pass over 2B texts, shared weights) and mean pooling; the output [B, 1] is the cosine
 * similarity of the two embeddings, trained toward 1 for pairs of one class and 0 otherwise.
 */
export function siameseNetwork(enc: TextEncoder, o: { seqLen: number; pooling?: TextPooling }): Network & { replay: EncoderReplay } {
  checkSeqLen(enc, o.seqLen);
  const r = encoderReplay(enc);
  const L = o.seqLen;
  const H = enc.hidden;
  const pooling = o.pooling ?? 'mean';
  return {
    inputShape: [2, r.rows, L],
    outputs: 1,
    groups: r.groups.map((gr) => gr.name),
    params: r.params,
    replay: r,
    config: { kind: 'siamese-text-encoder', encoder: enc.id, pooling, seqLen: L },
    outputsAt: () => 1,
    forward(b, x, ctx) {
      const L = Number(x.shape[3]);
      const flat = b.reshape(x, [-1, r.rows, L]); // pair i -> rows 2i and 2i + 1
      const h = r.hidden(b, flat, ctx);
      const mask = b.op1('Gather', [flat, b.constant(tensor('int64', [], [1]))], { axis: 1 });
      const e = b.reshape(poolHidden(b, h, mask, pooling), [-1, 2, H]);
      const side = (i: number) => b.op1('Gather', [e, b.constant(tensor('int64', [], [i]))], { axis: 1 }); // [B, H]
      const [u, v] = [side(0), side(1)];
      const dot = b.reduceSum(b.mul(u, v), [1], true);
      const norm = (t: Sym) => b.sqrt(b.add(b.reduceSum(b.mul(t, t), [1], true), b.like(1e-12, t)));
      return b.div(dot, b.mul(norm(u), norm(v))); // [B, 1]
    },
  };
}

/**
 * The trained network as one inference graph from token ids (the encoder's own inputs): for 'sequence',
 * outputs logits and probabilities [batch, classes]; for 'token', [batch, sequence, classes].
 */
export function encoderModelGraph(enc: TextEncoder, net: EncoderNetwork, values: (name: string) => Float32Array): Graph {
  const g = net.graph.clone();
  for (const gr of net.encoderGroups) {
    for (const w of gr.params) {
      const t = g.initializers.get(w)!;
      g.initializers.set(w, { ...t, data: Float32Array.from(values(w)) });
    }
  }
  const trained: TextEncoder = { ...enc, graph: g };
  const c = net.config as { task: EncoderTask; pooling: TextPooling; classes: number };
  const K = c.classes;
  const H = enc.hidden;
  const b = new GraphBuilder();
  b.graph.name = 'head';
  const token = c.task === 'token';
  const x = b.input('input', 'float32', token ? ['N', 'S', H] : ['N', H]);
  const w = b.init('head.weight', tensor('float32', [H, K], values('head.weight')));
  const bias = b.init('head.bias', tensor('float32', [K], values('head.bias')));
  const logits = b.add(b.matmul(x, w), bias);
  b.output(logits, 'logits');
  b.output(b.op1('Softmax', [logits], { axis: -1 }), 'probabilities');
  if (!token) return encoderWithHead(trained, c.pooling, b.graph).graph;
  // Token task: the head on every hidden state.
  const out = trained.graph.clone();
  const [lg, pr] = out.append(b.graph, { input: enc.hiddenOutput }, 'head/');
  out.addNode('Identity', [lg!], ['logits']);
  out.addNode('Identity', [pr!], ['probabilities']);
  out.outputs = [
    { name: 'logits', dtype: 'float32', shape: ['batch', 'sequence', K] },
    { name: 'probabilities', dtype: 'float32', shape: ['batch', 'sequence', K] },
  ];
  out.prune();
  out.metadata.set('graft.backbone', `${enc.id}@${enc.sha256}`);
  out.metadata.set('graft.cut', 'tokens');
  return out;
}
