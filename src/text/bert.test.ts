import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rng } from '../rng.ts';
import { tensor, toNumbers } from '../graph/tensor.ts';
import { Session } from '../runtime/session.ts';
import { crossEntropy } from '../train/losses.ts';
import { Learner } from '../train/learner.ts';
import { buildInferenceGraph } from '../train/compiled.ts';
import type { Network } from '../train/network.ts';
import { lossAndGrads, relL2 } from '../train/testkit.ts';
import { type BertConfig, bertEncoder, encodeTokens } from './bert.ts';

interface ParamSpec { name: string; shape: number[]; seed: number; lo: number; hi: number }
type GradRef = { full: number[] } | { norm: number; proj: number[] };
interface Case {
  name: string; config: BertConfig; seed: number; params: ParamSpec[];
  ids: number[][]; types: number[][] | null; labels: number[];
  loss: number; logits: number[]; grads: Record<string, GradRef>;
}
const FIXTURE = JSON.parse(readFileSync(new URL('../../fixtures/torch/bert_encoder.json', import.meta.url), 'utf8')) as { cases: Case[] };
const TOL = 1e-4;



/** Weights as scripts/gen_bert_fixture.py draws them: lo + (hi - lo) * u, u from mulberry32(seed), rounded to float32. */
function drawParams(net: Network, specs: ParamSpec[]): Map<string, Float32Array> {
  assert.deepEqual(specs.map((s) => s.name).sort(), net.params.map((p) => p.name).sort(), 'the fixture covers every parameter');
  const out = new Map<string, Float32Array>();
  for (const s of specs) {
    const p = net.params.find((q) => q.name === s.name)!;
    assert.deepEqual(p.shape, s.shape, s.name);
    const r = rng(s.seed);
    out.set(s.name, Float32Array.from({ length: p.value.length }, () => s.lo + (s.hi - s.lo) * r()));
  }
  return out;
}


async function logitsOf(net: Network, values: Map<string, Float32Array>, x: Float32Array, n: number): Promise<number[]> {
  return (await lossAndGrads(net, values, x, crossEntropy(), crossEntropy().targets(new Int32Array(n), net.outputs))).logits;
}

for (const fx of FIXTURE.cases) {
  test(`${fx.name}: loss, logits and every parameter's gradient match PyTorch (float64) to ${TOL} relative`, async (t) => {
    const net = bertEncoder(fx.config);
    const values = drawParams(net, fx.params);
    const x = encodeTokens(fx.ids, fx.config.seqLen, fx.types ? { segments: fx.types } : {});
    const r = await lossAndGrads(net, values, x, crossEntropy(), crossEntropy().targets(Int32Array.from(fx.labels), net.outputs));
    const errs: Record<string, number> = { loss: Math.abs(r.loss - fx.loss) / Math.abs(fx.loss), logits: relL2(r.logits, fx.logits) };
    for (const p of net.params) {
      const ref = fx.grads[p.name]!;
      const g = r.grad(p.name);
      if ('full' in ref) {
        errs[p.name] = relL2(g, ref.full);
      } else {
        // The norm, and the projections on the fixture's seeded directions (a relative L2 over the projections).
        const norm = Math.sqrt(g.reduce((a, v) => a + v * v, 0));
        const rr = rng(fx.seed * 1000 + 500 + fx.params.findIndex((s) => s.name === p.name));
        const proj = ref.proj.map(() => g.reduce((a, v) => a + v * (2 * rr() - 1), 0));
        errs[p.name] = Math.max(Math.abs(norm - ref.norm) / ref.norm, relL2(proj, ref.proj));
      }
    }
    const worst = Object.entries(errs).filter(([k]) => k !== 'loss' && k !== 'logits').sort((a, b) => b[1] - a[1])[0]!;
    t.diagnostic(`${fx.name}: loss ${errs['loss']!.toExponential(2)}, logits ${errs['logits']!.toExponential(2)}, worst parameter ${worst[0]} ${worst[1].toExponential(2)}`);
    for (const [k, v] of Object.entries(errs)) assert.ok(v < TOL, `${fx.name} ${k}: relative error ${v}`);
  });
}

const small: BertConfig = { vocabSize: 50, hidden: 16, layers: 2, heads: 2, intermediate: 32, seqLen: 12, maxPositions: 12, classes: 2, seed: 3 };

