/**
 * Compiles a network, loss and optimizer into two ORT sessions per batch size: a train step
 * (forward, loss, backward and optimizer update in one graph) and an eval step (forward only).
 * Shapes are static per batch size so ORT can plan memory; sessions are cached by batch size.
 */
import { GraphBuilder, type Sym } from '../graph/builder.ts';
import { gradients } from '../graph/autodiff.ts';
import { Session, type SessionOptions } from '../runtime/session.ts';
import { lowerDepthwiseConvs, nchwcBlock } from '../runtime/nchwc.ts';
import { type TensorData, tensor } from '../graph/tensor.ts';
import type { ForwardContext, Network, Param } from './network.ts';
import type { Loss } from './losses.ts';
import type { Optimizer } from './optim.ts';

export interface DropoutSite {
  input: string;
  shape: number[];
  p: number;
  key: string;
}

export interface TrainStep {
  batch: number;
  session: Session;
  trainable: Param[];
  /** Buffers of trainable groups: fed as inputs; those in `updated` come back as new values. */
  liveBuffers: Param[];
  updated: Param[];
  frozen: Param[];
  dropout: DropoutSite[];
  slots: string[];
  groupsUsed: number[];
  scalarNames: string[];
}

export interface EvalStep {
  batch: number;
  session: Session;
}

export const P = (name: string) => `param:${name}`;
export const PN = (name: string) => `new:${name}`;
export const S = (name: string, slot: string) => `state:${name}:${slot}`;
export const SN = (name: string, slot: string) => `newstate:${name}:${slot}`;
export const G = (group: number, scalar: string) => `group${group}:${scalar}`;
export const BN = (name: string) => `newbuf:${name}`;

function forwardContext(b: GraphBuilder, params: Map<string, Sym>, training: boolean, sites: DropoutSite[],
  trainable: Set<number> = new Set(), buffers?: Map<string, Sym>): ForwardContext {
  return {
    training,
    param: (name) => params.get(name)!,
    trainable: (g) => training && trainable.has(g),
    setBuffer: (name, v) => { if (training && buffers) buffers.set(name, v); },
    dropout: (x, p, key) => {
      if (!training || p <= 0) return x;
      const shape = x.shape.map(Number);
      const input = `mask:${key}`;
      sites.push({ input, shape, p, key });
      return b.mul(x, b.input(input, x.dtype, shape));
    },
  };
}

