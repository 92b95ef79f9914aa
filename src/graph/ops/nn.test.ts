import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { assertGradcheck, gradcheck, type CheckInput, type GradcheckOptions } from '../../runtime/gradcheck.ts';
import { GraphBuilder, type Sym } from '../builder.ts';
import { gradients } from '../autodiff.ts';
import { Session } from '../../runtime/session.ts';
import { type TensorData, tensor, toNumbers } from '../tensor.ts';
import type { AttrInput } from './registry.ts';
import { relL2 } from '../../train/testkit.ts';

type Attrs = Record<string, AttrInput>;
const F32: GradcheckOptions = { dtype: 'float32', maxElems: 32 };
const F64: GradcheckOptions = { maxElems: 32 };

async function check(name: string, build: (b: GraphBuilder, x: Sym[]) => Sym, inputs: CheckInput[], opts: GradcheckOptions) {
  const r = await gradcheck(build, inputs, opts);
  assert.ok(r.ok, `${name}: max abs err ${r.maxAbsErr}, max rel err ${r.maxRelErr} over ${r.checked} elements`);
  assert.ok(r.checked > 0);
}

const X = (shape: number[], extra: Partial<CheckInput> = {}): CheckInput => ({ name: 'x', shape, ...extra });
const W = (shape: number[]): CheckInput => ({ name: 'w', shape, lo: -0.5, hi: 0.5 });
const Bias = (n: number): CheckInput => ({ name: 'bias', shape: [n] });

/** Gradchecks an op taking x, w and optionally a bias (float32: ORT has no float64 Conv kernels). */
async function checkWeighted(op: string, cases: [string, number[], number[], Attrs, boolean][]) {
  for (const [name, xs, ws, attrs, bias] of cases) {
    const m = op === 'Conv' ? ws[0]! : ws[1]! * Number(attrs['group'] ?? 1);
    await check(`${op} ${name}`, (b, ins) => b.op1(op, ins, attrs), [X(xs), W(ws), ...(bias ? [Bias(m)] : [])], F32);
  }
}

test('Conv gradients, float32 finite differences', async () => {
  await checkWeighted('Conv', [
    ['3x3 s1 p1', [2, 3, 5, 5], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }, false],
    ['3x3 s2 p1 (output_padding)', [2, 3, 6, 7], [4, 3, 3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }, true],
    ['s3 with unread tail (weight grad cropped)', [1, 2, 8, 7], [3, 2, 3, 3], { strides: [3, 3] }, false],
    ['dilation 2', [1, 3, 7, 7], [2, 3, 3, 3], { dilations: [2, 2], pads: [1, 1, 1, 1] }, false],
    ['dilation 2 stride 2', [1, 2, 8, 9], [3, 2, 3, 3], { dilations: [2, 2], strides: [2, 2], pads: [2, 1, 2, 1] }, false],
    ['group 2', [2, 4, 5, 5], [6, 2, 3, 3], { group: 2, pads: [1, 1, 1, 1] }, true],
    ['depthwise', [2, 4, 6, 6], [4, 1, 3, 3], { group: 4, pads: [1, 1, 1, 1] }, false],
    ['depthwise x2 stride 2', [2, 3, 6, 6], [6, 1, 3, 3], { group: 3, strides: [2, 2], pads: [1, 1, 1, 1] }, true],
    ['1x1', [2, 5, 4, 4], [3, 5, 1, 1], {}, true],
    ['asymmetric pads', [1, 3, 5, 6], [2, 3, 3, 3], { pads: [0, 1, 2, 0] }, true],
    ['rectangular kernel and strides', [1, 2, 6, 7], [3, 2, 2, 3], { strides: [1, 2] }, false],
    ['SAME_UPPER s2', [1, 2, 6, 7], [3, 2, 3, 3], { auto_pad: 'SAME_UPPER', strides: [2, 2] }, false],
    ['SAME_LOWER s2 even kernel', [1, 2, 5, 6], [3, 2, 4, 4], { auto_pad: 'SAME_LOWER', strides: [2, 2] }, false],
    ['VALID s2', [1, 2, 6, 6], [3, 2, 3, 3], { auto_pad: 'VALID', strides: [2, 2] }, false],
    ['1-D s2', [2, 3, 9], [4, 3, 3], { strides: [2], pads: [1, 1] }, true],
    ['1-D group 2 dilation 2', [2, 4, 11], [4, 2, 3], { group: 2, dilations: [2], pads: [0, 2] }, false],
  ]);
});

