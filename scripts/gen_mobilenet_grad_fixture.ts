/**
 * Inputs for the whole-network gradient check of MobileNetV2 against PyTorch (issue 4). Writes to
 * OUT (default /tmp/graft-mobilenet-grad):
 *   model.onnx  the converted MobileNetV2 cut at 'features' (1280-d, average-pooled) plus a seeded linear
 *               head to 5 classes (Gemm, linear.weight [1280, 5], linear.bias [5]); every weight is an
 *               initializer; input `pixels` [N, 3, 224, 224], output `logits` [N, 5]
 *   pixels.f32  four real photos from fixtures/images, prepared with the backbone's own preprocessing
 *               (float32 little-endian, [4, 3, 224, 224])
 *   meta.json   labels, image names, shapes and the sha256 of the weights and pixels
 * then scripts/gen_mobilenet_grad_fixture.py interprets model.onnx with torch in float64 and writes
 * fixtures/torch/mobilenet_v2_grads.json, which src/backbones/trainable.mobilenet.test.ts checks graft
 * against. Both that test and this script build the graph and the batch with the functions exported here.
 *
 *   npx tsx scripts/gen_mobilenet_grad_fixture.ts [OUT]
 *   /usr/bin/python3 scripts/gen_mobilenet_grad_fixture.py [OUT]
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type ImageBackbone, findCut, loadImageBackbone, prefixGraph } from '../src/backbones/image.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import type { Dim, Graph } from '../src/graph/ir.ts';
import { tensor, toBytes } from '../src/graph/tensor.ts';
import { prepareImage } from '../src/data/images.ts';

export const CLASSES = 5;
export const CUT = 'features';
/**
 * Four photos (JPEG, WebP, and one with an EXIF rotation), and their labels. flower-alpha.png is left out:
 * its transparent half is flat, where one depthwise channel of block_2 multiplies a constant by a kernel
 * that sums to about 0: -1.4e-8 in float64, +1.4e-7 in float32, 1174 activations on the ReLU6 kink at once.
 */
export const IMAGES = ['tfjs-flower.jpg', 'china.jpg', 'flower.webp', 'china-orient6.jpg'];
export const LABELS = [0, 3, 1, 4];
/** Streams of hashUniform: the head's weight and bias, and the three projection vectors. */
export const HEAD_SEEDS = { weight: 101, bias: 102 };
export const PROJ_SEEDS = [1, 2, 3];

/**
 * The fixture's pseudo-random numbers (scripts/gen_mobilenet_grad_fixture.py has the same function):
 * element i of stream `seed` is a 32-bit integer hash of (i, seed), mapped to [-1, 1). All arithmetic
 * is modulo 2^32:
 *   h = i * 0x9E3779B1 + seed * 0x85EBCA77 + 1
 *   h ^= h >> 16;  h *= 0x7FEB352D;  h ^= h >> 15;  h *= 0x846CA68B;  h ^= h >> 16   (lowbias32)
 *   u = h / 2^31 - 1
 * Stateless, so numpy computes a whole vector at once and no generator state has to match.
 */
export function hashUniform(i: number, seed: number): number {
  let h = (Math.imul(i, 0x9e3779b1) + Math.imul(seed, 0x85ebca77) + 1) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return (h >>> 0) / 2147483648 - 1;
}

/** n values of stream `seed`, times `scale`. */
export function hashVector(n: number, seed: number, scale = 1): Float64Array {
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = scale * hashUniform(i, seed);
  return v;
}

/** The head: weight [inputDim, classes] (Gemm without transB, as graft's linear head) and bias. */
export function headWeights(inputDim: number): { weight: Float32Array; bias: Float32Array } {
  return {
    weight: Float32Array.from(hashVector(inputDim * CLASSES, HEAD_SEEDS.weight, 0.05)),
    bias: Float32Array.from(hashVector(CLASSES, HEAD_SEEDS.bias, 0.1)),
  };
}

/**
 * The backbone up to the cut, plus the head, as one builder: input bb.inputName [batch, 3, H, W],
 * output `logits` [batch, 5]. Weights are initializers under their backbone names, the head's are
 * `linear.weight` and `linear.bias` (the names backboneNetwork gives them).
 */
export function gradModel(bb: ImageBackbone, batch: Dim = 'N'): GraphBuilder {
  const cut = findCut(bb, CUT);
  const [h, w] = bb.preprocess.size;
  const g = prefixGraph(bb, [cut]);
  g.name = 'mobilenet_v2_features_linear5';
  g.inputs = g.inputs.map((v) => ({ ...v, shape: [batch, 3, h, w] }));
  const b = new GraphBuilder(g);
  b.graph.outputs = [];
  const d = cut.shape[0]!;
  const head = headWeights(d);
  const W = b.init('linear.weight', tensor('float32', [d, CLASSES], head.weight));
  const B = b.init('linear.bias', tensor('float32', [CLASSES], head.bias));
  b.output(b.op1('Gemm', [b.sym(cut.tensor), W, B], {}, { outputs: ['logits'] }));
  return b;
}

/**
 * sha256 over every initializer, in name order: utf8(name) "\n" dims joined by "," "\n" raw
 * little-endian bytes. The Python script recomputes it from the ONNX file.
 */
export function weightsSha256(g: Graph): string {
  const h = createHash('sha256');
  for (const name of [...g.initializers.keys()].sort()) {
    const t = g.initializers.get(name)!;
    h.update(`${name}\n${t.dims.join(',')}\n`);
    h.update(toBytes(t));
  }
  return h.digest('hex');
}

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** The batch: the photos prepared as the backbone prepares its input, [4, 3, H, W]. */
export async function photoBatch(bb: ImageBackbone): Promise<Float32Array> {
  const [h, w] = bb.preprocess.size;
  const per = 3 * h * w;
  const x = new Float32Array(IMAGES.length * per);
  for (let i = 0; i < IMAGES.length; i++) {
    x.set(await prepareImage(new URL(`../fixtures/images/${IMAGES[i]}`, import.meta.url).pathname, bb.preprocess), i * per);
  }
  return x;
}

async function main(): Promise<void> {
  const out = process.argv[2] ?? '/tmp/graft-mobilenet-grad';
  mkdirSync(out, { recursive: true });
  const bb = await loadImageBackbone('mobilenet_v2');
  const b = gradModel(bb);
  const x = await photoBatch(bb);
  const pixels = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  writeFileSync(join(out, 'model.onnx'), b.graph.toBytes());
  writeFileSync(join(out, 'pixels.f32'), pixels);
  const [h, w] = bb.preprocess.size;
  const meta = {
    backbone: bb.id, backbone_sha256: bb.sha256, cut: CUT, classes: CLASSES, images: IMAGES, labels: LABELS,
    pixels_shape: [IMAGES.length, 3, h, w], pixels_sha256: sha256(pixels), weights_sha256: weightsSha256(b.graph),
    head_seeds: HEAD_SEEDS, proj_seeds: PROJ_SEEDS,
  };
  writeFileSync(join(out, 'meta.json'), `${JSON.stringify(meta, null, 1)}\n`);
  console.log(`wrote ${out}/model.onnx (${b.graph.nodes.length} nodes, ${b.graph.initializers.size} initializers), pixels.f32, meta.json`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
