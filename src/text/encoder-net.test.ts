// The ONNX text encoder replayed as a trainable network (encoder-net.ts), on the tiny BERT of fixtures/textenc:
// loss, logits and every parameter's gradient against PyTorch in float64 (fixtures/torch/textenc_grads.json, from
// scripts/gen_textenc_grad_fixture.py), its layer groups, and the saved inference graph against the Learner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rng } from '../rng.ts';
import { type TensorData, tensor, toNumbers } from '../graph/tensor.ts';
import { Session } from '../runtime/session.ts';
import { type TextEncoder, loadTextEncoder } from '../backbones/textenc.ts';
import { type Loss, crossEntropy, tokenCrossEntropy, tokenTargets } from '../train/losses.ts';
import { Learner } from '../train/learner.ts';
import type { Network } from '../train/network.ts';
import { lossAndGrads, relL2 } from '../train/testkit.ts';
import { type EncoderTask, encoderGroups, encoderModelGraph, encoderNetwork, tokenRows } from './encoder-net.ts';

type GradRef = { full: number[] } | { rows: number[]; values: number[] } | { norm: number; proj: number[]; seed: number };
interface Case {
  name: string; task: EncoderTask; pooling: 'cls' | 'mean' | null; classes: number;
  /** Sequence: one class per example; token: one label per token, -100 for ignored tokens. */
  labels: number[] | number[][];
  head: Record<string, number[]>;
  loss: number; logits: number[]; grads: Record<string, GradRef>;
}
interface Fixture {
  seqLen: number; ids: number[][]; types: number[][];
  overrides: Record<string, number[]>;
  init: Record<string, { shape: number[]; sum: number; sumsq: number }>;
  cases: Case[];
}
const FIXTURE = JSON.parse(readFileSync(new URL('../../fixtures/torch/textenc_grads.json', import.meta.url), 'utf8')) as Fixture;
const MODEL = new URL('../../fixtures/textenc/tiny-bert', import.meta.url).pathname;
const TOL = 1e-4;
const L = FIXTURE.seqLen;
const N = FIXTURE.ids.length;

let encoder: Promise<TextEncoder> | undefined;
const tinyBert = () => (encoder ??= loadTextEncoder(MODEL));

/** The fixture's batch as x [N, 3, L]: ids padded with 0, the attention mask, token type ids. */
const batchX = () => tokenRows({ ids: FIXTURE.ids.map((r) => Int32Array.from(r)), typeIds: FIXTURE.types.map((r) => Int32Array.from(r)) }, L, 3, 0);

function netFor(enc: TextEncoder, c: Case, dropout = 0) {
  return encoderNetwork(enc, { classes: c.classes, seqLen: L, task: c.task, ...(c.pooling ? { pooling: c.pooling } : {}), dropout, seed: 0 });
}

/** The network's own (exported) weights, with the fixture's LayerNorm values and the case's head. */
function caseValues(net: Network, c: Case): Map<string, Float32Array> {
  const values = new Map(net.params.map((p) => [p.name, Float32Array.from(p.value)]));
  for (const [k, v] of [...Object.entries(FIXTURE.overrides), ...Object.entries(c.head)]) {
    const p = net.params.find((q) => q.name === k);
    assert.ok(p, `the network has no parameter ${k}`);
    assert.equal(v.length, p.value.length, k);
    values.set(k, Float32Array.from(v));
  }
  return values;
}

/** The fed target [N, outputs] and the loss of a case. */
function lossOf(c: Case): { loss: Loss; target: Float32Array } {
  if (c.task === 'token') {
    const loss = tokenCrossEntropy(c.classes);
    return { loss, target: loss.targets(tokenTargets((c.labels as number[][]).map((r) => Int32Array.from(r)), L, c.classes), c.classes) };
  }
  const loss = crossEntropy();
  return { loss, target: loss.targets(Int32Array.from(c.labels as number[]), c.classes) };
}




function refNorm(ref: GradRef): number {
  if ('norm' in ref) return ref.norm;
  return Math.hypot(...('full' in ref ? ref.full : ref.values));
}

function gradError(g: number[], ref: GradRef, shape: number[]): number {
  if ('full' in ref) return relL2(g, ref.full);
  if ('rows' in ref) {
    // The nonzero rows (tokens and positions in the batch); every other row's gradient must be zero too.
    const width = shape[1]!;
    const dense = new Float64Array(g.length);
    ref.rows.forEach((row, i) => dense.set(ref.values.slice(i * width, (i + 1) * width), row * width));
    return relL2(g, dense);
  }
  const norm = Math.sqrt(g.reduce((a, v) => a + v * v, 0));
  const r = rng(ref.seed);
  const proj = ref.proj.map(() => g.reduce((a, v) => a + v * (2 * r() - 1), 0));
  return Math.max(Math.abs(norm - ref.norm) / ref.norm, relL2(proj, ref.proj));
}