test('ConvTranspose gradients, float32 finite differences', async () => {
  await checkWeighted('ConvTranspose', [
    ['s2 p1 output_padding 1', [2, 4, 4, 4], [4, 3, 3, 3], { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }, true],
    ['group 2 dilation 2', [1, 4, 3, 3], [4, 2, 3, 3], { group: 2, strides: [2, 2], dilations: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }, true],
    ['depthwise s2', [1, 3, 4, 4], [3, 1, 3, 3], { group: 3, strides: [2, 2], pads: [1, 1, 1, 1] }, false],
    ['output_shape (odd total pad)', [1, 2, 3, 4], [2, 3, 3, 3], { strides: [2, 2], output_shape: [6, 8] }, false],
    ['SAME_UPPER', [1, 2, 3, 4], [2, 3, 3, 3], { strides: [2, 2], auto_pad: 'SAME_UPPER' }, false],
    ['SAME_LOWER', [1, 2, 3, 4], [2, 3, 3, 3], { strides: [2, 2], auto_pad: 'SAME_LOWER' }, false],
    ['VALID', [1, 2, 3, 3], [2, 3, 2, 2], { strides: [2, 2], auto_pad: 'VALID' }, false],
    ['VALID with output_shape', [1, 2, 3, 4], [2, 3, 3, 3], { strides: [2, 2], auto_pad: 'VALID', output_shape: [6, 8] }, false],
    ['stride 3 dilation 2 output_padding', [1, 2, 3, 3], [2, 2, 3, 3], { strides: [3, 3], dilations: [2, 2], pads: [0, 1, 1, 0], output_padding: [2, 1] }, false],
    ['1-D s3', [2, 3, 5], [3, 2, 4], { strides: [3], pads: [1, 2] }, true],
  ]);
});

test('BatchNormalization (frozen statistics), float64 finite differences', async () => {
  for (const xs of [[2, 3, 4, 4], [5, 3], [2, 3, 5]]) {
    await check(`BatchNormalization rank ${xs.length}`, (b, ins) => b.op1('BatchNormalization', ins, { epsilon: 1e-3 }), [
      X(xs), { name: 'scale', shape: [3] }, { name: 'B', shape: [3] },
      { name: 'mean', shape: [3], wrt: false }, { name: 'var', shape: [3], lo: 0.5, hi: 1.5, wrt: false },
    ], F64);
  }
});

test('pooling gradients: AveragePool, GlobalAveragePool and GlobalMaxPool in float32 (ORT has no float64 kernels for them), MaxPool in float64', async () => {
  const avg: [string, number[], Attrs][] = [
    ['3x3 s2 p1 exclude pad', [1, 2, 6, 7], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }],
    ['3x3 s2 p1 include pad', [1, 2, 6, 7], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1 }],
    ['2x2 s2', [2, 2, 6, 6], { kernel_shape: [2, 2], strides: [2, 2] }],
    ['2x3 s1x2 asymmetric pads', [1, 2, 5, 7], { kernel_shape: [2, 3], strides: [1, 2], pads: [1, 0, 0, 2] }],
    ['ceil_mode exclude pad', [1, 2, 6, 6], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }],
    ['ceil_mode include pad', [1, 2, 6, 7], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: 1 }],
    ['SAME_UPPER', [1, 2, 5, 6], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' }],
    ['1-D', [2, 3, 7], { kernel_shape: [3], strides: [2], pads: [1, 1] }],
  ];
  for (const [name, xs, attrs] of avg) await check(`AveragePool ${name}`, (b, [x]) => b.op1('AveragePool', [x!], attrs), [X(xs)], F32);
  await check('GlobalAveragePool', (b, [x]) => b.op1('GlobalAveragePool', [x!]), [X([2, 3, 4, 5])], F32);
  await check('GlobalAveragePool 1-D', (b, [x]) => b.op1('GlobalAveragePool', [x!]), [X([2, 3, 7])], F32);
  await check('GlobalMaxPool', (b, [x]) => b.op1('GlobalMaxPool', [x!]), [X([2, 3, 4, 5])], F32);
  await check('GlobalMaxPool 1-D', (b, [x]) => b.op1('GlobalMaxPool', [x!]), [X([2, 3, 7])], F32);
  const max: [string, number[], Attrs][] = [
    ['2x2 s2', [2, 3, 6, 6], { kernel_shape: [2, 2], strides: [2, 2] }],
    ['3x3 s2 p1 (overlapping)', [1, 2, 7, 7], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }],
    ['dilation 2', [1, 2, 6, 6], { kernel_shape: [2, 2], dilations: [2, 2] }],
    ['ceil_mode', [1, 2, 6, 6], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }],
    ['SAME_UPPER', [1, 2, 5, 6], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' }],
    ['1-D', [2, 3, 9], { kernel_shape: [3], strides: [2], pads: [1, 1] }],
  ];
  for (const [name, xs, attrs] of max) await check(`MaxPool ${name}`, (b, [x]) => b.op1('MaxPool', [x!], attrs), [X(xs)], F64);
  await check('MaxPool float32', (b, [x]) => b.op1('MaxPool', [x!], { kernel_shape: [2, 2], strides: [2, 2] }), [X([1, 2, 4, 6])], F32);
});

