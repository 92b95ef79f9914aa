/**
 * One full fine-tuning step per architecture (issue 17, item 4), graft against PyTorch in one run at equal
 * thread counts: the torchvision backbones of fixtures/torch/arch/ (scripts/gen_arch_fixtures.py) loaded as
 * ONNX files, the whole network trainable with a new linear head, BatchNorm frozen, AdamW, batch 2 at the
 * fixtures' input size (64x64; the ViT 32x32), float32; and the LSTM/GRU sequence backbones of fixtures/torch/rnn
 * at batch 32. PyTorch runs bench/torch_archs.py (Debian python3-torch).
 * Usage: npx tsx bench/archs.ts [--threads 1] [--steps 5] [--only resnet18,seq_lstm] [--out bench/results/archs_step.md]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadImageBackbone } from '../src/backbones/image.ts';
import { loadSequenceBackbone } from '../src/backbones/sequence.ts';
import { backboneNetwork } from '../src/backbones/trainable.ts';
import { Learner } from '../src/train/learner.ts';
import { rng } from '../src/rng.ts';
import { GraphBuilder, type Sym } from '../src/graph/builder.ts';
import { gradients } from '../src/graph/autodiff.ts';
import { Session } from '../src/runtime/session.ts';
import { type TensorData, tensor } from '../src/graph/tensor.ts';
import { crossEntropy } from '../src/train/losses.ts';
import type { ForwardContext, Network } from '../src/train/network.ts';
import { ARCH_DIR, type WeightSpec, rebuildWeights } from '../scripts/gen_arch_fixtures.ts';

const opt = (k: string, d: string) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? process.argv[i + 1]! : d; };
const threads = Number(opt('threads', '1'));
const steps = Number(opt('steps', '5'));
const outPath = opt('out', '');
const ALL = ['resnet18', 'resnet50', 'mobilenet_v3_small', 'mobilenet_v3_large', 'efficientnet_b0', 'regnet_x_400mf', 'convnext_narrow', 'convnext_tiny', 'vit_tiny', 'swin_t', 'seq_lstm', 'seq_gru'];
/** --only a,b: a subset (the table then has only those rows). */
const names = opt('only', '') ? opt('only', '').split(',') : ALL;
/** The sequence backbones step on this many sequences (bench/torch_archs.py SEQ_BATCH). */
const SEQ_BATCH = 32;
const python = process.env['GRAFT_PYTHON'] ?? '/usr/bin/python3';

/**
 * Forward, loss and backward only (no optimizer): every weight an input, every gradient an output, one ORT
 * run. Against the full step it shows what the in-graph AdamW update and moving weights and slots in and out
 * of ORT cost.
 */
async function gradOnlyMs(net: Network, x: Float32Array, y: Int32Array, n: number): Promise<number> {
  const b = new GraphBuilder();
  const xs = b.input('x', 'float32', [n, ...net.inputShape]);
  const tg = b.input('target', 'float32', [n, net.outputs]);
  const params = new Map<string, Sym>();
  const feeds: Record<string, TensorData> = {
    x: tensor('float32', [n, ...net.inputShape], x),
    target: tensor('float32', [n, net.outputs], crossEntropy().targets(y, net.outputs)),
  };
  for (const p of net.params) {
    params.set(p.name, b.input(`param:${p.name}`, 'float32', p.shape));
    feeds[`param:${p.name}`] = tensor('float32', p.shape, p.value);
  }
  const ctx: ForwardContext = { training: true, param: (q) => params.get(q)!, dropout: (v) => v, trainable: () => true, setBuffer: () => {} };
  const logits = net.forward(b, xs, ctx);
  const { dlogits } = crossEntropy().build(b, logits, tg);
  const wrt = net.params.filter((p) => !p.buffer).map((p) => `param:${p.name}`);
  const g = gradients(b, logits.name, wrt, { seed: dlogits });
  wrt.forEach((w, i) => b.output(g.get(w)!, `g${i}`));
  const s = await Session.create(b.graph, { threads });
  const outs = wrt.map((_, i) => `g${i}`);
  for (let i = 0; i < 2; i++) await s.run(feeds, outs);
  const t = performance.now();
  for (let i = 0; i < steps; i++) await s.run(feeds, outs);
  const ms = (performance.now() - t) / steps;
  await s.dispose();
  return ms;
}

