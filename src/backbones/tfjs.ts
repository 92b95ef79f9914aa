/**
 * TF.js Layers models -> graft graphs (ONNX, NCHW).
 *
 * loadTfjsLayers reads a TF.js Layers model from a folder, either as TF.js saves it (model.json plus
 * binary weight shards) or as nsfwjs ships it (model.min.js plus group1-shard*of*.min.js, browserify
 * UMD bundles that embed the model.json object and the shards as base64 strings). The bundles are
 * never executed: their text is parsed, the one `module.exports = <literal>` of the bundled module is
 * read with a small parser that accepts JS literals only (objects, arrays, strings, numbers, !0/!1,
 * null), and anything else is an E_ONNX_PARSE error.
 *
 * convertTfjsLayers turns the Keras functional (or Sequential) topology into a graft Graph:
 * input 'pixels' [N, 3, H, W] float32, kernels transposed from TF's HWIO / HWC1 to ONNX's OIHW,
 * TF 'same' padding as explicit (asymmetric where TF pads more at the end) pads, BatchNormalization
 * kept as inference-mode ONNX BatchNormalization nodes, and every Keras layer's output tensor named
 * after the layer, so cut points and freezing can name them.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { GraftError } from '../errors.ts';
import { GraphBuilder, type Sym } from '../graph/builder.ts';
import type { Dim, Graph } from '../graph/ir.ts';
import { type TensorData, halfToFloat, tensor } from '../graph/tensor.ts';
import type { CutPoint, ImagePreprocess, LayerGroup } from './types.ts';

// ---- the model as read ------------------------------------------------------------------------------

/** A JSON value as it appears in model.json. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; min?: number; scale?: number };
}

/** One input of a layer call: [layer name, node index, tensor index] in Keras' inbound_nodes. */
export interface TfjsTensorRef {
  layer: string;
  node: number;
  index: number;
}

export interface TfjsLayer {
  name: string;
  className: string;
  config: JsonObject;
  /** The tensors this layer is called on (one call: Keras layers shared between calls are not supported). */
  inbound: TfjsTensorRef[];
}

export interface TfjsModel {
  /** The folder it was read from. */
  source: string;
  /** 'model.json': TF.js' own files; 'nsfwjs-bundle': model.min.js and group1-shard*.min.js. */
  format: 'model.json' | 'nsfwjs-bundle';
  /** The model.json object minus its weights manifest (modelTopology, format, generatedBy, ...). */
  modelJson: JsonObject;
  /** modelJson.modelTopology, as tf.io.ModelArtifacts wants it. */
  modelTopology: JsonObject;
  /** Every weight in manifest order, with its quantization. */
  weightSpecs: TfjsWeightSpec[];
  /** The bytes of all shards, concatenated in manifest order (still quantized), as tf.io.ModelArtifacts wants them. */
  weightData: Uint8Array;
  /** Dequantized float32 weights by manifest name, in TF layouts (HWIO kernels, [in, out] dense kernels). */
  weights: Map<string, TensorData>;
  /** Model name from the Keras config. */
  name: string;
  /** Layers in the order of the config (the converter sorts them by dependency itself). */
  layers: TfjsLayer[];
  inputs: TfjsTensorRef[];
  outputs: TfjsTensorRef[];
}

// ---- reading files ----------------------------------------------------------------------------------

export const parseError = (file: string, what: string) =>
  new GraftError('E_ONNX_PARSE', `${file}: ${what}`,
    'The file is not a TF.js model (a Layers or graph model.json with its shards, or an nsfwjs model.min.js bundle), or it is truncated; reinstall or re-download it.');

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new GraftError('E_FILE_MISSING', `cannot read ${path}`, 'Check the model folder; the file must exist and be readable.');
  }
}

export function readBytes(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch {
    throw new GraftError('E_FILE_MISSING', `cannot read weight shard ${path}`,
      'A TF.js model needs every shard its weightsManifest names, next to model.json.');
  }
}

/**
 * Parses one JS literal (what JSON allows, plus what minifiers write: unquoted and numeric keys,
 * single-quoted strings, `.5`, `!0` / `!1`, `void 0`, trailing commas) from `src` at `pos`.
 * Returns the value and the position after it. Nothing in the text is evaluated.
 */
export function parseJsLiteral(src: string, pos: number, file = 'input'): { value: Json; end: number } {
  let i = pos;
  const fail = (what: string): never => {
    throw parseError(file, `${what} at offset ${i} (near ${JSON.stringify(src.slice(i, i + 40))})`);
  };
  const ws = () => {
    for (;;) {
      const c = src.charCodeAt(i);
      if (c === 32 || c === 10 || c === 13 || c === 9) i++;
      else if (c === 47 && src.charCodeAt(i + 1) === 42) { // /* comment */
        const e = src.indexOf('*/', i + 2);
        if (e < 0) fail('unterminated comment');
        i = e + 2;
      } else if (c === 47 && src.charCodeAt(i + 1) === 47) { // line comment
        const e = src.indexOf('\n', i);
        i = e < 0 ? src.length : e + 1;
      } else return;
    }
  };
  const str = (): string => {
    const q = src[i]!;
    const start = ++i;
    const close = src.indexOf(q, start);
    const bs = src.indexOf('\\', start);
    if (close >= 0 && (bs < 0 || bs > close)) { // the common case: no escapes
      const s = src.slice(start, close);
      if (s.includes('\n')) fail('newline in a string');
      i = close + 1;
      return s;
    }
    let out = '';
    for (;;) {
      if (i >= src.length) fail('unterminated string');
      const c = src[i]!;
      if (c === q) { i++; return out; }
      if (c === '\n') fail('newline in a string');
      if (c !== '\\') { out += c; i++; continue; }
      const e = src[i + 1];
      i += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '0': out += '\0'; break;
        case 'x': case 'u': {
          const n = e === 'x' ? 2 : 4;
          const hex = src.slice(i, i + n);
          if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) fail(`bad \\${e} escape`);
          out += String.fromCharCode(parseInt(hex, 16));
          i += n;
          break;
        }
        case '\n': break; // line continuation
        case undefined: fail('unterminated string'); break;
        default: out += e;
      }
    }
  };
  const NUM = /[+-]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Infinity)/y;
  const IDENT = /[A-Za-z_$][A-Za-z0-9_$]*/y;
  const value = (depth: number): Json => {
    if (depth > 200) fail('nesting too deep');
    ws();
    const c = src[i];
    if (c === '{') {
      i++;
      const o: JsonObject = {};
      for (;;) {
        ws();
        if (src[i] === '}') { i++; return o; }
        let key: string;
        if (src[i] === '"' || src[i] === "'") key = str();
        else {
          IDENT.lastIndex = i;
          NUM.lastIndex = i;
          const m = IDENT.exec(src) ?? NUM.exec(src);
          if (!m) return fail('expected a property name');
          key = /^[\d.]/.test(m[0]) ? String(Number(m[0])) : m[0];
          i += m[0].length;
        }
        ws();
        if (src[i] !== ':') fail('expected ":"');
        i++;
        const v = value(depth + 1);
        if (key === '__proto__') fail('"__proto__" key'); // never let data reach an object prototype
        o[key] = v;
        ws();
        if (src[i] === ',') { i++; continue; }
        if (src[i] === '}') { i++; return o; }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const a: Json[] = [];
      for (;;) {
        ws();
        if (src[i] === ']') { i++; return a; }
        a.push(value(depth + 1));
        ws();
        if (src[i] === ',') { i++; continue; }
        if (src[i] === ']') { i++; return a; }
        fail('expected "," or "]"');
      }
    }
    if (c === '"' || c === "'") return str();
    if (c === '!' && (src[i + 1] === '0' || src[i + 1] === '1')) {
      i += 2;
      return src[i - 1] === '0';
    }
    if (src.startsWith('void 0', i)) { i += 6; return null; }
    NUM.lastIndex = i;
    const m = NUM.exec(src);
    if (m) {
      i += m[0].length;
      const t = m[0].replace(/^\+/, '');
      return t.startsWith('-') ? -Number(t.slice(1)) : Number(t);
    }
    IDENT.lastIndex = i;
    const id = IDENT.exec(src)?.[0];
    if (id === 'true' || id === 'false' || id === 'null' || id === 'NaN') {
      i += id.length;
      return id === 'true' ? true : id === 'false' ? false : id === 'null' ? null : NaN;
    }
    return fail(id ? `"${id}" is code, not a literal` : 'expected a value');
  };
  const v = value(0);
  return { value: v, end: i };
}

