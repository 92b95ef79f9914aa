/**
 * TF.js graph models -> graft graphs (ONNX, NCHW).
 *
 * loadTfjsGraph reads a graph model as the TF.js converter writes it: model.json ("format":
 * "graph-model", the TF GraphDef's nodes in modelTopology.node) and the binary weight shards its
 * weightsManifest names, next to it. Weights are decoded with the Layers reader's code (tfjs.ts:
 * float16 and uint8/uint16 quantization dequantized), int32 constants stay int32. Nothing in the files
 * is executed. use.ts reads Universal Sentence Encoder lite through it.
 *
 * convertTfjsGraph translates, op by op, the part of the graph that computes the requested TF nodes
 * (everything else, e.g. a detector's heads and its decoding, is never read), for image models:
 * - one NHWC Placeholder becomes the input 'pixels' [N, 3, H, W]; rank-4 tensors live as NCHW, so
 *   kernels are transposed (HWIO -> OIHW, depthwise HW C M -> (C*M) 1 H W with group C), axes of
 *   Mean/ConcatV2 are remapped, and per-channel constants broadcast as [C, 1, 1];
 * - H and W stay free (default 'H', 'W'): TF's 'SAME' padding is symmetric at stride 1 (explicit
 *   pads) and depends on the input size when strided, where it becomes ONNX auto_pad SAME_UPPER, which
 *   places the pads as TF does (the odd one at the end) at any size;
 * - the grappler-fused ops (_FusedConv2D, FusedDepthwiseConv2dNative with BiasAdd and an activation)
 *   are unfused into Conv (+ bias) and the activation; Relu6 is Clip(0, 6). Hard-swish and
 *   hard-sigmoid arrive as the primitive ops TF wrote them with (x * (1/6) * relu6(x + 3)) and stay
 *   primitive: Mul, Add, Clip, all with gradient rules, so the graph fine-tunes as it is;
 * - a preset's inputScale undoes a constant input scaling that TF folded into the first convolutions.
 * Every converted node's output tensor is named after the TF node (':k' for its k-th output, k > 0);
 * weights keep their TF names.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { GraftError } from '../errors.ts';
import { GraphBuilder, type Sym } from '../graph/builder.ts';
import type { Dim, Graph } from '../graph/ir.ts';
import { type TensorData, tensor, toNumbers } from '../graph/tensor.ts';
import {
  type Json, type JsonObject, type TfjsWeightSpec, decodeManifest, isObj, parseError, readBytes, transposeTo, weightSpecsOf,
} from './tfjs.ts';
import type { CutPoint, ImagePreprocess, LayerGroup } from './types.ts';

// ---- reading ----------------------------------------------------------------------------------------

export interface TfjsGraphNode {
  name: string;
  op: string;
  /** Data inputs as TF writes them ('node' or 'node:k'); control inputs ('^node') are dropped. */
  inputs: string[];
  attr: JsonObject;
}

export interface TfjsGraphModel {
  /** The model.json it was read from. */
  file: string;
  /** model.json minus its weights manifest (format, signature, modelTopology, ...). */
  modelJson: JsonObject;
  nodes: TfjsGraphNode[];
  /** Every weight in manifest order, with its quantization. */
  weightSpecs: TfjsWeightSpec[];
  /** The shards' bytes, concatenated in manifest order (as tf.io.ModelArtifacts wants them). */
  weightData: Uint8Array;
  /** Decoded weights by name (the Const nodes' values): float32, or int32 where TF stored int32. */
  weights: Map<string, TensorData>;
  /** sha256 of model.json, then of each shard in manifest order. */
  fileHashes: string[];
}

const hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Reads a TF.js graph model: `modelFile` (model.json or another name) and the shards beside it. */
export function loadTfjsGraph(modelFile: string): TfjsGraphModel {
  if (!existsSync(modelFile)) throw new GraftError('E_FILE_MISSING', `no TF.js graph model at ${modelFile}`, 'Pass the model.json of a TF.js graph model, with its weight shards beside it.');
  const bytes = readBytes(modelFile);
  let root: Json;
  try {
    root = JSON.parse(Buffer.from(bytes).toString('utf8')) as Json;
  } catch (e) {
    throw parseError(modelFile, `not JSON: ${(e as Error).message}`);
  }
  if (!isObj(root) || !isObj(root['modelTopology'])) throw parseError(modelFile, 'no modelTopology object');
  const topo = root['modelTopology'];
  if (!Array.isArray(topo['node'])) {
    throw parseError(modelFile, root['format'] === 'layers-model' || isObj(topo['model_config']) || isObj(topo['config'])
      ? 'a TF.js Layers model, not a graph model (read it with loadTfjsLayers)' : 'modelTopology has no node list');
  }
  const nodes = topo['node'].map((n, k): TfjsGraphNode => {
    if (!isObj(n) || typeof n['name'] !== 'string' || typeof n['op'] !== 'string') throw parseError(modelFile, `modelTopology.node[${k}] is not {name, op}`);
    const ins = n['input'] ?? [];
    if (!Array.isArray(ins) || !ins.every((i) => typeof i === 'string')) throw parseError(modelFile, `node "${n['name']}": input is not a list of names`);
    return { name: n['name'], op: n['op'], inputs: (ins as string[]).filter((i) => !i.startsWith('^')), attr: isObj(n['attr']) ? n['attr'] : {} };
  });
  const { weightsManifest, ...modelJson } = root;
  const { groups } = weightSpecsOf(weightsManifest, modelFile);
  const dir = dirname(modelFile);
  const fileHashes = [hex(bytes)];
  const shards = groups.map((g) => g.paths.map((p) => {
    // Shards sit beside model.json: a bare file name, nothing that walks elsewhere.
    if (!/^[A-Za-z0-9._-]+$/.test(p) || p.startsWith('.') || basename(p) !== p) throw parseError(modelFile, `weight path ${JSON.stringify(p)} is not a file name beside the model`);
    const b = readBytes(join(dir, p));
    fileHashes.push(hex(b));
    return b;
  }));
  const { weightSpecs, weightData, weights } = decodeManifest(groups, shards, modelFile, 'int32');
  return { file: modelFile, modelJson, nodes, weightSpecs, weightData, weights, fileHashes };
}

// ---- conversion -------------------------------------------------------------------------------------

/** TF ops that convertTfjsGraph translates. */
export const TFJS_GRAPH_OPS = [
  'Placeholder', 'Const', 'Identity', 'Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative',
  'Add', 'AddV2', 'Sub', 'Mul', 'RealDiv', 'Maximum', 'Minimum', 'Relu', 'Relu6', 'Sigmoid', 'Tanh',
  'Mean', 'ConcatV2', 'MaxPool', 'AvgPool',
] as const;

const CONVS = new Set(['Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative']);

/** Activations a fused convolution may end with (fused_ops[1]). */
const FUSED_ACTIVATIONS = ['Relu', 'Relu6', 'Sigmoid', 'Tanh'] as const;

/** What to take from an architecture: its image input, pooled cut points and layer groups, as TF node names. */
export interface TfjsGraphPreset {
  /** The TF node whose output is the converted graph's output (the last feature map). */
  output: string;
  /** Pooled cut points: name, TF node, description (early to late). */
  cuts: [string, string, string][];
  /** Layer groups: name and the TF node each ends with. */
  groupEnds: [string, string][];
  /**
   * A constant the model's own preprocessing divided the image by, which TF folded into the convolutions
   * that read it when the graph was frozen: graft takes it back out (those kernels times inputScale), so
   * its input is the image / inputScale and the first kernels have the scale they were trained with.
   */
  inputScale?: number;
}

