import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findCut, loadImageBackbone, prefixGraph } from './image.ts';
import { backboneGroups, backboneNetwork, batchNormTrain } from './trainable.ts';
import { assertGradcheck, input } from '../runtime/gradcheck.ts';
import { prepareImage } from '../data/images.ts';
import { Learner } from '../train/learner.ts';
import { Session } from '../runtime/session.ts';
import { tensor } from '../graph/tensor.ts';
import { GraftError } from '../errors.ts';

const PHOTOS = ['china.jpg', 'flower.webp', 'tfjs-flower.jpg', 'china-orient6.jpg'].map((f) => new URL(`../../fixtures/images/${f}`, import.meta.url).pathname);

async function batch(size: [number, number]): Promise<Float32Array> {
  const bb = await loadImageBackbone('mobilenet_v2');
  const pre = { ...bb.preprocess, size };
  const per = 3 * size[0] * size[1];
  const x = new Float32Array(PHOTOS.length * per);
  for (let i = 0; i < PHOTOS.length; i++) x.set(await prepareImage(PHOTOS[i]!, pre), i * per);
  return x;
}

async function run(g: import('../graph/ir.ts').Graph, feeds: Record<string, Float32Array>, shapes: Record<string, number[]>, out: string): Promise<Float32Array> {
  const s = await Session.create(g, { threads: 2 });
  const r = await s.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, tensor('float32', shapes[k]!, v)])), [out]);
  return r[out]!.data as Float32Array;
}

test('MobileNetV2 layer groups: stem, stages, last block and top, each with one entry tensor', async () => {
  const bb = await loadImageBackbone('mobilenet_v2');
  const gs = backboneGroups(bb);
  assert.deepEqual(gs.map((g) => g.name), ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'block_16', 'top']);
  assert.deepEqual(gs.map((g) => g.entry), ['pixels', 'expanded_conv_project_BN', 'block_2_add', 'block_5_add', 'block_12_add', 'block_15_add', 'block_16_project_BN']);
  assert.deepEqual(gs.at(-2)!.entryShape, [160, 7, 7]);
  // Every conv/BN weight of the feature extractor is in exactly one group; running statistics in none.
  const names = gs.flatMap((g) => g.params);
  assert.equal(new Set(names).size, names.length);
  assert.ok(!names.some((n) => /moving_(mean|variance)/.test(n)));
  assert.equal(names.filter((n) => n.endsWith('/kernel') || n.endsWith('/depthwise_kernel')).length, 52, '52 convolutions');
  const total = gs.reduce((s, g) => s + g.paramCount, 0);
  assert.ok(total > 2.2e6 && total < 2.3e6, `MobileNetV2 feature extractor has about 2.23M weights, got ${total}`);
});

test('backboneNetwork: same logits as the frozen backbone plus head; a cached-prefix network agrees; other input sizes work', async () => {
  const bb = await loadImageBackbone('mobilenet_v2');
  const x = await batch([224, 224]);
  const n = PHOTOS.length;
  const net = backboneNetwork(bb, { classes: 3, seed: 7 });
  assert.deepEqual(net.groups, ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'block_16', 'top', 'head']);
  const learner = new Learner({ net, train: { x, y: Int32Array.from([0, 1, 2, 0]), n }, batchSize: n, threads: 2 });
  const logits = (await learner.evaluate({ x, y: Int32Array.from([0, 1, 2, 0]), n })).logits;

  const fc = findCut(bb, 'features');
  const f = await run(prefixGraph(bb, [fc]), { pixels: x }, { pixels: [n, 3, 224, 224] }, fc.tensor);
  const w = net.params.find((p) => p.name === 'linear.weight')!.value;
  const b = net.params.find((p) => p.name === 'linear.bias')!.value;
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      let z = b[c]!;
      for (let k = 0; k < 1280; k++) z += f[i * 1280 + k]! * w[k * 3 + c]!;
      worst = Math.max(worst, Math.abs(z - logits[i * 3 + c]!));
    }
  }
  assert.ok(worst < 1e-4, `logits vs features + head: ${worst}`);

  // From the entry of block_16: feed the cached activation, get the same logits.
  const top = backboneNetwork(bb, { classes: 3, seed: 7, from: 'block_16' });
  assert.deepEqual(top.groups, ['block_16', 'top', 'head']);
  assert.deepEqual(top.inputShape, [160, 7, 7]);
  const g = bb.graph.clone();
  g.outputs = [{ name: top.fromTensor, dtype: 'float32', shape: ['N', 160, 7, 7] }];
  const act = await run(g.prune(), { pixels: x }, { pixels: [n, 3, 224, 224] }, top.fromTensor);
  const l2 = new Learner({ net: top, train: { x: act, y: Int32Array.from([0, 1, 2, 0]), n }, batchSize: n, threads: 2 });
  const logits2 = (await l2.evaluate({ x: act, y: Int32Array.from([0, 1, 2, 0]), n })).logits;
  assert.ok(logits2.every((v, i) => Math.abs(v - logits[i]!) < 1e-4), 'cached prefix gives the same logits');

  // At 96x96 the final 7x7 average pool becomes a global one.
  const small = backboneNetwork(bb, { classes: 3, seed: 7, size: [96, 96] });
  assert.deepEqual(small.inputShape, [3, 96, 96]);
  const xs = await batch([96, 96]);
  const l3 = new Learner({ net: small, train: { x: xs, y: Int32Array.from([0, 1, 2, 0]), n }, batchSize: n, threads: 2 });
  const e = await l3.evaluate({ x: xs, y: Int32Array.from([0, 1, 2, 0]), n });
  assert.ok(e.logits.every(Number.isFinite));
});

