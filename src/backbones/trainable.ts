/**
 * A pretrained image or sequence backbone as a trainable Network: its ONNX nodes are replayed into graft's training
 * graph, its weights become parameters in the backbone's layer groups (stem, stages, ..., then the new
 * head), so the Learner can freeze and unfreeze by group and autodiff reaches every unfrozen weight.
 *
 * The network can start at the input pixels or at the entry of a group (a "cached prefix"): everything
 * below the lowest trainable group never changes, so its activations can be computed once and fed in.
 */
import { GraftError } from '../errors.ts';
import { GraphBuilder, type Sym, staticShape } from '../graph/builder.ts';
import type { Node } from '../graph/ir.ts';
import type { AttrInput } from '../graph/ops/registry.ts';
import { replayLookup } from '../graph/replay.ts';
import { linearHead, mlpHead } from '../heads/heads.ts';
import type { ForwardContext, Network, Param } from '../train/network.ts';
import { type ImageBackbone, findCut } from './image.ts';
import { type SequenceBackbone, findSequenceCut } from './sequence.ts';

/** What backboneNetwork trains: an image backbone (input [3, H, W]) or a sequence one ([T, F]). */
export type TrainableBackbone = ImageBackbone | SequenceBackbone;

const isSequence = (bb: TrainableBackbone): bb is SequenceBackbone => 'kind' in bb && bb.kind === 'sequence';

/** Per-example input shape: [3, H, W] at the given size (default the backbone's), or the sequence's [T, F]. */
function exampleShape(bb: TrainableBackbone, size?: [number, number]): number[] {
  return isSequence(bb) ? [...bb.inputShape] : [3, ...(size ?? bb.preprocess.size)];
}

const cutOf = (bb: TrainableBackbone, name?: string) => {
  const n = name ?? bb.entry?.defaultCut ?? bb.cuts.at(-1)!.name;
  return isSequence(bb) ? findSequenceCut(bb, n) : findCut(bb, n);
};

export interface BackboneGroup {
  name: string;
  /** Trainable weights (BatchNorm running statistics excluded). */
  params: string[];
  paramCount: number;
  /** The one tensor that feeds this group from below (null where there is none, e.g. several). */
  entry: string | null;
  /** Per-example shape of the entry tensor. */
  entryShape: number[] | null;
}

export interface BackboneNetOptions {
  classes: number;
  /** Cut point the head sits on (a pooled feature, e.g. 'features'); default: the backbone's default cut. */
  cut?: string;
  /** Start at the entry of this backbone group (by name or index) instead of the pixels: a cached prefix. */
  from?: string | number;
  head?: { kind: 'linear' } | { kind: 'mlp'; hidden?: number[]; dropout?: number };
  /** Dropout on the pooled features, before the head. */
  dropout?: number;
  /** BatchNorm: running statistics frozen (inference form; the default), or batch statistics in training. */
  bn?: 'frozen' | 'train';
  /** Input height and width of an image backbone (fully convolutional ones accept other sizes; default the backbone's). */
  size?: [number, number];
  seed?: number;
}

export interface BackboneNetwork extends Network {
  /** The backbone groups in this network (those above `from`), in order; the head is the last group. */
  backboneGroups: BackboneGroup[];
  /** The tensor this network starts from (the backbone input, or a group entry). */
  fromTensor: string;
  /** Index (in the backbone's own groups) of the first group in this network. */
  fromGroup: number;
  /** Per-example input shape, as for Network.inputShape. */
  inputShape: number[];
}

const BN_STATS = new Set([3, 4]);

const WEIGHT_OPS = new Set(['Conv', 'Gemm', 'MatMul', 'BatchNormalization', 'ConvTranspose', 'LayerNormalization', 'RNN', 'GRU', 'LSTM']);
/** Recurrent layers' kernels: W (input 1) and R (input 2); B and the initial states are not decayed. */
const RECURRENT = new Set(['RNN', 'GRU', 'LSTM']);
/** Ops whose non-scalar float initializer inputs are parameters too: layer scales (Mul), position embeddings (Add), class tokens (Expand, Concat). */
const PARAM_OPS = new Set(['Mul', 'Add', 'Expand', 'Concat']);

