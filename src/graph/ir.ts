/**
 * graft's in-memory ONNX graph: nodes, initializers, inputs, outputs and value infos. It loads from and
 * saves to ONNX ModelProto bytes through onnx-proto (the ONNX schema compiled by protobufjs), so the wire
 * format is never written by hand. Transfer-learning code works on this, never on protobufs.
 */
import { readFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import { GraftError } from '../errors.ts';
import { type DType, type TensorData, ONNX_DTYPE, dtypeFromOnnx, fromBytes, sizeOf, toBytes, allocate } from './tensor.ts';

const { onnx } = onnxProto;

export type Dim = number | string;
/**
 * An ONNX INT: a number where that is exact, a bigint beyond 2^53 (INT64_MAX as a Slice end, say), so that
 * every int64 survives load and save bit for bit. Readers convert with Number() (attrInt, attrInts).
 */
export type Int = number | bigint;
export type AttrValue =
  | { i: Int } | { f: number } | { s: string }
  | { ints: Int[] } | { floats: number[] } | { strings: string[] }
  | { t: TensorData } | { g: Graph };

export interface Node {
  name: string;
  op: string;
  domain: string;
  inputs: string[]; // '' marks an omitted optional input
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

export interface ValueInfo {
  name: string;
  dtype: DType;
  shape: Dim[] | null; // null: rank unknown
}

export const DEFAULT_OPSET = 17;

export class Graph {
  name = 'graft';
  nodes: Node[] = [];
  initializers = new Map<string, TensorData>();
  inputs: ValueInfo[] = [];
  outputs: ValueInfo[] = [];
  valueInfo = new Map<string, ValueInfo>();
  opset = DEFAULT_OPSET;
  /** Other opset domains (e.g. com.microsoft) a loaded model imports. */
  extraOpsets = new Map<string, number>();
  metadata = new Map<string, string>();
  private counter = 0;

  /** A fresh tensor name with the given stem, unique in this graph. */
  fresh(stem: string): string {
    let name: string;
    do name = `${stem}__${this.counter++}`; while (this.hasTensor(name));
    return name;
  }

  hasTensor(name: string): boolean {
    if (this.initializers.has(name) || this.valueInfo.has(name)) return true;
    if (this.inputs.some((v) => v.name === name)) return true;
    return this.nodes.some((n) => n.outputs.includes(name));
  }

  addNode(op: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, name?: string, domain = ''): Node {
    const node: Node = { name: name ?? this.fresh(op), op, domain, inputs, outputs, attrs };
    this.nodes.push(node);
    return node;
  }

  /** The node that produces each tensor. */
  producers(): Map<string, Node> {
    const m = new Map<string, Node>();
    for (const n of this.nodes) for (const o of n.outputs) if (o) m.set(o, n);
    return m;
  }

  clone(): Graph {
    const g = new Graph();
    g.name = this.name;
    g.nodes = this.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } }));
    g.initializers = new Map(this.initializers);
    g.inputs = this.inputs.map((v) => ({ ...v, shape: v.shape && [...v.shape] }));
    g.outputs = this.outputs.map((v) => ({ ...v, shape: v.shape && [...v.shape] }));
    g.valueInfo = new Map(this.valueInfo);
    g.opset = this.opset;
    g.extraOpsets = new Map(this.extraOpsets);
    g.metadata = new Map(this.metadata);
    g.counter = this.counter;
    return g;
  }

  /**
   * The sub-graph that computes `tensor` (a named cut point) from the graph inputs: only the nodes and
   * initializers it needs, with `tensor` as the single output.
   */
  cut(tensor: string, outputName?: string): Graph {
    const prod = this.producers();
    const isSource = (t: string) => this.initializers.has(t) || this.inputs.some((v) => v.name === t);
    if (!prod.has(tensor) && !isSource(tensor)) {
      throw new GraftError('E_GRAPH_UNKNOWN_TENSOR', `no tensor named "${tensor}" in graph "${this.name}"`,
        'List the cut points of the backbone and pass one of their names.');
    }
    const keep = new Set<Node>();
    const needed = new Set<string>();
    const stack = [tensor];
    while (stack.length) {
      const t = stack.pop()!;
      if (needed.has(t) || !t) continue;
      needed.add(t);
      const n = prod.get(t);
      if (n && !keep.has(n)) {
        keep.add(n);
        for (const i of n.inputs) stack.push(i);
        for (const sub of subgraphInputs(n)) stack.push(sub);
      }
    }
    const g = this.clone();
    g.nodes = this.nodes.filter((n) => keep.has(n)).map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] }));
    g.initializers = new Map([...this.initializers].filter(([k]) => needed.has(k)));
    g.inputs = g.inputs.filter((v) => needed.has(v.name));
    const info = this.infoOf(tensor);
    let out = tensor;
    if (outputName && outputName !== tensor) {
      g.addNode('Identity', [tensor], [outputName]);
      out = outputName;
    }
    g.outputs = [{ name: out, dtype: info?.dtype ?? 'float32', shape: info?.shape ?? null }];
    return g;
  }

  /**
   * Appends `other` to this graph. `connect` maps other's input names to tensors of this graph; every
   * other name in `other` is prefixed so that nothing collides. Returns the renamed outputs of `other`.
   */
  append(other: Graph, connect: Record<string, string>, prefix: string): string[] {
    const rename = (t: string): string => (t === '' ? '' : t in connect ? connect[t]! : `${prefix}${t}`);
    for (const [k, v] of other.initializers) this.initializers.set(rename(k), v);
    for (const n of other.nodes) {
      this.nodes.push({ ...n, name: `${prefix}${n.name}`, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename), attrs: { ...n.attrs } });
    }
    for (const v of other.valueInfo.values()) this.valueInfo.set(rename(v.name), { ...v, name: rename(v.name) });
    for (const v of other.inputs) {
      if (!(v.name in connect) && !other.initializers.has(v.name)) this.inputs.push({ ...v, name: rename(v.name) });
    }
    this.opset = Math.max(this.opset, other.opset);
    for (const [d, v] of other.extraOpsets) this.extraOpsets.set(d, Math.max(v, this.extraOpsets.get(d) ?? 0));
    return other.outputs.map((o) => rename(o.name));
  }

  infoOf(name: string): ValueInfo | undefined {
    const init = this.initializers.get(name);
    if (init) return { name, dtype: init.dtype, shape: init.dims };
    return this.inputs.find((v) => v.name === name) ?? this.outputs.find((v) => v.name === name) ?? this.valueInfo.get(name);
  }

  /** Removes nodes whose outputs reach no graph output, and initializers nothing reads. */
  prune(): this {
    const live = new Set(this.outputs.map((o) => o.name));
    const keep: Node[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i]!;
      if (n.outputs.some((o) => live.has(o))) {
        keep.push(n);
        for (const t of n.inputs) live.add(t);
        for (const t of subgraphInputs(n)) live.add(t);
      }
    }
    this.nodes = keep.reverse();
    for (const k of [...this.initializers.keys()]) if (!live.has(k)) this.initializers.delete(k);
    return this;
  }

  /** Nodes in an order where every input is produced before it is read. */
  toposort(): this {
    const prod = this.producers();
    const done = new Set<Node>();
    const order: Node[] = [];
    const visiting = new Set<Node>();
    const visit = (n: Node) => {
      if (done.has(n)) return;
      if (visiting.has(n)) throw new GraftError('E_GRAPH_INVALID', `graph "${this.name}" has a cycle at node ${n.name}`, 'ONNX graphs must be acyclic.');
      visiting.add(n);
      for (const i of [...n.inputs, ...subgraphInputs(n)]) {
        const p = prod.get(i);
        if (p) visit(p);
      }
      visiting.delete(n);
      done.add(n);
      order.push(n);
    };
    for (const n of this.nodes) visit(n);
    this.nodes = order;
    return this;
  }

  // ---- ONNX serialisation -------------------------------------------------------------------------

  toModelProto(): onnxProto.onnx.IModelProto {
    const opsetImport = [{ domain: '', version: this.opset }, ...[...this.extraOpsets].map(([domain, version]) => ({ domain, version }))];
    return {
      irVersion: 8,
      producerName: 'graft',
      producerVersion: '0.1.0',
      opsetImport,
      graph: graphToProto(this),
      metadataProps: [...this.metadata].map(([key, value]) => ({ key, value })),
    };
  }

  toBytes(): Uint8Array {
    return onnx.ModelProto.encode(onnx.ModelProto.create(this.toModelProto())).finish();
  }

  static fromBytes(bytes: Uint8Array, source = 'model'): Graph {
    let model: onnxProto.onnx.ModelProto;
    try {
      model = onnx.ModelProto.decode(bytes);
    } catch (e) {
      throw new GraftError('E_ONNX_PARSE', `${source} is not a readable ONNX model: ${(e as Error).message}`,
        'The file is truncated or not an ONNX model; export or download it again.');
    }
    if (!model.graph) {
      throw new GraftError('E_ONNX_PARSE', `${source} has no graph`, 'The file is not an ONNX model; export or download it again.');
    }
    const g = graphFromProto(model.graph, source);
    for (const o of model.opsetImport ?? []) {
      if (!o.domain || o.domain === 'ai.onnx') g.opset = Number(o.version);
      else g.extraOpsets.set(o.domain, Number(o.version));
    }
    for (const p of model.metadataProps ?? []) g.metadata.set(p.key ?? '', p.value ?? '');
    return g;
  }

  static load(path: string): Graph {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch {
      throw new GraftError('E_FILE_MISSING', `cannot read ONNX file ${path}`, 'Check the path; the file must exist and be readable.');
    }
    return Graph.fromBytes(bytes, path);
  }
}

