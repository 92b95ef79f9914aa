/**
 * Typed symbolic tensors over a Graph. Every op added through the builder gets its output dtype and
 * shape inferred at once, so shape errors surface where the graph is built, and autodiff knows every
 * shape it needs to undo broadcasting.
 */
import { GraftError } from '../errors.ts';
import { type Dim, Graph, type Node } from './ir.ts';
import { type AttrInput, OPS, type TypeInfo, attrFloat, attrInt, attrInts, attrStr, toAttr } from './ops/registry.ts';
import { type DType, ONNX_DTYPE, type TensorData, tensor, toNumbers } from './tensor.ts';
import './ops/index.ts';
import { GRAFT_DOMAIN } from './ops/gradreverse.ts';

export interface Sym {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Dim[];
}

export interface OpOptions {
  /** Number of outputs, or their names. */
  outputs?: number | string[];
  name?: string;
  /** Op domain (default the ONNX one; 'ai.graft' for graft's own ops, e.g. GradientReversal). */
  domain?: string;
}

/** What the runtime a graph is built for can do; gradient rules may pick their formulation by it. */
export interface TargetHints {
  /** ORT's NCHWc channel block (16 with AVX-512, 8 with AVX2) when its blocked depthwise kernels are used, else 0. */
  nchwcBlock?: number;
}

export class GraphBuilder {
  readonly graph: Graph;
  readonly types = new Map<string, TypeInfo>();
  hints: TargetHints = {};
  private constCache = new Map<string, string>();

  /** Wraps a graph (new or loaded) and infers the type of every tensor in it. */
  constructor(graph: Graph = new Graph(), inputShapes: Record<string, Dim[]> = {}) {
    this.graph = graph;
    for (const [k, t] of graph.initializers) this.types.set(k, { dtype: t.dtype, shape: t.dims, ...(t.dims.length <= 1 && t.data.length <= 64 ? { value: t } : {}) });
    for (const v of graph.inputs) {
      const shape = inputShapes[v.name] ?? v.shape;
      if (!shape) throw new GraftError('E_GRAPH_SHAPE', `graph input "${v.name}" has no shape`, 'Pass its shape in inputShapes.');
      this.types.set(v.name, { dtype: v.dtype, shape: [...shape] });
    }
    for (const n of graph.nodes) this.inferNode(n);
  }

  sym(name: string): Sym {
    const t = this.types.get(name);
    if (!t) {
      throw new GraftError('E_GRAPH_UNKNOWN_TENSOR', `no typed tensor named "${name}" in graph "${this.graph.name}"`,
        'Use a tensor name that the graph defines (an input, initializer or node output).');
    }
    return { name, dtype: t.dtype, shape: t.shape };
  }

  has(name: string): boolean {
    return this.types.has(name);
  }

  /** The build-time constant value of a tensor, if known. */
  valueOf(name: string): TensorData | undefined {
    return this.types.get(name)?.value;
  }

  input(name: string, dtype: DType, shape: Dim[]): Sym {
    this.graph.inputs.push({ name, dtype, shape: [...shape] });
    this.types.set(name, { dtype, shape: [...shape] });
    return { name, dtype, shape: [...shape] };
  }

  /** An initializer (a weight, or any named constant). */
  init(name: string, t: TensorData): Sym {
    if (this.types.has(name)) {
      throw new GraftError('E_GRAPH_INVALID', `tensor "${name}" already exists in graph "${this.graph.name}"`, 'Give each parameter a unique name.');
    }
    this.graph.initializers.set(name, t);
    this.types.set(name, { dtype: t.dtype, shape: t.dims, ...(t.dims.length <= 1 && t.data.length <= 64 ? { value: t } : {}) });
    return { name, dtype: t.dtype, shape: [...t.dims] };
  }

  /** A constant, shared when the same value is asked for twice. */
  constant(t: TensorData): Sym {
    // Exact values (int64 as bigint): INT64_MAX and INT64_MAX - 1 are the same JS number.
    const key = `${t.dtype}|${t.dims}|${Array.from(t.data as ArrayLike<number | bigint>, String).join(',')}`;
    const hit = key.length < 512 ? this.constCache.get(key) : undefined;
    if (hit) return this.sym(hit);
    const s = this.init(this.graph.fresh('const'), t);
    if (key.length < 512) this.constCache.set(key, s.name);
    return s;
  }

  ints(values: number[]): Sym {
    return this.constant(tensor('int64', [values.length], values));
  }

  scalar(v: number, dtype: DType = 'float32'): Sym {
    return this.constant(tensor(dtype, [], [v]));
  }

  output(s: Sym | string, name?: string): string {
    let n = typeof s === 'string' ? s : s.name;
    if (name && name !== n) n = this.op1('Identity', [n], {}, { outputs: [name] }).name;
    const t = this.sym(n);
    this.graph.outputs.push({ name: n, dtype: t.dtype, shape: [...t.shape] });
    return n;
  }

