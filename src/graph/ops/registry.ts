/**
 * One entry per ONNX op: how its output types follow from its inputs (static shape inference), and,
 * for differentiable ops, the rule that emits its gradient as more ONNX nodes.
 */
import { GraftError } from '../../errors.ts';
import type { AttrValue, Dim, Node } from '../ir.ts';
import type { DType, TensorData } from '../tensor.ts';
import type { GraphBuilder, Sym } from '../builder.ts';

export interface TypeInfo {
  dtype: DType;
  shape: Dim[];
  /** The value, when it is a small constant known at build time (shapes, axes). */
  value?: TensorData;
}

export interface InferCtx {
  node: Node;
  /** Input types; undefined for an omitted optional input. */
  inputs: (TypeInfo | undefined)[];
  /** Constant value of input i, when known at build time. */
  constant(i: number): TensorData | undefined;
  constInts(i: number): number[] | undefined;
  int(name: string, dflt: number): number;
  ints(name: string, dflt: number[]): number[];
  float(name: string, dflt: number): number;
  str(name: string, dflt: string): string;
}

export interface GradCtx extends InferCtx {
  b: GraphBuilder;
  /** Input i as a symbol (null when omitted). */
  x(i: number): Sym;
  /** Output i as a symbol. */
  y(i: number): Sym;
  /** Gradient of output i, or null when no gradient reaches it. */
  dy(i: number): Sym | null;
  /** Whether the gradient of input i is wanted. */
  needs(i: number): boolean;
  /** Sums `g` down to the shape of `target` (undoes broadcasting). */
  unbroadcast(g: Sym, target: Sym): Sym;
  /** Makes sure the forward node exposes output i (e.g. MaxPool indices) and returns it. */
  ensureOutput(i: number): Sym;
  /**
   * The gradients of the node's inputs, got by differentiating `forward`, the node rewritten in ops that
   * have rules (given the node's inputs, in order, null where omitted; returning its outputs in order).
   * It is built as a subgraph, differentiated there, and inlined: the forward is recomputed in the backward.
   */
  vjp(forward: (b: GraphBuilder, xs: (Sym | null)[]) => Sym[]): (Sym | null)[];
}

/** Returns one gradient per input; null or undefined for inputs without one. */
export type GradRule = (ctx: GradCtx) => (Sym | null | undefined)[];

export interface OpDef {
  infer(ctx: InferCtx): TypeInfo[];
  grad?: GradRule;
  /** Inputs that never carry a gradient (indices, shapes, masks). */
  nondiff?: number[];
}

export const OPS = new Map<string, OpDef>();

/**
 * For ops through which no gradient flows (comparisons, shape queries, integer results): every input is
 * non-differentiable, so a gradient that reaches the op stops there instead of failing with E_GRAD_NO_RULE.
 */
export function noGradient(inputs: number): Pick<OpDef, 'grad' | 'nondiff'> {
  return { nondiff: Array.from({ length: inputs }, (_, i) => i), grad: () => [] };
}

export function defineOp(op: string, def: OpDef): void {
  OPS.set(op, def);
}

export function attrInt(n: Node, name: string, dflt: number): number {
  const a = n.attrs[name];
  if (!a) return dflt;
  if ('i' in a) return Number(a.i);
  if ('f' in a) return a.f;
  throw badAttr(n, name, 'an integer');
}

export function attrInts(n: Node, name: string, dflt: number[]): number[] {
  const a = n.attrs[name];
  if (!a) return dflt;
  if ('ints' in a) return a.ints.map(Number);
  if ('i' in a) return [Number(a.i)];
  throw badAttr(n, name, 'a list of integers');
}

export function attrFloat(n: Node, name: string, dflt: number): number {
  const a = n.attrs[name];
  if (!a) return dflt;
  if ('f' in a) return a.f;
  if ('i' in a) return Number(a.i);
  throw badAttr(n, name, 'a float');
}

export function attrStr(n: Node, name: string, dflt: string): string {
  const a = n.attrs[name];
  if (!a) return dflt;
  if ('s' in a) return a.s;
  throw badAttr(n, name, 'a string');
}

function badAttr(n: Node, name: string, what: string): GraftError {
  return new GraftError('E_GRAPH_INVALID', `node ${n.name} (${n.op}): attribute "${name}" should be ${what}`,
    'The model file does not follow the ONNX operator spec; re-export it.');
}

/** Attribute names whose numeric values are ONNX FLOATs (all other numbers become INTs). */
const FLOAT_ATTRS = new Set(['alpha', 'beta', 'gamma', 'epsilon', 'momentum', 'ratio', 'bias', 'lambd', 'value_float', 'spatial_scale', 'min', 'max', 'scale', 'threshold']);

export type AttrInput = number | number[] | string | string[] | AttrValue | TensorData;

export function toAttr(name: string, v: AttrInput): AttrValue {
  if (typeof v === 'number') return FLOAT_ATTRS.has(name) ? { f: v } : { i: v };
  if (typeof v === 'string') return { s: v };
  if (Array.isArray(v)) {
    if (v.length && typeof v[0] === 'string') return { strings: v as string[] };
    return FLOAT_ATTRS.has(name) ? { floats: v as number[] } : { ints: v as number[] };
  }
  if ('dims' in v && 'data' in v) return { t: v };
  return v;
}

export function shapeError(n: Node, msg: string): GraftError {
  return new GraftError('E_GRAPH_SHAPE', `node ${n.name} (${n.op}): ${msg}`,
    'Check the shapes of the tensors fed to this node.');
}

/** numpy-style broadcast of several static shapes. */
export function broadcastShapes(n: Node, shapes: Dim[][]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      if (k < 0) continue;
      const e = s[k]!;
      if (e === 1) continue;
      if (d === 1) d = e;
      else if (d !== e && typeof d === 'number' && typeof e === 'number') {
        throw shapeError(n, `cannot broadcast shapes ${shapes.map((x) => `[${x}]`).join(' and ')}`);
      }
    }
    out.push(d);
  }
  return out;
}

export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** The fixed dimensions of a symbol; a symbolic one is an E_GRAPH_SHAPE error. */
export function staticShape(s: Sym): number[] {
  return s.shape.map((d) => {
    if (typeof d !== 'number') {
      throw new GraftError('E_GRAPH_SHAPE', `tensor "${s.name}" has a symbolic dimension "${d}" where a fixed size is needed`,
        'Build training graphs with fixed shapes (graft compiles one per batch size).');
    }
    return d;
  });
}
