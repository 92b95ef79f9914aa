// TF.js graph models (tfjs-graph.ts): a small hand-written graph model with every op the converter knows,
// run by TF.js itself (pure JS CPU backend) at odd and even sizes; the reader's refusals; and the registry's
// mobilenet_v3_centernet (@vladmandic/human's CenterNet MobileNetV3) against activations of the original
// TF.js model stored in fixtures/centernet/reference.json (scripts/gen_centernet_fixture.ts), then replayed
// for fine-tuning.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { tfjs } from './tfjs-testkit.ts';
import { GraftError } from '../errors.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { tensor } from '../graph/tensor.ts';
import { Session } from '../runtime/session.ts';
import { Learner } from '../train/learner.ts';
import { prepareImage } from '../data/images.ts';
import { loadImageBackbone, packageDir, prefixGraph } from './image.ts';
import { findBackbone } from './registry.ts';
import { TFJS_GRAPH_OPS, type TfjsGraphPreset, convertTfjsGraph, loadTfjsGraph } from './tfjs-graph.ts';
import { backboneGroups, backboneNetwork } from './trainable.ts';
import { ID, SYNTH, nchwToNhwc, readPng, synthPixels } from '../../scripts/gen_centernet_fixture.ts';


const dirs: string[] = [];
const tmp = () => { const d = mkdtempSync(join(tmpdir(), 'graft-tfgraph-')); dirs.push(d); return d; };
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const isCode = (code: string, re?: RegExp) => (e: unknown) => e instanceof GraftError && e.code === code && (!re || re.test(e.message));

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

// ---- a small graph model, written as the TF.js converter writes one ------------------------------------

const b64 = (s: string) => Buffer.from(s).toString('base64');
const A = {
  s: (v: string) => ({ s: b64(v) }),
  ints: (v: number[]) => ({ list: { i: v.map(String) } }),
  strs: (v: string[]) => ({ list: { s: v.map(b64) } }),
  b: (v: boolean) => ({ b: v }),
  f32: { type: 'DT_FLOAT' },
};
const conv = (strides: number, padding: string, fused: string[] = []) => ({
  strides: A.ints([1, strides, strides, 1]), padding: A.s(padding), dilations: A.ints([1, 1, 1, 1]), data_format: A.s('NHWC'), T: A.f32,
  ...(fused.length ? { fused_ops: A.strs(fused), num_args: { i: '1' }, epsilon: { f: 0 } } : {}),
});

interface Weight { name: string; shape: number[]; dtype: 'float32' | 'int32'; values: number[]; f16?: boolean }