async function graftStepMs(name: string): Promise<{ ms: number; params: number; gradMs: number }> {
  if (name.startsWith('seq_')) {
    const net = backboneNetwork(loadSequenceBackbone(`fixtures/torch/rnn/${name}.onnx`), { classes: 10, head: { kind: 'linear' }, seed: 0 });
    const r = rng(1);
    const n = SEQ_BATCH;
    const x = Float32Array.from({ length: n * net.inputShape[0]! * net.inputShape[1]! }, () => r() * 2 - 1);
    return timeStep(net, x, Int32Array.from({ length: n }, (_, i) => i % 10), n);
  }
  const fx = JSON.parse(readFileSync(join(ARCH_DIR, `${name}.json`), 'utf8')) as { weights: Record<string, WeightSpec>; batch: number; size: number; classes: number };
  const dir = mkdtempSync(join(tmpdir(), `graft-bench-${name}-`));
  try {
    const bb = await loadImageBackbone(rebuildWeights(name, fx.weights, dir));
    const net = backboneNetwork(bb, { classes: fx.classes, head: { kind: 'linear' }, seed: 0, bn: 'frozen' });
    const r = rng(1);
    const n = fx.batch;
    const x = Float32Array.from({ length: n * 3 * fx.size * fx.size }, () => r() * 2 - 1);
    return await timeStep(net, x, Int32Array.from([0, 3].slice(0, n)), n);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A full Learner step (forward, loss, backward, in-graph AdamW), then the same without the optimizer. */
async function timeStep(net: Network, x: Float32Array, y: Int32Array, n: number): Promise<{ ms: number; params: number; gradMs: number }> {
  const l = new Learner({ net, train: { x, y, n }, batchSize: n, threads, optimizer: { kind: 'adamw' } });
  l.lrs = net.groups.map(() => 1e-4);
  for (let i = 0; i < 2; i++) await l.step(x, y, [0, 1]);
  const t = performance.now();
  for (let i = 0; i < steps; i++) await l.step(x, y, [0, 1]);
  const ms = (performance.now() - t) / steps;
  await l.dispose();
  const gradMs = await gradOnlyMs(net, x, y, n);
  return { ms, gradMs, params: net.params.filter((p) => !p.buffer).reduce((s, p) => s + p.value.length, 0) };
}

const py = spawnSync(python, ['bench/torch_archs.py', String(threads), String(steps), ...names], { encoding: 'utf8' });
if (py.status !== 0) throw new Error(`PyTorch side failed: ${py.stderr.trim().split('\n').at(-1)}`);
const torch = JSON.parse(py.stdout.trim().split('\n').at(-1)!) as Record<string, number | string>;
const rows: string[] = [];
for (const name of names) {
  const g = await graftStepMs(name);
  const t = torch[name] as number;
  rows.push(`| ${name} | ${g.params >= 1e5 ? `${(g.params / 1e6).toFixed(2)}M` : `${(g.params / 1e3).toFixed(1)}K`} | ${g.ms.toFixed(1)} | ${t.toFixed(1)} | ${(g.ms / t).toFixed(2)}x | ${g.gradMs.toFixed(1)} | ${(torch[`${name}:grad`] as number).toFixed(1)} |`);
  console.log(rows.at(-1));
}
const md = [
  `# One fine-tuning step per architecture, graft vs PyTorch ${torch['torch']}`,
  '',
  `Whole network trainable, new linear head, BatchNorm frozen, AdamW, batch 2, float32, ${threads} thread(s), mean of ${steps} steps after 2 warm-up steps;`,
  'input 64x64 (ViT 32x32); seq_lstm/seq_gru: the LSTM/GRU encoders of fixtures/torch/rnn (projection + 2 recurrent layers, 8 steps x 8 features, hidden 16), batch 32.',
  '`npx tsx bench/archs.ts` (weights: fixtures/torch/arch, rebuilt from their hash specs).',
  `Machine: ${(await import('node:os')).cpus()[0]?.model ?? '?'}, shared with other benchmarks (timings are noisy).`,
  'fwd+bwd only: the same step without the optimizer (graft: one ORT run, weights in, gradients out; torch: backward()).',
  '',
  '| architecture | params | graft ms/step | torch ms/step | graft / torch | graft fwd+bwd only | torch fwd+bwd only |',
  '|---|---|---|---|---|---|---|',
  ...rows,
  '',
].join('\n');
if (outPath) writeFileSync(outPath, md);
console.log(md);
