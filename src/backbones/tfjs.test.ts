import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { tfjs } from './tfjs-testkit.ts';
import { GraftError } from '../errors.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { Graph } from '../graph/ir.ts';
import { Session } from '../runtime/session.ts';
import { prepareImage } from '../data/images.ts';
import { bundleExports, convertTfjsLayers, loadTfjsLayers, parseJsLiteral, type TfjsModel, type TfjsWeightSpec } from './tfjs.ts';

const MODELS = new URL('../../node_modules/nsfwjs/dist/models/', import.meta.url).pathname;
// A real photo: scikit-learn's flower.jpg (CC BY 2.0, vultilion on flickr), downscaled to 400x267 with sharp.
const PHOTO = new URL('../../fixtures/images/tfjs-flower.jpg', import.meta.url).pathname;


const isCode = (code: string) => (e: unknown) => e instanceof GraftError && e.code === code;

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'graft-tfjs-'));
}

/** The model as tf.loadLayersModel reads it from memory (the reference path; dequantized by TF.js itself). */
function handler(m: Pick<TfjsModel, 'modelTopology' | 'weightSpecs' | 'weightData'>): TF.io.IOHandler {
  const w = m.weightData;
  return {
    load: async () => ({
      modelTopology: m.modelTopology as object,
      weightSpecs: m.weightSpecs as TF.io.WeightsManifestEntry[],
      weightData: w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength) as ArrayBuffer,
    }),
  };
}

/** A clone of the graph that outputs the named tensors too. */
function withOutputs(g: Graph, names: string[]): Graph {
  const c = g.clone();
  const b = new GraphBuilder(c);
  c.outputs = names.map((n) => ({ name: n, dtype: 'float32', shape: [...b.sym(n).shape] }));
  return c;
}

const nchwToNhwc = (x: Float32Array, c: number, h: number, w: number) => {
  const out = new Float32Array(x.length);
  for (let k = 0; k < c; k++) for (let i = 0; i < h * w; i++) out[i * c + k] = x[k * h * w + i]!;
  return out;
};
const nchwFromNhwc = (x: Float32Array, c: number, h: number, w: number) => {
  const out = new Float32Array(x.length);
  for (let k = 0; k < c; k++) for (let i = 0; i < h * w; i++) out[k * h * w + i] = x[i * c + k]!;
  return out;
};

// ---- parsing without running anything ----------------------------------------------------------------

test('parseJsLiteral reads minified JS literals and nothing else', () => {
  const src = `{a:1,"b":'x\\'y\\n',c:[!0,!1,null,void 0,.5,-.25e1,1e-3,],d:{0:'z',e:"\\u0041\\x42"},}`;
  const { value, end } = parseJsLiteral(src, 0);
  assert.equal(end, src.length);
  assert.deepEqual(value, { a: 1, b: "x'y\n", c: [true, false, null, null, 0.5, -2.5, 0.001], d: { 0: 'z', e: 'AB' } });
  for (const bad of ['{a:f()}', '{a:x}', '[1,2', '{a:1+2}', '{__proto__:{}}', '"abc', '{a:function(){}}']) {
    assert.throws(() => {
      const r = parseJsLiteral(bad, 0);
      if (r.end !== bad.length) throw new GraftError('E_ONNX_PARSE', 'trailing', '');
    }, isCode('E_ONNX_PARSE'), bad);
  }
});

test('bundleExports reads the module.exports literal of a browserify bundle and refuses code', () => {
  const wrap = (body: string) => `!function(e){module.exports=e()}(function(){return function e(t,n,r){}({1:[function(e,t,n){t.exports=${body}},{}]},{},[1])(1)});`;
  assert.deepEqual(bundleExports(wrap('{x:[1,2],y:"QUJD"}'), 'f.js'), { x: [1, 2], y: 'QUJD' });
  const g = globalThis as { __graftPwned?: number };
  for (const body of ['(globalThis.__graftPwned=1,{x:1})', '{x:1},globalThis.__graftPwned=1', 'require("fs")', '{x:1};globalThis.__graftPwned=1']) {
    assert.throws(() => bundleExports(wrap(body), 'evil.js'), isCode('E_ONNX_PARSE'), body);
  }
  assert.throws(() => bundleExports('module.exports = {}', 'plain.js'), isCode('E_ONNX_PARSE'));
  assert.equal(g.__graftPwned, undefined);
});

