/**
 * The NCHWc lowering and the gradient formulations chosen for it (graph/ops/nn.ts, blocked()): float32
 * finite differences through the lowered graph, agreement with the plain formulations (themselves checked
 * against finite differences and PyTorch) on MobileNetV2's depthwise shapes, and what the rewrite leaves alone.
 * Where ORT has no blocked kernels (nchwcBlock() is 0) the graph is never rewritten; the tests say so and skip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, type Sym } from '../graph/builder.ts';
import { gradients } from '../graph/autodiff.ts';
import { gradcheck, rng } from './gradcheck.ts';
import { tensor, type TensorData } from '../graph/tensor.ts';
import type { AttrInput } from '../graph/ops/registry.ts';
import { lowerDepthwiseConvs, nchwcBlock } from './nchwc.ts';
import { Session } from './session.ts';
import { relL2 } from '../train/testkit.ts';

const block = await nchwcBlock();
const skip = block ? false : 'ORT has no NCHWc kernels on this machine (or GRAFT_NCHWC=0): nothing is lowered';

test('nchwcBlock: the channel block ORT pads to, a power of two, or 0', () => {
  assert.ok(block === 0 || (block >= 4 && (block & (block - 1)) === 0), `block ${block}`);
});

test('lowered depthwise Conv gradients, float32 finite differences', { skip }, async () => {
  const c = block;
  const cases: [string, number[], Record<string, AttrInput>, boolean][] = [
    ['3x3 s1 p1', [2, c, 6, 6], { pads: [1, 1, 1, 1] }, true],
    ['3x3 s2 pads 0,0,1,1 (TF SAME)', [2, c, 8, 8], { strides: [2, 2], pads: [0, 0, 1, 1] }, false],
    ['3x3 s2 p1, odd size', [1, c, 7, 7], { strides: [2, 2], pads: [1, 1, 1, 1] }, true],
    ['dilation 2', [1, c, 7, 7], { dilations: [2, 2], pads: [2, 2, 2, 2] }, false],
    ['5x5 s2 rectangular', [1, c, 9, 8], { strides: [2, 2], pads: [2, 1, 2, 2] }, false],
    ['s3 with unread tail', [1, c, 8, 7], { strides: [3, 3] }, false],
  ];
  for (const [name, xs, attrs, bias] of cases) {
    const k = name.startsWith('5x5') ? 5 : 3;
    const r = await gradcheck((b, ins) => b.op1('Conv', ins, { group: c, kernel_shape: [k, k], ...attrs }),
      [{ name: 'x', shape: xs }, { name: 'w', shape: [c, 1, k, k], lo: -0.5, hi: 0.5 }, ...(bias ? [{ name: 'bias', shape: [c] }] : [])],
      { dtype: 'float32', maxElems: 32, hints: { nchwcBlock: block }, lower: (b) => assert.ok(lowerDepthwiseConvs(b, block) >= 2, `${name}: lowered`) });
    assert.ok(r.ok && r.checked > 0, `${name}: max abs err ${r.maxAbsErr}, max rel err ${r.maxRelErr}`);
  }
});

/** Loss sum(conv(x, w) * R) and its gradients, built with or without the blocked formulations and lowering. */
async function convGrads(xs: number[], attrs: Record<string, AttrInput>, blocked: boolean): Promise<{ y: Float32Array; dx: Float32Array; dw: Float32Array; lowered: number; reorders: number }> {
  const r = rng(7);
  const c = xs[1]!;
  const b = new GraphBuilder();
  if (blocked) b.hints.nchwcBlock = block;
  const x = b.input('x', 'float32', xs);
  const w = b.input('w', 'float32', [c, 1, 3, 3]);
  const y = b.op1('Conv', [x, w], { group: c, kernel_shape: [3, 3], ...attrs });
  const ys = y.shape.map(Number);
  const rr = b.input('r', 'float32', ys);
  const loss = b.op1('ReduceSum', [b.mul(y, rr)], { keepdims: 0 });
  const g = gradients(b, loss.name, ['x', 'w']);
  b.output(y, 'y');
  b.output(g.get('x')!, 'dx');
  b.output(g.get('w')!, 'dw');
  const lowered = blocked ? lowerDepthwiseConvs(b, block) : 0;
  const reorders = b.graph.nodes.filter((n) => n.op === 'ReorderInput').length;
  const s = await Session.create(b.graph, { threads: 2 });
  const fill = (shape: number[]): TensorData => tensor('float32', shape, Float32Array.from({ length: shape.reduce((a, d) => a * d, 1) }, () => r() * 2 - 1));
  const out = await s.run({ x: fill(xs), w: fill([c, 1, 3, 3]), r: fill(ys) });
  await s.dispose();
  return { y: out['y']!.data as Float32Array, dx: out['dx']!.data as Float32Array, dw: out['dw']!.data as Float32Array, lowered, reorders };
}


