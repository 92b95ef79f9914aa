/**
 * The feature cache: activations of a frozen backbone prefix, computed once and reused across runs and
 * commands. A namespace is keyed by backbone sha256, cut and preprocessing; inside it, each example is
 * keyed by the sha256 of its file's content (plus any variant, e.g. an augmentation seed). Entries are
 * stored in safetensors shards, each written atomically; an index is rebuilt from shard headers.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { GraftError } from '../errors.ts';
import { writeSafetensors } from '../io/safetensors.ts';

export interface CacheKey {
  backboneSha256: string;
  cut: string;
  preprocess: unknown;
}

export function defaultCacheDir(): string {
  return process.env['GRAFT_CACHE_DIR'] ?? join(homedir(), '.cache', 'graft');
}

interface Entry { shard: string; offset: number; length: number; dim: number }

export class FeatureCache {
  readonly dir: string;
  private index = new Map<string, Entry>();
  hits = 0;
  misses = 0;

  constructor(key: CacheKey, root = defaultCacheDir()) {
    const ns = createHash('sha256').update(JSON.stringify([key.backboneSha256, key.cut, key.preprocess])).digest('hex').slice(0, 32);
    this.dir = join(root, 'features', ns);
    mkdirSync(this.dir, { recursive: true });
    for (const f of readdirSync(this.dir)) if (f.endsWith('.safetensors') && !f.startsWith('.')) this.indexShard(f);
  }

  private indexShard(file: string): void {
    const path = join(this.dir, file);
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(8);
      if (readSync(fd, head, 0, 8, 0) !== 8) return; // a damaged shard is ignored; its entries are recomputed
      const hlen = Number(head.readBigUInt64LE(0));
      if (hlen > 1e8) return;
      const hbuf = Buffer.alloc(hlen);
      if (readSync(fd, hbuf, 0, hlen, 8) !== hlen) return;
      let header: Record<string, { shape: number[]; data_offsets: [number, number] }>;
      try { header = JSON.parse(hbuf.toString('utf8')); } catch { return; }
      for (const [k, v] of Object.entries(header)) {
        if (k === '__metadata__') continue;
        this.index.set(k, { shard: path, offset: 8 + hlen + v.data_offsets[0], length: v.data_offsets[1] - v.data_offsets[0], dim: v.shape[0]! });
      }
    } finally {
      closeSync(fd);
    }
  }

  has(key: string): boolean {
    return this.index.has(key);
  }

  get size(): number {
    return this.index.size;
  }

  /** The cached vector for a key, or null. */
  get(key: string): Float32Array | null {
    const e = this.index.get(key);
    if (!e) { this.misses++; return null; }
    const buf = Buffer.alloc(e.length);
    const fd = openSync(e.shard, 'r');
    try {
      if (readSync(fd, buf, 0, e.length, e.offset) !== e.length) { this.misses++; return null; }
    } finally {
      closeSync(fd);
    }
    this.hits++;
    return new Float32Array(buf.buffer, buf.byteOffset, e.length / 4).slice();
  }

  /** Stores many vectors in one new shard (atomic). */
  putMany(entries: [string, Float32Array][]): void {
    if (!entries.length) return;
    const arrays: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [k, v] of entries) {
      if (!v.every(Number.isFinite)) {
        throw new GraftError('E_DIVERGED', `feature vector for ${k.slice(0, 12)}… holds NaN or Infinity`, 'The backbone produced invalid activations; check the input preprocessing.');
      }
      arrays[k] = { shape: [v.length], data: v };
    }
    const name = `shard-${Date.now().toString(36)}-${process.pid}-${Math.random().toString(36).slice(2, 8)}.safetensors`;
    writeSafetensors(join(this.dir, name), arrays, { format: 'graft-features' });
    this.indexShard(name);
  }
}

/** Content key of a file's bytes (what makes an example the same across runs). */
export function contentKey(bytes: Uint8Array, variant = ''): string {
  const h = createHash('sha256').update(bytes);
  if (variant) h.update(`\0${variant}`);
  return h.digest('hex');
}

export function cacheExists(key: CacheKey, root = defaultCacheDir()): boolean {
  const ns = createHash('sha256').update(JSON.stringify([key.backboneSha256, key.cut, key.preprocess])).digest('hex').slice(0, 32);
  return existsSync(join(root, 'features', ns));
}