const V3 = 'tower_0/MobilenetV3/';
/** Architectures graft knows by their node names. */
export const GRAPH_PRESETS: { name: string; test: (names: Set<string>) => boolean; preset: TfjsGraphPreset }[] = [
  {
    // MB3-CenterNet (github.com/610265158/mobilenetv3_centernet): MobileNetV3-Large, depth multiplier 0.75,
    // base only, and its own 1x1 conv to 480 channels with hard-swish ('extern1'), which the detection head
    // (CenternetHead, not converted) reads with the expansion outputs of three earlier blocks.
    name: 'MobileNetV3-CenterNet',
    test: (n) => n.has(`${V3}expanded_conv_14/add`) && n.has('tower_0/extern1/hard_swish/mul_1'),
    preset: {
      // Centernet.preprocess: image / 255. before the backbone; the frozen graph reads 0..255 (as human feeds it).
      inputScale: 255,
      output: 'tower_0/extern1/hard_swish/mul_1',
      cuts: [
        ['expanded_conv_2_add', `${V3}expanded_conv_2/add`, 'end of stage 1 (stride 4), 24 channels, average-pooled'],
        ['expanded_conv_5_add', `${V3}expanded_conv_5/add`, 'end of stage 2 (stride 8, 5x5 kernels, squeeze-excite), 32 channels, average-pooled'],
        ['expanded_conv_9_add', `${V3}expanded_conv_9/add`, 'stride 16, hard-swish blocks, 64 channels, average-pooled'],
        ['expanded_conv_11_add', `${V3}expanded_conv_11/add`, 'end of stage 3 (stride 16, squeeze-excite), 88 channels, average-pooled'],
        ['expanded_conv_14_add', `${V3}expanded_conv_14/add`, 'last inverted-residual block (stride 32), 120 channels, average-pooled'],
        ['features', 'tower_0/extern1/hard_swish/mul_1', 'last backbone feature map (extern1: 1x1 conv to 480, hard-swish), average-pooled'],
      ],
      groupEnds: [
        ['stem', `${V3}expanded_conv/add`], ['stage1', `${V3}expanded_conv_2/add`], ['stage2', `${V3}expanded_conv_5/add`],
        ['stage3a', `${V3}expanded_conv_9/add`], ['stage3b', `${V3}expanded_conv_11/add`], ['stage4', `${V3}expanded_conv_14/add`],
        ['top', 'tower_0/extern1/hard_swish/mul_1'],
      ],
    },
  },
];

export interface TfjsGraphConvertOptions {
  /** Preprocessing to report (the converter cannot know it). */
  preprocess: ImagePreprocess;
  /** Batch dimension of the input: a fixed size or a symbolic name (default 'N'). */
  batch?: Dim;
  /** Input height and width: fixed sizes or symbolic names (default 'H', 'W': any size). */
  size?: [Dim, Dim];
  /** In place of an architecture preset (or where there is none). */
  preset?: TfjsGraphPreset;
}

export interface TfjsGraphConverted {
  graph: Graph;
  /** 'pixels', [N, 3, H, W] float32 (after preprocess). */
  inputName: string;
  /** The preset's output (a 4-D feature map). */
  outputName: string;
  cuts: CutPoint[];
  groups: LayerGroup[];
  preprocess: ImagePreprocess;
  /** TF ops translated, and how many of each. */
  opTypes: Record<string, number>;
  /** The architecture preset used ('' for opts.preset). */
  architecture: string;
}

/** A converted TF tensor: rank-4 ones live as NCHW. */
interface Val { sym: Sym; rank: number }

const unsupported = (n: TfjsGraphNode, what: string, hint = `Convert a graph that uses only the ops graft knows (${TFJS_GRAPH_OPS.join(', ')}).`) =>
  new GraftError('E_GRAPH_INVALID', `node "${n.name}" (${n.op}): ${what}`, hint, { node: n.name, op: n.op });

/** NHWC axis -> NCHW axis. */
const NCHW_AXIS = [0, 2, 3, 1];

