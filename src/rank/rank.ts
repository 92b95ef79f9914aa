/**
 * Choosing the backbone and the layer without fine-tuning. Every candidate cut of every backbone is
 * scored in closed form (LogME, H-score, kNN, and NCE/LEEP where the backbone keeps its source head);
 * the best few by LogME then get the cross-validated convex probe, and a no-transfer baseline (raw
 * pixels, TF-IDF) gets the same probe, so negative transfer is shown rather than hidden. The auto cut
 * of `graft train` uses `shortlist` from here.
 */
import { GraftError } from '../errors.ts';
import { type ImageBackbone, blockCuts, checkImageBackboneId, findCut, loadImageBackbone } from '../backbones/image.ts';
import { REGISTRY } from '../backbones/registry.ts';
import type { CutPoint } from '../backbones/types.ts';
import { readImageFolder } from '../data/folders.ts';
import { pixelRows } from '../data/photos.ts';
import { embedImages } from '../features/embed.ts';
import { fitConvexProbe } from '../probe/convex.ts';
import { logme, transferScores } from './scores.ts';
import { readTextTable } from '../data/text.ts';
import { checkClasses, encodeLabels } from '../data/csv.ts';
import { embedTexts, isTextEncoder, loadTextEncoder } from '../backbones/textenc.ts';
import { fitSif, loadWordVectors, meanPool, sifPool } from '../backbones/wordvec.ts';
import { tfidf } from '../features/tfidf.ts';

export interface CandidateScores { logme: number; hScore?: number; knn?: number; nce?: number; leep?: number }

export interface RankEntry {
  backbone: string;
  cut: string;
  dim: number;
  scores: CandidateScores;
  /** k-fold convex-probe accuracy and its spread (the shortlisted candidates only). */
  cvAccuracy: number | null;
  cvStd: number | null;
}

export interface Baseline { kind: string; dim: number; cvAccuracy: number; cvStd: number }

export interface RankResult {
  n: number;
  classes: string[];
  /** Best first: the probed candidates by cross-validated accuracy, then the rest by LogME. */
  ranking: RankEntry[];
  baseline: Baseline;
  /** True when the no-transfer baseline beats every probed candidate. */
  negativeTransfer: boolean;
  verdict: string;
  seconds: number;
}

export interface RankOptions {
  backbones?: string[];
  /** How many candidates per backbone get the cross-validated probe (default 3). */
  top?: number;
  seed?: number;
  threads?: number;
  cache?: boolean;
  cacheRoot?: string;
  log?: (s: string) => void;
}

/** A score for sorting: a non-finite one ranks last instead of scrambling the order. */
const finiteOr = (x: number) => (Number.isFinite(x) ? x : -Infinity);

/** The `top` cuts by LogME (all of them when there are no more): the ones worth a cross-validated probe. */
export async function shortlist(feats: Map<string, { x: Float32Array; d: number }>, y: Int32Array, k: number, top: number, o: { threads?: number } = {}): Promise<{ logme: Record<string, number>; keep: string[] }> {
  const scores: Record<string, number> = {};
  if (feats.size <= top) return { logme: scores, keep: [...feats.keys()] };
  for (const [c, { x, d }] of feats) scores[c] = await logme(x, y, d, k, o.threads ? { threads: o.threads } : {});
  const keep = Object.entries(scores).sort((a, b) => finiteOr(b[1]) - finiteOr(a[1])).slice(0, top).map(([c]) => c);
  return { logme: scores, keep };
}

/** The candidates of a backbone: its named cuts (not its source classifier's layers) and every block output, pooled two ways. */
export function candidateCuts(bb: ImageBackbone): CutPoint[] {
  const named = bb.entry ? bb.entry.cuts.filter((c) => !c.note?.includes('own head')).map((c) => findCut(bb, c.name)) : [...bb.cuts];
  const out = new Map(named.map((c) => [c.name, c]));
  for (const c of blockCuts(bb)) if (!out.has(c.name) && ![...out.values()].some((q) => q.tensor === c.tensor)) out.set(c.name, c);
  return [...out.values()];
}