/**
 * Initializers that are trainable weights: float inputs of weight layers (directly or through a Transpose, as
 * PyTorch exports a Linear's weight without constant folding), non-scalar float inputs of Mul, Add, Expand
 * and Concat (layer scales, position embeddings, class tokens), and the float tables a Gather reads from
 * (embeddings, Swin's relative position biases); never BatchNorm running statistics.
 */
function weightNames(nodes: Node[], inits: Map<string, { dtype: string; dims: number[] }>): Set<string> {
  const stats = new Set<string>();
  const used = new Set<string>();
  const consumers = new Map<string, Node[]>();
  for (const n of nodes) for (const i of n.inputs) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  for (const n of nodes) {
    n.inputs.forEach((i, k) => {
      if (!inits.has(i)) return;
      if (n.op === 'BatchNormalization' && BN_STATS.has(k)) stats.add(i);
      else if (WEIGHT_OPS.has(n.op)) used.add(i);
      else if (n.op === 'Transpose' && (consumers.get(n.outputs[0]!) ?? []).some((c) => WEIGHT_OPS.has(c.op))) used.add(i);
      else if ((PARAM_OPS.has(n.op) || (n.op === 'Gather' && k === 0)) && inits.get(i)!.dims.reduce((p, d) => p * d, 1) > 1) used.add(i);
    });
  }
  return new Set([...used].filter((i) => !stats.has(i) && inits.get(i)!.dtype === 'float32'));
}

interface Analysis {
  nodes: Node[];
  groups: BackboneGroup[];
  nodeGroup: Map<Node, number>;
  weights: Set<string>;
  shapes: GraphBuilder;
}

/** The nodes that compute `target` (in graph order), node-to-group assignment, and group entries. */
function analyse(bb: TrainableBackbone, target: string): Analysis {
  const g = bb.graph;
  const producers = g.producers();
  const need = new Set<Node>();
  const stack = [target];
  while (stack.length) {
    const t = stack.pop()!;
    const p = producers.get(t);
    if (!p || need.has(p)) continue;
    need.add(p);
    stack.push(...p.inputs.filter((i) => i));
  }
  const nodes = g.nodes.filter((n) => need.has(n));
  const weights = weightNames(nodes, g.initializers);
  const groupOf = new Map<string, number>();
  bb.groups.forEach((gr, i) => gr.params.forEach((p) => groupOf.set(p, i)));
  // A node belongs to the highest group among its weights and its inputs' producers: groups are
  // consecutive runs of layers in dependency order, so this puts parameter-free ops (activations,
  // adds, pads) with the layers they follow.
  const nodeGroup = new Map<Node, number>();
  const tensorGroup = new Map<string, number>();
  for (const n of nodes) {
    let k = 0;
    for (const i of n.inputs) {
      if (!i) continue;
      if (weights.has(i)) k = Math.max(k, groupOf.get(i) ?? 0);
      else if (tensorGroup.has(i)) k = Math.max(k, tensorGroup.get(i)!);
    }
    nodeGroup.set(n, k);
    for (const o of n.outputs) tensorGroup.set(o, k);
  }
  // Shapes at the native size (layers such as Keras' final 7x7 AveragePool only type-check there).
  const shapes = new GraphBuilder(g.clone(), { [bb.inputName]: [1, ...exampleShape(bb)] });
  const groups: BackboneGroup[] = bb.groups.map((gr, gi) => {
    const params = gr.params.filter((p) => weights.has(p));
    // Tensors made below this group (or the input) that nodes of this group or above consume.
    const entries = new Set<string>();
    for (const n of nodes) {
      if (nodeGroup.get(n)! < gi) continue;
      for (const i of n.inputs) {
        if (!i || g.initializers.has(i)) continue;
        const below = i === bb.inputName || (tensorGroup.has(i) && tensorGroup.get(i)! < gi);
        if (below) entries.add(i);
      }
    }
    // The previous group's recorded end, where the converter knows it (branches such as Inception's
    // pooling paths start from it too); else the one tensor that crosses the boundary.
    const end = gi > 0 ? bb.groups[gi - 1]!.end : bb.inputName;
    const entry = end && shapes.has(end) ? end : entries.size === 1 ? [...entries][0]! : null;
    const count = params.reduce((s, p) => s + g.initializers.get(p)!.data.length, 0);
    return { name: gr.name, params, paramCount: count, entry, entryShape: entry ? staticShape(shapes.sym(entry)).slice(1) : null };
  });
  return { nodes, groups, nodeGroup, weights, shapes };
}

