import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from './builder.ts';
import { graphFlops, nodeFlops } from './flops.ts';
import { loadImageBackbone } from '../backbones/image.ts';

test('FLOPs of Conv (grouped, strided), ConvTranspose, Gemm (transposed) and batched MatMul, counted by hand', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2, 4, 8, 8]);
  const conv = b.op1('Conv', [x, b.input('w', 'float32', [6, 2, 3, 3])], { group: 2, strides: [2, 2], pads: [1, 1, 1, 1] }); // [2, 6, 4, 4]
  const dw = b.op1('Conv', [conv, b.input('wd', 'float32', [6, 1, 3, 3])], { group: 6, pads: [1, 1, 1, 1] }); // [2, 6, 4, 4]
  const ct = b.op1('ConvTranspose', [dw, b.input('wt', 'float32', [6, 3, 2, 2])], { strides: [2, 2] }); // [2, 3, 8, 8]
  const gemm = b.op1('Gemm', [b.input('a', 'float32', [5, 7]), b.input('bm', 'float32', [5, 3])], { transA: 1 }); // [7, 3]
  const mm = b.matmul(b.input('p', 'float32', [4, 2, 5]), b.input('q', 'float32', [5, 9])); // [4, 2, 9]
  b.output(b.add(b.reduceSum(ct, [0, 1, 2, 3], false), b.add(b.reduceSum(gemm, [0, 1], false), b.reduceSum(mm, [0, 1, 2], false))), 'out');
  const by = (op: string) => b.graph.nodes.filter((n) => n.op === op).map((n) => nodeFlops(b, n));
  assert.deepEqual(by('Conv'), [2 * (2 * 6 * 4 * 4) * (2 * 9), 2 * (2 * 6 * 4 * 4) * 9]);
  assert.deepEqual(by('ConvTranspose'), [2 * (2 * 6 * 4 * 4) * (3 * 4)]);
  assert.deepEqual(by('Gemm'), [2 * 7 * 3 * 5]);
  assert.deepEqual(by('MatMul'), [2 * 4 * 2 * 9 * 5]);
  assert.equal(graphFlops(b), [...by('Conv'), ...by('ConvTranspose'), ...by('Gemm'), ...by('MatMul')].reduce((s, v) => s + v, 0));
});

test('MobileNetV2 at 224x224: about 300M multiply-adds per image, as published', async () => {
  const bb = await loadImageBackbone('mobilenet_v2');
  const b = new GraphBuilder(bb.graph.clone(), { [bb.inputName]: [1, 3, 224, 224] });
  const macs = graphFlops(b) / 2;
  // 300M for the 1000-class network; this backbone has no classifier (1280 x 1000 = 1.28M of them).
  assert.ok(macs > 290e6 && macs < 305e6, `${(macs / 1e6).toFixed(1)}M multiply-adds`);
});
