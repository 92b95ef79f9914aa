/**
 * Fine-tuning speed, side by side in one run at equal thread counts: graft against PyTorch
 * (../shared/peers/torch_mobilenet.py, Debian python3-torch python3-torchvision) on MobileNetV2 at 224x224,
 * batch 32, BatchNorm frozen (running statistics), AdamW (lr 1e-3, weight decay 0.01), 1000 classes, random
 * inputs as the peer uses:
 *   (a) a step over the last 2 blocks plus head (block_16, top, head; torch's features[17], features[18],
 *       classifier), with the full forward each step;
 *   (b) a full fine-tuning step (every group trainable);
 *   (c) graft only: an epoch of last-2-blocks fine-tuning from the pixels against one from the cached
 *       block_16 activations, plus the one-off cost of computing those activations with the frozen prefix.
 *       Printed beside it, the most the cache can give when both parts run equally fast: (P + T) / T, with
 *       P the prefix's forward FLOPs and T a cached step's (3 x the top's forward, less the input gradient
 *       of its first layer, which nothing needs); and the GFLOP/s each part reached.
 * The machine is shared, so the two sides alternate for --rounds rounds and each time is the best round.
 * PyTorch runs twice per round: with glibc's default allocator, which hands large blocks back to the OS so
 * that every step page-faults its activations again, and with that disabled (MALLOC_MMAP_MAX_=0); ratios are
 * against the faster of the two.
 * Usage: npm run bench:finetune [-- --threads 1,2 --rounds 2 --images 256 --steps 3 --torch no]
 * (threads default to GRAFT_THREADS, else 1; --torch no times graft alone).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadImageBackbone, type ImageBackbone } from '../src/backbones/image.ts';
import { backboneNetwork } from '../src/backbones/trainable.ts';
import { Learner } from '../src/train/learner.ts';
import { Session } from '../src/runtime/session.ts';
import { rng } from '../src/rng.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import { graphFlops, nodeFlops } from '../src/graph/flops.ts';
import { buildInferenceGraph } from '../src/train/compiled.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const peer = join(root, '..', 'shared', 'peers', 'torch_mobilenet.py');
const python = process.env['GRAFT_PYTHON'] ?? '/usr/bin/python3';
const opt = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const envThreads = Number(process.env['GRAFT_THREADS']);
const threadList = opt('threads', String(Number.isInteger(envThreads) && envThreads > 0 ? envThreads : 1)).split(',').map(Number);
const rounds = Number(opt('rounds', '2'));
const images = Number(opt('images', '256'));
const steps = Number(opt('steps', '3'));
const withTorch = opt('torch', 'yes') !== 'no';
const BATCH = 32;
const CLASSES = 1000;
const LR = 1e-3;

function randn(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() + r() + r() - 1.5) * 2);
}

interface TorchTimes { last2: number; full: number }
const TORCH_TUNED = { MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: String(2 ** 36), MALLOC_TOP_PAD_: String(2 ** 30) };

function torchRun(threads: number, tuned: boolean): TorchTimes {
  const env = { ...process.env, ...(tuned ? TORCH_TUNED : {}), OMP_NUM_THREADS: String(threads) };
  const py = spawnSync(python, [peer, String(threads)], { encoding: 'utf8', env });
  if (py.status !== 0) {
    console.error(`PyTorch side failed (install Debian python3-torch python3-torchvision): ${py.stderr.trim().split('\n').at(-1)}`);
    process.exit(1);
  }
  const ms = (label: string): number => {
    const m = py.stdout.match(new RegExp(`${label}[^\\n]*?([0-9.]+) ms/step`));
    if (!m) throw new Error(`no "${label}" line in the peer's output:\n${py.stdout}`);
    return Number(m[1]);
  };
  return { last2: ms('finetune last2\\+head'), full: ms('full finetune') };
}

/** Mean ms per step over `steps` steps after two warm-up steps (the first compiles the train step). */
async function graftStepMs(bb: ImageBackbone, trainFrom: 'block_16' | 0, threads: number): Promise<{ ms: number; cpuMs: number }> {
  const net = backboneNetwork(bb, { classes: CLASSES, seed: 0 });
  const x = randn(BATCH * 3 * 224 * 224, 1);
  const y = Int32Array.from({ length: BATCH }, (_, i) => (i * 37) % CLASSES);
  const l = new Learner({ net, train: { x, y, n: BATCH }, batchSize: BATCH, threads, optimizer: { kind: 'adamw' } });
  l.freezeTo(trainFrom === 0 ? 0 : net.groups.indexOf(trainFrom));
  l.lrs = net.groups.map(() => LR);
  for (let i = 0; i < 2; i++) await l.step(x, y, [i]);
  const c0 = process.cpuUsage();
  const t = performance.now();
  for (let i = 0; i < steps; i++) await l.step(x, y, [i]);
  const ms = (performance.now() - t) / steps;
  const c = process.cpuUsage(c0);
  await l.dispose();
  return { ms, cpuMs: (c.user + c.system) / 1000 / steps };
}

