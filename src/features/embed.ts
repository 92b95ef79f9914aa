/**
 * Image embedding through a frozen backbone prefix, with the feature cache: each file's content hash
 * is looked up per cut; only misses are decoded and run, in chunks, so memory stays bounded however
 * many images there are. One forward pass fills every requested cut.
 */
import { readFileSync } from 'node:fs';
import { checkAborted } from '../context.ts';
import { Session, type SessionOptions } from '../runtime/session.ts';
import { type ImageBackbone, prefixGraph } from '../backbones/image.ts';
import type { CutPoint } from '../backbones/types.ts';
import { decodeAll, type SkipSummary, type SkippedImage } from '../data/folders.ts';
import { FeatureCache, contentKey } from './cache.ts';

export interface EmbedOptions extends SessionOptions {
  /** Images per forward pass (default 32). */
  batch?: number;
  /** Use the on-disk feature cache (default true). */
  cache?: boolean;
  cacheRoot?: string;
  onSkip?: (s: SkippedImage, message: string) => void;
  onProgress?: (done: number, total: number) => void;
}

export interface Embedded {
  /** Per cut name: features of the kept images, row-major kept.length x dim. */
  features: Map<string, Float32Array>;
  dims: Map<string, number>;
  /** Indices (into the input paths) of the images that were embedded. */
  kept: Int32Array;
  skipped: SkipSummary;
  cacheHits: number;
  computed: number;
}

export async function embedImages(bb: ImageBackbone, paths: readonly string[], cuts: CutPoint[], o: EmbedOptions = {}): Promise<Embedded> {
  const batch = o.batch ?? 32;
  const useCache = o.cache ?? true;
  const caches = new Map(cuts.map((c) => [c.name, useCache ? new FeatureCache({ backboneSha256: bb.sha256, cut: c.name, preprocess: bb.preprocess }, o.cacheRoot) : null]));
  const dims = new Map(cuts.map((c) => [c.name, c.shape.reduce((a, b) => a * b, 1)]));
  const rows = new Map<string, Float32Array[]>(cuts.map((c) => [c.name, new Array<Float32Array>(paths.length)]));
  const skipped: SkipSummary = { count: 0, reasons: {}, files: [] };
  const have = new Uint8Array(paths.length);
  let session: Session | null = null;
  let hits = 0;
  let computed = 0;
  try {
    for (let from = 0; from < paths.length; from += batch) {
      checkAborted();
      const idx = [...Array(Math.min(batch, paths.length - from)).keys()].map((i) => from + i);
      const keys = new Map<number, string>();
      const miss: number[] = [];
      for (const i of idx) {
        let bytes: Buffer | null = null;
        try { bytes = readFileSync(paths[i]!); } catch { /* decodeAll reports it below */ }
        const key = bytes ? contentKey(bytes) : '';
        keys.set(i, key);
        const cached = key ? cuts.map((c) => caches.get(c.name)?.get(key) ?? null) : [];
        if (key && cached.every((v) => v)) {
          cuts.forEach((c, k) => (rows.get(c.name)![i] = cached[k]!));
          have[i] = 1;
          hits++;
        } else miss.push(i);
      }
      if (miss.length) {
        const dec = await decodeAll(miss.map((i) => paths[i]!), bb.preprocess, {
          onSkip: (s, m) => o.onSkip?.({ ...s, index: miss[s.index]! }, m),
        });
        for (const f of dec.skipped.files) {
          skipped.files.push({ ...f, index: miss[f.index]! });
          skipped.reasons[f.code] = (skipped.reasons[f.code] ?? 0) + 1;
          skipped.count++;
        }
        if (dec.kept.length) {
          session ??= await Session.create(prefixGraph(bb, cuts), o);
          const [, h, w] = [3, ...bb.preprocess.size];
          const out = await session.run({ [bb.inputName]: { dtype: 'float32', dims: [dec.kept.length, 3, h!, w!], data: dec.x } }, cuts.map((c) => c.tensor));
          const fresh = new Map<string, [string, Float32Array][]>(cuts.map((c) => [c.name, []]));
          Array.from(dec.kept).forEach((k, r) => {
            const i = miss[k]!;
            for (const c of cuts) {
              const d = dims.get(c.name)!;
              const v = (out[c.tensor]!.data as Float32Array).slice(r * d, (r + 1) * d);
              rows.get(c.name)![i] = v;
              fresh.get(c.name)!.push([keys.get(i)!, v]);
            }
            have[i] = 1;
            computed++;
          });
          for (const c of cuts) caches.get(c.name)?.putMany(fresh.get(c.name)!);
        }
      }
      o.onProgress?.(Math.min(from + batch, paths.length), paths.length);
    }
  } finally {
    await session?.dispose();
  }
  const kept = Int32Array.from([...have.keys()].filter((i) => have[i]));
  const features = new Map<string, Float32Array>();
  for (const c of cuts) {
    const d = dims.get(c.name)!;
    const x = new Float32Array(kept.length * d);
    kept.forEach((i, r) => x.set(rows.get(c.name)![i]!, r * d));
    features.set(c.name, x);
  }
  return { features, dims, kept, skipped, cacheHits: hits, computed };
}
