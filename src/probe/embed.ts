/**
 * `graft embed`: export images' features at a cut as safetensors: `features` [n, dim] and, in the
 * metadata, the backbone, the cut and the file of each row. A folder of class folders also gets
 * `labels` [n] and its classes; a folder with images directly in it, or a list of files, is embedded
 * without labels (embedding needs none).
 */
import { existsSync, statSync } from 'node:fs';
import { loadImageBackbone, findCut } from '../backbones/image.ts';
import { defaultBackbone } from '../backbones/registry.ts';
import { listExamples, readImageFolder } from '../data/folders.ts';
import { embedImages } from '../features/embed.ts';
import { type NamedArrays, writeSafetensors } from '../io/safetensors.ts';
import { GraftError } from '../errors.ts';

export interface EmbedCommandOptions { data: string | readonly string[]; out: string; backbone?: string; cut?: string; cache?: boolean; log?: (s: string) => void }

export interface EmbedCommandResult { out: string; n: number; dim: number; labelled: boolean; cacheHits: number; skipped: number; seconds: number }

/** The files to embed, and their classes when the folder has class folders. */
function embedSet(data: string | readonly string[]): { paths: string[]; y: Int32Array | null; classes: string[] | null } {
  if (typeof data !== 'string') {
    if (!data.length) throw new GraftError('E_CSV_EMPTY', 'no image files to embed', 'Pass a folder of images or at least one image file.');
    return { paths: [...data], y: null, classes: null };
  }
  if (existsSync(data) && statSync(data).isFile()) return { paths: [data], y: null, classes: null };
  const all = listExamples(data);
  if (all.loose > 0) return { paths: all.paths, y: null, classes: null };
  const f = readImageFolder(data, { valFraction: 0, minClasses: 1 });
  return { paths: f.train.paths, y: f.train.y, classes: f.classes };
}

export async function embedCommand(o: EmbedCommandOptions): Promise<EmbedCommandResult> {
  const t0 = performance.now();
  const bb = await loadImageBackbone(o.backbone ?? defaultBackbone('image').id);
  const cut = findCut(bb, o.cut ?? bb.entry?.defaultCut ?? bb.cuts.at(-1)!.name);
  const set = embedSet(o.data);
  const e = await embedImages(bb, set.paths, [cut], { cache: o.cache ?? true, onSkip: (_s, m) => o.log?.(`warning: ${m}`) });
  const dim = e.dims.get(cut.name)!;
  const arrays: NamedArrays = { features: { shape: [e.kept.length, dim], data: e.features.get(cut.name)! } };
  if (set.y) arrays['labels'] = { shape: [e.kept.length], data: Int32Array.from(e.kept, (i) => set.y![i]!) };
  writeSafetensors(o.out, arrays, {
    backbone: bb.id, backbone_sha256: bb.sha256, cut: cut.name, ...(set.classes ? { classes: JSON.stringify(set.classes) } : {}),
    files: JSON.stringify(Array.from(e.kept, (i) => set.paths[i])),
  });
  return { out: o.out, n: e.kept.length, dim, labelled: set.y !== null, cacheHits: e.cacheHits, skipped: e.skipped.count, seconds: (performance.now() - t0) / 1000 };
}