interface EpochTimes { prefixS: number; pixelsS: number; cachedS: number; lossDiff: number; prefixFlops: number; stepFlops: number }

/** (c): one epoch of last-2-blocks fine-tuning from the pixels, and from cached block_16 activations. */
async function cachedEpochs(bb: ImageBackbone, threads: number): Promise<EpochTimes> {
  const x = randn(images * 3 * 224 * 224, 2);
  const y = Int32Array.from({ length: images }, (_, i) => (i * 37) % CLASSES);
  const epoch = async (l: Learner): Promise<{ s: number; loss: number }> => {
    await l.fit(1, { lr: LR }); // warm-up epoch: compiles the train step, grows ORT's arena
    const t = performance.now();
    const h = await l.fit(1, { lr: LR });
    return { s: (performance.now() - t) / 1000, loss: h.at(-1)!.trainLoss };
  };

  const full = backboneNetwork(bb, { classes: CLASSES, seed: 0 });
  const lp = new Learner({ net: full, train: { x, y, n: images }, batchSize: BATCH, threads, optimizer: { kind: 'adamw' } });
  lp.freezeTo(full.groups.indexOf('block_16'));
  const pixels = await epoch(lp);
  await lp.dispose();

  // The frozen prefix, pixels to block_16's entry, run once over the data set (inference graph, weights baked in).
  const top = backboneNetwork(bb, { classes: CLASSES, seed: 0, from: 'block_16' });
  const t0 = performance.now();
  const g = bb.graph.clone();
  g.outputs = [{ name: top.fromTensor, dtype: 'float32', shape: ['N', ...top.inputShape] }];
  const prefix = await Session.create(g.prune(), { threads });
  const per = top.inputShape.reduce((a, b) => a * b, 1);
  const acts = new Float32Array(images * per);
  for (let i = 0; i < images; i += BATCH) {
    const m = Math.min(BATCH, images - i);
    const out = await prefix.run({ [bb.inputName]: { dtype: 'float32', dims: [m, 3, 224, 224], data: x.subarray(i * 3 * 224 * 224, (i + m) * 3 * 224 * 224) } }, [top.fromTensor]);
    acts.set(out[top.fromTensor]!.data as Float32Array, i * per);
  }
  await prefix.dispose();
  const prefixS = (performance.now() - t0) / 1000;

  // Work per batch: the prefix's forward, and a cached step (forward, input and weight gradients of every
  // product, except the input gradient of the layers that read the cached activations).
  const prefixFlops = graphFlops(new GraphBuilder(g.clone(), { [bb.inputName]: [BATCH, 3, 224, 224] }));
  const tb = new GraphBuilder(buildInferenceGraph(top, (n) => top.params.find((p) => p.name === n)!.value, 'none').graph, { input: [BATCH, ...top.inputShape] });
  const first = tb.graph.nodes.filter((n) => n.inputs[0] === 'input').reduce((a, n) => a + nodeFlops(tb, n), 0);
  const stepFlops = 3 * graphFlops(tb) - first;

  const lc = new Learner({ net: top, train: { x: acts, y, n: images }, batchSize: BATCH, threads, optimizer: { kind: 'adamw' } });
  const cached = await epoch(lc);
  await lc.dispose();
  return { prefixS, pixelsS: pixels.s, cachedS: cached.s, lossDiff: Math.abs(pixels.loss - cached.loss) / Math.abs(pixels.loss), prefixFlops, stepFlops };
}

const min = <T>(xs: T[], f: (x: T) => number): number => Math.min(...xs.map(f));
const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
const verdict = (r: number, goal: number) => `${r.toFixed(2)}x (goal ${goal.toFixed(1)}x: ${r >= goal ? 'met' : `missed by ${((1 - r / goal) * 100).toFixed(0)}%`})`;