function subgraphInputs(n: Node): string[] {
  // Tensors that a node's subgraphs (If/Loop/Scan bodies) read from the outer scope.
  const out: string[] = [];
  for (const a of Object.values(n.attrs)) {
    if ('g' in a) {
      const inner = new Set<string>([...a.g.initializers.keys(), ...a.g.inputs.map((v) => v.name)]);
      for (const m of a.g.nodes) for (const o of m.outputs) inner.add(o);
      for (const m of a.g.nodes) for (const i of [...m.inputs, ...subgraphInputs(m)]) if (i && !inner.has(i)) out.push(i);
    }
  }
  return out;
}

// ---- proto conversion --------------------------------------------------------------------------------

function tensorToProto(name: string, t: TensorData): onnxProto.onnx.ITensorProto {
  return { name, dataType: ONNX_DTYPE[t.dtype], dims: t.dims, rawData: toBytes(t) };
}

type Long = { low: number; high: number; unsigned?: boolean; toNumber(): number };

function num(x: number | Long | null | undefined): number {
  if (x == null) return 0;
  return typeof x === 'number' ? x : x.toNumber();
}

/** A protobuf int64 as an exact bigint (protobufjs decodes int64 as a Long of two 32-bit halves). */
function big(x: number | Long | null | undefined): bigint {
  if (x == null) return 0n;
  if (typeof x === 'number') return BigInt(x);
  return BigInt.asIntN(64, (BigInt(x.high) << 32n) | BigInt(x.low >>> 0));
}