test('loadTfjsLayers: clear errors for a missing folder, missing files, garbage and missing shards', () => {
  assert.throws(() => loadTfjsLayers('/nonexistent/graft/model'), isCode('E_FILE_MISSING'));
  const dir = tmp();
  try {
    assert.throws(() => loadTfjsLayers(dir), isCode('E_FILE_MISSING'));
    writeFileSync(join(dir, 'model.min.js'), 'console.log("hello")');
    assert.throws(() => loadTfjsLayers(dir), isCode('E_ONNX_PARSE'));
    const model = { modelTopology: { model_config: { class_name: 'Model', config: { name: 'm', layers: [], input_layers: [], output_layers: [] } } }, weightsManifest: [{ paths: ['group1-shard1of1'], weights: [{ name: 'w', shape: [4], dtype: 'float32' }] }] };
    const bundle = (v: unknown) => `!function(){}({1:[function(e,t,n){t.exports=${JSON.stringify(v)}},{}]},{},[1]);`;
    writeFileSync(join(dir, 'model.min.js'), bundle(model));
    assert.throws(() => loadTfjsLayers(dir), isCode('E_FILE_MISSING'));
    writeFileSync(join(dir, 'group1-shard1of1.min.js'), bundle('AAAA'));
    assert.throws(() => loadTfjsLayers(dir), (e) => isCode('E_ONNX_PARSE')(e) && /fewer than its weights need/.test((e as Error).message));
    writeFileSync(join(dir, 'group1-shard1of1.min.js'), bundle('not base64!'));
    assert.throws(() => loadTfjsLayers(dir), isCode('E_ONNX_PARSE'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- a small model built with TF.js: every padding case, layout and layer kind -----------------------------

/** A float32 -> float16 bit pattern (round half up; TF.js and graft only need to decode the same bits). */
function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const e = ((x >>> 23) & 0xff) - 112;
  const m = x & 0x7fffff;
  if (e <= 0) return e < -10 ? sign : sign | (((m | 0x800000) >> (1 - e)) + 0x1000) >> 13;
  if (e >= 31) return sign | 0x7c00;
  return sign | ((e << 10) + ((m + 0x1000) >> 13));
}

async function tinyModel(tf: typeof TF): Promise<TF.LayersModel> {
  const L = tf.layers;
  const inp = tf.input({ shape: [13, 11, 3], name: 'img' });
  let x = L.zeroPadding2d({ padding: [[1, 2], [0, 1]], name: 'pad' }).apply(inp) as TF.SymbolicTensor; // 16x12
  x = L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'c1' }).apply(x) as TF.SymbolicTensor; // 8x6
  x = L.batchNormalization({ scale: false, epsilon: 0.01, name: 'bn1' }).apply(x) as TF.SymbolicTensor;
  x = L.depthwiseConv2d({ kernelSize: [3, 2], depthMultiplier: 2, padding: 'same', name: 'dw' }).apply(x) as TF.SymbolicTensor; // 8x6x8
  x = L.batchNormalization({ name: 'bn2' }).apply(x) as TF.SymbolicTensor;
  x = L.reLU({ maxValue: 6, name: 'r6' }).apply(x) as TF.SymbolicTensor;
  const a = L.conv2d({ filters: 5, kernelSize: 3, dilationRate: 2, padding: 'same', activation: 'swish', name: 'dil' }).apply(x) as TF.SymbolicTensor;
  const p = L.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: 'avg' }).apply(x) as TF.SymbolicTensor;
  // Zero padding before a pool is a real Pad (zeros are averaged in), unlike TF's 'same' pooling.
  const p2 = L.averagePooling2d({ poolSize: 3, strides: 1, padding: 'valid', name: 'avg2' }).apply(L.zeroPadding2d({ padding: 1, name: 'pad2' }).apply(x)) as TF.SymbolicTensor;
  x = L.concatenate({ name: 'cat' }).apply([a, p, p2]) as TF.SymbolicTensor; // 8x6x21
  const s = L.separableConv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', name: 'sep' }).apply(x) as TF.SymbolicTensor; // 4x3x6
  const q = L.conv2d({ filters: 6, kernelSize: 1, strides: 2, padding: 'valid', useBias: false, name: 'short' }).apply(x) as TF.SymbolicTensor;
  x = L.add({ name: 'sum' }).apply([s, q]) as TF.SymbolicTensor;
  x = L.leakyReLU({ alpha: 0.1, name: 'leaky' }).apply(x) as TF.SymbolicTensor;
  const mp = L.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same', name: 'mp' }).apply(x) as TF.SymbolicTensor; // 2x2x6
  const f = L.dense({ units: 7, activation: 'tanh', name: 'fd' }).apply(L.flatten({ name: 'flat' }).apply(mp)) as TF.SymbolicTensor;
  const gp = L.globalAveragePooling2d({ name: 'gap' }).apply(x) as TF.SymbolicTensor;
  const gd = L.dense({ units: 7, activation: 'sigmoid', name: 'gd' }).apply(gp) as TF.SymbolicTensor;
  const rs = L.dense({ units: 3, name: 'rd' }).apply(L.reshape({ targetShape: [72], name: 'rs' }).apply(x)) as TF.SymbolicTensor;
  x = L.concatenate({ name: 'cat2' }).apply([f, gd, rs]) as TF.SymbolicTensor;
  x = L.dropout({ rate: 0.5, name: 'drop' }).apply(x) as TF.SymbolicTensor;
  x = L.activation({ activation: 'relu6', name: 'act' }).apply(x) as TF.SymbolicTensor;
  const out = L.dense({ units: 5, activation: 'softmax', name: 'out' }).apply(x) as TF.SymbolicTensor;
  const model = tf.model({ inputs: inp, outputs: out, name: 'tiny' });
  // Non-trivial batch-norm statistics.
  for (const name of ['bn1', 'bn2']) {
    const layer = model.getLayer(name);
    layer.setWeights(layer.getWeights().map((w, i, all) => {
      const isVar = i === all.length - 1;
      return tf.tensor(Array.from({ length: w.size }, (_, k) => (isVar ? 0.5 + ((k * 7) % 5) / 4 : Math.sin(k + i))), w.shape);
    }));
  }
  return model;
}