/** Builds the train-step graph for one batch size. `values` gives the current value of frozen params. */
export async function compileTrainStep(
  net: Network, loss: Loss, opt: Optimizer, trainableGroups: Set<number>, batch: number,
  values: (name: string) => Float32Array, sessionOpts: SessionOptions,
): Promise<TrainStep> {
  const b = new GraphBuilder();
  b.graph.name = 'graft_train_step';
  b.hints.nchwcBlock = await nchwcBlock();
  const x = b.input('x', 'float32', [batch, ...net.inputShape]);
  const t = b.input('target', 'float32', [batch, net.outputs]);
  const trainable = net.params.filter((p) => trainableGroups.has(p.group) && !p.buffer);
  const liveBuffers = net.params.filter((p) => trainableGroups.has(p.group) && p.buffer);
  const frozen = net.params.filter((p) => !trainableGroups.has(p.group));
  const syms = new Map<string, Sym>();
  for (const p of [...trainable, ...liveBuffers]) syms.set(p.name, b.input(P(p.name), 'float32', p.shape));
  for (const p of frozen) syms.set(p.name, b.init(P(p.name), tensor('float32', p.shape, values(p.name))));
  const sites: DropoutSite[] = [];
  const newBuffers = new Map<string, Sym>();
  const logits = net.forward(b, x, forwardContext(b, syms, true, sites, trainableGroups, newBuffers));
  const updated = liveBuffers.filter((p) => newBuffers.has(p.name));
  for (const p of updated) b.output(newBuffers.get(p.name)!, BN(p.name));
  const { loss: l, dlogits } = loss.build(b, logits, t);
  b.output(l, 'loss');
  b.output(logits, 'logits');
  const grads = gradients(b, logits.name, trainable.map((p) => P(p.name)), { seed: dlogits });
  const groupsUsed = [...new Set(trainable.map((p) => p.group))].sort((a, c) => a - c);
  const scalars = new Map<string, Sym>();
  for (const gi of groupsUsed) for (const s of opt.scalarNames) scalars.set(G(gi, s), b.input(G(gi, s), 'float32', []));
  for (const p of trainable) {
    // The update runs on flat views: ORT 1.30 multiplies a tensor whose last axis is 1 (a 1x1 conv kernel,
    // [M, C, 1, 1]) by a scalar about 50x slower than the same values as one axis, which made AdamW over
    // MobileNetV2's weights cost more than its whole backward pass over the top blocks (measured).
    const n = p.shape.reduce((a, c) => a * c, 1);
    const flat = (s: Sym) => (p.shape.length === 1 ? s : b.reshape(s, [n]));
    const emit = (s: Sym, name: string) => b.output(p.shape.length === 1 ? s : b.op1('Reshape', [s, b.ints(p.shape)], {}, { outputs: [name] }), name);
    const w = syms.get(p.name)!;
    const g = grads.get(P(p.name)) ?? b.expand(b.scalar(0), p.shape);
    const state = opt.slots.map((slot) => b.input(S(p.name, slot), 'float32', p.shape));
    const u = opt.update(b, flat(w), flat(g), state.map(flat), (s) => scalars.get(G(p.group, s))!, p.decay);
    emit(u.w, PN(p.name));
    u.state.forEach((st, i) => emit(st, SN(p.name, opt.slots[i]!)));
  }
  lowerDepthwiseConvs(b, b.hints.nchwcBlock);
  const session = await Session.create(b.graph, sessionOpts);
  return { batch, session, trainable, liveBuffers, updated, frozen, dropout: sites, slots: opt.slots, groupsUsed, scalarNames: opt.scalarNames };
}

/** Builds the eval graph for one batch size: all params are inputs, so weights can change freely. */
export async function compileEvalStep(net: Network, loss: Loss, batch: number, sessionOpts: SessionOptions): Promise<EvalStep> {
  const b = new GraphBuilder();
  b.graph.name = 'graft_eval_step';
  const x = b.input('x', 'float32', [batch, ...net.inputShape]);
  const t = b.input('target', 'float32', [batch, net.outputs]);
  const syms = new Map<string, Sym>();
  for (const p of net.params) syms.set(p.name, b.input(P(p.name), 'float32', p.shape));
  const logits = net.forward(b, x, forwardContext(b, syms, false, []));
  b.output(loss.build(b, logits, t).loss, 'loss');
  b.output(logits, 'logits');
  lowerDepthwiseConvs(b, await nchwcBlock());
  return { batch, session: await Session.create(b.graph, sessionOpts) };
}

/** The self-contained inference graph: weights baked in, batch axis symbolic, softmax (or sigmoid) on top. */
export function buildInferenceGraph(net: Network, values: (name: string) => Float32Array, head: 'softmax' | 'sigmoid' | 'none'): GraphBuilder {
  const b = new GraphBuilder();
  b.graph.name = 'graft_model';
  const x = b.input('input', 'float32', ['N', ...net.inputShape]);
  const syms = new Map<string, Sym>();
  for (const p of net.params) syms.set(p.name, b.init(p.name, tensor('float32', p.shape, values(p.name))));
  const logits = net.forward(b, x, forwardContext(b, syms, false, []));
  b.output(logits, 'logits');
  if (head === 'softmax') b.output(b.op1('Softmax', [logits], { axis: -1 }), 'probabilities');
  else if (head === 'sigmoid') b.output(b.sigmoid(logits), 'probabilities');
  return b;
}

export type Feeds = Record<string, TensorData>;