test('inferred shapes match what ONNX Runtime computes', async () => {
  const cases: [string, number[], number[] | null, Attrs][] = [
    ['Conv', [1, 2, 7, 6], [3, 2, 3, 3], { auto_pad: 'SAME_UPPER', strides: [2, 3] }],
    ['Conv', [1, 4, 7, 6], [6, 2, 2, 3], { group: 2, dilations: [2, 1], pads: [0, 1, 1, 0] }],
    ['ConvTranspose', [1, 2, 3, 4], [2, 3, 3, 3], { strides: [2, 2], output_shape: [6, 8] }],
    ['ConvTranspose', [1, 2, 3, 4], [2, 3, 3, 3], { strides: [3, 2], auto_pad: 'SAME_LOWER' }],
    ['ConvTranspose', [1, 4, 3, 4], [4, 1, 3, 2], { group: 2, strides: [2, 1], pads: [1, 0, 0, 1], output_padding: [1, 0] }],
    ['MaxPool', [1, 2, 7, 6], null, { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }],
    // A last window starting in the end padding is dropped (ORT warns that ONNX's own inference disagrees).
    ['MaxPool', [1, 2, 5, 5], null, { kernel_shape: [2, 2], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 }],
    ['AveragePool', [1, 2, 7, 6], null, { kernel_shape: [2, 3], auto_pad: 'SAME_LOWER', strides: [2, 2] }],
    ['GlobalMaxPool', [2, 3, 4, 5], null, {}],
    ['GlobalAveragePool', [2, 3, 4], null, {}],
  ];
  for (const [op, xs, ws, attrs] of cases) {
    const b = new GraphBuilder();
    const feeds: Record<string, TensorData> = { x: tensor('float32', xs) };
    const ins = [b.input('x', 'float32', xs)];
    if (ws) {
      feeds['w'] = tensor('float32', ws);
      ins.push(b.input('w', 'float32', ws));
    }
    const outs = b.op(op, ins, attrs, { outputs: op === 'MaxPool' ? 2 : 1 });
    outs.forEach((o, i) => b.output(o, `y${i}`));
    const s = await Session.create(b.graph, { threads: 1 });
    const r = await s.run(feeds);
    await s.dispose();
    outs.forEach((o, i) => assert.deepEqual(r[`y${i}`]!.dims, o.shape, `${op} ${JSON.stringify(attrs)} output ${i}`));
  }
});

test('BatchNormalization in training mode: gradients through the batch statistics and the running-statistics outputs', async () => {
  for (const shape of [[4, 3, 2, 2], [5, 3]]) {
    await assertGradcheck(`BatchNormalization training ${shape}`, (b, [x, scale, bias, mean, vr]) => {
      const [y, rm, rv] = b.op('BatchNormalization', [x!, scale!, bias!, mean!, vr!], { training_mode: 1, momentum: 0.8, epsilon: 1e-3 }, { outputs: 3 });
      return b.op1('Concat', [y!, rm!, rv!].map((t) => b.reshape(t, [-1])), { axis: 0 });
    }, [
      { name: 'x', shape }, { name: 'scale', shape: [3], lo: 0.5, hi: 1.5 }, { name: 'bias', shape: [3] },
      { name: 'mean', shape: [3], wrt: false }, { name: 'var', shape: [3], lo: 0.5, hi: 1.5, wrt: false },
    ], { dtype: 'float32', eps: 1e-2, atol: 2e-3, rtol: 2e-2 });
  }
});