test('fine-tuning the top groups changes only them, and the loss falls on real photos', async () => {
  const bb = await loadImageBackbone('mobilenet_v2');
  const x = await batch([96, 96]);
  const n = PHOTOS.length;
  const y = Int32Array.from([0, 1, 1, 0]);
  const net = backboneNetwork(bb, { classes: 2, seed: 1, size: [96, 96] });
  const before = new Map(net.params.map((p) => [p.name, Float32Array.from(p.value)]));
  const learner = new Learner({ net, train: { x, y, n }, batchSize: n, threads: 2, seed: 0 });
  learner.freezeTo(net.groups.indexOf('block_16'));
  await learner.fit(6, { lr: 1e-3 });
  const losses = learner.history.map((h) => h.trainLoss);
  assert.ok(losses.at(-1)! < losses[0]! * 0.7, `loss falls: ${losses.map((l) => l.toFixed(3))}`);
  const after = learner.getWeights();
  for (const p of net.params) {
    const changed = after.get(p.name)!.some((v, i) => v !== before.get(p.name)![i]);
    const trainable = ['block_16', 'top', 'head'].includes(net.groups[p.group]!);
    assert.equal(changed, trainable, `${p.name} (${net.groups[p.group]}) ${trainable ? 'trains' : 'stays frozen'}`);
  }
});

