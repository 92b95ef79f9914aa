import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCut, loadImageBackbone } from '../backbones/image.ts';
import { embedImages } from './embed.ts';
import { prepareImage } from '../data/images.ts';
import { Session } from '../runtime/session.ts';

const img = (f: string) => new URL(`../../fixtures/images/${f}`, import.meta.url).pathname;
const cacheRoot = mkdtempSync(join(tmpdir(), 'graft-embed-'));

test('mobilenet_v2 embeds real images at two cuts in one pass, caches them, and skips a corrupt file by name', async () => {
  const bb = await loadImageBackbone('mobilenet_v2', cacheRoot);
  assert.equal(bb.preprocess.size[0], 224);
  const cuts = [findCut(bb, 'block_12_add'), findCut(bb, 'features')];
  const paths = [img('tfjs-flower.jpg'), img('truncated.jpg'), img('china-orient6.jpg')];
  const skipped: string[] = [];
  const a = await embedImages(bb, paths, cuts, { cacheRoot, threads: 1, onSkip: (_s, m) => skipped.push(m) });
  assert.deepEqual(Array.from(a.kept), [0, 2]);
  assert.equal(a.skipped.count, 1);
  assert.match(skipped[0]!, /truncated\.jpg/);
  assert.equal(a.computed, 2);
  assert.equal(a.dims.get('features'), 1280);
  assert.equal(a.features.get('block_12_add')!.length, 2 * 96);

  // Reference: the whole converted graph on the same prepared image, read at the cut tensor.
  const g = bb.graph.clone();
  g.outputs = [{ name: findCut(bb, 'features').tensor, dtype: 'float32', shape: ['N', 1280] }];
  const s = await Session.create(g.prune(), { threads: 1 });
  const x = await prepareImage(paths[0]!, bb.preprocess);
  const ref = (await s.run({ pixels: { dtype: 'float32', dims: [1, 3, 224, 224], data: x } }))[g.outputs[0]!.name]!.data as Float32Array;
  await s.dispose();
  const f = a.features.get('features')!.subarray(0, 1280);
  let maxDiff = 0;
  for (let i = 0; i < 1280; i++) maxDiff = Math.max(maxDiff, Math.abs(f[i]! - ref[i]!));
  assert.ok(maxDiff < 1e-5, `batch vs single max diff ${maxDiff}`);

  // Second run: everything from the cache, identical values, the same backbone loaded from its ONNX cache.
  const bb2 = await loadImageBackbone('mobilenet_v2', cacheRoot);
  assert.equal(bb2.sha256, bb.sha256);
  const b = await embedImages(bb2, paths, cuts, { cacheRoot, threads: 1 });
  assert.equal(b.cacheHits, 2);
  assert.equal(b.computed, 0);
  assert.deepEqual(b.features.get('features'), a.features.get('features'));
});