const bb = await loadImageBackbone('mobilenet_v2');
console.log(`graft fine-tuning benchmark: MobileNetV2 224x224, batch ${BATCH}, BN frozen, AdamW, ${CLASSES} classes; ratios > 1 mean graft is faster`);
for (const threads of threadList) {
  const torchDefault: TorchTimes[] = [];
  const torchTuned: TorchTimes[] = [];
  const last2: { ms: number; cpuMs: number }[] = [];
  const full: { ms: number; cpuMs: number }[] = [];
  const epochs: EpochTimes[] = [];
  for (let r = 0; r < rounds; r++) {
    torchDefault.push(withTorch ? torchRun(threads, false) : { last2: NaN, full: NaN });
    last2.push(await graftStepMs(bb, 'block_16', threads));
    torchTuned.push(withTorch ? torchRun(threads, true) : { last2: NaN, full: NaN });
    full.push(await graftStepMs(bb, 0, threads));
    epochs.push(await cachedEpochs(bb, threads));
    const torchRound = withTorch ? `torch last2 ${torchDefault[r]!.last2.toFixed(0)}/${torchTuned[r]!.last2.toFixed(0)} ms, full ${torchDefault[r]!.full.toFixed(0)}/${torchTuned[r]!.full.toFixed(0)} ms; ` : '';
    process.stderr.write(`  threads=${threads} round ${r + 1}/${rounds}: ${torchRound}graft last2 ${last2[r]!.ms.toFixed(0)} ms, full ${full[r]!.ms.toFixed(0)} ms\n`);
  }
  const tl2 = { d: min(torchDefault, (t) => t.last2), t: min(torchTuned, (t) => t.last2) };
  const tfull = { d: min(torchDefault, (t) => t.full), t: min(torchTuned, (t) => t.full) };
  const gl2 = min(last2, (s) => s.ms);
  const gfull = min(full, (s) => s.ms);
  const prefixS = min(epochs, (e) => e.prefixS);
  const pixelsS = min(epochs, (e) => e.pixelsS);
  const cachedS = min(epochs, (e) => e.cachedS);
  console.log(`threads=${threads} (best of ${rounds} interleaved rounds; torch with default / tuned malloc)`);
  const vsTorch = (t: { d: number; t: number }, g: number) => (withTorch
    ? `, torch ${fmt(t.d)} / ${fmt(t.t)}: ${(t.d / g).toFixed(2)}x / ${verdict(Math.min(t.d, t.t) / g, 1)}`
    : ' (PyTorch not run)');
  console.log(`  (a) last 2 blocks + head, full forward each step: graft ${fmt(gl2)} (cpu ${fmt(min(last2, (s) => s.cpuMs))})${vsTorch(tl2, gl2)}`);
  console.log(`  (b) full fine-tuning step: graft ${fmt(gfull)} (cpu ${fmt(min(full, (s) => s.cpuMs))})${vsTorch(tfull, gfull)}`);
  console.log(`  (c) last-2-blocks epoch over ${images} images: from pixels ${pixelsS.toFixed(2)} s, from cached block_16 activations ${cachedS.toFixed(2)} s: `
    + `${verdict(pixelsS / cachedS, 5)}; one-off prefix pass ${prefixS.toFixed(2)} s, so the cache pays for itself `
    + `${pixelsS > cachedS + prefixS ? 'within the first epoch' : `after ${Math.ceil(prefixS / (pixelsS - cachedS))} epochs`}; `
    + `train losses of the two epochs differ by ${Math.max(...epochs.map((e) => e.lossDiff)).toExponential(1)} (relative)`);
  const { prefixFlops: pf, stepFlops: sf } = epochs[0]!;
  const batches = Math.ceil(images / BATCH);
  const gflops = (f: number, s: number) => (f * batches / s / 1e9).toFixed(0);
  console.log(`      bound by arithmetic: prefix forward ${(pf / 1e9).toFixed(1)} GFLOP per batch, cached step ${(sf / 1e9).toFixed(1)} GFLOP, `
    + `so (P + T) / T = ${((pf + sf) / sf).toFixed(2)}x when both run equally fast; reached: cached steps ${gflops(sf, cachedS)} GFLOP/s, `
    + `prefix inside the from-pixels epoch ${gflops(pf, pixelsS - cachedS)} GFLOP/s`);
}