test('backboneNetwork: a group that does not exist is a typed error', async () => {
  const bb = await loadImageBackbone('mobilenet_v2');
  assert.throws(() => backboneNetwork(bb, { classes: 3, from: 'block_99' }), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION' && /block_16/.test(e.hint));
  assert.throws(() => backboneNetwork(bb, { classes: 1 }), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION');
});

test('training-mode BatchNorm from primitive ops: gradients match finite differences in float64', async () => {
  const node = { name: 'bn', op: 'BatchNormalization', domain: '', inputs: [], outputs: [], attrs: { epsilon: { f: 1e-3 } } };
  const r = await assertGradcheck('batchNormTrain', (b, [x, s, o]) => {
    const { y, mean, unbiasedVar } = batchNormTrain(b, [x!, s!, o!], node);
    // Mix in the statistics too, so their gradients are checked as well.
    return b.add(b.reduceSum(b.mul(y, b.mul(y, y)), [0, 1, 2, 3], false), b.reduceSum(b.add(mean, unbiasedVar), [0], false));
  }, [input('x')([3, 2, 2, 3], { lo: -2, hi: 2 }), input('scale')([2], { lo: 0.5, hi: 1.5 }), input('bias')([2])]);
  assert.ok(r.checked > 20);
});

test('--bn train: trainable groups update their running statistics (momentum 0.1, unbiased variance); frozen groups keep theirs', async () => {
  const bb = await loadImageBackbone('mobilenet_v2');
  const x = await batch([64, 64]);
  const n = PHOTOS.length;
  const net = backboneNetwork(bb, { classes: 2, seed: 1, size: [64, 64], bn: 'train', from: 'block_16' });
  const g = bb.graph.clone();
  g.inputs = g.inputs.map((v) => ({ ...v, shape: ['N', 3, 'H', 'W'] }));
  // block_16's first BatchNorm reads the expand conv of the entry; later ones see batch-normalised inputs.
  g.outputs = [{ name: 'block_16_expand', dtype: 'float32', shape: null }, { name: net.fromTensor, dtype: 'float32', shape: null }];
  const s = await Session.create(g.prune(), { threads: 2 });
  const out = await s.run({ pixels: tensor('float32', [n, 3, 64, 64], x) });
  const act = out[net.fromTensor]!.data as Float32Array;
  const proj = out['block_16_expand']!.data as Float32Array; // the input of block_16_expand_BN, [n, 960, 2, 2]
  const learner = new Learner({ net, train: { x: act, y: Int32Array.from([0, 1, 1, 0]), n }, batchSize: n, threads: 2 });
  learner.freezeTo(net.groups.indexOf('block_16'));
  const before = learner.snapshotWeights();
  await learner.fit(1, { lr: 0 }); // lr 0: only the statistics move
  const after = learner.getWeights();
  const mean0 = before.get('block_16_expand_BN/moving_mean')!;
  const var0 = before.get('block_16_expand_BN/moving_variance')!;
  const mean1 = after.get('block_16_expand_BN/moving_mean')!;
  const var1 = after.get('block_16_expand_BN/moving_variance')!;
  let worst = 0;
  for (const c of [0, 7, 100, 959]) {
    const vals: number[] = [];
    for (let i = 0; i < n; i++) for (let k = 0; k < 4; k++) vals.push(proj[(i * 960 + c) * 4 + k]!);
    const m = vals.reduce((p, q) => p + q, 0) / vals.length;
    const v = vals.reduce((p, q) => p + (q - m) ** 2, 0) / (vals.length - 1);
    worst = Math.max(worst, Math.abs(mean1[c]! - (0.9 * mean0[c]! + 0.1 * m)) / (1e-3 + Math.abs(m)), Math.abs(var1[c]! - (0.9 * var0[c]! + 0.1 * v)) / (1e-3 + v));
  }
  assert.ok(worst < 1e-3, `running statistics vs formula: ${worst}`);
  // Trainable groups' statistics moved (block_16, top); the weights did not (lr 0).
  assert.ok(after.get('Conv_1_bn/moving_mean')!.some((v, i) => v !== before.get('Conv_1_bn/moving_mean')![i]));
  assert.deepEqual(after.get('Conv_1/kernel'), before.get('Conv_1/kernel'));
  // With block_16 frozen, its BatchNorms run in inference form and keep their statistics.
  learner.freezeTo(net.groups.indexOf('top'));
  const mid = learner.snapshotWeights();
  await learner.fit(1, { lr: 0 });
  assert.deepEqual(learner.getWeights().get('block_16_expand_BN/moving_mean'), mid.get('block_16_expand_BN/moving_mean'));
  assert.ok(learner.getWeights().get('Conv_1_bn/moving_variance')!.some((v, i) => v !== mid.get('Conv_1_bn/moving_variance')![i]));
  // Eval mode uses the updated running statistics, and so does the exported graph.
  const ev = await learner.evaluate({ x: act, y: Int32Array.from([0, 1, 1, 0]), n });
  const inf = await Session.create(learner.inferenceGraph('softmax'), { threads: 2 });
  const lg = (await inf.run({ input: tensor('float32', [n, 160, 2, 2], act) }))['logits']!.data as Float32Array;
  assert.ok(lg.every((v, i) => Math.abs(v - ev.logits[i]!) < 1e-4));
});

test('InceptionV3: groups start at the recorded block ends, so a cached prefix at the entry of mixed10 gives the same logits', async () => {
  const bb = await loadImageBackbone('inception_v3');
  assert.deepEqual(backboneGroups(bb).map((g) => g.entry), ['pixels', 'max_pooling2d_2', 'mixed2', 'mixed7', 'mixed8', 'mixed9']);
  const x = new Float32Array(2 * 3 * 299 * 299).map((_, i) => Math.sin(i * 0.01) * 0.5 + 0.5);
  const y = Int32Array.from([0, 1]);
  const full = backboneNetwork(bb, { classes: 2, seed: 3 });
  const top = backboneNetwork(bb, { classes: 2, seed: 3, from: 'mixed10' });
  assert.deepEqual(top.inputShape, [2048, 8, 8]);
  const a = (await new Learner({ net: full, train: { x, y, n: 2 }, threads: 2 }).evaluate({ x, y, n: 2 })).logits;
  const g = bb.graph.clone();
  g.outputs = [{ name: top.fromTensor, dtype: 'float32', shape: null }];
  const act = await run(g.prune(), { pixels: x }, { pixels: [2, 3, 299, 299] }, top.fromTensor);
  const b = (await new Learner({ net: top, train: { x: act, y, n: 2 }, threads: 2 }).evaluate({ x: act, y, n: 2 })).logits;
  assert.ok(b.every((v, i) => Math.abs(v - a[i]!) < 1e-4), `${a} vs ${b}`);
});