/** TF.js writes attribute strings base64-encoded (GraphDef bytes). */
function attrStr(n: TfjsGraphNode, k: string): string | undefined {
  const v = n.attr[k];
  return isObj(v) && typeof v['s'] === 'string' ? Buffer.from(v['s'], 'base64').toString('utf8') : undefined;
}
function attrStrs(n: TfjsGraphNode, k: string): string[] {
  const v = n.attr[k];
  const l = isObj(v) && isObj(v['list']) ? v['list']['s'] : undefined;
  return Array.isArray(l) ? l.map((s) => Buffer.from(String(s), 'base64').toString('utf8')) : [];
}
function attrInts(n: TfjsGraphNode, k: string, dflt: number[]): number[] {
  const v = n.attr[k];
  const l = isObj(v) && isObj(v['list']) ? v['list']['i'] : undefined;
  return Array.isArray(l) ? l.map(Number) : dflt;
}
function attrInt(n: TfjsGraphNode, k: string, dflt: number): number {
  const v = n.attr[k];
  return isObj(v) && v['i'] !== undefined ? Number(v['i']) : dflt;
}
function attrBool(n: TfjsGraphNode, k: string, dflt: boolean): boolean {
  const v = n.attr[k];
  return isObj(v) && typeof v['b'] === 'boolean' ? v['b'] : dflt;
}

/**
 * Converts the part of a TF.js graph model that computes the preset's output and cut points to a graft
 * Graph (NCHW, opset 17), with pooled cut points and layer groups.
 */