/** Sets of nodes and weights: a MobileNetV3 block in miniature plus the other ops the converter knows. */
function smallModel(extra: { node: object[]; weights: Weight[] } = { node: [], weights: [] }): { json: object; bin: Buffer } {
  let seed = 1;
  const vals = (n: number, scale: number) => Array.from({ length: n }, () => scale * Math.sin(seed++ * 1.7));
  const w = (name: string, shape: number[], scale = 0.5, f16 = false): Weight => ({ name, shape, dtype: 'float32', values: vals(shape.reduce((a, b) => a * b, 1), scale), f16 });
  const weights: Weight[] = [
    w('c1/w', [3, 3, 3, 8], 0.02, true), w('c1/b', [8], 0.2), w('c2/w', [1, 1, 8, 16]), w('c2/b', [16]),
    { name: 'hs/sixth', shape: [], dtype: 'float32', values: [1 / 6] }, { name: 'hs/three', shape: [], dtype: 'float32', values: [3] },
    w('dw/w', [5, 5, 16, 1], 0.2), w('dw/b', [16]), { name: 'se/axes', shape: [2], dtype: 'int32', values: [1, 2] },
    w('se/w1', [1, 1, 16, 4]), w('se/b1', [4]), w('se/w2', [1, 1, 4, 16]), w('se/b2', [16]), w('dw2/w', [3, 3, 16, 1]),
    w('pw/w', [1, 1, 16, 8]), w('chan', [8], 1), { name: 'cat/axis', shape: [], dtype: 'int32', values: [-1] },
    ...extra.weights,
  ];
  const node = [
    { name: 'images', op: 'Placeholder', attr: { dtype: A.f32, shape: { shape: { dim: [-1, -1, -1, 3].map((size) => ({ size: String(size) })) } } } },
    ...weights.map((x) => ({ name: x.name, op: 'Const', attr: { dtype: { type: x.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT' }, value: { tensor: { dtype: x.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT', tensorShape: { dim: x.shape.map((size) => ({ size: String(size) })) } } } } })),
    { name: 'c1', op: '_FusedConv2D', input: ['images', 'c1/w', 'c1/b'], attr: conv(2, 'SAME', ['BiasAdd', 'Relu6']) },
    { name: 'c2', op: '_FusedConv2D', input: ['c1', 'c2/w', 'c2/b'], attr: conv(1, 'SAME', ['BiasAdd']) },
    { name: 'hs/mul', op: 'Mul', input: ['hs/sixth', 'c2'], attr: { T: A.f32 } },
    { name: 'hs/add', op: 'AddV2', input: ['c2', 'hs/three'], attr: { T: A.f32 } },
    { name: 'hs/relu6', op: 'Relu6', input: ['hs/add'], attr: { T: A.f32 } },
    { name: 'hs', op: 'Mul', input: ['hs/mul', 'hs/relu6'], attr: { T: A.f32 } },
    { name: 'dw', op: 'FusedDepthwiseConv2dNative', input: ['hs', 'dw/w', 'dw/b'], attr: conv(2, 'SAME', ['BiasAdd', 'Relu']) },
    { name: 'se/mean', op: 'Mean', input: ['dw', 'se/axes'], attr: { keep_dims: A.b(true), T: A.f32 } },
    { name: 'se/c1', op: '_FusedConv2D', input: ['se/mean', 'se/w1', 'se/b1'], attr: conv(1, 'SAME', ['BiasAdd', 'Relu']) },
    { name: 'se/c2', op: '_FusedConv2D', input: ['se/c1', 'se/w2', 'se/b2'], attr: conv(1, 'SAME', ['BiasAdd']) },
    { name: 'se/gate', op: 'Sigmoid', input: ['se/c2'], attr: { T: A.f32 } },
    { name: 'se', op: 'Mul', input: ['se/gate', 'dw'], attr: { T: A.f32 } },
    { name: 'dw2', op: 'DepthwiseConv2dNative', input: ['se', 'dw2/w', '^se/gate'], attr: conv(1, 'SAME') },
    { name: 'res', op: 'AddV2', input: ['dw2', 'se'], attr: { T: A.f32 } },
    { name: 'pw', op: 'Conv2D', input: ['res', 'pw/w'], attr: conv(1, 'VALID') },
    { name: 'scaled', op: 'Mul', input: ['pw', 'chan'], attr: { T: A.f32 } },
    { name: 'cat', op: 'ConcatV2', input: ['scaled', 'pw', 'cat/axis'], attr: { N: { i: '2' }, T: A.f32 } },
    { name: 'ap', op: 'AvgPool', input: ['cat'], attr: { ksize: A.ints([1, 3, 3, 1]), strides: A.ints([1, 2, 2, 1]), padding: A.s('SAME'), data_format: A.s('NHWC'), T: A.f32 } },
    { name: 'mp', op: 'MaxPool', input: ['cat'], attr: { ksize: A.ints([1, 2, 2, 1]), strides: A.ints([1, 2, 2, 1]), padding: A.s('VALID'), data_format: A.s('NHWC'), T: A.f32 } },
    { name: 'out', op: 'Identity', input: ['mp'], attr: { T: A.f32 } },
    ...extra.node,
  ];
  const chunks = weights.map((x) => {
    if (x.f16) {
      const f = new Float32Array(x.values);
      const h = new Uint16Array(f.length);
      const u = new Uint32Array(f.buffer);
      // float32 -> float16 bits (mantissa truncated, below the normal range 0): what TF.js and graft then decode.
      for (let i = 0; i < f.length; i++) {
        const e = ((u[i]! >>> 23) & 0xff) - 112;
        h[i] = ((u[i]! >>> 16) & 0x8000) | (e > 0 ? (e << 10) | ((u[i]! >>> 13) & 0x3ff) : 0);
      }
      return Buffer.from(h.buffer);
    }
    return Buffer.from((x.dtype === 'int32' ? new Int32Array(x.values) : new Float32Array(x.values)).buffer);
  });
  const specs = weights.map((x) => ({ name: x.name, shape: x.shape, dtype: x.dtype, ...(x.f16 ? { quantization: { dtype: 'float16' } } : {}) }));
  return {
    json: { format: 'graph-model', generatedBy: 'graft test', modelTopology: { node, library: {}, versions: {} }, weightsManifest: [{ paths: ['small.bin'], weights: specs }] },
    bin: Buffer.concat(chunks),
  };
}

