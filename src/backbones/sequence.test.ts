/**
 * Sequence backbones through the backbone path (issue 17, item 4): a PyTorch LSTM and GRU encoder
 * (scripts/gen_rnn_fixtures.py: Linear + ReLU, two stacked recurrent layers, mean over time; exported with a
 * dynamic batch and no head) are loaded as downloaded ONNX files, grouped from the graph (the projection, then
 * one group per recurrent layer), built by backboneNetwork with graft's linear head, and one step's loss and
 * the gradient of every weight match PyTorch float64. Then the Learner fine-tunes one on real data (sklearn's
 * digits, each image a sequence of 8 rows of 8 pixels) with the fineTune policy: head first, then every group.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSequenceBackbone } from './sequence.ts';
import { backboneGroups, backboneNetwork } from './trainable.ts';
import { crossEntropy } from '../train/losses.ts';
import { lossAndGrads, relL2 } from '../train/testkit.ts';
import { Learner } from '../train/learner.ts';
import { planStages, runStages } from '../train/policies.ts';
import { loadDigits } from '../data/digits.ts';
import { stratifiedSplit } from '../data/split.ts';
import { GraftError } from '../errors.ts';

const DIR = new URL('../../fixtures/torch/rnn/', import.meta.url).pathname;

interface Fx {
  kind: string; dims: [number, number, number, number, number]; x: number[]; labels: number[]; loss: number; logits: number[];
  head: { weight: number[]; bias: number[] }; head_grads: { weight: number[]; bias: number[] };
  params: Record<string, { shape: number[]; value: number[]; grad: number[] }>;
}

for (const kind of ['lstm', 'gru']) {
  test(`a PyTorch ${kind.toUpperCase()} encoder as a sequence backbone: groups from the graph, one fine-tuning step matches PyTorch float64 (1e-4)`, async (t) => {
    const fx = JSON.parse(readFileSync(`${DIR}seq_${kind}.json`, 'utf8')) as Fx;
    const [, T, F, H, C] = fx.dims;
    const bb = loadSequenceBackbone(`${DIR}seq_${kind}.onnx`);
    assert.deepEqual(bb.inputShape, [T, F]);
    assert.deepEqual(bb.cuts.map((c) => [c.name, c.shape]), [['features', [H]]]);
    // The projection, then each recurrent layer on its own.
    const groups = backboneGroups(bb);
    t.diagnostic(`groups: ${groups.map((g) => `${g.name} (${g.params.length} tensors, ${g.paramCount})`).join(', ')}`);
    assert.deepEqual(groups.map((g) => g.name), ['block0', `${kind}0`, `${kind}1`]);
    assert.deepEqual(groups.map((g) => g.params.length), [2, 3, 3]);
    // PyTorch reads each layer's initial state's batch size from a tensor of the layer below (Shape of its
    // batch-first output), so no recurrent group has a single entry tensor: the network starts at the input.
    assert.deepEqual(groups.map((g) => g.entry), ['x', null, null]);

    const net = backboneNetwork(bb, { classes: C, head: { kind: 'linear' }, seed: 0 });
    assert.deepEqual(net.groups, ['block0', `${kind}0`, `${kind}1`, 'head']);
    assert.deepEqual(net.inputShape, [T, F]);
    // Each PyTorch parameter is found among graft's by its value (exporters rename them: onnx::LSTM_193).
    const byTorch = new Map<string, string>();
    for (const [k, p] of Object.entries(fx.params)) {
      const hit = net.params.filter((q) => q.shape.join() === p.shape.join() && q.value.every((v, i) => Math.abs(v - p.value[i]!) <= 1e-6 * (1 + Math.abs(v))));
      assert.equal(hit.length, 1, `${k}: ${hit.length} graft weights hold its values`);
      byTorch.set(k, hit[0]!.name);
    }
    const trainable = net.params.filter((p) => !p.buffer).map((p) => p.name).sort();
    assert.deepEqual(trainable, [...byTorch.values(), 'linear.weight', 'linear.bias'].sort(), 'graft trains exactly the weights PyTorch does');
    // Kernels (projection, W and R) decay; biases do not.
    assert.deepEqual(net.params.filter((p) => p.decay).map((p) => p.name).sort(),
      [...Object.keys(fx.params).filter((k) => !/(bias|\.B)$/.test(k)).map((k) => byTorch.get(k)!), 'linear.weight'].sort());
    const hw = net.params.find((p) => p.name === 'linear.weight')!;
    assert.deepEqual(hw.shape, [H, C]);
    hw.value.set(fx.head.weight);
    net.params.find((p) => p.name === 'linear.bias')!.value.set(fx.head.bias);

    // One step as the Learner compiles it: the loss writes d loss / d logits, autodiff goes from the logits.
    const target = crossEntropy().targets(Int32Array.from(fx.labels), C);
    const r = await lossAndGrads(net, new Map(net.params.map((p) => [p.name, p.value])), Float32Array.from(fx.x), crossEntropy(), target);
    const lossErr = Math.abs(r.loss - fx.loss) / fx.loss;
    assert.ok(lossErr < 1e-4, `loss ${r.loss} vs PyTorch ${fx.loss}`);
    assert.ok(relL2(r.logits, fx.logits) < 1e-4, 'logits');
    const errs: string[] = [];
    const check = (label: string, got: number[], want: number[]) => {
      const e = relL2(got, want);
      errs.push(`${label} ${e.toExponential(1)}`);
      assert.ok(e < 1e-4, `${kind} ${label}: relative L2 error ${e.toExponential(2)} against PyTorch float64`);
    };
    for (const [k, p] of Object.entries(fx.params)) check(k, r.grad(byTorch.get(k)!), p.grad);
    check('head.weight', r.grad('linear.weight'), fx.head_grads.weight);
    check('head.bias', r.grad('linear.bias'), fx.head_grads.bias);
    t.diagnostic(`loss rel err ${lossErr.toExponential(1)}; gradients: ${errs.join(', ')}`);
  });
}

/** sklearn's digits as sequences: 8 time steps (rows) of 8 features (pixels / 16), stratified 75/25. */
function digitSequences(): { train: { x: Float32Array; y: Int32Array; n: number }; test: { x: Float32Array; y: Int32Array; n: number } } {
  const { rows, y } = loadDigits();
  const { train, val } = stratifiedSplit(y, 0.25, 0);
  const pick = (idx: Int32Array) => ({
    x: Float32Array.from(Array.from(idx).flatMap((i) => rows[i]!.map((v) => v / 16))), y: Int32Array.from(idx, (i) => y[i]!), n: idx.length,
  });
  return { train: pick(train), test: pick(val) };
}