// ---- against PyTorch (float64 fixtures from scripts/gen_torch_fixtures.py), graft in float32 --------------

const FIXTURES = new URL('../../../fixtures/torch/', import.meta.url);
const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8')) as T;
const TOL = 1e-4;


interface Values { shape: number[]; values: number[] }
interface OpFixture {
  op: string; attrs: Attrs; inputs: (Values & { name: string })[]; wrt: string[];
  y_shape: number[]; y: number[]; R: number[]; grads: Record<string, number[]>;
}

const OP_CASES = [
  'conv3x3_s1_p1', 'conv3x3_s2_p1', 'conv3x3_dil2', 'conv_group2', 'conv_depthwise', 'conv_depthwise_s2_mult2', 'conv1x1',
  'conv_bias_asym_pads', 'conv1d_s2', 'convT_s2_outpad1', 'convT_group2_dil2', 'avgpool3x3_s2_p1_incl0', 'avgpool3x3_s2_p1_incl1',
  'maxpool2x2_s2', 'maxpool3x3_s2_p1', 'batchnorm_eval', 'global_avgpool',
];

test('op gradients match PyTorch float64 to 1e-4 relative L2', async (t) => {
  const onDisk = readdirSync(FIXTURES).filter((f) => f.startsWith('nn_op_')).map((f) => f.slice(6, -5)).sort();
  assert.deepEqual(onDisk, [...OP_CASES].sort(), 'fixtures/torch/nn_op_*.json and OP_CASES differ; rerun scripts/gen_torch_fixtures.py');
  let worst = 0;
  for (const name of OP_CASES) {
    const fx = load<OpFixture>(`nn_op_${name}`);
    const b = new GraphBuilder();
    const feeds: Record<string, TensorData> = {};
    const ins = fx.inputs.map((i) => {
      feeds[i.name] = tensor('float32', i.shape, i.values);
      return b.input(i.name, 'float32', i.shape);
    });
    const y = b.op1(fx.op, ins, fx.attrs);
    assert.deepEqual(y.shape, fx.y_shape, name);
    const loss = b.op1('ReduceSum', [b.mul(y, b.init('R', tensor('float32', fx.y_shape, fx.R)))], { keepdims: 0 });
    const grads = gradients(b, loss.name, fx.wrt);
    b.output(y, 'y');
    for (const w of fx.wrt) b.output(grads.get(w)!, `grad_${w}`);
    const s = await Session.create(b.graph, { threads: 1 });
    const r = await s.run(feeds);
    await s.dispose();
    const errs: Record<string, number> = { y: relL2(toNumbers(r['y']!), fx.y) };
    for (const w of fx.wrt) errs[w] = relL2(toNumbers(r[`grad_${w}`]!), fx.grads[w]!);
    const max = Math.max(...Object.values(errs));
    worst = Math.max(worst, max);
    t.diagnostic(`${name}: max rel L2 ${max.toExponential(2)}`);
    assert.ok(max < TOL, `${name}: relative L2 errors ${JSON.stringify(errs)}`);
  }
  t.diagnostic(`worst op case: ${worst.toExponential(2)}`);
});

interface CompositeFixture { x: Values; labels: number[]; params: Record<string, Values>; loss: number; grads: Record<string, number[]> }

/** Mean cross-entropy, -mean(sum(onehot * log_softmax(logits))), with the one-hot labels as a constant. */
function crossEntropy(b: GraphBuilder, logits: Sym, labels: number[]): Sym {
  const k = Number(logits.shape[1]);
  const onehot = b.constant(tensor('float32', [labels.length, k], labels.flatMap((l) => Array.from({ length: k }, (_, j) => (j === l ? 1 : 0)))));
  const ll = b.reduceSum(b.mul(onehot, b.op1('LogSoftmax', [logits], { axis: 1 })), [1], false);
  return b.neg(b.reduceMean(ll, [0], false));
}