/** The backbone's own source-task probabilities, where its graph ends in a softmax classifier. */
export function sourceHead(bb: ImageBackbone): CutPoint | null {
  const out = bb.graph.outputs[0];
  const node = out && bb.graph.nodes.find((n) => n.outputs.includes(out.name));
  if (!out || node?.op !== 'Softmax' || out.shape?.length !== 2 || typeof out.shape[1] !== 'number') return null;
  return { name: 'source-head', tensor: out.name, shape: [out.shape[1]] };
}

export function verdictOf(ranking: RankEntry[], baseline: Baseline): { negativeTransfer: boolean; verdict: string } {
  const best = ranking.find((r) => r.cvAccuracy !== null);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  if (!best) return { negativeTransfer: false, verdict: 'no candidate was probed' };
  if (best.cvAccuracy! <= baseline.cvAccuracy) {
    return {
      negativeTransfer: true,
      verdict: `negative transfer: the no-transfer baseline (${baseline.kind}, ${pct(baseline.cvAccuracy)}) is at least as good as the best pretrained features (${best.backbone} at ${best.cut}, ${pct(best.cvAccuracy!)}); train on the raw data, or find a backbone closer to this domain`,
    };
  }
  return { negativeTransfer: false, verdict: `${best.backbone} at ${best.cut}: ${pct(best.cvAccuracy!)} +- ${pct(best.cvStd!)} cross-validated, ${((best.cvAccuracy! - baseline.cvAccuracy) * 100).toFixed(1)} points above the no-transfer baseline (${baseline.kind}, ${pct(baseline.cvAccuracy)})` };
}

/** Orders probed entries by CV accuracy (ties by LogME), then the rest by LogME. */
export function orderRanking(entries: RankEntry[]): RankEntry[] {
  return [...entries].sort((a, b) => {
    if ((a.cvAccuracy === null) !== (b.cvAccuracy === null)) return a.cvAccuracy === null ? 1 : -1;
    if (a.cvAccuracy !== null && b.cvAccuracy !== null && a.cvAccuracy !== b.cvAccuracy) return b.cvAccuracy - a.cvAccuracy;
    return finiteOr(b.scores.logme) - finiteOr(a.scores.logme);
  });
}

/** Ranks backbone x cut pairs for an image folder (root/<label>/*, or its train/ part). */
export async function rankImages(data: string, o: RankOptions = {}): Promise<RankResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const folder = readImageFolder(data, { valFraction: 0 });
  const y0 = folder.train.y;
  const k = folder.classes.length;
  const ids = o.backbones ?? REGISTRY.filter((r) => r.modality === 'image').map((r) => r.id);
  if (!ids.length) throw new GraftError('E_BAD_OPTION', 'no backbones to rank', 'Pass --backbones a,b,c (graft backbones lists them).');
  ids.forEach(checkImageBackboneId);
  const top = o.top ?? 3;
  const entries: RankEntry[] = [];
  let n = 0;
  for (const id of ids) {
    const bb = await loadImageBackbone(id, o.cacheRoot);
    const cuts = candidateCuts(bb);
    const src = sourceHead(bb);
    log(`${id}: embedding ${folder.train.paths.length} images at ${cuts.length} candidate cuts`);
    const e = await embedImages(bb, folder.train.paths, src ? [...cuts, src] : cuts, {
      ...(o.threads ? { threads: o.threads } : {}), ...(o.cacheRoot ? { cacheRoot: o.cacheRoot } : {}), cache: o.cache ?? true,
      onSkip: (_s: unknown, m: string) => log(`warning: ${m}`),
    });
    const y = Int32Array.from(e.kept, (i) => y0[i]!);
    n = y.length;
    const sourceProbs = src ? e.features.get(src.name)! : undefined;
    const mine: RankEntry[] = [];
    for (const c of cuts) {
      const x = e.features.get(c.name)!;
      const d = e.dims.get(c.name)!;
      const s = await transferScores(x, y, d, k, { ...(sourceProbs ? { sourceProbs, kSource: src!.shape[0]! } : {}), ...(o.threads ? { threads: o.threads } : {}) });
      mine.push({ backbone: id, cut: c.name, dim: d, scores: { logme: s.logme, hScore: s.hScore, knn: s.knn, ...(s.nce !== undefined ? { nce: s.nce } : {}), ...(s.leep !== undefined ? { leep: s.leep } : {}) }, cvAccuracy: null, cvStd: null });
    }
    for (const r of [...mine].sort((a, b) => finiteOr(b.scores.logme) - finiteOr(a.scores.logme)).slice(0, top)) {
      const fit = await fitConvexProbe(e.features.get(r.cut)!, y, r.dim, k, { seed: o.seed ?? 0, ...(o.threads ? { threads: o.threads } : {}) });
      r.cvAccuracy = fit.cvAccuracy;
      r.cvStd = fit.cvStd;
      log(`${id} ${r.cut} (${r.dim}-d): LogME ${r.scores.logme.toFixed(4)}, cross-validated probe ${fit.cvAccuracy !== null ? (100 * fit.cvAccuracy).toFixed(1) : '?'}%`);
    }
    entries.push(...mine);
  }
  const px = await pixelRows(data, 32, 3);
  const base = await fitConvexProbe(px.x, px.y, px.dim, k, { seed: o.seed ?? 0, ...(o.threads ? { threads: o.threads } : {}) });
  const baseline: Baseline = { kind: 'raw pixels (32x32 RGB)', dim: px.dim, cvAccuracy: base.cvAccuracy ?? base.trainAccuracy, cvStd: base.cvStd ?? 0 };
  const ranking = orderRanking(entries);
  return { n, classes: folder.classes, ranking, baseline, ...verdictOf(ranking, baseline), seconds: (performance.now() - t0) / 1000 };
}