/** The backbone's layer groups up to the given cut (default cut if absent), with entry tensors and sizes. */
export function backboneGroups(bb: TrainableBackbone, cut?: string): BackboneGroup[] {
  const c = cutOf(bb, cut);
  return analyse(bb, c.tensor).groups.filter((g) => g.params.length);
}

export function backboneNetwork(bb: TrainableBackbone, o: BackboneNetOptions): BackboneNetwork {
  if (!bb.groups.length) {
    throw new GraftError('E_BAD_OPTION', `backbone ${bb.id} has no layer groups, so graft cannot fine-tune it`,
      'Use a registry backbone (graft backbones), or train a probe (--mode probe).');
  }
  if (!(o.classes >= 2)) throw new GraftError('E_BAD_OPTION', `a classifier needs at least 2 classes, got ${o.classes}`, 'Check the labels.');
  const cut = cutOf(bb, o.cut);
  const a = analyse(bb, cut.tensor);
  const all = a.groups.map((g, i) => ({ ...g, index: i })).filter((g) => g.params.length);
  let fromGroup = 0;
  if (o.from !== undefined) {
    const i = typeof o.from === 'number' ? o.from : a.groups.findIndex((g) => g.name === o.from);
    if (!(i >= 0 && i < a.groups.length) || !a.groups[i]!.params.length) {
      throw new GraftError('E_BAD_OPTION', `backbone ${bb.id} has no trainable group ${JSON.stringify(o.from)} below cut ${cut.name}`,
        `Use one of ${all.map((g) => g.name).join(', ')} (graft backbones show ${bb.id}).`);
    }
    fromGroup = i;
  }
  const fromTensor = fromGroup === 0 ? bb.inputName : a.groups[fromGroup]!.entry;
  if (!fromTensor) {
    throw new GraftError('E_BAD_OPTION', `group ${a.groups[fromGroup]!.name} of ${bb.id} has no single entry tensor to start from`,
      'Start from another group (or from the pixels).');
  }
  // The nodes between fromTensor and the cut.
  const live = new Set<string>([fromTensor]);
  // Tensors computed from initializers only (a Linear's weight behind a Transpose, shape constants): replayed
  // too, so gradients reach weights that pass through them.
  const constant = new Set<string>();
  const nodes: Node[] = [];
  for (const n of a.nodes) {
    if (n.outputs.includes(fromTensor)) continue;
    if (n.inputs.some((i) => live.has(i))) {
      nodes.push(n);
      n.outputs.forEach((t) => live.add(t));
    } else if (n.inputs.every((i) => !i || bb.graph.initializers.has(i) || constant.has(i))) {
      nodes.push(n);
      n.outputs.forEach((t) => constant.add(t));
    } else {
      // Reached from below fromTensor without passing through it: the prefix is not separable here.
      if (a.nodeGroup.get(n)! >= fromGroup) {
        throw new GraftError('E_GRAPH_INVALID', `node ${n.name} of ${bb.id} reads a tensor from below ${fromTensor}`, 'Start from an earlier group.');
      }
    }
  }
  const kept = all.filter((g) => g.index >= fromGroup);
  const groupIndex = new Map(kept.map((g, i) => [g.index, i]));
  const params: Param[] = [];
  const paramNames = new Set<string>();
  for (const gr of kept) {
    for (const p of gr.params) {
      const t = bb.graph.initializers.get(p)!;
      // Weight decay on kernels only (not on BN scales/shifts or biases), as for the heads.
      const consumer = nodes.find((n) => n.inputs.includes(p));
      const k = consumer ? consumer.inputs.indexOf(p) : -1;
      const decay = !!consumer && ((k === 1 && (consumer.op === 'Conv' || consumer.op === 'Gemm' || consumer.op === 'MatMul')) || (RECURRENT.has(consumer.op) && (k === 1 || k === 2)));
      params.push({ name: p, shape: [...t.dims], value: Float32Array.from(t.data as Float32Array), group: groupIndex.get(gr.index)!, decay });
      paramNames.add(p);
    }
  }
  // --bn train: BatchNorm running statistics become buffers of their group, updated by train steps.
  const bnTrain = o.bn === 'train';
  if (bnTrain) {
    for (const n of nodes) {
      if (n.op !== 'BatchNormalization') continue;
      const gi = groupIndex.get(a.nodeGroup.get(n)!);
      if (gi === undefined) continue;
      for (const k of [3, 4]) {
        const name = n.inputs[k]!;
        if (paramNames.has(name)) continue;
        const t = bb.graph.initializers.get(name)!;
        params.push({ name, shape: [...t.dims], value: Float32Array.from(t.data as Float32Array), group: gi, decay: false, buffer: true });
        paramNames.add(name);
      }
    }
  }
  // A frozen BatchNormalization right after a Conv (its only consumer) is folded into that Conv:
  // W' = W * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps) per output channel. Exact, and
  // the full-size BN passes (forward and backward) become small per-channel ops on the weights.
  const consumers = new Map<string, number>();
  for (const n of bb.graph.nodes) for (const i of n.inputs) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  const producer = new Map<string, Node>();
  for (const n of nodes) for (const t of n.outputs) producer.set(t, n);
  const foldInto = new Map<Node, Node>(); // conv -> bn
  for (const n of nodes) {
    if (n.op !== 'BatchNormalization' || n.outputs.length !== 1) continue;
    const conv = producer.get(n.inputs[0]!);
    if (conv?.op === 'Conv' && conv.outputs.length === 1 && consumers.get(conv.outputs[0]!) === 1 && conv.outputs[0] !== cut.tensor && !bb.graph.outputs.some((v) => v.name === conv.outputs[0])) foldInto.set(conv, n);
  }
  const headGroup = kept.length;
  const seed = o.seed ?? 0;
  const inputDim = cut.shape.reduce((x, y) => x * y, 1);
  const head = o.head?.kind === 'mlp'
    ? mlpHead({ inputDim, classes: o.classes, seed, ...(o.head.hidden ? { hidden: o.head.hidden } : {}), dropout: o.head.dropout ?? 0.2 })
    : linearHead({ inputDim, classes: o.classes, seed });
  for (const p of head.params) params.push({ ...p, group: headGroup });
  const dropout = o.dropout ?? 0;
  if (o.size && isSequence(bb)) throw new GraftError('E_BAD_OPTION', `size is an image option; sequence backbone ${bb.id} takes [${bb.inputShape}] per example`, 'Leave size out.');
  const example = exampleShape(bb, o.size);
  const inputShape = fromGroup === 0 ? example : entryShape(bb, fromTensor, example);
  const inits = bb.graph.initializers;

  return {
    inputShape,
    outputs: o.classes,
    groups: [...kept.map((g) => g.name), 'head'],
    params,
    backboneGroups: kept.map(({ index: _i, ...g }) => g),
    fromTensor,
    fromGroup,
    config: {
      kind: 'backbone', backbone: bb.id, cut: cut.name, from: fromGroup === 0 ? null : a.groups[fromGroup]!.name,
      ...(isSequence(bb) ? { input: example } : { size: example.slice(1) }), bn: bnTrain ? 'train' : 'frozen', dropout, head: head.config,
    },
    forward(b: GraphBuilder, x: Sym, ctx: ForwardContext): Sym {
      const vals = new Map<string, Sym>([[fromTensor, x]]);
      const get = replayLookup(b, vals, (i) => paramNames.has(i), (i) => ctx.param(i), inits, 'bb:', (i) => `backbone ${bb.id}: tensor "${i}" is not computed above ${fromTensor}`);
      const folded = new Set<Node>();
      for (const n of nodes) {
        if (folded.has(n)) continue; // computed with its Conv
        const ins = n.inputs.map(get);
        let outs: Sym[];
        const bn = foldInto.get(n);
        if (bn && !(bnTrain && ctx.trainable(groupIndex.get(a.nodeGroup.get(bn)!) ?? -1))) {
          const [scale, shift, mean, variance] = bn.inputs.slice(1).map(get) as Sym[];
          const eps = bn.attrs['epsilon'] && 'f' in bn.attrs['epsilon'] ? bn.attrs['epsilon'].f : 1e-5;
          const sc = b.mul(scale!, b.op1('Reciprocal', [b.sqrt(b.add(variance!, b.like(eps, variance!)))]));
          const w = ins[1]!;
          const wf = b.mul(w, b.reshape(sc, [Number(w.shape[0]), ...new Array<number>(w.shape.length - 1).fill(1)]));
          const bias0 = ins[2] ? b.sub(ins[2], mean!) : b.neg(mean!);
          const y = b.op1('Conv', [ins[0]!, wf, b.add(b.mul(bias0, sc), shift!)], n.attrs as Record<string, AttrInput>, { name: b.graph.fresh(`bb/${n.name}+bn`) });
          vals.set(bn.outputs[0]!, y);
          folded.add(bn);
          continue;
        }
        if (n.op === 'AveragePool' && isGlobal(n, ins[0]!, a)) {
          // Keras' final AveragePooling2D covers the whole map at the native size; at other input
          // sizes the same layer is a global average.
          outs = [b.op1('GlobalAveragePool', [ins[0]!])];
        } else if (n.op === 'BatchNormalization' && bnTrain && ctx.trainable(groupIndex.get(a.nodeGroup.get(n)!) ?? -1)) {
          const r = batchNormTrain(b, ins as Sym[], n);
          // Running statistics as PyTorch keeps them: momentum 0.1, unbiased batch variance.
          const m = BN_MOMENTUM;
          const ema = (run: Sym, batch: Sym) => b.add(b.mul(run, b.like(1 - m, run)), b.mul(batch, b.like(m, batch)));
          ctx.setBuffer(n.inputs[3]!, ema(ins[3]!, r.mean));
          ctx.setBuffer(n.inputs[4]!, ema(ins[4]!, r.unbiasedVar));
          outs = [r.y];
        } else {
          outs = b.op(n.op, ins, replayAttrs(n, ins[0]), { outputs: n.outputs.length, name: b.graph.fresh(`bb/${n.name}`) });
        }
        n.outputs.forEach((t, i) => vals.set(t, outs[i]!));
      }
      let f = vals.get(cut.tensor)!;
      if (f.shape.length !== 2) f = b.op1('Flatten', [f], { axis: 1 });
      f = ctx.dropout(f, dropout, 'features');
      return head.forward(b, f, ctx);
    },
  };
}