test("the network's parameters are the exported weights the reference used, under the same names", async () => {
  const enc = await tinyBert();
  const net = netFor(enc, FIXTURE.cases[0]!);
  assert.deepEqual(net.params.map((p) => p.name).sort(), [...Object.keys(FIXTURE.init), 'head.weight', 'head.bias'].sort());
  for (const p of net.params) {
    const ref = FIXTURE.init[p.name];
    if (!ref) continue;
    assert.deepEqual(p.shape, ref.shape, p.name);
    let sum = 0;
    let sumsq = 0;
    for (const v of p.value) {
      sum += v;
      sumsq += v * v;
    }
    assert.ok(Math.abs(sum - ref.sum) <= 1e-9 * Math.max(1, Math.sqrt(ref.sumsq * p.value.length)), `${p.name}: sum ${sum} vs ${ref.sum}`);
    assert.ok(Math.abs(sumsq - ref.sumsq) <= 1e-9 * ref.sumsq, `${p.name}: sum of squares ${sumsq} vs ${ref.sumsq}`);
  }
  // The five LayerNorms (embeddings, ln1 and ln2 of each layer) each have their own scale and shift.
  assert.equal(net.params.filter((p) => /(^|\.)ln\d?\.(weight|bias)$/.test(p.name)).length, 10);
  assert.deepEqual(Object.keys(FIXTURE.overrides).sort(), net.params.filter((p) => /(^|\.)ln\d?\.(weight|bias)$/.test(p.name)).map((p) => p.name).sort());
});

for (const c of FIXTURE.cases) {
  test(`${c.name}: loss, logits and every parameter's gradient match PyTorch (float64) to ${TOL} relative, padded batch with token types`, async (t) => {
    const enc = await tinyBert();
    const net = netFor(enc, c);
    assert.equal(net.outputs, c.task === 'token' ? L * c.classes : c.classes);
    assert.deepEqual(net.params.map((p) => p.name).sort(), Object.keys(c.grads).sort(), 'the fixture covers every parameter');
    const x = batchX();
    // The batch really has padding and second-segment tokens.
    assert.ok(x.some((v, i) => Math.floor(i / L) % 3 === 1 && v === 0));
    assert.ok(x.some((v, i) => Math.floor(i / L) % 3 === 2 && v === 1));
    const { loss, target } = lossOf(c);
    const r = await lossAndGrads(net, caseValues(net, c), x, loss, target);
    const errs: Record<string, number> = { loss: Math.abs(r.loss - c.loss) / Math.abs(c.loss), logits: relL2(r.logits, c.logits) };
    // The key biases get a zero gradient (softmax is invariant to the q.b_k every score of a row gains): PyTorch's
    // is float64 round-off (~1e-17), graft's float32 round-off; those are held to TOL times the smallest nonzero
    // reference gradient of the case instead of a relative error.
    const norms = new Map(net.params.map((p) => [p.name, refNorm(c.grads[p.name]!)]));
    const largest = Math.max(...norms.values());
    const zero = net.params.filter((p) => norms.get(p.name)! < 1e-9 * largest).map((p) => p.name);
    assert.deepEqual(zero.sort(), ['layers.0.k.bias', 'layers.1.k.bias']);
    const smallest = Math.min(...[...norms].filter(([k]) => !zero.includes(k)).map(([, v]) => v));
    for (const p of net.params) {
      const g = r.grad(p.name);
      errs[p.name] = zero.includes(p.name) ? Math.hypot(...g) / smallest : gradError(g, c.grads[p.name]!, p.shape);
    }
    const worst = Object.entries(errs).filter(([k]) => k !== 'loss' && k !== 'logits' && !zero.includes(k)).sort((a, b) => b[1] - a[1])[0]!;
    t.diagnostic(`${c.name}: loss ${errs['loss']!.toExponential(2)}, logits ${errs['logits']!.toExponential(2)}, worst parameter ${worst[0]} ${worst[1].toExponential(2)}; `
      + `zero gradients ${zero.map((k) => `${k} ${errs[k]!.toExponential(2)}`).join(', ')}`);
    for (const [k, v] of Object.entries(errs)) assert.ok(v < TOL, `${c.name} ${k}: ${zero.includes(k) ? 'gradient norm (zero expected) over the smallest reference norm' : 'relative error'} ${v}`);
  });
}