test('the Learner fine-tunes a GRU sequence backbone on sklearn digits (rows as time steps): head first, then every group; it beats the frozen probe', async (t) => {
  const bb = loadSequenceBackbone(`${DIR}seq_gru.onnx`);
  const { train, test: held } = digitSequences();
  // A validation split out of the training rows, for the policy's fallback; the test rows are never seen.
  const { train: tr, val } = stratifiedSplit(train.y, 0.2, 1);
  const sub = (idx: Int32Array) => ({ x: Float32Array.from(Array.from(idx).flatMap((i) => Array.from(train.x.subarray(i * 64, i * 64 + 64)))), y: Int32Array.from(idx, (i) => train.y[i]!), n: idx.length });
  const net = backboneNetwork(bb, { classes: 10, seed: 0 });
  const learner = new Learner({ net, train: sub(tr), val: sub(val), batchSize: 32, seed: 0, threads: 1, optimizer: { kind: 'adamw', weightDecay: 0.01 } });
  try {
    const stages = planStages(net.groups, 'finetune', { epochs: 40, lr: 1e-2, lrMult: 0.7, freezeEpochs: 4, headLr: 1e-2 });
    assert.deepEqual(stages.map((s) => [s.name, s.trainFrom]), [['head', 3], ['fine-tune', 0]]);
    const log: string[] = [];
    const res = await runStages(learner, stages, (m) => log.push(m));
    const probeVal = res.stages[0]!.valAccuracy!;
    const acc = (await learner.evaluate({ ...held })).accuracy;
    t.diagnostic(`${log.join(' | ')}; head-only val ${probeVal.toFixed(3)}, fine-tuned val ${res.stages[1]!.valAccuracy!.toFixed(3)}, test ${acc.toFixed(3)} (${held.n} digits), kept ${res.kept}`);
    assert.equal(res.kept, 'fine-tune');
    // A random recurrent encoder's features give a weak probe; training every group must do much better.
    assert.ok(res.stages[1]!.valAccuracy! > probeVal + 0.1, `fine-tune val ${res.stages[1]!.valAccuracy} vs head-only ${probeVal}`);
    assert.ok(acc >= 0.9, `test accuracy ${acc}`);
  } finally {
    await learner.dispose();
  }
});

test('a sequence backbone whose recurrent layers have no single entry tensor: starting there is a typed error that says what to do', () => {
  const bb = loadSequenceBackbone(`${DIR}seq_lstm.onnx`);
  assert.throws(() => backboneNetwork(bb, { classes: 3, from: 'lstm1' }), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION' && /no single entry tensor/.test(e.message) && /Start from another group/.test(e.hint));
  assert.equal(backboneNetwork(bb, { classes: 3, from: 0 }).fromTensor, 'x');
});

test('sequence backbones: bad files and options are typed errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'graft-seq-'));
  try {
    // An image model is not a sequence model.
    const img = new URL('../../fixtures/torch/tiny_cnn.onnx', import.meta.url).pathname;
    assert.throws(() => loadSequenceBackbone(img), (e: unknown) => e instanceof GraftError && e.code === 'E_GRAPH_SHAPE' && /\[N, T, F\]/.test(e.message));
    // A fixed-length model refuses another length; a missing tensor as a cut is named.
    assert.throws(() => loadSequenceBackbone(`${DIR}lstm.onnx`, { length: 9 }), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION' && /5 steps/.test(e.hint));
    assert.throws(() => loadSequenceBackbone(`${DIR}seq_gru.onnx`, { cut: 'nope' }), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION' && /nope/.test(e.message));
    const bb = loadSequenceBackbone(`${DIR}seq_gru.onnx`);
    assert.throws(() => backboneNetwork(bb, { classes: 3, size: [8, 8] }), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION');
    assert.throws(() => backboneNetwork(bb, { classes: 3, cut: 'missing' }), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION');
    // A per-step output as a cut is pooled over time.
    const per = loadSequenceBackbone(`${DIR}seq_gru.onnx`, { cut: '/rnn2/Transpose_output_0' });
    const c = per.cuts.find((k) => k.name === '/rnn2/Transpose_output_0')!;
    assert.deepEqual(c.shape, [16]);
    assert.equal(c.description, 'mean over time');
    // A truncated file is refused before ORT sees it.
    const bad = join(dir, 'bad.onnx');
    copyFileSync(`${DIR}seq_gru.onnx`, bad);
    writeFileSync(bad, readFileSync(bad).subarray(0, 100));
    assert.throws(() => loadSequenceBackbone(bad), (e: unknown) => e instanceof GraftError && e.code === 'E_ONNX_PARSE');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