/**
 * A node's attributes for the replay. Shapes are static there, so a Conv with auto_pad SAME_* (TF's
 * 'SAME' at a stride, from tfjs-graph.ts) gets its pads written out: the form ORT's blocked depthwise
 * kernels take (runtime/nchwc.ts leaves auto_pad convolutions on the plain kernels).
 */
function replayAttrs(n: Node, x: Sym | null | undefined): Record<string, AttrInput> {
  const a = n.attrs as Record<string, AttrInput>;
  const auto = n.attrs['auto_pad'];
  const ints = (k: string, d: number[]) => { const v = n.attrs[k]; return v && 'ints' in v ? v.ints.map(Number) : d; };
  if (n.op !== 'Conv' || !x || !auto || !('s' in auto) || (auto.s !== 'SAME_UPPER' && auto.s !== 'SAME_LOWER')) return a;
  const sp = x.shape.slice(2);
  const k = ints('kernel_shape', []);
  if (!sp.every((d) => typeof d === 'number') || k.length !== sp.length) return a;
  const s = ints('strides', sp.map(() => 1));
  const d = ints('dilations', sp.map(() => 1));
  const total = (sp as number[]).map((len, i) => Math.max(0, (Math.ceil(len / s[i]!) - 1) * s[i]! + (k[i]! - 1) * d[i]! + 1 - len));
  const begin = total.map((t) => (auto.s === 'SAME_UPPER' ? Math.floor(t / 2) : t - Math.floor(t / 2)));
  const { auto_pad: _drop, ...rest } = a;
  return { ...rest, pads: [...begin, ...total.map((t, i) => t - begin[i]!)] };
}

