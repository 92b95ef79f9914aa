import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FeatureCache, contentKey } from './cache.ts';

const root = mkdtempSync(join(tmpdir(), 'graft-fcache-'));
const key = { backboneSha256: 'abc', cut: 'pool', preprocess: { size: [224, 224] } };

test('stores and reloads vectors across instances, keyed by content', () => {
  const a = new FeatureCache(key, root);
  const k1 = contentKey(new TextEncoder().encode('image one'));
  const k2 = contentKey(new TextEncoder().encode('image two'));
  assert.notEqual(k1, k2);
  assert.equal(a.get(k1), null);
  a.putMany([[k1, Float32Array.from([1, 2, 3])], [k2, Float32Array.from([4, 5, 6])]]);
  const b = new FeatureCache(key, root); // a new run
  assert.equal(b.size, 2);
  assert.deepEqual(Array.from(b.get(k2)!), [4, 5, 6]);
  assert.equal(b.hits, 1);
  // A different cut or preprocessing is a different namespace.
  assert.equal(new FeatureCache({ ...key, cut: 'block_13' }, root).size, 0);
  assert.equal(new FeatureCache({ ...key, preprocess: { size: [160, 160] } }, root).size, 0);
  // A variant (e.g. an augmentation seed) gives another key for the same bytes.
  assert.notEqual(contentKey(new TextEncoder().encode('image one'), 'aug:1'), k1);
});

test('a damaged shard is ignored rather than trusted', () => {
  const c = new FeatureCache({ ...key, cut: 'damaged' }, root);
  c.putMany([['x', Float32Array.from([1])]]);
  writeFileSync(join(c.dir, 'shard-zzz.safetensors'), 'garbage');
  const d = new FeatureCache({ ...key, cut: 'damaged' }, root);
  assert.equal(d.size, 1);
  assert.deepEqual(Array.from(d.get('x')!), [1]);
  assert.ok(readdirSync(c.dir).every((f) => !f.includes('.tmp-')), 'no temp files left behind');
  assert.throws(() => c.putMany([['nan', Float32Array.from([NaN])]]), { code: 'E_DIVERGED' });
});