export function convertTfjsGraph(model: TfjsGraphModel, opts: TfjsGraphConvertOptions): TfjsGraphConverted {
  const byName = new Map(model.nodes.map((n) => [n.name, n]));
  const names = new Set(byName.keys());
  const hit = opts.preset ? null : GRAPH_PRESETS.find((p) => p.test(names));
  const preset = opts.preset ?? hit?.preset;
  if (!preset) {
    throw new GraftError('E_GRAPH_INVALID', `${model.file}: graft knows no architecture preset for this graph (presets: ${GRAPH_PRESETS.map((p) => p.name).join(', ')})`,
      'Pass opts.preset (output, cut points and layer groups as TF node names).');
  }
  for (const t of [preset.output, ...preset.cuts.map((c) => c[1]), ...preset.groupEnds.map((e) => e[1])]) {
    if (!byName.has(t)) throw new GraftError('E_GRAPH_UNKNOWN_TENSOR', `${model.file} has no node "${t}"`, 'Name nodes of this graph in the preset.');
  }
  const b = new GraphBuilder();
  const g = b.graph;
  g.name = hit?.name ?? 'tfjs-graph';
  g.metadata.set('graft.source', 'tfjs-graph');
  if (hit) g.metadata.set('graft.tfjs.architecture', hit.name);
  const inputName = 'pixels';
  let inputVal: Val | null = null;
  const vals = new Map<string, Val>();
  const opTypes: Record<string, number> = {};
  /** Initializers each TF node created (for layer groups). */
  const paramsOf = new Map<string, string[]>();
  let current: TfjsGraphNode | null = null;

  // The nodes the outputs need, inputs before consumers (iterative depth-first post-order).
  const order: TfjsGraphNode[] = [];
  const state = new Map<string, 1 | 2>();
  const base = (ref: string) => ref.replace(/:\d+$/, '');
  for (const root of [preset.output, ...preset.cuts.map((c) => c[1])]) {
    const stack: [TfjsGraphNode, number][] = [[byName.get(root)!, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const [n, i] = top;
      if (i === 0) {
        if (state.get(n.name) === 2) { stack.pop(); continue; }
        state.set(n.name, 1);
      }
      if (i < n.inputs.length) {
        top[1]++;
        const dep = byName.get(base(n.inputs[i]!));
        if (!dep) throw new GraftError('E_ONNX_PARSE', `${model.file}: node "${n.name}" reads "${n.inputs[i]}", which the graph does not define`, 'The model file is corrupt; reinstall it.');
        const s = state.get(dep.name);
        if (s === 1) throw new GraftError('E_GRAPH_INVALID', `${model.file}: the graph has a cycle through "${dep.name}"`, 'graft converts acyclic graphs (no control flow).');
        if (s !== 2) stack.push([dep, 0]);
        continue;
      }
      state.set(n.name, 2);
      order.push(n);
      stack.pop();
    }
  }

  const constOf = (ref: string): TensorData | undefined => {
    const n = byName.get(base(ref));
    if (n?.op !== 'Const') return undefined;
    const t = model.weights.get(n.name);
    if (!t) throw new GraftError('E_ONNX_PARSE', `${model.file}: constant "${n.name}" has no value in the weights manifest`, 'The model file is corrupt; reinstall it.');
    return t;
  };
  const val = (n: TfjsGraphNode, ref: string): Val => {
    const v = vals.get(ref.endsWith(':0') ? ref.slice(0, -2) : ref);
    if (!v) throw unsupported(n, `input "${ref}" is not a tensor graft has converted${constOf(ref) ? ' (a constant where a tensor is expected)' : ''}`);
    return v;
  };
  const inits = new Map<string, Sym>();
  /**
   * A constant as an initializer, in the layout `key` names ('as-is', 'nchw', 'oihw'), converted once;
   * `weight`: a convolution's kernel or bias, which goes into the layer group of the node that reads it.
   */
  const param = (name: string, key: string, make: () => TensorData, weight = true): Sym => {
    const id = `${name}|${key}`;
    let s = inits.get(id);
    if (!s) {
      // The TF name, unless the same constant is needed in a second layout.
      s = b.init(b.has(name) ? `${name}/${key}` : name, make());
      inits.set(id, s);
      if (current && weight) paramsOf.get(current.name)!.push(s.name);
    }
    return s;
  };
  const float = (n: TfjsGraphNode, t: TensorData): TensorData => {
    if (t.dtype !== 'float32') throw unsupported(n, `a ${t.dtype} constant where float32 is expected`);
    return t;
  };
  /** A constant operand of an elementwise op with a tensor of rank `rank`, in NCHW. */
  const operand = (n: TfjsGraphNode, ref: string, rank: number): Sym => {
    const t = float(n, constOf(ref)!);
    const name = base(ref);
    if (t.dims.length === 0 || t.dims.every((d) => d === 1)) return param(name, 'as-is', () => tensor('float32', [], [t.data[0] as number]), false);
    if (rank !== 4) {
      if (t.dims.length > rank) throw unsupported(n, `constant "${name}" [${t.dims}] has a higher rank than the tensor it combines with`);
      return param(name, 'as-is', () => t, false);
    }
    if (t.dims.length === 1) return param(name, 'nchw', () => ({ ...t, dims: [t.dims[0]!, 1, 1] }), false);
    if (t.dims.length === 4) return param(name, 'nchw', () => transposeTo(t, [0, 3, 1, 2]), false);
    throw unsupported(n, `constant "${name}" [${t.dims}] cannot broadcast with an NHWC tensor here`);
  };
  const named = (n: TfjsGraphNode) => ({ outputs: [n.name], name: n.name });

  /** Conv2D / depthwise, with TF's padding; `out` names the Conv's output. */
  const conv = (n: TfjsGraphNode, depthwise: boolean, out: string): Sym => {
    const x = val(n, n.inputs[0]!);
    if (x.rank !== 4) throw unsupported(n, `expects an NHWC image tensor, got rank ${x.rank}`);
    const fmt = attrStr(n, 'data_format') ?? 'NHWC';
    if (fmt !== 'NHWC') throw unsupported(n, `data_format ${fmt} is not supported (only NHWC)`);
    const k = constOf(n.inputs[1]!);
    if (!k || k.dims.length !== 4) throw unsupported(n, 'the filter is not a constant [kh, kw, in, out]');
    const fname = base(n.inputs[1]!);
    const [kh, kw, cin, cout] = k.dims as [number, number, number, number];
    // A convolution of the image takes the preset's input scale back out of its kernel (exact: linear, zero pads).
    const scale = x === inputVal && preset.inputScale ? preset.inputScale : 1;
    const scaled = (t: TensorData) => (scale === 1 ? t : { ...t, data: (t.data as Float32Array).map((v) => v * scale) });
    const w = depthwise
      ? param(fname, `oihw${scale === 1 ? '' : `x${scale}`}`, () => { const t = scaled(transposeTo(float(n, k), [2, 3, 0, 1])); t.dims = [cin * cout, 1, kh, kw]; return t; })
      : param(fname, `oihw${scale === 1 ? '' : `x${scale}`}`, () => scaled(transposeTo(float(n, k), [3, 2, 0, 1])));
    const [s, d] = [attrInts(n, 'strides', [1, 1, 1, 1]), attrInts(n, 'dilations', [1, 1, 1, 1])];
    if (s.length !== 4 || d.length !== 4 || s[0] !== 1 || s[3] !== 1 || d[0] !== 1 || d[3] !== 1) throw unsupported(n, `strides [${s}] / dilations [${d}] are not [1, h, w, 1]`);
    const strides = [s[1]!, s[2]!];
    const dilations = [d[1]!, d[2]!];
    const padding = attrStr(n, 'padding') ?? 'VALID';
    const attrs: Record<string, number | number[] | string> = { kernel_shape: [kh, kw], strides, dilations, group: depthwise ? cin : 1 };
    if (padding === 'SAME' && strides.every((v) => v === 1)) {
      // Stride 1: TF pads (k_eff - 1) in all, the odd one at the end, whatever the input size.
      const tot = [kh, kw].map((kk, i) => (kk - 1) * dilations[i]!);
      attrs['pads'] = [Math.floor(tot[0]! / 2), Math.floor(tot[1]! / 2), tot[0]! - Math.floor(tot[0]! / 2), tot[1]! - Math.floor(tot[1]! / 2)];
    } else if (padding === 'SAME') attrs['auto_pad'] = 'SAME_UPPER';
    else if (padding === 'VALID') attrs['pads'] = [0, 0, 0, 0];
    else if (padding === 'EXPLICIT') {
      const p = attrInts(n, 'explicit_paddings', []);
      if (p.length !== 8) throw unsupported(n, `explicit_paddings [${p}] is not 8 values`);
      attrs['pads'] = [p[2]!, p[4]!, p[3]!, p[5]!];
    } else throw unsupported(n, `padding "${padding}" is not supported`);
    const ins = [x.sym, w];
    const fused = n.op.startsWith('_Fused') || n.op.startsWith('Fused') ? attrStrs(n, 'fused_ops') : [];
    if (fused.length) {
      if (fused[0] !== 'BiasAdd' || attrInt(n, 'num_args', 1) !== 1 || n.inputs.length !== 3) throw unsupported(n, `fused ops [${fused}] are not supported (only BiasAdd, then an activation)`);
      const bias = constOf(n.inputs[2]!);
      if (!bias || bias.dims.length !== 1) throw unsupported(n, 'the bias is not a constant vector');
      ins.push(param(base(n.inputs[2]!), 'as-is', () => float(n, bias)));
    }
    return b.op1('Conv', ins, attrs, { outputs: [out], name: out });
  };
  /** The activation a fused convolution ends with, named after the TF node. */
  const act = (n: TfjsGraphNode, op: string, x: Sym, opts: { outputs: string[]; name: string }): Sym => {
    switch (op) {
      case 'Relu': return b.op1('Relu', [x], {}, opts);
      case 'Relu6': return b.op1('Clip', [x, b.scalar(0), b.scalar(6)], {}, opts);
      case 'Sigmoid': return b.op1('Sigmoid', [x], {}, opts);
      case 'Tanh': return b.op1('Tanh', [x], {}, opts);
      default: throw unsupported(n, `activation ${op} is not supported (graft knows ${FUSED_ACTIVATIONS.join(', ')})`);
    }
  };
  const axesOf = (n: TfjsGraphNode, ref: string, rank: number): number[] => {
    const t = constOf(ref);
    if (!t || t.dims.length > 1) throw unsupported(n, 'the axes are not a constant');
    return toNumbers(t).map((a) => (a < 0 ? a + rank : a)).map((a) => (rank === 4 ? NCHW_AXIS[a]! : a));
  };

  const convert = (n: TfjsGraphNode): Val => {
    switch (n.op) {
      case 'Conv2D': case 'DepthwiseConv2dNative':
        return { sym: conv(n, n.op !== 'Conv2D', n.name), rank: 4 };
      case '_FusedConv2D': case 'FusedDepthwiseConv2dNative': {
        const f = attrStrs(n, 'fused_ops');
        if (f.length > 2) throw unsupported(n, `fused ops [${f}] are not supported (only BiasAdd, then an activation)`);
        const depthwise = n.op === 'FusedDepthwiseConv2dNative';
        if (f.length < 2) return { sym: conv(n, depthwise, n.name), rank: 4 };
        return { sym: act(n, f[1]!, conv(n, depthwise, `${n.name}/conv`), named(n)), rank: 4 };
      }
      case 'Add': case 'AddV2': case 'Sub': case 'Mul': case 'RealDiv': case 'Maximum': case 'Minimum': {
        if (n.inputs.length !== 2) throw unsupported(n, `expects two inputs, got ${n.inputs.length}`);
        const op = { Add: 'Add', AddV2: 'Add', Sub: 'Sub', Mul: 'Mul', RealDiv: 'Div', Maximum: 'Max', Minimum: 'Min' }[n.op]!;
        const [ca, cb] = n.inputs.map((r) => constOf(r) !== undefined);
        if (ca && cb) throw unsupported(n, 'both inputs are constants (graft does not fold constants)');
        const tensorSide = val(n, n.inputs[ca ? 1 : 0]!);
        const side = (r: string, c: boolean): Val => (c ? { sym: operand(n, r, tensorSide.rank), rank: tensorSide.rank } : val(n, r));
        const [a, c] = [side(n.inputs[0]!, ca!), side(n.inputs[1]!, cb!)];
        if (!ca && !cb && a.rank !== c.rank) throw unsupported(n, `inputs of ranks ${a.rank} and ${c.rank}`);
        return { sym: b.op1(op, [a.sym, c.sym], {}, named(n)), rank: tensorSide.rank };
      }
      case 'Relu': case 'Relu6': case 'Sigmoid': case 'Tanh': {
        const x = val(n, n.inputs[0]!);
        return { sym: act(n, n.op, x.sym, named(n)), rank: x.rank };
      }
      case 'Identity':
        return val(n, n.inputs[0]!);
      case 'Mean': {
        const x = val(n, n.inputs[0]!);
        const axes = axesOf(n, n.inputs[1]!, x.rank);
        const keep = attrBool(n, 'keep_dims', false);
        // Dropping axes of an NCHW tensor matches TF's NHWC result only when H and W both go and C stays.
        if (!keep && x.rank === 4 && !(axes.includes(2) && axes.includes(3) && !axes.includes(1))) throw unsupported(n, 'a mean that drops axes other than H and W');
        return { sym: b.op1('ReduceMean', [x.sym], { axes: [...axes].sort((p, q) => p - q), keepdims: keep ? 1 : 0 }, named(n)), rank: keep ? x.rank : x.rank - axes.length };
      }
      case 'ConcatV2': {
        const ins = n.inputs.slice(0, -1).map((r) => val(n, r));
        const [axis] = axesOf(n, n.inputs.at(-1)!, ins[0]!.rank);
        if (ins.some((v) => v.rank !== ins[0]!.rank)) throw unsupported(n, 'inputs of different ranks');
        return { sym: b.op1('Concat', ins.map((v) => v.sym), { axis: axis! }, named(n)), rank: ins[0]!.rank };
      }
      case 'MaxPool': case 'AvgPool': {
        const x = val(n, n.inputs[0]!);
        const [k, s] = [attrInts(n, 'ksize', []), attrInts(n, 'strides', [])];
        if (x.rank !== 4 || k.length !== 4 || s.length !== 4 || k[0] !== 1 || k[3] !== 1 || s[0] !== 1 || s[3] !== 1) throw unsupported(n, 'expects NHWC pooling over H and W');
        const padding = attrStr(n, 'padding') ?? 'VALID';
        if (padding !== 'SAME' && padding !== 'VALID') throw unsupported(n, `padding "${padding}" is not supported`);
        // TF's 'SAME' average pooling divides by the real (unpadded) inputs: count_include_pad 0, ONNX's default.
        const attrs = { kernel_shape: [k[1]!, k[2]!], strides: [s[1]!, s[2]!], ...(padding === 'SAME' ? { auto_pad: 'SAME_UPPER' } : { pads: [0, 0, 0, 0] }) };
        return { sym: b.op1(n.op === 'MaxPool' ? 'MaxPool' : 'AveragePool', [x.sym], attrs, named(n)), rank: 4 };
      }
      default:
        throw unsupported(n, `op ${n.op} is not supported`);
    }
  };

  for (const n of order) {
    current = n;
    paramsOf.set(n.name, []);
    if (n.op === 'Const') continue; // read by its consumers, in the layout they need
    opTypes[n.op] = (opTypes[n.op] ?? 0) + 1;
    if (n.op === 'Placeholder') {
      if (g.inputs.length) throw unsupported(n, 'a second input', 'graft converts image models with one input.');
      const sh = n.attr['shape'];
      const dims = isObj(sh) && isObj(sh['shape']) && Array.isArray(sh['shape']['dim']) ? sh['shape']['dim'].map((d) => Number(isObj(d) ? d['size'] : NaN)) : [];
      if (dims.length !== 4 || dims[3] !== 3) throw unsupported(n, `input shape [${dims}] is not [batch, height, width, 3]`, 'graft converts RGB image models (NHWC inputs).');
      const [h, w] = opts.size ?? ['H', 'W'];
      inputVal = { sym: b.input(inputName, 'float32', [opts.batch ?? 'N', 3, h, w]), rank: 4 };
      const readers = order.filter((r) => r.inputs.some((i) => base(i) === n.name));
      if (preset.inputScale && !readers.every((r) => CONVS.has(r.op) && base(r.inputs[0]!) === n.name && base(r.inputs[1]!) !== n.name)) {
        throw unsupported(n, `the preset's input scale can only be taken out of convolutions, but ${readers.map((r) => `${r.name} (${r.op})`).join(', ')} read the image`);
      }
      vals.set(n.name, inputVal);
      continue;
    }
    const v = convert(n);
    vals.set(n.name, v);
  }
  current = null;

  const outVal = vals.get(preset.output)!;
  const outputName = b.output(outVal.sym);
  const cuts: CutPoint[] = preset.cuts.map(([name, node, description]) => {
    const v = vals.get(node)!;
    if (v.rank !== 4) throw new GraftError('E_BAD_OPTION', `cut node "${node}" is not a 4-D feature map`, 'Cut at a convolutional layer.');
    const gap = b.op1('GlobalAveragePool', [v.sym], {}, { outputs: [`${node}/gap`], name: `${node}/gap` });
    const f = b.op1('Flatten', [gap], { axis: 1 }, { outputs: [`${node}/pool`], name: `${node}/pool` });
    return { name, tensor: f.name, shape: [Number(v.sym.shape[1])], description };
  });

  // Groups: runs of nodes (inputs before consumers) up to each end; what follows the last end is unused.
  const groups: LayerGroup[] = [];
  let gi = 0;
  let group: LayerGroup = { name: preset.groupEnds[0]?.[0] ?? 'body', params: [] };
  for (const n of order) {
    if (gi >= preset.groupEnds.length) break;
    group.params.push(...paramsOf.get(n.name)!);
    if (n.name === preset.groupEnds[gi]![1]) {
      group.end = vals.get(n.name)!.sym.name;
      groups.push(group);
      gi++;
      group = { name: preset.groupEnds[gi]?.[0] ?? 'rest', params: [] };
    }
  }
  if (gi < preset.groupEnds.length) throw new GraftError('E_GRAPH_INVALID', `group end "${preset.groupEnds[gi]![1]}" is not computed before the output`, 'This is a bug in the preset.');
  return { graph: g, inputName, outputName, cuts, groups, preprocess: opts.preprocess, opTypes, architecture: hit?.name ?? '' };
}