test('padding invariance: a sequence alone (unpadded) and padded in a batch gives the same logits, cls and mean pooling', async () => {
  for (const pooling of ['cls', 'mean'] as const) {
    const cfg: BertConfig = { ...small, pooling, initStd: 0.5 };
    const padded = bertEncoder(cfg);
    const alone = bertEncoder({ ...cfg, seqLen: 5 });
    const values = new Map(padded.params.map((p) => [p.name, p.value]));
    const seq = [7, 3, 41, 9, 22];
    const batch = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], seq, [30, 31]];
    const a = await logitsOf(alone, values, encodeTokens([seq], 5), 1);
    const p = await logitsOf(padded, values, encodeTokens(batch, 12, { padId: 0 }), 3);
    const inBatch = p.slice(2, 4);
    assert.ok(Math.abs(a[0]! - a[1]!) > 1e-3, 'the logits are not trivially equal');
    assert.ok(relL2(inBatch, a) < 1e-5, `${pooling}: alone ${a}, in a batch ${inBatch}`);
    // Changing a padded position's token id changes nothing.
    const other = encodeTokens(batch, 12, { padId: 0 });
    other[1 * 2 * 12 + 9] = 17;
    assert.ok(relL2((await logitsOf(padded, values, other, 3)).slice(2, 4), inBatch) < 1e-6);
  }
});

test('the exported inference graph (symbolic batch) gives the same logits for batches of 3 and 1', async () => {
  const net = bertEncoder({ ...small, pooling: 'cls', initStd: 0.3 });
  const values = new Map(net.params.map((p) => [p.name, p.value]));
  const seqs = [[4, 8, 15, 16, 23, 42], [1, 2, 3], [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]];
  const want = await logitsOf(net, values, encodeTokens(seqs, 12), 3);
  const g = buildInferenceGraph(net, (n) => values.get(n)!, 'softmax');
  const s = await Session.create(g.graph, { threads: 1 });
  const all = toNumbers((await s.run({ input: tensor('float32', [3, 2, 12], encodeTokens(seqs, 12)) }, ['logits']))['logits']!);
  const one = toNumbers((await s.run({ input: tensor('float32', [1, 2, 12], encodeTokens([seqs[1]!], 12)) }, ['logits']))['logits']!);
  await s.dispose();
  assert.ok(relL2(all, want) < 1e-6, `${all} vs ${want}`);
  assert.ok(relL2(one, want.slice(2, 4)) < 1e-5, `${one} vs ${want.slice(2, 4)}`);
});

test('the network: groups, parameters, input layout, config errors', () => {
  const net = bertEncoder(small);
  assert.deepEqual(net.groups, ['embeddings', 'layer0', 'layer1', 'head']);
  assert.deepEqual(net.inputShape, [2, 12]);
  assert.deepEqual(bertEncoder({ ...small, segments: true }).inputShape, [3, 12]);
  const group = (n: string) => net.groups[net.params.find((p) => p.name === n)!.group];
  assert.equal(group('embeddings.word'), 'embeddings');
  assert.equal(group('layer1.ffn.out.weight'), 'layer1');
  assert.equal(group('pooler.weight'), 'head');
  assert.equal(group('classifier.bias'), 'head');
  assert.ok(!net.params.find((p) => p.name === 'layer0.attn.ln.weight')!.decay);
  // Seeded: the same seed gives the same weights.
  assert.deepEqual(bertEncoder(small).params[0]!.value, net.params[0]!.value);
  assert.deepEqual(Array.from(encodeTokens([[5, 6]], 4)), [5, 6, 0, 0, 1, 1, 0, 0]);
  assert.throws(() => bertEncoder({ ...small, heads: 3 }), /not divisible/);
  assert.throws(() => bertEncoder({ ...small, seqLen: 20 }), /exceeds/);
  assert.throws(() => bertEncoder({ ...small, pooling: 'max' as 'cls' }), /Must be one of \[cls, mean\]/);
});

test('a few Learner steps on a toy task lower the loss (AdamW, dropout on), and gradual unfreezing trains only the top groups', async () => {
  // Label 1 when token 7 occurs in the sequence; lengths vary, so the mask matters.
  const r = rng(11);
  const n = 48;
  const seqs: number[][] = [];
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const len = 4 + Math.floor(r() * 8);
    const s = Array.from({ length: len }, () => 8 + Math.floor(r() * 40));
    if (i % 2) s[Math.floor(r() * len)] = 7;
    seqs.push(s);
    y[i] = i % 2;
  }
  const net = bertEncoder({ ...small, pooling: 'mean' });
  const data = { x: encodeTokens(seqs, small.seqLen), y, n };
  const l = new Learner({ net, train: data, batchSize: 16, seed: 1, threads: 1, optimizer: { kind: 'adamw', weightDecay: 0.01 } });
  const before = (await l.evaluate(data)).loss;
  await l.fit(8, { lr: 3e-3 });
  const after = (await l.evaluate(data)).loss;
  assert.ok(after < 0.8 * before, `loss ${before} -> ${after}`);
  // Freeze all but layer1 and the head: embeddings and layer0 stay as they are.
  l.freezeTo(2);
  const w0 = Float32Array.from(l.getWeights().get('layer0.attn.qkv.weight')!);
  const w1 = Float32Array.from(l.getWeights().get('layer1.attn.qkv.weight')!);
  await l.fit(1, { lr: 1e-3 });
  assert.deepEqual(l.getWeights().get('layer0.attn.qkv.weight'), w0);
  assert.notDeepEqual(l.getWeights().get('layer1.attn.qkv.weight'), w1);
  await l.dispose();
});