/** Per-example shape of a tensor below the cut for this per-example input shape. */
function entryShape(bb: TrainableBackbone, t: string, example: number[]): number[] {
  const g = bb.graph.clone();
  g.outputs = [{ name: t, dtype: 'float32', shape: null }];
  return staticShape(new GraphBuilder(g.prune(), { [bb.inputName]: [1, ...example] }).sym(t)).slice(1);
}

/** An AveragePool whose window is the whole feature map at the backbone's native input size. */
function isGlobal(n: Node, x: Sym, a: Analysis): boolean {
  const native = a.shapes.sym(n.inputs[0]!).shape;
  const k = n.attrs['kernel_shape'];
  const ks = k && 'ints' in k ? k.ints : [];
  const pads = n.attrs['pads'];
  const noPad = !pads || ('ints' in pads && pads.ints.every((p) => p === 0));
  return noPad && ks.length === 2 && ks[0] === native[2] && ks[1] === native[3] && (x.shape[2] !== native[2] || x.shape[3] !== native[3]);
}

/**
 * Training-mode BatchNormalization from primitive ops (batch mean and biased variance over N, H, W), so
 * autodiff differentiates through the batch statistics.
 */
export function batchNormTrain(b: GraphBuilder, ins: Sym[], n: Node): { y: Sym; mean: Sym; unbiasedVar: Sym } {
  const [x, scale, bias] = ins as [Sym, Sym, Sym];
  const eps = n.attrs['epsilon'] && 'f' in n.attrs['epsilon'] ? n.attrs['epsilon'].f : 1e-5;
  const c = Number(x.shape[1]);
  const axes = [0, ...Array.from({ length: x.shape.length - 2 }, (_, i) => i + 2)];
  const mean = b.reduceMean(x, axes, true);
  const xc = b.sub(x, mean);
  const v = b.reduceMean(b.mul(xc, xc), axes, true);
  const inv = b.op1('Reciprocal', [b.sqrt(b.add(v, b.like(eps, v)))]);
  const perC = (s: Sym) => b.reshape(s, [c, ...new Array<number>(x.shape.length - 2).fill(1)]);
  const y = b.add(b.mul(b.mul(xc, inv), perC(scale)), perC(bias));
  const count = staticShape(x).reduce((p, d, i) => (i === 1 ? p : p * d), 1);
  return { y, mean: b.reshape(mean, [c]), unbiasedVar: b.reshape(b.mul(v, b.like(count / Math.max(1, count - 1), v)), [c]) };
}

/** Weight of the current batch in the running statistics (PyTorch's default). */
const BN_MOMENTUM = 0.1;