  /** Adds a node and returns its outputs as symbols. */
  op(op: string, inputs: (Sym | string | null)[], attrs: Record<string, AttrInput> = {}, opts: OpOptions = {}): Sym[] {
    const nOut = typeof opts.outputs === 'number' ? opts.outputs : opts.outputs?.length ?? 1;
    const outNames = Array.isArray(opts.outputs) ? opts.outputs : Array.from({ length: nOut }, () => this.graph.fresh(op));
    const a: Node['attrs'] = {};
    for (const [k, v] of Object.entries(attrs)) a[k] = toAttr(k, v);
    const node = this.graph.addNode(op, inputs.map((x) => (x == null ? '' : typeof x === 'string' ? x : x.name)), outNames, a, opts.name, opts.domain);
    this.inferNode(node);
    if (outNames.some((o) => !this.types.has(o))) {
      throw new GraftError('E_GRAPH_INVALID', `op ${op} (node "${node.name}") has no shape inference in graft, so the builder cannot type its outputs`,
        'Use ops that graft knows (graph/ops/), or load graphs that use this op without building on top of its outputs.');
    }
    return outNames.map((o) => this.sym(o));
  }

  op1(op: string, inputs: (Sym | string | null)[], attrs: Record<string, AttrInput> = {}, opts: OpOptions = {}): Sym {
    return this.op(op, inputs, attrs, opts)[0]!;
  }

  /** (Re)infers the types of a node's outputs. */
  inferNode(node: Node): void {
    const def = OPS.get(node.op);
    if (!def || node.domain && node.domain !== 'ai.onnx' && node.domain !== GRAFT_DOMAIN) return; // unknown op: its outputs stay untyped
    const inputs = node.inputs.map((i) => (i ? this.types.get(i) : undefined));
    const ctx = inferCtx(node, inputs);
    const outs = def.infer(ctx);
    node.outputs.forEach((o, i) => {
      if (o && outs[i]) this.types.set(o, outs[i]!);
    });
  }

  // ---- sugar for the ops graft builds itself ----------------------------------------------------------
  add(a: Sym, b: Sym): Sym { return this.op1('Add', [a, b]); }
  sub(a: Sym, b: Sym): Sym { return this.op1('Sub', [a, b]); }
  mul(a: Sym, b: Sym): Sym { return this.op1('Mul', [a, b]); }
  div(a: Sym, b: Sym): Sym { return this.op1('Div', [a, b]); }
  neg(a: Sym): Sym { return this.op1('Neg', [a]); }
  matmul(a: Sym, b: Sym): Sym { return this.op1('MatMul', [a, b]); }
  relu(a: Sym): Sym { return this.op1('Relu', [a]); }
  exp(a: Sym): Sym { return this.op1('Exp', [a]); }
  log(a: Sym): Sym { return this.op1('Log', [a]); }
  sqrt(a: Sym): Sym { return this.op1('Sqrt', [a]); }
  sigmoid(a: Sym): Sym { return this.op1('Sigmoid', [a]); }
  transpose(a: Sym, perm: number[]): Sym { return this.op1('Transpose', [a], { perm }); }
  /**
   * Reshape; 0 copies a's dim (ONNX's default), except when a has no elements: there a 0 is a zero-size dim
   * (allowzero), so that gradients of zero-size tensors, whose shapes hold real zeros, reshape to those shapes.
   */
  reshape(a: Sym, shape: number[]): Sym {
    const empty = a.shape.some((d) => d === 0) && shape.includes(0) && !shape.includes(-1);
    return this.op1('Reshape', [a, this.ints(shape)], empty ? { allowzero: 1 } : {});
  }
  reduceSum(a: Sym, axes: number[], keepdims = true): Sym {
    return this.op1('ReduceSum', [a, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  reduceMean(a: Sym, axes: number[], keepdims = true): Sym {
    // Axes are an attribute before opset 18 and an input from it.
    if (this.graph.opset >= 18) return this.op1('ReduceMean', [a, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
    return this.op1('ReduceMean', [a], { axes, keepdims: keepdims ? 1 : 0 });
  }
  expand(a: Sym, shape: Dim[]): Sym { return this.op1('Expand', [a, this.ints(shape.map(Number))]); }
  cast(a: Sym, to: DType): Sym {
    return this.op1('Cast', [a], { to: ONNX_DTYPE[to] });
  }
  /** A scalar constant of the same float dtype as `like`. */
  like(v: number, like: Sym): Sym { return this.scalar(v, like.dtype); }
}

export function inferCtx(node: Node, inputs: (TypeInfo | undefined)[]): import('./ops/registry.ts').InferCtx {
  return {
    node,
    inputs,
    constant: (i) => inputs[i]?.value,
    constInts: (i) => {
      const v = inputs[i]?.value;
      return v ? toNumbers(v) : undefined;
    },
    int: (n, d) => attrInt(node, n, d),
    ints: (n, d) => attrInts(node, n, d),
    float: (n, d) => attrFloat(node, n, d),
    str: (n, d) => attrStr(node, n, d),
  };
}

export { staticShape } from './ops/registry.ts';