/** Ranks text backbones x poolings (word vectors: mean, sif; encoders: cls, mean) for a labelled text file. */
export async function rankTexts(data: string, o: RankOptions = {}): Promise<RankResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const table = readTextTable(data);
  const { classes, y } = encodeLabels(table.labels!);
  checkClasses(classes, y);
  const k = classes.length;
  const ids = o.backbones ?? REGISTRY.filter((r) => r.modality === 'text').map((r) => r.id).concat('glove-100d');
  const entries: RankEntry[] = [];
  const feats = new Map<string, { backbone: string; cut: string; x: Float32Array; d: number }>();
  for (const id of [...new Set(ids)]) {
    if (isTextEncoder(id)) {
      const enc = await loadTextEncoder(id);
      const e = await embedTexts(enc, table.texts, ['cls', 'mean'], { ...(o.threads ? { threads: o.threads } : {}), cache: o.cache ?? true, ...(o.cacheRoot ? { cacheRoot: o.cacheRoot } : {}) });
      for (const p of ['cls', 'mean'] as const) feats.set(`${id}/${p}`, { backbone: id, cut: p, x: e.features.get(p)!, d: e.dim });
    } else {
      const wv = loadWordVectors(id);
      feats.set(`${id}/mean`, { backbone: id, cut: 'mean', x: meanPool(wv, table.texts).vectors, d: wv.dim });
      feats.set(`${id}/sif`, { backbone: id, cut: 'sif', x: sifPool(wv, table.texts, { model: fitSif(wv, table.texts) }).vectors, d: wv.dim });
    }
    log(`${id}: embedded ${table.texts.length} texts`);
  }
  for (const f of feats.values()) {
    const s = await transferScores(f.x, y, f.d, k, o.threads ? { threads: o.threads } : {});
    const fit = await fitConvexProbe(f.x, y, f.d, k, { seed: o.seed ?? 0, ...(o.threads ? { threads: o.threads } : {}) });
    entries.push({ backbone: f.backbone, cut: f.cut, dim: f.d, scores: { logme: s.logme, hScore: s.hScore, knn: s.knn }, cvAccuracy: fit.cvAccuracy, cvStd: fit.cvStd });
  }
  const tf = tfidf(table.texts);
  const base = await fitConvexProbe(tf.x, y, tf.d, k, { seed: o.seed ?? 0, ...(o.threads ? { threads: o.threads } : {}) });
  const baseline: Baseline = { kind: `TF-IDF (${tf.d} terms)`, dim: tf.d, cvAccuracy: base.cvAccuracy ?? base.trainAccuracy, cvStd: base.cvStd ?? 0 };
  const ranking = orderRanking(entries);
  return { n: y.length, classes, ranking, baseline, ...verdictOf(ranking, baseline), seconds: (performance.now() - t0) / 1000 };
}