function writeModel(m: { json: object; bin: Buffer }, dir = tmp()): string {
  writeFileSync(join(dir, 'model.json'), JSON.stringify(m.json));
  writeFileSync(join(dir, 'small.bin'), m.bin);
  return join(dir, 'model.json');
}

const SMALL: TfjsGraphPreset = {
  output: 'out',
  cuts: [['hs', 'hs', ''], ['res', 'res', ''], ['cat', 'cat', ''], ['ap', 'ap', '']],
  groupEnds: [['stem', 'c1'], ['block', 'res'], ['top', 'out']],
};
const PRE = { size: [32, 32] as [number, number], resize: 'squash' as const, scale: 1 / 255, mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] };

test('a graph model with every op graft knows: the converted graph matches TF.js at odd and even sizes', async () => {
  const file = writeModel(smallModel());
  const m = loadTfjsGraph(file);
  assert.equal(m.weights.get('se/axes')!.dtype, 'int32');
  assert.equal(m.fileHashes.length, 2);
  const c = convertTfjsGraph(m, { preprocess: PRE, preset: SMALL });
  assert.deepEqual(Object.keys(c.opTypes).sort(), TFJS_GRAPH_OPS.filter((o) => !['Const', 'Add', 'Sub', 'RealDiv', 'Maximum', 'Minimum', 'Tanh', 'Relu'].includes(o)).sort());
  assert.deepEqual(c.graph.inputs[0]!.shape, ['N', 3, 'H', 'W']);
  // Strided 'SAME' convolutions keep H and W free (auto_pad); stride-1 ones have explicit pads.
  const convs = c.graph.nodes.filter((n) => n.op === 'Conv');
  assert.deepEqual(convs.map((n) => ('s' in (n.attrs['auto_pad'] ?? {}) ? 'auto' : 'pads')), ['auto', 'pads', 'auto', 'pads', 'pads', 'pads', 'pads']);
  assert.deepEqual(c.groups.map((g) => [g.name, g.params.length]), [['stem', 2], ['block', 9], ['top', 1]]);
  assert.deepEqual(c.cuts.map((k) => k.shape[0]), [16, 16, 16, 16]);

  const tf = await tfjs();
  const w = m.weightData;
  const gm = await tf.loadGraphModel({ load: async () => ({ modelTopology: m.modelJson['modelTopology'] as object, format: 'graph-model', weightSpecs: m.weightSpecs as TF.io.WeightsManifestEntry[], weightData: w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength) as ArrayBuffer }) });
  const g = c.graph.clone();
  const gb = new GraphBuilder(g);
  g.outputs = [c.outputName, ...c.cuts.map((k) => k.tensor)].map((name) => ({ name, dtype: 'float32', shape: [...gb.sym(name).shape] }));
  const s = await Session.create(g, { threads: 1 });
  for (const [n, h, wd] of [[1, 17, 23], [2, 32, 32], [1, 9, 8]] as [number, number, number][]) {
    const x = Float32Array.from({ length: n * 3 * h * wd }, (_, i) => 0.5 + 0.5 * Math.sin(i * 0.37));
    const r = await s.run({ pixels: tensor('float32', [n, 3, h, wd], x) });
    const outs = gm.execute(tf.tensor4d(nchwToNhwc(x, n, 3, h, wd), [n, h, wd, 3]), ['out', ...SMALL.cuts.map((k) => k[1])]) as TF.Tensor[];
    const [ref, ...cuts] = outs;
    const [oh, ow, oc] = ref!.shape.slice(1) as number[];
    assert.deepEqual(r[c.outputName]!.dims, [n, oc, oh, ow], `${h}x${wd}: output shape`);
    const d = maxDiff(r[c.outputName]!.data as Float32Array, transposeBack(new Float32Array(ref!.dataSync()), n, oh!, ow!, oc!));
    assert.ok(d < 1e-4, `${h}x${wd}: output differs from TF.js by ${d}`);
    c.cuts.forEach((k, i) => {
      const dc = maxDiff(r[k.tensor]!.data as Float32Array, cuts[i]!.mean([1, 2]).dataSync());
      assert.ok(dc < 1e-4, `${h}x${wd}: cut ${k.name} differs from TF.js by ${dc}`);
    });
    tf.dispose(outs);
  }
  await s.dispose();

  // An input scale folded into the first convolution comes back out of its kernel: the same output from x / 255.
  const c255 = convertTfjsGraph(m, { preprocess: PRE, preset: { ...SMALL, inputScale: 255 } });
  const s255 = await Session.create(c255.graph, { threads: 1 });
  const x = Float32Array.from({ length: 3 * 9 * 8 }, (_, i) => 255 * (0.5 + 0.5 * Math.sin(i * 0.37)));
  const ref = gm.execute(tf.tensor4d(nchwToNhwc(x, 1, 3, 9, 8), [1, 9, 8, 3]), 'out') as TF.Tensor;
  const got = (await s255.run({ pixels: tensor('float32', [1, 3, 9, 8], x.map((v) => v / 255)) }))[c255.outputName]!;
  const [, oh, ow, oc] = ref.shape as number[];
  assert.ok(maxDiff(got.data as Float32Array, transposeBack(new Float32Array(ref.dataSync()), 1, oh!, ow!, oc!)) < 1e-4);
  tf.dispose(ref);
  await s255.dispose();
  assert.deepEqual(c255.groups, c.groups);
});