/**
 * The literal that a browserify UMD bundle's single module assigns to module.exports
 * (`{1:[function(require,module,exports){module.exports=<literal>},{}]},{},[1]`), read as text.
 */
export function bundleExports(text: string, file: string): Json {
  const m = /\(\{1:\[function\(\s*[\w$]*\s*,\s*([\w$]+)\s*,\s*[\w$]*\s*\)\{\s*\1\.exports\s*=\s*/.exec(text);
  if (!m) throw parseError(file, 'no browserify module of the form {1:[function(e,m,x){m.exports=...}]} found');
  const { value, end } = parseJsLiteral(text, m.index + m[0].length, file);
  if (!/^\s*;?\s*\}\s*,\s*\{\s*\}\s*\]\s*\}/.test(text.slice(end, end + 40))) {
    throw parseError(file, `module.exports is assigned more than one literal (unexpected text at offset ${end})`);
  }
  return value;
}

export const isObj = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function base64Bytes(s: string, file: string): Uint8Array {
  const clean = s.replace(/\s+/g, '');
  if (clean.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw parseError(file, 'the weight shard is not a base64 string');
  const b = Buffer.from(clean, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2, bool: 1 };

/**
 * Decodes one weight from its bytes to float32, dequantizing as tf.io.decodeWeights does (v * scale + min);
 * with keepInt, an unquantized int32 weight stays int32.
 */
function decodeWeight(spec: TfjsWeightSpec, bytes: Uint8Array, file: string, keepInt = false): TensorData {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const q = spec.quantization;
  const stored = q?.dtype ?? spec.dtype;
  if (spec.dtype !== 'float32' && spec.dtype !== 'int32') throw parseError(file, `weight "${spec.name}" has dtype ${spec.dtype}, which graft does not read`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (keepInt && spec.dtype === 'int32' && stored === 'int32') {
    const ints = new Int32Array(n);
    for (let k = 0; k < n; k++) ints[k] = dv.getInt32(4 * k, true);
    return tensor('int32', spec.shape, ints);
  }
  if (q && (stored === 'uint8' || stored === 'uint16')) {
    const scale = q.scale ?? 1;
    const min = q.min ?? 0;
    for (let k = 0; k < n; k++) out[k] = (stored === 'uint8' ? bytes[k]! : dv.getUint16(2 * k, true)) * scale + min;
  } else if (stored === 'float16') {
    for (let k = 0; k < n; k++) out[k] = halfToFloat(dv.getUint16(2 * k, true));
  } else if (stored === 'float32') {
    for (let k = 0; k < n; k++) out[k] = dv.getFloat32(4 * k, true);
  } else if (stored === 'int32') {
    for (let k = 0; k < n; k++) out[k] = dv.getInt32(4 * k, true);
  } else {
    throw parseError(file, `weight "${spec.name}" is stored as ${stored}, which graft does not read`);
  }
  return tensor('float32', spec.shape, out);
}

export function weightSpecsOf(manifest: Json | undefined, file: string): { groups: { paths: string[]; specs: TfjsWeightSpec[] }[] } {
  if (!Array.isArray(manifest)) throw parseError(file, 'no weightsManifest list');
  return {
    groups: manifest.map((g, gi) => {
      if (!isObj(g) || !Array.isArray(g['paths']) || !Array.isArray(g['weights'])) throw parseError(file, `weightsManifest[${gi}] has no paths/weights`);
      const specs = g['weights'].map((w, wi): TfjsWeightSpec => {
        if (!isObj(w) || typeof w['name'] !== 'string' || !Array.isArray(w['shape']) || typeof w['dtype'] !== 'string'
          || !w['shape'].every((d) => Number.isInteger(d) && (d as number) >= 0)) {
          throw parseError(file, `weightsManifest[${gi}].weights[${wi}] is not {name, shape, dtype}`);
        }
        const spec: TfjsWeightSpec = { name: w['name'], shape: w['shape'] as number[], dtype: w['dtype'] };
        const q = w['quantization'];
        if (isObj(q)) {
          if (typeof q['dtype'] !== 'string') throw parseError(file, `weight "${spec.name}": quantization has no dtype`);
          spec.quantization = { dtype: q['dtype'] };
          if (typeof q['min'] === 'number') spec.quantization.min = q['min'];
          if (typeof q['scale'] === 'number') spec.quantization.scale = q['scale'];
        }
        return spec;
      });
      return { paths: g['paths'].map(String), specs };
    }),
  };
}

/**
 * Every weight of a manifest, decoded (dequantized) from its group's shards, which hold the group's weights
 * back to back in manifest order. `ints`: whether int32 weights stay int32 (graph models' shape and axis
 * constants) or become float32 like the rest (Layers models).
 */
export function decodeManifest(groups: { paths: string[]; specs: TfjsWeightSpec[] }[], shards: Uint8Array[][], modelFile: string, ints: 'int32' | 'float32'):
  { weightSpecs: TfjsWeightSpec[]; weightData: Uint8Array; weights: Map<string, TensorData> } {
  const chunks = shards.flat();
  const weightData = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let off = 0;
  for (const c of chunks) { weightData.set(c, off); off += c.length; }
  const weights = new Map<string, TensorData>();
  const weightSpecs: TfjsWeightSpec[] = [];
  off = 0;
  groups.forEach((g, gi) => {
    const start = off;
    const len = shards[gi]!.reduce((a, c) => a + c.length, 0);
    let p = start;
    for (const s of g.specs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const per = BYTES[s.quantization?.dtype ?? s.dtype];
      if (!per) throw parseError(modelFile, `weight "${s.name}" has dtype ${s.quantization?.dtype ?? s.dtype}, which graft does not read`);
      if (p + n * per > start + len) {
        throw parseError(modelFile, `the weight shards hold ${len} bytes for group ${g.paths.join(', ')}, fewer than its weights need (at "${s.name}")`);
      }
      weights.set(s.name, decodeWeight(s, weightData.subarray(p, p + n * per), modelFile, ints === 'int32'));
      weightSpecs.push(s);
      p += n * per;
    }
    off = start + len;
  });
  return { weightSpecs, weightData, weights };
}

/**
 * Reads a TF.js Layers model from `dir`: model.json with its binary shards, or nsfwjs' model.min.js
 * with group1-shard*of*.min.js (parsed as text, never executed).
 */
export function loadTfjsLayers(dir: string): TfjsModel {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new GraftError('E_FILE_MISSING', `no model folder at ${dir}`, 'Pass the folder that holds model.json (or nsfwjs\' model.min.js) and its weight shards.');
  }
  const jsonPath = join(dir, 'model.json');
  const bundlePath = join(dir, 'model.min.js');
  let format: TfjsModel['format'];
  let modelFile: string;
  let root: Json;
  if (existsSync(jsonPath)) {
    format = 'model.json';
    modelFile = jsonPath;
    try {
      root = JSON.parse(readText(jsonPath)) as Json;
    } catch (e) {
      if (e instanceof GraftError) throw e;
      throw parseError(jsonPath, `not JSON: ${(e as Error).message}`);
    }
  } else if (existsSync(bundlePath)) {
    format = 'nsfwjs-bundle';
    modelFile = bundlePath;
    root = bundleExports(readText(bundlePath), bundlePath);
  } else {
    const seen = readdirSync(dir).slice(0, 8).join(', ');
    throw new GraftError('E_FILE_MISSING', `${dir} holds neither model.json nor model.min.js (it has: ${seen || 'nothing'})`,
      'Pass the folder of a TF.js Layers model.');
  }
  if (!isObj(root) || !isObj(root['modelTopology'])) throw parseError(modelFile, 'no modelTopology object');
  const { weightsManifest, ...modelJson } = root;
  const { groups } = weightSpecsOf(weightsManifest, modelFile);

  // Shard bytes, in manifest order.
  const shards = groups.map((g) => g.paths.map((p) => {
    if (format === 'model.json') {
      if (p.includes('..') || p.startsWith('/')) throw parseError(modelFile, `weight path "${p}" leaves the model folder`);
      return readBytes(join(dir, p));
    }
    const f = join(dir, `${basename(p)}.min.js`);
    if (!existsSync(f)) throw new GraftError('E_FILE_MISSING', `weight shard ${f} is missing`, 'nsfwjs models need every group1-shard*.min.js file next to model.min.js.');
    const v = bundleExports(readText(f), f);
    if (typeof v !== 'string') throw parseError(f, 'the bundle does not export a base64 string');
    return base64Bytes(v, f);
  }));
  const { weightSpecs, weightData, weights } = decodeManifest(groups, shards, modelFile, 'float32');

  const topo = root['modelTopology'];
  const parsed = parseTopology(topo, modelFile);
  return { source: dir, format, modelJson, modelTopology: topo, weightSpecs, weightData, weights, ...parsed };
}

function parseRef(v: Json, file: string, where: string): TfjsTensorRef {
  if (!Array.isArray(v) || typeof v[0] !== 'string') throw parseError(file, `${where}: expected [layer, node, tensor], got ${JSON.stringify(v)?.slice(0, 80)}`);
  return { layer: v[0], node: Number(v[1] ?? 0), index: Number(v[2] ?? 0) };
}

function parseTopology(topo: JsonObject, file: string): Pick<TfjsModel, 'name' | 'layers' | 'inputs' | 'outputs'> {
  const mc = isObj(topo['model_config']) ? topo['model_config'] : topo;
  const cls = mc['class_name'];
  const cfg = mc['config'];
  if (cls === 'Sequential') {
    const list = Array.isArray(cfg) ? cfg : isObj(cfg) && Array.isArray(cfg['layers']) ? cfg['layers'] : null;
    if (!list) throw parseError(file, 'Sequential model without layers');
    const layers: TfjsLayer[] = [];
    let prev: string | null = null;
    for (const [k, l] of list.entries()) {
      if (!isObj(l) || !isObj(l['config']) || typeof l['class_name'] !== 'string') throw parseError(file, `layer ${k} is not {class_name, config}`);
      const name = typeof l['config']['name'] === 'string' ? l['config']['name'] : `layer_${k}`;
      if (prev === null && l['class_name'] !== 'InputLayer') {
        const shape = l['config']['batch_input_shape'];
        if (!Array.isArray(shape)) throw parseError(file, `the first layer "${name}" has no batch_input_shape`);
        layers.push({ name: 'input', className: 'InputLayer', config: { batch_input_shape: shape, name: 'input' }, inbound: [] });
        prev = 'input';
      }
      layers.push({ name, className: l['class_name'], config: l['config'], inbound: prev === null ? [] : [{ layer: prev, node: 0, index: 0 }] });
      prev = name;
    }
    return { name: isObj(cfg) && typeof cfg['name'] === 'string' ? cfg['name'] : 'sequential', layers, inputs: [{ layer: layers[0]!.name, node: 0, index: 0 }], outputs: [{ layer: prev!, node: 0, index: 0 }] };
  }
  if ((cls !== 'Model' && cls !== 'Functional') || !isObj(cfg) || !Array.isArray(cfg['layers'])) {
    throw parseError(file, `model class ${JSON.stringify(cls)} is not a Keras functional (Model) or Sequential model`);
  }
  const layers = cfg['layers'].map((l, k): TfjsLayer => {
    if (!isObj(l) || typeof l['class_name'] !== 'string' || !isObj(l['config'])) throw parseError(file, `layer ${k} is not {class_name, config}`);
    const name = typeof l['name'] === 'string' ? l['name'] : String(l['config']['name']);
    const nodes = l['inbound_nodes'] ?? [];
    if (!Array.isArray(nodes)) throw parseError(file, `layer "${name}": inbound_nodes is not a list`);
    if (nodes.length > 1) {
      throw new GraftError('E_GRAPH_INVALID', `layer "${name}" (${l['class_name']}) is called ${nodes.length} times; shared layers are not supported`,
        'Convert a model whose layers are each used once.');
    }
    const node = nodes[0] ?? [];
    if (!Array.isArray(node)) throw parseError(file, `layer "${name}": inbound node is not a list (Keras 3 format?)`);
    return { name, className: l['class_name'], config: l['config'], inbound: node.map((r) => parseRef(r, file, `layer "${name}" inbound`)) };
  });
  const refs = (v: Json | undefined, what: string): TfjsTensorRef[] => {
    if (!Array.isArray(v)) throw parseError(file, `model config has no ${what}`);
    // A single ref may be written without the outer list.
    return (typeof v[0] === 'string' ? [v] : v).map((r) => parseRef(r, file, what));
  };
  return { name: typeof cfg['name'] === 'string' ? cfg['name'] : 'model', layers, inputs: refs(cfg['input_layers'], 'input_layers'), outputs: refs(cfg['output_layers'], 'output_layers') };
}

// ---- conversion -------------------------------------------------------------------------------------

export interface TfjsConvertOptions {
  /** Batch dimension of the graph input: a fixed size or a symbolic name (default 'N'). */
  batch?: number | string;
  /** Input height and width, where the model leaves them open (or to override them). */
  size?: [number, number];
  /**
   * Keras layer names to expose as pooled cut points (GlobalAveragePool of the layer's output), in
   * place of the defaults for the architecture. The pre-classifier feature and hidden Dense layers
   * are always cut points.
   */
  cuts?: string[];
  /** Preprocessing to report (default: what nsfwjs does, pixels / 255, squashed to the input size). */
  preprocess?: ImagePreprocess;
}

export interface TfjsConverted {
  graph: Graph;
  /** 'pixels', [N, 3, H, W] float32 in 0..1 (after preprocess). */
  inputName: string;
  /** The model's output (the last layer's name, e.g. 'dense_3'). */
  outputName: string;
  /** The output before its softmax, where the last layer ends in one (e.g. 'dense_3/preact'). */
  logitsName?: string;
  /** From early to late; each a [C] feature per example. */
  cuts: CutPoint[];
  /** Ordered stem, stages, head: the initializers of each. */
  groups: LayerGroup[];
  preprocess: ImagePreprocess;
  /** Keras layer class names this model uses, and how many of each. */
  layerTypes: Record<string, number>;
}

/** Keras layer classes that convertTfjsLayers knows. */
export const TFJS_LAYER_TYPES = [
  'InputLayer', 'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'BatchNormalization', 'ReLU', 'LeakyReLU', 'Softmax', 'Activation',
  'ZeroPadding2D', 'Cropping2D', 'Add', 'Subtract', 'Multiply', 'Maximum', 'Minimum', 'Average', 'Concatenate',
  'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Dense', 'Flatten', 'Reshape',
  'Dropout', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout', 'ActivityRegularization',
] as const;

/** Keras activations that convertTfjsLayers knows (as Activation layers or fused into Conv/Dense). */
export const TFJS_ACTIVATIONS = ['linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'swish', 'silu', 'exponential'] as const;

/** A converted Keras tensor: rank 4 tensors live as NCHW, rank 2 ones as they are. */
interface Val {
  sym: Sym;
  rank: number;
  /**
   * A ZeroPadding2D not applied yet: [top, left, bottom, right] zeros around `sym`, under the layer's
   * name. Convolutions fold it into their own pads; anything else materialises it as a Pad node.
   */
  pad?: { name: string; pads: [number, number, number, number]; done?: Sym };
}

interface Preset {
  /** Pooled cut points: Keras layer name and description. */
  cuts: [string, string][];
  /** The layer each group ends with (the last group, 'head', takes the rest). */
  groupEnds: [string, string][];
}

const PRESETS: { name: string; test: (names: Set<string>) => boolean; preset: Preset }[] = [
  {
    name: 'MobileNetV2',
    test: (n) => n.has('block_16_project_BN') && n.has('out_relu') && n.has('expanded_conv_project_BN'),
    preset: {
      cuts: [
        ['block_2_add', 'end of stage 1 (stride 4), 24 channels, average-pooled'],
        ['block_5_add', 'end of stage 2 (stride 8), 32 channels, average-pooled'],
        ['block_12_add', 'end of stage 3 (stride 16), 96 channels, average-pooled'],
        ['block_16_project_BN', 'last inverted-residual block (stride 32), 320 channels, average-pooled'],
      ],
      // The last blocks get their own groups: fine-tuning "the last 2 blocks" (block_16 and the 1x1 to
      // 1280 channels) is the usual partial fine-tune.
      groupEnds: [['stem', 'expanded_conv_project_BN'], ['stage1', 'block_2_add'], ['stage2', 'block_5_add'], ['stage3', 'block_12_add'],
        ['stage4', 'block_15_add'], ['block_16', 'block_16_project_BN'], ['top', 'out_relu']],
    },
  },
  {
    name: 'InceptionV3',
    test: (n) => n.has('mixed10') && n.has('mixed5') && n.has('mixed7'),
    preset: {
      cuts: [
        ['mixed2', '35x35 grid (stride 8), 288 channels, average-pooled'],
        ['mixed5', '17x17 grid (stride 16), 768 channels, average-pooled'],
        ['mixed7', '17x17 grid (stride 16), last before reduction, 768 channels, average-pooled'],
      ],
      groupEnds: [['stem', 'max_pooling2d_2'], ['mixed0-2', 'mixed2'], ['mixed3-7', 'mixed7'], ['mixed8', 'mixed8'], ['mixed9', 'mixed9'], ['mixed10', 'mixed10']],
    },
  },
];

const unsupported = (layer: TfjsLayer, what: string, hint = 'Convert a model that uses only the layer types and options graft knows (see TFJS_LAYER_TYPES).') =>
  new GraftError('E_GRAPH_INVALID', `layer "${layer.name}" (${layer.className}): ${what}`, hint, { layer: layer.name, className: layer.className });

const refKey = (r: TfjsTensorRef) => `${r.layer}:${r.node}:${r.index}`;

function pair(v: Json | undefined, dflt: [number, number], layer: TfjsLayer, what: string): [number, number] {
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0] as number, v[1] as number];
  throw unsupported(layer, `${what} ${JSON.stringify(v)} is not an integer or a pair of integers`);
}

/** [[top, bottom], [left, right]] from Keras' ZeroPadding2D / Cropping2D forms. */
function pads2d(v: Json | undefined, layer: TfjsLayer): [[number, number], [number, number]] {
  if (typeof v === 'number') return [[v, v], [v, v]];
  if (Array.isArray(v) && v.length === 2) {
    if (typeof v[0] === 'number' && typeof v[1] === 'number') return [[v[0], v[0]], [v[1], v[1]]];
    if (Array.isArray(v[0]) && Array.isArray(v[1])) {
      const [a, b] = [pair(v[0], [0, 0], layer, 'padding'), pair(v[1], [0, 0], layer, 'padding')];
      return [a, b];
    }
  }
  throw unsupported(layer, `padding/cropping ${JSON.stringify(v)} is not understood`);
}

/** TF's 'same' / 'valid' pads for one spatial axis: the odd pad goes at the end. */
function tfPads(padding: string, n: number, k: number, s: number, d: number, layer: TfjsLayer): [number, number] {
  if (padding === 'valid') return [0, 0];
  if (padding !== 'same') throw unsupported(layer, `padding "${padding}" is not supported (only "same" and "valid")`);
  const ek = (k - 1) * d + 1;
  const total = Math.max(0, (Math.ceil(n / s) - 1) * s + ek - n);
  const begin = Math.floor(total / 2);
  return [begin, total - begin];
}

/**
 * Converts a TF.js Layers model to a graft Graph (NCHW, opset 17). Every Keras layer's output is a
 * tensor named after the layer; weights keep their TF.js names (kernels transposed to ONNX layouts).
 */
export function convertTfjsLayers(model: TfjsModel, opts: TfjsConvertOptions = {}): TfjsConverted {
  const b = new GraphBuilder();
  const g = b.graph;
  g.name = model.name;
  g.metadata.set('graft.source', 'tfjs-layers');
  g.metadata.set('graft.tfjs.model', model.name);
  const inputName = 'pixels';
  const batch: Dim = opts.batch ?? 'N';
  const vals = new Map<string, Val>();
  const layerTypes: Record<string, number> = {};
  /** Initializers each layer created, by layer name. */
  const paramsOf = new Map<string, string[]>();
  let current: TfjsLayer | null = null;

  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new GraftError('E_GRAPH_INVALID', `model "${model.name}" has ${model.inputs.length} inputs and ${model.outputs.length} outputs`,
      'graft converts image models with one input and one output.');
  }

  const weight = (layer: TfjsLayer, w: string, required = true): TensorData | undefined => {
    const exact = model.weights.get(`${layer.name}/${w}`);
    if (exact) return exact;
    for (const [k, v] of model.weights) if (k.endsWith(`/${layer.name}/${w}`) || k === `${layer.name}/${w}:0`) return v;
    if (!required) return undefined;
    throw new GraftError('E_ONNX_PARSE', `${model.source}: no weight "${layer.name}/${w}" for layer "${layer.name}" (${layer.className})`,
      'The weights manifest does not match the topology; re-export the model.');
  };
  const param = (name: string, t: TensorData): Sym => {
    const s = b.init(name, t);
    if (current) paramsOf.get(current.name)!.push(name);
    return s;
  };
  const str = (layer: TfjsLayer, k: string, dflt: string): string => {
    const v = layer.config[k];
    return typeof v === 'string' ? v : dflt;
  };
  const num = (layer: TfjsLayer, k: string, dflt: number): number => {
    const v = layer.config[k];
    return typeof v === 'number' ? v : dflt;
  };
  const hw = (s: Sym, layer: TfjsLayer): [number, number] => {
    const [h, w] = [s.shape[2], s.shape[3]];
    if (typeof h !== 'number' || typeof w !== 'number') throw unsupported(layer, `input spatial size [${s.shape}] is not fixed`, 'Pass opts.size.');
    return [h, w];
  };
  const channelsLast = (layer: TfjsLayer) => {
    const f = str(layer, 'data_format', 'channels_last');
    if (f !== 'channels_last') throw unsupported(layer, `data_format "${f}" is not supported (only channels_last)`);
  };
  const need4 = (v: Val, layer: TfjsLayer) => {
    if (v.rank !== 4) throw unsupported(layer, `expects a 4-D image tensor, got rank ${v.rank}`);
  };

  /** Applies a Keras activation by name; the last op gets `out` as its tensor name. */
  const activation = (x: Sym, act: string, rank: number, out: string, layer: TfjsLayer): Sym => {
    const o = { outputs: [out], name: out };
    switch (act) {
      case 'linear': return b.op1('Identity', [x], {}, o);
      case 'relu': return b.op1('Relu', [x], {}, o);
      case 'relu6': return b.op1('Clip', [x, b.scalar(0), b.scalar(6)], {}, o);
      case 'sigmoid': return b.op1('Sigmoid', [x], {}, o);
      case 'tanh': return b.op1('Tanh', [x], {}, o);
      case 'exponential': return b.op1('Exp', [x], {}, o);
      case 'softmax': return b.op1('Softmax', [x], { axis: rank === 4 ? 1 : -1 }, o);
      case 'swish': case 'silu': return b.op1('Mul', [x, b.sigmoid(x)], {}, o);
      default: throw unsupported(layer, `activation "${act}" is not supported (graft knows ${TFJS_ACTIVATIONS.join(', ')})`);
    }
  };
  /** Output of a layer whose main op may be followed by a fused activation. */
  const actOf = (layer: TfjsLayer): string => {
    const a = layer.config['activation'];
    if (a === undefined || a === null) return 'linear';
    if (typeof a !== 'string') throw unsupported(layer, `activation ${JSON.stringify(a).slice(0, 80)} is not an activation name`);
    return a;
  };
  const withActivation = (layer: TfjsLayer, rank: number, emit: (name: string) => Sym): Sym => {
    const act = actOf(layer);
    if (act === 'linear') return emit(layer.name);
    return activation(emit(`${layer.name}/preact`), act, rank, layer.name, layer);
  };
  /** The tensor itself, with a pending zero padding applied (once). */
  const real = (v: Val): Sym => {
    if (!v.pad) return v.sym;
    if (!v.pad.done) {
      const [t, l, bo, r] = v.pad.pads;
      v.pad.done = b.op1('Pad', [v.sym, b.ints([0, 0, t, l, 0, 0, bo, r])], { mode: 'constant' }, { outputs: [v.pad.name], name: v.pad.name });
    }
    return v.pad.done;
  };
  /** A Conv with TF's padding on the (zero-padded, when `x` carries a pending padding) input. */
  const conv = (x: Val, w: TensorData, bias: TensorData | undefined, layer: TfjsLayer, name: string, group: number, wName: string): Sym => {
    const [k, s, d] = [[w.dims[2]!, w.dims[3]!], pair(layer.config['strides'], [1, 1], layer, 'strides'), pair(layer.config['dilation_rate'], [1, 1], layer, 'dilation_rate')];
    if ((s[0] > 1 || s[1] > 1) && (d[0] > 1 || d[1] > 1)) throw unsupported(layer, 'strides and dilation_rate both > 1');
    const [t, l, bo, r] = x.pad?.pads ?? [0, 0, 0, 0];
    const [h, wd] = hw(x.sym, layer);
    const padding = str(layer, 'padding', 'valid');
    const [ph, pw] = [tfPads(padding, h + t + bo, k[0]!, s[0], d[0], layer), tfPads(padding, wd + l + r, k[1]!, s[1], d[1], layer)];
    const ins = [x.sym, param(`${layer.name}/${wName}`, w)];
    if (bias) ins.push(param(`${layer.name}/bias`, bias));
    const pads = [ph[0] + t, pw[0] + l, ph[1] + bo, pw[1] + r];
    return b.op1('Conv', ins, { kernel_shape: k, strides: s, dilations: d, pads, group }, { outputs: [name], name });
  };

  const convert = (layer: TfjsLayer, given: Val[]): Val => {
    // Only convolutions take a pending zero padding as it is.
    const folds = layer.className === 'Conv2D' || layer.className === 'DepthwiseConv2D' || layer.className === 'SeparableConv2D';
    const ins = folds ? given : given.map((v): Val => ({ sym: real(v), rank: v.rank }));
    const x = ins[0]!;
    const one = () => {
      if (ins.length !== 1) throw unsupported(layer, `expects one input, got ${ins.length}`);
    };
    const keep = (s: Sym): Val => ({ sym: s, rank: x.rank });
    const named = { outputs: [layer.name], name: layer.name };
    switch (layer.className) {
      case 'Conv2D': {
        one(); need4(x, layer); channelsLast(layer);
        const k = weight(layer, 'kernel')!; // [kh, kw, cin/groups, cout]
        const groups = num(layer, 'groups', 1);
        const w = transposeTo(k, [3, 2, 0, 1]); // OIHW
        const bias = layer.config['use_bias'] === false ? undefined : weight(layer, 'bias');
        return keep(withActivation(layer, 4, (n) => conv(x, w, bias, layer, n, groups, 'kernel')));
      }
      case 'DepthwiseConv2D': {
        one(); need4(x, layer); channelsLast(layer);
        const k = weight(layer, 'depthwise_kernel')!; // [kh, kw, cin, mult]
        const [cin, mult] = [k.dims[2]!, k.dims[3]!];
        // Output channel c * mult + m reads input channel c: ONNX [cin * mult, 1, kh, kw] with group cin.
        const w = transposeTo(k, [2, 3, 0, 1]);
        w.dims = [cin * mult, 1, k.dims[0]!, k.dims[1]!];
        const bias = layer.config['use_bias'] === false ? undefined : weight(layer, 'bias');
        return keep(withActivation(layer, 4, (n) => conv(x, w, bias, layer, n, cin, 'depthwise_kernel')));
      }
      case 'SeparableConv2D': {
        one(); need4(x, layer); channelsLast(layer);
        const dk = weight(layer, 'depthwise_kernel')!;
        const pk = weight(layer, 'pointwise_kernel')!; // [1, 1, cin * mult, cout]
        const [cin, mult] = [dk.dims[2]!, dk.dims[3]!];
        const dw = transposeTo(dk, [2, 3, 0, 1]);
        dw.dims = [cin * mult, 1, dk.dims[0]!, dk.dims[1]!];
        const mid = conv(x, dw, undefined, layer, `${layer.name}/depthwise`, cin, 'depthwise_kernel');
        const pw = transposeTo(pk, [3, 2, 0, 1]);
        const bias = layer.config['use_bias'] === false ? undefined : weight(layer, 'bias');
        return keep(withActivation(layer, 4, (n) => {
          const ins2 = [mid, param(`${layer.name}/pointwise_kernel`, pw)];
          if (bias) ins2.push(param(`${layer.name}/bias`, bias));
          return b.op1('Conv', ins2, { kernel_shape: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0] }, { outputs: [n], name: n });
        }));
      }
      case 'BatchNormalization': {
        one();
        let axis = layer.config['axis'];
        if (Array.isArray(axis) && axis.length === 1) axis = axis[0]!;
        const ok = x.rank === 4 ? axis === -1 || axis === 3 : axis === -1 || axis === 1;
        if (!ok) throw unsupported(layer, `normalises over axis ${JSON.stringify(axis)} of a rank-${x.rank} tensor; only the channel axis is supported`);
        const mean = weight(layer, 'moving_mean')!;
        const c = mean.dims[0]!;
        const gamma = layer.config['scale'] === false ? tensor('float32', [c], new Float32Array(c).fill(1)) : weight(layer, 'gamma')!;
        const beta = layer.config['center'] === false ? tensor('float32', [c], new Float32Array(c)) : weight(layer, 'beta')!;
        const p = (w: string, t: TensorData) => param(`${layer.name}/${w}`, t);
        const y = b.op1('BatchNormalization', [x.sym, p('gamma', gamma), p('beta', beta), p('moving_mean', mean), p('moving_variance', weight(layer, 'moving_variance')!)],
          { epsilon: num(layer, 'epsilon', 1e-3) }, named);
        return keep(y);
      }
      case 'ReLU': {
        one();
        const max = layer.config['max_value'];
        const slope = num(layer, 'negative_slope', 0);
        const threshold = num(layer, 'threshold', 0);
        if (threshold !== 0) throw unsupported(layer, `threshold ${threshold} is not supported`);
        if (slope !== 0) {
          if (typeof max === 'number') throw unsupported(layer, 'negative_slope together with max_value is not supported');
          return keep(b.op1('LeakyRelu', [x.sym], { alpha: slope }, named));
        }
        if (typeof max === 'number') return keep(b.op1('Clip', [x.sym, b.scalar(0), b.scalar(max)], {}, named));
        return keep(b.op1('Relu', [x.sym], {}, named));
      }
      case 'LeakyReLU':
        one();
        return keep(b.op1('LeakyRelu', [x.sym], { alpha: num(layer, 'alpha', 0.3) }, named));
      case 'Softmax': {
        one();
        const axis = num(layer, 'axis', -1);
        if (axis !== -1 && axis !== x.rank - 1) throw unsupported(layer, `softmax over axis ${axis} is not supported (only the last)`);
        return keep(b.op1('Softmax', [x.sym], { axis: x.rank === 4 ? 1 : -1 }, named));
      }
      case 'Activation':
        one();
        return keep(activation(x.sym, actOf(layer), x.rank, layer.name, layer));
      case 'ZeroPadding2D': {
        one(); need4(x, layer); channelsLast(layer);
        const [[t, bo], [l, r]] = pads2d(layer.config['padding'], layer);
        // Deferred: a following convolution folds it into its pads (as TF pads with zeros too).
        return { sym: x.sym, rank: 4, pad: { name: layer.name, pads: [t, l, bo, r] } };
      }
      case 'Cropping2D': {
        one(); need4(x, layer); channelsLast(layer);
        const [[t, bo], [l, r]] = pads2d(layer.config['cropping'], layer);
        const [h, w] = hw(x.sym, layer);
        return keep(b.op1('Slice', [x.sym, b.ints([t, l]), b.ints([h - bo, w - r]), b.ints([2, 3])], {}, named));
      }
      case 'Add': case 'Subtract': case 'Multiply': case 'Maximum': case 'Minimum': case 'Average': {
        if (ins.length < 2) throw unsupported(layer, `expects at least two inputs, got ${ins.length}`);
        if (ins.some((v) => v.rank !== x.rank)) throw unsupported(layer, 'inputs of different ranks');
        const syms = ins.map((v) => v.sym);
        if (layer.className === 'Subtract') {
          if (ins.length !== 2) throw unsupported(layer, 'Subtract takes exactly two inputs');
          return keep(b.op1('Sub', syms, {}, named));
        }
        if (layer.className === 'Maximum' || layer.className === 'Minimum') return keep(b.op1(layer.className === 'Maximum' ? 'Max' : 'Min', syms, {}, named));
        const op = layer.className === 'Multiply' ? 'Mul' : 'Add';
        let acc = syms[0]!;
        const avg = layer.className === 'Average';
        for (let k = 1; k < syms.length; k++) {
          const last = k === syms.length - 1 && !avg;
          acc = b.op1(op, [acc, syms[k]!], {}, last ? named : { name: `${layer.name}/${k}` });
        }
        if (avg) acc = b.op1('Mul', [acc, b.scalar(1 / syms.length)], {}, named);
        return keep(acc);
      }
      case 'Concatenate': {
        if (ins.some((v) => v.rank !== x.rank)) throw unsupported(layer, 'inputs of different ranks');
        let axis = num(layer, 'axis', -1);
        if (axis < 0) axis += x.rank;
        // NHWC axis -> NCHW axis.
        const onnxAxis = x.rank === 4 ? [0, 2, 3, 1][axis]! : axis;
        if (axis === 0 || onnxAxis === undefined) throw unsupported(layer, `concatenation over axis ${axis} is not supported`);
        return keep(b.op1('Concat', ins.map((v) => v.sym), { axis: onnxAxis }, named));
      }
      case 'MaxPooling2D': case 'AveragePooling2D': {
        one(); need4(x, layer); channelsLast(layer);
        const k = pair(layer.config['pool_size'], [2, 2], layer, 'pool_size');
        const s = pair(layer.config['strides'], k, layer, 'strides');
        const [h, w] = hw(x.sym, layer);
        const padding = str(layer, 'padding', 'valid');
        const [ph, pw] = [tfPads(padding, h, k[0], s[0], 1, layer), tfPads(padding, w, k[1], s[1], 1, layer)];
        // TF's 'same' average pooling divides by the number of real (unpadded) inputs: count_include_pad 0.
        const op = layer.className === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool';
        return keep(b.op1(op, [x.sym], { kernel_shape: k, strides: s, pads: [ph[0], pw[0], ph[1], pw[1]] }, named));
      }
      case 'GlobalAveragePooling2D': case 'GlobalMaxPooling2D': {
        one(); need4(x, layer); channelsLast(layer);
        const op = layer.className === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool';
        if (layer.config['keepdims'] === true) return keep(b.op1(op, [x.sym], {}, named));
        const p = b.op1(op, [x.sym], {}, { outputs: [`${layer.name}/keepdims`], name: `${layer.name}/keepdims` });
        return { sym: b.op1('Flatten', [p], { axis: 1 }, named), rank: 2 };
      }
      case 'Flatten': {
        one();
        if (x.rank === 2) return keep(b.op1('Identity', [x.sym], {}, named));
        need4(x, layer);
        const [h, w] = hw(x.sym, layer);
        // Keras flattens NHWC (h, w, c order); only a 1x1 grid flattens the same from NCHW.
        const src = h * w === 1 ? x.sym : b.op1('Transpose', [x.sym], { perm: [0, 2, 3, 1] }, { outputs: [`${layer.name}/nhwc`], name: `${layer.name}/nhwc` });
        return { sym: b.op1('Flatten', [src], { axis: 1 }, named), rank: 2 };
      }
      case 'Reshape': {
        one();
        const t = layer.config['target_shape'];
        if (!Array.isArray(t) || !t.every((d) => typeof d === 'number')) throw unsupported(layer, `target_shape ${JSON.stringify(t)} is not a list of integers`);
        const sizes = x.sym.shape.slice(1);
        if (!sizes.every((d) => typeof d === 'number')) throw unsupported(layer, `input shape [${x.sym.shape}] is not fixed`);
        const total = (sizes as number[]).reduce((a, d) => a * d, 1);
        const known = (t as number[]).filter((d) => d !== -1).reduce((a, d) => a * d, 1);
        const target = (t as number[]).map((d) => (d === -1 ? total / known : d));
        if (target.reduce((a, d) => a * d, 1) !== total) throw unsupported(layer, `cannot reshape ${total} values to [${t}]`);
        const nhwcIn = x.rank === 4 && !(sizes[1] === 1 && sizes[2] === 1)
          ? b.op1('Transpose', [x.sym], { perm: [0, 2, 3, 1] }, { outputs: [`${layer.name}/nhwc_in`], name: `${layer.name}/nhwc_in` })
          : x.sym;
        if (target.length === 1) return { sym: b.op1('Reshape', [nhwcIn, b.ints([0, target[0]!])], {}, named), rank: 2 };
        if (target.length === 3) {
          const [h, w, c] = target as [number, number, number];
          if (h * w === 1) return { sym: b.op1('Reshape', [nhwcIn, b.ints([0, c, 1, 1])], {}, named), rank: 4 };
          const r = b.op1('Reshape', [nhwcIn, b.ints([0, h, w, c])], {}, { outputs: [`${layer.name}/nhwc`], name: `${layer.name}/nhwc` });
          return { sym: b.op1('Transpose', [r], { perm: [0, 3, 1, 2] }, named), rank: 4 };
        }
        throw unsupported(layer, `target_shape [${t}] has rank ${t.length}; only [C] and [H, W, C] are supported`);
      }
      case 'Dense': {
        one();
        if (x.rank !== 2) throw unsupported(layer, `Dense on a rank-${x.rank} tensor is not supported (flatten or pool first)`);
        const k = weight(layer, 'kernel')!; // [in, out]
        const ins2 = [x.sym, param(`${layer.name}/kernel`, k)];
        if (layer.config['use_bias'] !== false) ins2.push(param(`${layer.name}/bias`, weight(layer, 'bias')!));
        return { sym: withActivation(layer, 2, (n) => b.op1('Gemm', ins2, {}, { outputs: [n], name: n })), rank: 2 };
      }
      case 'Dropout': case 'SpatialDropout2D': case 'GaussianNoise': case 'GaussianDropout': case 'AlphaDropout': case 'ActivityRegularization':
        one();
        return keep(b.op1('Identity', [x.sym], {}, named)); // inference: the identity
      default:
        throw unsupported(layer, `layer type ${layer.className} is not supported`);
    }
  };

  // Layers in dependency order (config order where it allows).
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  const order: TfjsLayer[] = [];
  const placed = new Set<string>();
  let pending = [...model.layers];
  while (pending.length) {
    const rest: TfjsLayer[] = [];
    for (const l of pending) {
      for (const r of l.inbound) {
        if (!byName.has(r.layer)) {
          throw new GraftError('E_ONNX_PARSE', `${model.source}: layer "${l.name}" reads "${r.layer}", which the model does not define`, 'The topology is corrupt; re-export the model.');
        }
      }
      if (l.inbound.every((r) => placed.has(r.layer))) { order.push(l); placed.add(l.name); } else rest.push(l);
    }
    if (rest.length === pending.length) {
      throw new GraftError('E_GRAPH_INVALID', `model "${model.name}" has a cycle through layer "${rest[0]!.name}"`, 'Keras functional models are acyclic; re-export the model.');
    }
    pending = rest;
  }

  // Architecture presets: cut points and groups.
  const names = new Set(model.layers.map((l) => l.name));
  // A preset applies only where every layer it names exists (Keras numbers layers per session).
  const fits = (p: Preset) => p.cuts.every(([n]) => names.has(n)) && p.groupEnds.every(([, n]) => names.has(n));
  const hit = PRESETS.find((p) => p.test(names) && fits(p.preset));
  const preset: Preset = hit?.preset ?? { cuts: [], groupEnds: [] };
  const cutLayers: [string, string][] = opts.cuts ? opts.cuts.map((n) => [n, `${n}, average-pooled`]) : preset.cuts;
  for (const [n] of cutLayers) {
    if (!names.has(n)) throw new GraftError('E_GRAPH_UNKNOWN_TENSOR', `model "${model.name}" has no layer "${n}" to cut at`, 'Pass Keras layer names of this model in opts.cuts.');
  }
  const cutSet = new Map(cutLayers);
  const cuts: CutPoint[] = [];

  let size: [number, number] | undefined = opts.size;
  for (const layer of order) {
    current = layer;
    paramsOf.set(layer.name, []);
    layerTypes[layer.className] = (layerTypes[layer.className] ?? 0) + 1;
    let out: Val;
    if (layer.className === 'InputLayer') {
      const shape = layer.config['batch_input_shape'] ?? layer.config['batchInputShape'];
      if (!Array.isArray(shape) || shape.length !== 4) {
        throw unsupported(layer, `input shape ${JSON.stringify(shape)} is not [batch, height, width, channels]`, 'graft converts image models (NHWC inputs).');
      }
      const [h, w, c] = [shape[1], shape[2], shape[3]];
      if (typeof c !== 'number') throw unsupported(layer, 'the channel count is not fixed');
      if (!size) {
        if (typeof h !== 'number' || typeof w !== 'number') throw unsupported(layer, 'the input height and width are not fixed', 'Pass opts.size: [height, width].');
        size = [h, w];
      }
      if (g.inputs.length) throw unsupported(layer, 'a second input layer');
      out = { sym: b.input(inputName, 'float32', [batch, c, size[0], size[1]]), rank: 4 };
    } else {
      const ins = layer.inbound.map((r) => {
        const v = vals.get(refKey(r));
        if (!v) throw unsupported(layer, `input ${r.layer}[${r.node}][${r.index}] is not a tensor graft has converted`);
        return v;
      });
      if (!ins.length) throw unsupported(layer, 'has no inputs');
      out = convert(layer, ins);
    }
    vals.set(refKey({ layer: layer.name, node: 0, index: 0 }), out);
    const desc = cutSet.get(layer.name);
    if (desc !== undefined) {
      if (out.rank !== 4) throw new GraftError('E_BAD_OPTION', `cut layer "${layer.name}" is not a 4-D feature map`, 'Cut at a convolutional layer.');
      const gap = b.op1('GlobalAveragePool', [real(out)], {}, { outputs: [`${layer.name}/gap`], name: `${layer.name}/gap` });
      const f = b.op1('Flatten', [gap], { axis: 1 }, { outputs: [`${layer.name}/pool`], name: `${layer.name}/pool` });
      cuts.push({ name: layer.name, tensor: f.name, shape: [Number(out.sym.shape[1])], description: desc });
    }
  }
  current = null;

  const outVal = vals.get(refKey(model.outputs[0]!));
  if (!outVal) throw new GraftError('E_ONNX_PARSE', `${model.source}: output layer "${model.outputs[0]!.layer}" is not defined`, 'The topology is corrupt; re-export the model.');
  const outputName = b.output(real(outVal));

  // The pre-classifier feature (the input of the first Dense layer) and the hidden Dense layers.
  const denses = order.filter((l) => l.className === 'Dense');
  const outLayer = byName.get(model.outputs[0]!.layer)!;
  if (denses.length) {
    const feat = vals.get(refKey(denses[0]!.inbound[0]!))!;
    if (feat.rank === 2) {
      const src = denses[0]!.inbound[0]!.layer;
      cuts.push({ name: 'features', tensor: feat.sym.name, shape: [Number(feat.sym.shape[1])], description: `pooled feature before the classifier (${src})` });
    }
    for (const d of denses) {
      if (d === outLayer) continue;
      const v = vals.get(refKey({ layer: d.name, node: 0, index: 0 }))!;
      cuts.push({ name: d.name, tensor: v.sym.name, shape: [Number(v.sym.shape[1])], description: `hidden Dense layer (${str(d, 'activation', 'linear')})` });
    }
  }

  // Groups: consecutive runs of layers (in dependency order) up to each preset end; the rest is the head.
  const ends = [...preset.groupEnds];
  if (!ends.length && denses.length) {
    const feat = denses[0]!.inbound[0]!.layer;
    ends.push(['body', feat]);
  }
  const groups: LayerGroup[] = [];
  let gi = 0;
  let group: LayerGroup = { name: ends[0]?.[0] ?? 'body', params: [] };
  for (const layer of order) {
    group.params.push(...paramsOf.get(layer.name)!);
    if (gi < ends.length && layer.name === ends[gi]![1]) {
      const v = vals.get(refKey({ layer: layer.name, node: 0, index: 0 }));
      if (v) group.end = real(v).name;
      groups.push(group);
      gi++;
      group = { name: ends[gi]?.[0] ?? 'head', params: [] };
    }
  }
  if (gi < ends.length) throw new GraftError('E_GRAPH_INVALID', `group end "${ends[gi]![1]}" is not a layer of "${model.name}"`, 'This is a bug in graft\'s presets.');
  if (group.params.length || !groups.length) groups.push(group);

  const act = str(outLayer, 'activation', 'linear');
  const logitsName = outLayer.className === 'Dense' && act === 'softmax' ? `${outLayer.name}/preact` : undefined;
  // nsfwjs (core.js infer): pixels / 255, then tf.image.resizeBilinear to size x size (alignCorners, no
  // antialiasing; graft's resize is antialiased bilinear, so downscaled inputs differ slightly).
  const preprocess: ImagePreprocess = opts.preprocess ?? { size: size!, resize: 'squash', scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] };
  if (hit) g.metadata.set('graft.tfjs.architecture', hit.name);
  return { graph: g, inputName, outputName, ...(logitsName ? { logitsName } : {}), cuts, groups, preprocess, layerTypes };
}

/** A float32 tensor with its axes permuted (out axis i = in axis perm[i]). */
export function transposeTo(t: TensorData, perm: number[]): TensorData {
  const src = t.data as Float32Array;
  const dims = perm.map((p) => t.dims[p]!);
  const inStrides = t.dims.map((_, i) => t.dims.slice(i + 1).reduce((a, d) => a * d, 1));
  const out = new Float32Array(src.length);
  const r = dims.length;
  const idx = new Array<number>(r).fill(0);
  const step = perm.map((p) => inStrides[p]!);
  let srcOff = 0;
  for (let o = 0; o < out.length; o++) {
    out[o] = src[srcOff]!;
    for (let a = r - 1; a >= 0; a--) {
      idx[a]!++;
      srcOff += step[a]!;
      if (idx[a]! < dims[a]!) break;
      srcOff -= step[a]! * dims[a]!;
      idx[a] = 0;
    }
  }
  return tensor('float32', dims, out);
}