/** A protobuf int64 as an Int: a number where that is exact, else the bigint. */
function int(x: number | Long | null | undefined): Int {
  const b = big(x);
  const n = Number(b);
  return Number.isSafeInteger(n) ? n : b;
}

/** An Int for protobufjs: a bigint as its two 32-bit halves (protobufjs reads a number through a double). */
function long(x: Int): number {
  if (typeof x === 'number') return x;
  const bits: Long = { low: Number(BigInt.asIntN(32, x)), high: Number(BigInt.asIntN(32, x >> 32n)), unsigned: false, toNumber: () => Number(x) };
  return bits as unknown as number;
}

export function tensorFromProto(p: onnxProto.onnx.ITensorProto, source = 'model'): TensorData {
  const dtype = dtypeFromOnnx(p.dataType ?? 0);
  const dims = (p.dims ?? []).map(num);
  if (p.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw new GraftError('E_ONNX_PARSE', `${source}: tensor "${p.name}" keeps its data in an external file`,
      'Load the model with its folder (loadOnnxFolder) so external data can be checked and read.');
  }
  if (p.rawData && p.rawData.length) return fromBytes(dtype, dims, p.rawData);
  const n = sizeOf(dims);
  const out = allocate(dtype, n);
  const src: ArrayLike<number | Long> | null | undefined =
    dtype === 'float32' ? p.floatData : dtype === 'float64' ? p.doubleData : dtype === 'int64' ? p.int64Data
      : dtype === 'uint32' || dtype === 'uint64' ? p.uint64Data : p.int32Data;
  const len = src?.length ?? 0;
  if (len !== n) {
    throw new GraftError('E_ONNX_PARSE', `${source}: tensor "${p.name}" of shape [${dims}] holds ${len} values, expected ${n}`,
      'The model file is truncated or corrupt; export or download it again.');
  }
  for (let i = 0; i < n; i++) {
    const v = src![i]!;
    if (out instanceof BigInt64Array) out[i] = big(v);
    else if (out instanceof BigUint64Array) out[i] = BigInt.asUintN(64, big(v));
    else (out as Float32Array)[i] = num(v);
  }
  return { dtype, dims, data: out };
}

function valueInfoToProto(v: ValueInfo): onnxProto.onnx.IValueInfoProto {
  const tensorType: onnxProto.onnx.TypeProto.ITensor = { elemType: ONNX_DTYPE[v.dtype] };
  if (v.shape) tensorType.shape = { dim: v.shape.map((d) => (typeof d === 'number' && d >= 0 ? { dimValue: d } : { dimParam: String(d) })) };
  return { name: v.name, type: { tensorType } };
}