/** NHWC [n, h, w, c] -> NCHW. */
function transposeBack(x: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++) for (let k = 0; k < c; k++) for (let i = 0; i < h * w; i++) out[(b * c + k) * h * w + i] = x[(b * h * w + i) * c + k]!;
  return out;
}

test('loadTfjsGraph refuses Layers models, shard paths that leave the folder, missing shards and truncated weights', () => {
  const m = smallModel();
  const dir = tmp();
  writeFileSync(join(dir, 'layers.json'), JSON.stringify({ format: 'layers-model', modelTopology: { model_config: { class_name: 'Sequential', config: [] } }, weightsManifest: [] }));
  assert.throws(() => loadTfjsGraph(join(dir, 'layers.json')), isCode('E_ONNX_PARSE', /Layers model, not a graph model/));
  const json = m.json as { weightsManifest: { paths: string[] }[] };
  for (const bad of ['../small.bin', '/etc/passwd', 'sub/small.bin', '.hidden']) {
    json.weightsManifest[0]!.paths = [bad];
    assert.throws(() => writeModel(m, dir) && loadTfjsGraph(join(dir, 'model.json')), isCode('E_ONNX_PARSE', /not a file name beside the model/), bad);
  }
  json.weightsManifest[0]!.paths = ['absent.bin'];
  assert.throws(() => writeModel(m, dir) && loadTfjsGraph(join(dir, 'model.json')), isCode('E_FILE_MISSING'));
  json.weightsManifest[0]!.paths = ['small.bin'];
  assert.throws(() => writeModel({ json: m.json, bin: m.bin.subarray(0, m.bin.length - 8) }, dir) && loadTfjsGraph(join(dir, 'model.json')), isCode('E_ONNX_PARSE', /fewer than its weights need/));
  assert.throws(() => loadTfjsGraph(join(dir, 'nothing.json')), isCode('E_FILE_MISSING'));
});

