/**
 * Embedding benchmark, side by side in one run at equal thread counts: `graft embed` end to end
 * (decode, resize, MobileNetV2 forward) against ../shared/peers/torch_embed.py (PIL + torchvision) on the
 * same image folder; then graft's feature-cache hit path in images per second; and, with --memory N,
 * the peak RSS of embedding N images.
 * Usage: node --import tsx bench/embed.ts [--images 512] [--threads 1,2] [--memory 20000]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeMnistFolder } from '../src/data/mnist.ts';
import { findCut, loadImageBackbone } from '../src/backbones/image.ts';
import { embedImages } from '../src/features/embed.ts';
import { readImageFolder } from '../src/data/folders.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const n = Number(arg('images', '512'));
const threads = arg('threads', '1,2').split(',').map(Number);
const memory = Number(arg('memory', '0'));
const python = process.env['GRAFT_PYTHON'] ?? '/usr/bin/python3';
const peer = new URL('../../shared/peers/torch_embed.py', import.meta.url).pathname;

const dir = mkdtempSync(join(tmpdir(), 'graft-bench-embed-'));
const per = Math.ceil(n / 10);
await writeMnistFolder(dir, [...Array(10).keys()], per, 0);
const paths = readImageFolder(dir, { valFraction: 0 }).train.paths;
const bb = await loadImageBackbone('mobilenet_v2');
const cut = findCut(bb, 'features');
console.log(`embed benchmark: ${paths.length} PNG images (28x28 digits, resized to 224), MobileNetV2 pooled features`);
for (const t of threads) {
  let torch = 'n/a';
  let torchRate = NaN;
  if (existsSync(peer)) {
    const r = spawnSync(python, [peer, dir, String(t)], { encoding: 'utf8' });
    const m = /([\d.]+) img\/s/.exec(r.stdout);
    if (m) { torchRate = Number(m[1]); torch = `${torchRate.toFixed(1)} img/s`; } else torch = `failed: ${r.stderr.trim().split('\n').at(-1)}`;
  }
  const t0 = performance.now();
  await embedImages(bb, paths, [cut], { threads: t, cache: false });
  const rate = paths.length / ((performance.now() - t0) / 1000);
  console.log(`threads=${t}: graft ${rate.toFixed(1)} img/s end to end, torch ${torch}, ratio ${(rate / torchRate).toFixed(2)}x`);
}
const cacheRoot = join(dir, '.cache');
await embedImages(bb, paths, [cut], { threads: threads.at(-1)!, cacheRoot });
const t1 = performance.now();
const hit = await embedImages(bb, paths, [cut], { threads: threads.at(-1)!, cacheRoot });
console.log(`feature-cache hit path: ${(paths.length / ((performance.now() - t1) / 1000)).toFixed(0)} img/s (${hit.cacheHits} hits)`);
if (memory > 0) {
  const mdir = mkdtempSync(join(tmpdir(), 'graft-bench-mem-'));
  // mnist ships 10k digits; reuse them under two offsets' names to reach 20k distinct files.
  await writeMnistFolder(join(mdir, 'a'), [...Array(10).keys()], Math.min(1000, Math.ceil(memory / 20)), 0);
  await writeMnistFolder(join(mdir, 'b'), [...Array(10).keys()], Math.min(1000, Math.ceil(memory / 20)), 1000 - Math.min(1000, Math.ceil(memory / 20)));
  const all = [...readImageFolder(join(mdir, 'a'), { valFraction: 0 }).train.paths, ...readImageFolder(join(mdir, 'b'), { valFraction: 0 }).train.paths];
  const t2 = performance.now();
  await embedImages(bb, all, [cut], { threads: threads.at(-1)!, cacheRoot: join(mdir, '.cache') });
  console.log(`memory: embedded ${all.length} images in ${((performance.now() - t2) / 1000).toFixed(0)} s, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
}
