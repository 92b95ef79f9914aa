/** `graft embed`: export a folder's features at a cut as safetensors (features, labels, file list). */
import { loadImageBackbone, findCut } from '../backbones/image.ts';
import { defaultBackbone } from '../backbones/registry.ts';
import { readImageFolder } from '../data/folders.ts';
import { embedImages } from '../features/embed.ts';
import { writeSafetensors } from '../io/safetensors.ts';

export interface EmbedCommandOptions { data: string; out: string; backbone?: string; cut?: string; cache?: boolean; log?: (s: string) => void }

export async function embedCommand(o: EmbedCommandOptions) {
  const t0 = performance.now();
  const bb = await loadImageBackbone(o.backbone ?? defaultBackbone('image').id);
  const cut = findCut(bb, o.cut ?? bb.entry?.defaultCut ?? bb.cuts.at(-1)!.name);
  const f = readImageFolder(o.data, { valFraction: 0 });
  const e = await embedImages(bb, f.train.paths, [cut], { cache: o.cache ?? true, onSkip: (_s, m) => o.log?.(`warning: ${m}`) });
  const y = Int32Array.from(e.kept, (i) => f.train.y[i]!);
  writeSafetensors(o.out, { features: { shape: [e.kept.length, e.dims.get(cut.name)!], data: e.features.get(cut.name)! }, labels: { shape: [y.length], data: y } }, {
    backbone: bb.id, backbone_sha256: bb.sha256, cut: cut.name, classes: JSON.stringify(f.classes), files: JSON.stringify(Array.from(e.kept, (i) => f.train.paths[i])),
  });
  return { out: o.out, n: e.kept.length, dim: e.dims.get(cut.name)!, cacheHits: e.cacheHits, skipped: e.skipped.count, seconds: (performance.now() - t0) / 1000 };
}