test('convertTfjsGraph: an op it does not know is a typed error where the outputs need it, and ignored where they do not', () => {
  const extra = { node: [{ name: 'soft', op: 'Softplus', input: ['mp'], attr: {} }, { name: 'after', op: 'Relu', input: ['soft'], attr: {} }], weights: [] };
  const m = loadTfjsGraph(writeModel(smallModel(extra)));
  assert.doesNotThrow(() => convertTfjsGraph(m, { preprocess: PRE, preset: SMALL }));
  assert.throws(() => convertTfjsGraph(m, { preprocess: PRE, preset: { ...SMALL, output: 'after' } }), (e: unknown) => isCode('E_GRAPH_INVALID', /Softplus/)(e) && /Conv2D/.test((e as GraftError).hint));
  assert.throws(() => convertTfjsGraph(m, { preprocess: PRE, preset: { ...SMALL, output: 'nope' } }), isCode('E_GRAPH_UNKNOWN_TENSOR'));
  assert.throws(() => convertTfjsGraph(m, { preprocess: PRE }), isCode('E_GRAPH_INVALID', /no architecture preset/));
});

// ---- the registry's CenterNet MobileNetV3 ----------------------------------------------------------------

interface Ref {
  nodes: Record<string, string>;
  photo: { file: string; size: [number, number]; pooled: Record<string, number[][]> };
  synthetic: { n: number; h: number; w: number; pooled: Record<string, number[][]>; feature_map: { shape: number[]; data: number[] } };
}
const REF = JSON.parse(readFileSync(new URL('../../fixtures/centernet/reference.json', import.meta.url), 'utf8')) as Ref;
const installed = (() => { try { packageDir(findBackbone(ID).package.name); return true; } catch { return false; } })();
const cacheRoot = mkdtempSync(join(tmpdir(), 'graft-centernet-'));
dirs.push(cacheRoot);

test('mobilenet_v3_centernet: every cut matches the original TF.js model at 224x224 and at 75x61 (fixture), from a fresh and a cached conversion', async (t) => {
  if (!installed) return t.skip(`${findBackbone(ID).package.name} is not installed`);
  const t0 = Date.now();
  const bb = await loadImageBackbone(ID, cacheRoot);
  const ms = Date.now() - t0;
  const entry = findBackbone(ID);
  assert.deepEqual(bb.cuts.map((c) => [c.name, c.shape[0]]), entry.cuts.map((c) => [c.name, c.dim]));
  assert.deepEqual(bb.preprocess, entry.preprocess);
  assert.equal(bb.preprocess.scale, 1 / 255);
  assert.deepEqual(bb.graph.inputs[0]!.shape, ['N', 3, 'H', 'W']);
  // The detection heads are not converted: nothing of CenternetHead, no resize, no top-k.
  assert.ok(!bb.graph.nodes.some((n) => n.name.includes('CenternetHead') || ['Resize', 'TopK'].includes(n.op)));
  const cached = await loadImageBackbone(ID, cacheRoot);
  assert.equal(cached.sha256, bb.sha256);

  let worst = 0;
  for (const b of [bb, cached]) {
    const s = await Session.create(prefixGraph(b, [...b.cuts, { name: 'map', tensor: REF.nodes['features']!, shape: [] }]), { threads: 2 });
    const photo = await readPng(new URL(`../../fixtures/centernet/${REF.photo.file}`, import.meta.url).pathname);
    const { n, h, w } = SYNTH;
    for (const [what, x, dims, ref] of [
      ['photo', photo.data, [1, 3, photo.h, photo.w], REF.photo.pooled],
      ['synthetic', synthPixels(n, h, w), [n, 3, h, w], REF.synthetic.pooled],
    ] as const) {
      // TF.js read 0..255; the converted backbone reads pixels / 255 (the scale TF had folded into the stem).
      const r = await s.run({ pixels: tensor('float32', [...dims], x.map((v) => v * b.preprocess.scale)) });
      for (const c of b.cuts) {
        const d = maxDiff(r[c.tensor]!.data as Float32Array, ref[c.name]!.flat());
        assert.ok(d < 1e-4, `${what}: cut ${c.name} differs from TF.js by ${d}`);
        worst = Math.max(worst, d);
      }
      if (what === 'synthetic') {
        const [, fh, fw, fc] = REF.synthetic.feature_map.shape as [number, number, number, number];
        assert.deepEqual(r[REF.nodes['features']!]!.dims, [n, fc, fh, fw]);
        const d = maxDiff(r[REF.nodes['features']!]!.data as Float32Array, transposeBack(Float32Array.from(REF.synthetic.feature_map.data), n, fh, fw, fc));
        assert.ok(d < 1e-4, `synthetic: the last feature map differs from TF.js by ${d}`);
        worst = Math.max(worst, d);
      }
    }
    await s.dispose();
  }
  t.diagnostic(`converted in ${ms} ms; largest difference from TF.js ${worst.toExponential(1)}`);
});