test('encoderGroups: embeddings, layer0, layer1, holding every float weight (tied LayerNorms untied)', async () => {
  const enc = await tinyBert();
  const groups = encoderGroups(enc);
  assert.deepEqual(groups.map((g) => g.name), ['embeddings', 'layer0', 'layer1']);
  // Every float weight of the export, plus one copy per initializer the exporter tied through an Identity.
  let weights = 0;
  for (const t of enc.graph.initializers.values()) if (t.dtype === 'float32' && t.data.length >= 2) weights += t.data.length;
  for (const n of enc.graph.nodes) if (n.op === 'Identity' && enc.graph.initializers.has(n.inputs[0]!)) weights += enc.graph.initializers.get(n.inputs[0]!)!.data.length;
  const total = groups.reduce((a, g) => a + g.paramCount, 0);
  assert.equal(total, weights);
  for (const g of groups) assert.equal(g.paramCount, g.params.reduce((a, w) => a + FIXTURE.init[w]!.shape.reduce((x, d) => x * d, 1), 0), g.name);
  assert.equal(total, Object.values(FIXTURE.init).reduce((a, w) => a + w.shape.reduce((x, d) => x * d, 1), 0));
  // Named weights sit in their layer's group; the anonymous MatMul weights too (by their consumers).
  assert.deepEqual([...groups[0]!.params].sort(), ['ln.bias', 'ln.weight', 'position.weight', 'token_type.weight', 'word.weight']);
  for (const [i, g] of groups.slice(1).entries()) {
    assert.equal(g.params.length, 16, g.name);
    for (const w of g.params) assert.ok(w.startsWith(`layers.${i}.`) || w.startsWith('onnx::MatMul_'), `${w} in ${g.name}`);
  }
  const net = netFor(enc, FIXTURE.cases[0]!);
  assert.deepEqual(net.groups, ['embeddings', 'layer0', 'layer1', 'head']);
  assert.deepEqual(net.encoderGroups, groups);
});

test("the saved inference graph (int64 token ids) gives the Learner's eval-mode logits, sequence (cls, mean) and token tasks", async (t) => {
  const enc = await tinyBert();
  const x = batchX();
  const pad = (rows: number[][]) => tensor('int64', [N, L], rows.flatMap((r) => [...r, ...new Array<number>(L - r.length).fill(0)]));
  const feeds: Record<string, TensorData> = {
    [enc.inputs.ids]: pad(FIXTURE.ids),
    [enc.inputs.mask!]: pad(FIXTURE.ids.map((r) => r.map(() => 1))),
    [enc.inputs.types!]: pad(FIXTURE.types),
  };
  for (const c of FIXTURE.cases) {
    const net = netFor(enc, c, 0.1); // dropout in the network: evaluate runs without it
    const { loss } = lossOf(c);
    const y = c.task === 'token' ? tokenTargets((c.labels as number[][]).map((r) => Int32Array.from(r)), L, c.classes) : Int32Array.from(c.labels as number[]);
    const learner = new Learner({ net, train: { x, y, n: N }, loss, threads: 1 });
    const w = learner.getWeights();
    for (const [k, v] of caseValues(net, c)) w.set(k, v);
    const ev = await learner.evaluate({ x, y, n: N });
    await learner.dispose();
    const s = await Session.create(encoderModelGraph(enc, net, (n) => w.get(n)!), { threads: 1 });
    const out = await s.run(feeds, ['logits']);
    await s.dispose();
    assert.deepEqual(out['logits']!.dims, c.task === 'token' ? [N, L, c.classes] : [N, c.classes]);
    const got = toNumbers(out['logits']!);
    let diff = 0;
    for (let i = 0; i < got.length; i++) diff = Math.max(diff, Math.abs(got[i]! - ev.logits[i]!));
    t.diagnostic(`${c.name}: max |saved graph - Learner.evaluate| ${diff.toExponential(2)}`);
    assert.ok(diff < 1e-5, `${c.name}: max abs diff ${diff}`);
    // And both agree with PyTorch.
    assert.ok(relL2(ev.logits, c.logits) < TOL, `${c.name}: Learner logits vs PyTorch ${relL2(ev.logits, c.logits)}`);
    assert.ok(Math.abs(ev.loss - c.loss) < TOL * c.loss, `${c.name}: Learner loss ${ev.loss} vs PyTorch ${c.loss}`);
  }
});