function valueInfoFromProto(p: onnxProto.onnx.IValueInfoProto): ValueInfo | null {
  const tt = p.type?.tensorType;
  if (!tt) return null;
  const dimOf = (d: onnxProto.onnx.TensorShapeProto.IDimension): Dim => {
    const which = (d as { value?: string }).value;
    if (which === 'dimValue' || (which === undefined && d.dimValue != null)) return num(d.dimValue);
    return d.dimParam || '?';
  };
  const shape = tt.shape ? (tt.shape.dim ?? []).map(dimOf) : null;
  return { name: p.name ?? '', dtype: dtypeFromOnnx(tt.elemType ?? 1), shape };
}

function attrToProto(name: string, a: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in a) return { name, type: T.INT, i: long(a.i) };
  if ('f' in a) return { name, type: T.FLOAT, f: a.f };
  if ('s' in a) return { name, type: T.STRING, s: new TextEncoder().encode(a.s) };
  if ('ints' in a) return { name, type: T.INTS, ints: a.ints.map(long) };
  if ('floats' in a) return { name, type: T.FLOATS, floats: a.floats };
  if ('strings' in a) return { name, type: T.STRINGS, strings: a.strings.map((s) => new TextEncoder().encode(s)) };
  if ('t' in a) return { name, type: T.TENSOR, t: tensorToProto('', a.t) };
  return { name, type: T.GRAPH, g: graphToProto(a.g) };
}

function attrFromProto(p: onnxProto.onnx.IAttributeProto, source: string): AttrValue {
  const T = onnx.AttributeProto.AttributeType;
  const dec = (b: Uint8Array) => new TextDecoder().decode(b);
  switch (p.type) {
    case T.INT: return { i: int(p.i) };
    case T.FLOAT: return { f: p.f ?? 0 };
    case T.STRING: return { s: dec(p.s ?? new Uint8Array()) };
    case T.INTS: return { ints: (p.ints ?? []).map(int) };
    case T.FLOATS: return { floats: [...(p.floats ?? [])] };
    case T.STRINGS: return { strings: (p.strings ?? []).map(dec) };
    case T.TENSOR: return { t: tensorFromProto(p.t ?? {}, source) };
    case T.GRAPH: return { g: graphFromProto(p.g ?? {}, source) };
    default:
      throw new GraftError('E_ONNX_PARSE', `${source}: attribute "${p.name}" has type ${p.type}, which graft does not read`,
        'Re-export the model with plain tensor attributes.');
  }
}

function graphToProto(g: Graph): onnxProto.onnx.IGraphProto {
  return {
    name: g.name,
    // graft's own ops become ONNX ops here: GradientReversal is Identity in the forward pass.
    node: g.nodes.map((n) => (n.domain === 'ai.graft' && n.op === 'GradientReversal'
      ? { name: n.name, opType: 'Identity', domain: '', input: [n.inputs[0]!], output: n.outputs, attribute: [] }
      : {
        name: n.name, opType: n.op, domain: n.domain, input: n.inputs, output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, v]) => attrToProto(k, v)),
      })),
    initializer: [...g.initializers].map(([k, t]) => tensorToProto(k, t)),
    input: g.inputs.map(valueInfoToProto),
    output: g.outputs.map(valueInfoToProto),
    valueInfo: [...g.valueInfo.values()].map(valueInfoToProto),
  };
}

function graphFromProto(p: onnxProto.onnx.IGraphProto, source: string): Graph {
  const g = new Graph();
  g.name = p.name || 'graph';
  for (const t of p.initializer ?? []) g.initializers.set(t.name ?? '', tensorFromProto(t, source));
  for (const v of p.input ?? []) {
    if (g.initializers.has(v.name ?? '')) continue; // old exporters list initializers as inputs too
    const info = valueInfoFromProto(v);
    if (info) g.inputs.push(info);
  }
  for (const v of p.output ?? []) {
    const info = valueInfoFromProto(v);
    if (info) g.outputs.push(info);
  }
  for (const v of p.valueInfo ?? []) {
    const info = valueInfoFromProto(v);
    if (info) g.valueInfo.set(info.name, info);
  }
  for (const n of p.node ?? []) {
    const attrs: Record<string, AttrValue> = {};
    for (const a of n.attribute ?? []) attrs[a.name ?? ''] = attrFromProto(a, source);
    g.nodes.push({
      name: n.name || g.fresh(n.opType ?? 'node'), op: n.opType ?? '', domain: n.domain ?? '',
      inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])], attrs,
    });
  }
  return g;
}