test('mobilenet_v3_centernet fine-tunes: layer groups with one entry each, a cached prefix gives the same logits, and the loss falls with every group trainable', async (t) => {
  if (!installed) return t.skip(`${findBackbone(ID).package.name} is not installed`);
  const bb = await loadImageBackbone(ID, cacheRoot);
  const gs = backboneGroups(bb);
  assert.deepEqual(gs.map((g) => g.name), ['stem', 'stage1', 'stage2', 'stage3a', 'stage3b', 'stage4', 'top']);
  assert.deepEqual(gs.map((g) => g.entryShape), [[3, 512, 512], [16, 256, 256], [24, 128, 128], [32, 64, 64], [64, 32, 32], [88, 32, 32], [120, 16, 16]]);
  const names = gs.flatMap((g) => g.params);
  assert.equal(new Set(names).size, names.length);
  assert.equal(names.length, 124, '62 convolutions, each a kernel and a bias (TF folded the BatchNorms into them)');
  const total = gs.reduce((s, g) => s + g.paramCount, 0);
  assert.ok(total > 1.7e6 && total < 1.8e6, `about 1.75M weights, got ${total}`);

  const size: [number, number] = [64, 64];
  const n = 4;
  const photos = ['china.jpg', 'flower.webp', 'tfjs-flower.jpg', 'china-orient6.jpg'].map((f) => new URL(`../../fixtures/images/${f}`, import.meta.url).pathname);
  const x = new Float32Array(n * 3 * size[0] * size[1]);
  for (let i = 0; i < n; i++) x.set(await prepareImage(photos[i]!, { ...bb.preprocess, size }), i * 3 * size[0] * size[1]);
  const y = Int32Array.from([0, 1, 1, 0]);
  const net = backboneNetwork(bb, { classes: 2, seed: 1, size });
  // Strided 'SAME' convolutions are replayed with explicit pads at this size.
  const learner = new Learner({ net, train: { x, y, n }, batchSize: n, threads: 2, seed: 0 });
  const full = (await learner.evaluate({ x, y, n })).logits;
  const top = backboneNetwork(bb, { classes: 2, seed: 1, size, from: 'stage4' });
  const g = bb.graph.clone();
  g.outputs = [{ name: top.fromTensor, dtype: 'float32', shape: null }];
  const s = await Session.create(g.prune(), { threads: 2 });
  const act = (await s.run({ pixels: tensor('float32', [n, 3, ...size], x) }))[top.fromTensor]!;
  assert.deepEqual(act.dims.slice(1), top.inputShape);
  const part = (await new Learner({ net: top, train: { x: act.data as Float32Array, y, n }, batchSize: n, threads: 2 }).evaluate({ x: act.data as Float32Array, y, n })).logits;
  assert.ok(part.every((v, i) => Math.abs(v - full[i]!) < 1e-4), `cached prefix: ${part} vs ${full}`);

  const before = new Map(net.params.map((p) => [p.name, Float32Array.from(p.value)]));
  await learner.fit(5, { lr: 1e-4 });
  const losses = learner.history.map((h) => h.trainLoss);
  assert.ok(losses.every(Number.isFinite) && losses.at(-1)! < losses[0]! * 0.8, `loss falls: ${losses.map((l) => l.toFixed(3))}`);
  const afterW = learner.getWeights();
  // Every weight from the stem to the head moves, but one: the squeeze-excite of expanded_conv_3 has a dead ReLU in
  // the trained weights (its 24 units are negative on every input; their kernel moves by weight decay alone).
  const still = net.params.filter((p) => afterW.get(p.name)!.every((v, i) => v === before.get(p.name)![i])).map((p) => p.name);
  assert.deepEqual(still, ['MobilenetV3/expanded_conv_3/squeeze_excite/Conv/biases']);
});