test('a TF.js-built model with odd sizes, strides, dilation, depthwise, pooling and flatten converts to the same outputs', async () => {
  const tf = await tfjs();
  const model = await tinyModel(tf);
  let art: TF.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => {
    art = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  const parts = Array.isArray(art!.weightData) ? art!.weightData : [art!.weightData!];
  const bytes = Buffer.concat(parts.map((p) => Buffer.from(p as ArrayBuffer)));
  const specs = art!.weightSpecs!;

  // Float16 and uint16-quantized copies of the weights (TF.js decodes the same bytes for its reference).
  const qspecs: TfjsWeightSpec[] = [];
  const qparts: Buffer[] = [];
  let off = 0;
  specs.forEach((s, i) => {
    const n = s.shape.reduce((a, d) => a * d, 1);
    const v = new Float32Array(bytes.buffer.slice(bytes.byteOffset + off, bytes.byteOffset + off + 4 * n));
    off += 4 * n;
    const out = Buffer.alloc(2 * n);
    if (i % 2) {
      for (let k = 0; k < n; k++) out.writeUInt16LE(toHalf(v[k]!), 2 * k);
      qspecs.push({ name: s.name, shape: s.shape, dtype: 'float32', quantization: { dtype: 'float16' } });
    } else {
      const min = Math.min(...v);
      const scale = (Math.max(...v) - min) / 65535 || 1;
      for (let k = 0; k < n; k++) out.writeUInt16LE(Math.round((v[k]! - min) / scale), 2 * k);
      qspecs.push({ name: s.name, shape: s.shape, dtype: 'float32', quantization: { dtype: 'uint16', min, scale } });
    }
    qparts.push(out);
  });
  const qbytes = Buffer.concat(qparts);

  const dir = tmp();
  try {
    const x = tf.randomUniform([2, 13, 11, 3], 0, 1, 'float32', 7);
    const xData = (await x.data()) as Float32Array;
    const nchw = new Float32Array(xData.length);
    for (let n = 0; n < 2; n++) nchw.set(nchwFromNhwc(xData.subarray(n * 429, (n + 1) * 429), 3, 13, 11), n * 429);

    for (const [sub, data, weights] of [['f32', bytes, specs], ['q16', qbytes, qspecs]] as const) {
      const d = join(dir, sub);
      mkdirSync(d);
      // Two shards, split mid-weight; a path that leaves the folder is refused.
      const cut = Math.floor(data.length / 3);
      writeFileSync(join(d, 'a.bin'), data.subarray(0, cut));
      writeFileSync(join(d, 'b.bin'), data.subarray(cut));
      const json = { modelTopology: art!.modelTopology, format: 'layers-model', weightsManifest: [{ paths: ['../a.bin', 'b.bin'], weights }] };
      writeFileSync(join(d, 'model.json'), JSON.stringify(json));
      assert.throws(() => loadTfjsLayers(d), isCode('E_ONNX_PARSE'));
      json.weightsManifest[0]!.paths = ['a.bin', 'b.bin'];
      writeFileSync(join(d, 'model.json'), JSON.stringify(json));

      const m = loadTfjsLayers(d);
      assert.equal(m.format, 'model.json');
      const c = convertTfjsLayers(m, { batch: 2 });
      assert.deepEqual(c.graph.inputs[0]!.shape, [2, 3, 13, 11]);
      const conv = c.graph.nodes.find((nd) => nd.name === 'c1/preact')!;
      // ZeroPadding2D [[1, 2], [0, 1]] folded into c1's pads, plus TF "same" on 16x12 with stride 2: one more at the end.
      assert.deepEqual(conv.attrs['pads'], { ints: [1, 0, 3, 2] });
      assert.ok(!c.graph.nodes.some((nd) => nd.name === 'pad') && c.graph.nodes.some((nd) => nd.op === 'Pad' && nd.outputs[0] === 'pad2'));
      assert.ok(c.graph.nodes.some((nd) => nd.op === 'BatchNormalization' && nd.outputs[0] === 'bn1'));
      // No preset for this architecture: the first Dense layer's input and the hidden Dense layers; body + head.
      assert.deepEqual(c.cuts.map((k) => [k.name, k.tensor, k.shape]), [['features', 'flat', [24]], ['fd', 'fd', [7]], ['gd', 'gd', [7]], ['rd', 'rd', [3]]]);
      assert.deepEqual(c.groups.map((gr) => gr.name), ['body', 'head']);
      assert.deepEqual(c.groups[1]!.params.slice(-2), ['out/kernel', 'out/bias']);
      assert.ok(c.groups[0]!.params.includes('sep/pointwise_kernel') && !c.groups[0]!.params.includes('fd/kernel'));
      assert.deepEqual(convertTfjsLayers(m, { cuts: ['sum', 'cat'] }).cuts.slice(0, 2).map((k) => [k.name, k.tensor, k.shape]), [['cat', 'cat/pool', [21]], ['sum', 'sum/pool', [6]]]);
      assert.throws(() => convertTfjsLayers(m, { cuts: ['nope'] }), isCode('E_GRAPH_UNKNOWN_TENSOR'));
      const ref = sub === 'f32' ? model : await tf.loadLayersModel(handler({ modelTopology: m.modelTopology, weightSpecs: m.weightSpecs, weightData: m.weightData }));
      const tfOut = (await (ref.predict(x) as TF.Tensor).data()) as Float32Array;
      const s = await Session.create(withOutputs(c.graph, [c.outputName, 'cat2']), { threads: 1 });
      const r = await s.run({ pixels: { dtype: 'float32', dims: [2, 3, 13, 11], data: nchw } });
      const cat2 = (await (tf.model({ inputs: ref.inputs, outputs: ref.getLayer('cat2').output as TF.SymbolicTensor }).predict(x) as TF.Tensor).data()) as Float32Array;
      assert.ok(maxDiff(r['cat2']!.data as Float32Array, cat2) < 1e-5, `${sub}: hidden features differ by ${maxDiff(r['cat2']!.data as Float32Array, cat2)}`);
      assert.ok(maxDiff(r[c.outputName]!.data as Float32Array, tfOut) < 1e-5, `${sub}: outputs differ by ${maxDiff(r[c.outputName]!.data as Float32Array, tfOut)}`);
      await s.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unsupported layer type is an E_GRAPH_INVALID error naming the layer class and name', async () => {
  const tf = await tfjs();
  const inp = tf.input({ shape: [8, 8, 3] });
  const out = tf.layers.upSampling2d({ size: [2, 2], name: 'grow' }).apply(inp) as TF.SymbolicTensor;
  const model = tf.model({ inputs: inp, outputs: out });
  let art: TF.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => { art = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
  const dir = tmp();
  try {
    writeFileSync(join(dir, 'model.json'), JSON.stringify({ modelTopology: art!.modelTopology, weightsManifest: [] }));
    const m = loadTfjsLayers(dir);
    assert.throws(() => convertTfjsLayers(m), (e) => isCode('E_GRAPH_INVALID')(e) && /"grow" \(UpSampling2D\)/.test((e as Error).message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a Sequential model converts too', async () => {
  const tf = await tfjs();
  const model = tf.sequential({ layers: [
    tf.layers.conv2d({ inputShape: [9, 7, 2], filters: 3, kernelSize: 3, strides: 2, padding: 'same', activation: 'sigmoid', name: 'sc' }),
    tf.layers.flatten({ name: 'sf' }),
    tf.layers.dense({ units: 4, name: 'sd' }),
  ] });
  let art: TF.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => { art = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
  const dir = tmp();
  try {
    const parts = Array.isArray(art!.weightData) ? art!.weightData : [art!.weightData!];
    writeFileSync(join(dir, 'w.bin'), Buffer.concat(parts.map((p) => Buffer.from(p as ArrayBuffer))));
    writeFileSync(join(dir, 'model.json'), JSON.stringify({ modelTopology: art!.modelTopology, weightsManifest: [{ paths: ['w.bin'], weights: art!.weightSpecs }] }));
    const c = convertTfjsLayers(loadTfjsLayers(dir));
    assert.equal(c.outputName, 'sd');
    assert.deepEqual(c.preprocess.size, [9, 7]);
    const x = tf.randomUniform([1, 9, 7, 2], 0, 1, 'float32', 3);
    const want = (await (model.predict(x) as TF.Tensor).data()) as Float32Array;
    const s = await Session.create(c.graph, { threads: 1 });
    const r = await s.run({ pixels: { dtype: 'float32', dims: [1, 2, 9, 7], data: nchwFromNhwc((await x.data()) as Float32Array, 2, 9, 7) } });
    assert.ok(maxDiff(r['sd']!.data as Float32Array, want) < 1e-5);
    await s.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- nsfwjs' models against TF.js on a real photo ------------------------------------------------------

interface Check { dir: string; cut: string; layers: string[]; groups: string[]; cuts: [string, number][] }

async function checkNsfw(t: { skip(msg: string): void }, k: Check): Promise<void> {
  const dir = join(MODELS, k.dir);
  if (!existsSync(dir)) return t.skip(`nsfwjs model ${dir} is not installed`);
  if (!existsSync(PHOTO)) return t.skip(`photo ${PHOTO} is missing`);
  const tf = await tfjs();
  const m = loadTfjsLayers(dir);
  assert.equal(m.format, 'nsfwjs-bundle');
  assert.ok(m.weightSpecs.every((s) => s.quantization?.dtype === 'uint8'));
  const c = convertTfjsLayers(m);
  assert.deepEqual(Object.keys(c.layerTypes).sort(), [...k.layers].sort());
  assert.deepEqual(c.groups.map((g) => g.name), k.groups);
  assert.deepEqual(c.cuts.map((x) => [x.name, x.shape[0]]), k.cuts);
  assert.equal(c.outputName, 'dense_3');
  // Batch norms stay (trainable scale/bias); every weight is in exactly one group.
  assert.equal(c.graph.nodes.filter((n) => n.op === 'BatchNormalization').length, c.layerTypes['BatchNormalization']);
  const inGroups = c.groups.flatMap((g) => g.params);
  assert.equal(new Set(inGroups).size, inGroups.length);
  for (const w of m.weights.keys()) assert.ok(inGroups.includes(w), `${w} is in no group`);

  const [h, w] = c.preprocess.size;
  const chw = await prepareImage(PHOTO, c.preprocess);
  const cutT = c.cuts.find((x) => x.name === k.cut)!.tensor;
  const feat = c.cuts.find((x) => x.name === 'features')!.tensor;
  // The graph survives ONNX serialisation with every shape known.
  const g = Graph.fromBytes(withOutputs(c.graph, [c.outputName, c.logitsName!, feat, 'dense_2', cutT]).toBytes());
  assert.deepEqual(new GraphBuilder(g).sym(feat).shape, ['N', c.cuts.find((x) => x.name === 'features')!.shape[0]]);
  const s = await Session.create(g, { threads: 1 });
  const r = await s.run({ pixels: { dtype: 'float32', dims: [1, 3, h, w], data: chw } });
  await s.dispose();

  const km = await tf.loadLayersModel(handler(m));
  const probe = tf.model({
    inputs: km.inputs,
    outputs: [km.outputs[0]!, ...[feat, 'dense_2', k.cut].map((n) => km.getLayer(n).output as TF.SymbolicTensor)],
  });
  const outs = tf.tidy(() => {
    const o = probe.predict(tf.tensor4d(nchwToNhwc(chw, 3, h, w), [1, h, w, 3])) as TF.Tensor[];
    return [o[0]!, o[1]!, o[2]!, o[3]!.mean([1, 2])];
  });
  const [probs, tfFeat, tfDense2, tfCut] = (await Promise.all(outs.map((o) => o.data()))) as Float32Array[];
  tf.dispose(outs);
  km.dispose();

  const diffs = {
    probs: maxDiff(r['dense_3']!.data as Float32Array, probs!),
    features: maxDiff(r[feat]!.data as Float32Array, tfFeat!),
    dense_2: maxDiff(r['dense_2']!.data as Float32Array, tfDense2!),
    [k.cut]: maxDiff(r[cutT]!.data as Float32Array, tfCut!),
  };
  // Logits agree with log(probabilities) up to the softmax's constant shift.
  const lg = r[c.logitsName!]!.data as Float32Array;
  const lp = Array.from(probs!, Math.log);
  const centre = (v: ArrayLike<number>) => { const mu = Array.from(v).reduce((a, b) => a + b, 0) / v.length; return Array.from(v, (x) => x - mu); };
  diffs['logits'] = maxDiff(centre(lg), centre(lp));
  for (const [name, d] of Object.entries(diffs)) assert.ok(d < 1e-4, `${k.dir}: ${name} differs from TF.js by ${d}`);
  assert.ok(Math.max(...probs!) > 0.5, 'a confident prediction on the photo');
}

test('nsfwjs MobileNetV2: converted graph matches TF.js on a real photo (probabilities, logits, 1280-d feature, cuts)', async (t) => {
  await checkNsfw(t, {
    dir: 'mobilenet_v2',
    cut: 'block_12_add',
    layers: ['InputLayer', 'ZeroPadding2D', 'Conv2D', 'BatchNormalization', 'ReLU', 'DepthwiseConv2D', 'Add', 'AveragePooling2D', 'Flatten', 'Dense', 'Dropout'],
    groups: ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'block_16', 'top', 'head'],
    cuts: [['block_2_add', 24], ['block_5_add', 32], ['block_12_add', 96], ['block_16_project_BN', 320], ['features', 1280], ['dense_1', 256], ['dense_2', 128]],
  });
});

test('nsfwjs InceptionV3: converted graph matches TF.js on a real photo (probabilities, logits, 2048-d feature, cuts)', async (t) => {
  await checkNsfw(t, {
    dir: 'inception_v3',
    cut: 'mixed7',
    layers: ['InputLayer', 'Conv2D', 'BatchNormalization', 'Activation', 'MaxPooling2D', 'AveragePooling2D', 'Concatenate', 'Flatten', 'Dense', 'Dropout'],
    groups: ['stem', 'mixed0-2', 'mixed3-7', 'mixed8', 'mixed9', 'mixed10', 'head'],
    cuts: [['mixed2', 288], ['mixed5', 768], ['mixed7', 768], ['features', 2048], ['dense_1', 256], ['dense_2', 128]],
  });
});
