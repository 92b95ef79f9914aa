/**
 * What the Learner trains: a network that can write its forward pass into a graph, plus its
 * parameters, each in a named layer group (groups are ordered from the input upward).
 */
import type { GraphBuilder, Sym } from '../graph/builder.ts';

export interface Param {
  name: string;
  shape: number[];
  value: Float32Array;
  /** Index into Network.groups. */
  group: number;
  /** Whether weight decay applies (not to biases and norm scales). */
  decay: boolean;
  /**
   * A buffer (e.g. BatchNorm running statistics): never trained by the optimizer, but a train step may
   * write a new value (ctx.setBuffer) that is kept, checkpointed and baked into the exported model.
   */
  buffer?: boolean;
}

export interface ForwardContext {
  training: boolean;
  /** The symbol of a parameter by name. */
  param(name: string): Sym;
  /** Inverted dropout with probability p; identity when not training. */
  dropout(x: Sym, p: number, key: string): Sym;
  /** Whether a parameter group trains in this step (false when not training). */
  trainable(group: number): boolean;
  /** Sets the new value of a buffer param (train steps only; ignored otherwise). */
  setBuffer(name: string, value: Sym): void;
}

export interface Network {
  /** Per-example input shape (without the batch axis). */
  inputShape: number[];
  /** Number of output units (logits). */
  outputs: number;
  groups: string[];
  params: Param[];
  forward(b: GraphBuilder, x: Sym, ctx: ForwardContext): Sym;
  /**
   * Sequence networks: the last input axis may be cut to a shorter length (length bucketing; forward reads
   * the length from x's shape), and this gives the output width at that length. Outputs at a shorter
   * length must be the first values of the full-length ones (e.g. token-major per-token scores).
   */
  outputsAt?(length: number): number;
  /** JSON-able description, stored in graft.json. */
  config: Record<string, unknown>;
}