test('blocked and plain depthwise gradients agree on MobileNetV2 shapes (batch 4)', { skip }, async (t) => {
  for (const [c, h, s] of [[96, 112, 2], [32, 112, 1], [144, 56, 1], [144, 56, 2], [192, 28, 2], [576, 14, 1], [960, 7, 1]] as const) {
    const attrs = s === 2 ? { strides: [2, 2], pads: [0, 0, 1, 1] } : { pads: [1, 1, 1, 1] };
    const plain = await convGrads([4, c, h, h], attrs, false);
    const fast = await convGrads([4, c, h, h], attrs, true);
    const err = { y: relL2(fast.y, plain.y), dx: relL2(fast.dx, plain.dx), dw: relL2(fast.dw, plain.dw) };
    t.diagnostic(`C=${c} ${h}x${h} stride ${s}: ${fast.lowered} convs lowered; rel L2 y ${err.y.toExponential(1)}, dX ${err.dx.toExponential(1)}, dW ${err.dw.toExponential(1)}`);
    assert.equal(fast.lowered, 3, 'forward, input gradient and weight gradient convs');
    // X for the forward conv and, again, for the weight gradient (a blocked copy kept from one pass to the
    // other would cost memory); dY once for both gradients.
    assert.equal(fast.reorders, 3, 'reorders of X (twice) and dY (once)');
    assert.ok(err.y < 1e-6 && err.dx < 1e-6 && err.dw < 1e-5, JSON.stringify(err));
  }
});

test('the lowering leaves constant (or constant-folded) kernels, grouped and ordinary convs, and odd channel counts alone', { skip }, () => {
  const b = new GraphBuilder();
  const c = block;
  const x = b.input('x', 'float32', [1, c, 8, 8]);
  const odd = b.input('odd', 'float32', [1, c + 4, 8, 8]);
  const y1 = b.op1('Conv', [x, b.init('wc', tensor('float32', [c, 1, 3, 3]))], { group: c, kernel_shape: [3, 3] });
  const y2 = b.op1('Conv', [x, b.input('wg', 'float32', [c, 2, 3, 3])], { group: c / 2, kernel_shape: [3, 3] });
  const y3 = b.op1('Conv', [x, b.input('wf', 'float32', [4, c, 3, 3])], { kernel_shape: [3, 3] });
  const y4 = b.op1('Conv', [odd, b.input('wo', 'float32', [c + 4, 1, 3, 3])], { group: c + 4, kernel_shape: [3, 3] });
  // A frozen conv with its BatchNorm folded in: the kernel is computed, but from constants only.
  const folded = b.mul(b.init('wk', tensor('float32', [c, 1, 3, 3])), b.init('scale', tensor('float32', [c, 1, 1, 1])));
  const y5 = b.op1('Conv', [x, folded], { group: c, kernel_shape: [3, 3] });
  for (const [i, y] of [y1, y2, y3, y4, y5].entries()) b.output(y as Sym, `y${i}`);
  const before = b.graph.nodes.map((n) => n.op);
  assert.equal(lowerDepthwiseConvs(b, block), 0);
  assert.deepEqual(b.graph.nodes.map((n) => n.op), before);
  assert.equal(lowerDepthwiseConvs(b, 0), 0);
});