async function checkComposite(t: { diagnostic(m: string): void }, name: string, forward: (b: GraphBuilder, x: Sym, p: Record<string, Sym>) => Sym) {
  const fx = load<CompositeFixture>(name);
  const b = new GraphBuilder();
  const feeds: Record<string, TensorData> = { x: tensor('float32', fx.x.shape, fx.x.values) };
  const x = b.input('x', 'float32', fx.x.shape);
  const p: Record<string, Sym> = {};
  for (const [k, v] of Object.entries(fx.params)) {
    feeds[k] = tensor('float32', v.shape, v.values);
    p[k] = b.input(k, 'float32', v.shape);
  }
  const loss = crossEntropy(b, forward(b, x, p), fx.labels);
  const trainable = Object.keys(fx.grads);
  const grads = gradients(b, loss.name, trainable);
  b.output(loss, 'loss');
  for (const k of trainable) b.output(grads.get(k)!, `grad_${k}`);
  const s = await Session.create(b.graph, { threads: 1 });
  const r = await s.run(feeds);
  await s.dispose();
  const errs: Record<string, number> = { loss: relL2(toNumbers(r['loss']!), [fx.loss]) };
  for (const k of trainable) errs[k] = relL2(toNumbers(r[`grad_${k}`]!), fx.grads[k]!);
  t.diagnostic(`${name}: ${Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
  for (const [k, v] of Object.entries(errs)) assert.ok(v < TOL, `${name} ${k}: relative L2 error ${v}`);
}

const linear = (b: GraphBuilder, h: Sym, w: Sym, bias: Sym) => b.op1('Gemm', [h, w, bias], { transB: 1 });

test('MLP 20-32-16-5 with cross-entropy: loss and gradients match PyTorch', async (t) => {
  await checkComposite(t, 'nn_mlp', (b, x, p) => {
    let h = x;
    for (let i = 0; i < 3; i++) {
      h = linear(b, h, p[`fc${i}.weight`]!, p[`fc${i}.bias`]!);
      if (i < 2) h = b.relu(h);
    }
    return h;
  });
});

test('Conv/BN/ReLU/MaxPool/Conv/GAP/Gemm block: loss and gradients match PyTorch', async (t) => {
  await checkComposite(t, 'nn_cnn_block', (b, x, p) => {
    let h = b.op1('Conv', [x, p['conv1.weight']!, p['conv1.bias']!], { pads: [1, 1, 1, 1] });
    h = b.op1('BatchNormalization', [h, p['bn.weight']!, p['bn.bias']!, p['buf.bn.running_mean']!, p['buf.bn.running_var']!], { epsilon: 1e-5 });
    h = b.op1('MaxPool', [b.relu(h)], { kernel_shape: [2, 2], strides: [2, 2] });
    h = b.op1('Conv', [h, p['conv2.weight']!, p['conv2.bias']!]);
    h = b.op1('Flatten', [b.op1('GlobalAveragePool', [h])], { axis: 1 });
    return linear(b, h, p['fc.weight']!, p['fc.bias']!);
  });
});

test('GlobalMaxPool and ReduceMax share the gradient evenly among tied maxima (as torch.amax does)', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [1, 2, 2, 2]);
  const pooled = b.op1('GlobalMaxPool', [x]);
  const rowMax = b.op1('ReduceMax', [x], { axes: [3], keepdims: 0 });
  const loss = b.add(b.op1('ReduceSum', [pooled], { keepdims: 0 }), b.op1('ReduceSum', [rowMax], { keepdims: 0 }));
  b.output(gradients(b, loss.name, ['x']).get('x')!, 'dx');
  const s = await Session.create(b.graph, { threads: 1 });
  // Channel 0: all four equal (each gets 1/4 from the pool and 1/2 from its row max); channel 1: one maximum.
  const r = await s.run({ x: tensor('float32', [1, 2, 2, 2], [3, 3, 3, 3, 1, 5, 2, 0]) });
  await s.dispose();
  assert.deepEqual(Array.from(r['dx']!.data as Float32Array), [0.75, 0.75, 0.75, 0.75, 0, 2, 1, 0]);
});
