/**
 * The image entry: folders of class folders (root/<label>/*.jpg|png|webp|gif, or train/ val/ test/),
 * a head on a frozen backbone's features (probe/images.ts) or the backbone fine-tuned too
 * (finetune/images.ts); predictions for single images, folders or lists of files.
 */
import { GraftError } from '../errors.ts';
import { loadModel } from '../model/folder.ts';
import { encodeLabels } from '../data/csv.ts';
import { decodeAll } from '../data/folders.ts';
import { checkHead } from '../probe/fit.ts';
import { evalImages, predictImageBytes, predictImages, trainImages } from '../probe/images.ts';
import { AUDIO_EXTENSIONS, embedAudio } from '../probe/audio.ts';
import { embedCommand } from '../probe/embed.ts';
import { fineTuneImages } from '../finetune/images.ts';
import { rankImages } from '../rank/rank.ts';
import { checkFineTune, classWeightOf, defined, probeCommon, wrongInput } from './common.ts';
import { isAudioFolder, isDir, isImageFile } from './detect.ts';
import { type EvalResult, type WorstExample, folderSet, omitWrong, summarise, thumbnail } from './evalkit.ts';
import type { RankOptions, ReportContext, Task, TrainOptions } from './types.ts';

/** The fine-tuning options finetune/images.ts takes, from the API's. */
export function imageFineTuneOptions(o: TrainOptions) {
  return defined({
    backbone: o.backbone, cut: o.cut, head: o.head as 'linear' | 'mlp' | undefined, bn: o.bn, val: o.val, epochs: o.epochs, lr: o.lr, seed: o.seed, threads: o.threads,
    unfreeze: o.unfreeze, lrMult: o.lrMult, l2sp: o.l2sp, mixup: o.mixup, size: o.size, freezeEpochs: o.freezeEpochs, batchSize: o.batchSize,
    labelSmoothing: o.labelSmoothing, dropout: o.dropout, weightDecay: o.weightDecay, patience: o.patience, checkpoint: o.checkpoint, resume: o.resume,
    augment: o.augment, probeFallback: o.probeFallback, log: o.log,
  });
}

/** A labelled folder's report evaluation (images, or audio clips): test/, val/, training's held-out split, or all. */
export async function reportFolder({ dir, card, chosen: c, worst: worstN, log }: ReportContext, audio: boolean): Promise<EvalResult> {
  const labels = card.labels;
  const set = folderSet(card, c, audio ? AUDIO_EXTENSIONS : undefined);
  const model = await loadModel(dir);
  const keptPaths: string[] = [];
  const keptTruth: string[] = [];
  const chunks: Float32Array[] = [];
  let skipped = 0;
  try {
    if (audio) {
      const e = await embedAudio(set.paths);
      skipped = set.paths.length - e.kept.length;
      for (const i of e.kept) { keptPaths.push(set.paths[i]!); keptTruth.push(set.truth[i]!); }
      if (e.kept.length) chunks.push(await model.predict(e.x, e.kept.length));
    } else {
      const pre = card.input.preprocess as Parameters<typeof decodeAll>[1];
      for (let from = 0; from < set.paths.length; from += 64) {
        const part = set.paths.slice(from, from + 64);
        const dec = await decodeAll(part, pre, { onSkip: (_s, m) => log?.(`warning: ${m}`) });
        skipped += part.length - dec.kept.length;
        if (!dec.kept.length) continue;
        for (const i of dec.kept) { keptPaths.push(part[i]!); keptTruth.push(set.truth[from + i]!); }
        chunks.push(await model.predict(dec.x, dec.kept.length));
      }
    }
  } finally {
    await model.dispose();
  }
  const probs = new Float32Array(keptPaths.length * labels.length);
  let off = 0;
  for (const ch of chunks) { probs.set(ch, off); off += ch.length; }
  const { y } = encodeLabels(keptTruth, labels);
  const s = summarise(labels, y, probs, worstN);
  const worst: WorstExample[] = [];
  for (const w of s.wrong) {
    const path = keptPaths[w.index]!;
    const thumb = audio ? undefined : await thumbnail(path);
    worst.push({ ...w, path, ...(thumb ? { thumbnail: thumb } : {}) });
  }
  return { data: c.data, origin: c.origin, description: set.description, ...(set.caveat ? { caveat: set.caveat } : {}), skipped, labels, ...omitWrong(s), worst };
}

export const imagesTask: Task = {
  id: 'images',
  description: 'images: root/<label>/*.jpg|png|webp|gif (or train/ val/ test/ subfolders); one image, or a list of files, to predict',
  textTask: 'classify',
  detect: (p) => (isDir(p) ? !isAudioFolder(p) : isImageFile(p)),
  owns: (card) => card.input.kind === 'image',

  train(data, o, mode) {
    if (mode === 'setfit') throw new GraftError('E_BAD_OPTION', `--mode setfit is few-shot text classification; ${data} is not a text file`, 'Pass a CSV/JSONL of texts, or use --mode finetune for images.');
    if (mode !== 'probe') {
      checkFineTune(o);
      const f = imageFineTuneOptions(o);
      return { task: 'images', trainer: 'image-finetune', mode, run: () => fineTuneImages({ data, out: o.out ?? 'graft-model', mode, cache: o.cache ?? true, ...f }) };
    }
    const classWeight = classWeightOf(o);
    const head = checkHead(o.head ?? 'linear');
    return {
      task: 'images', trainer: 'image-probe', mode,
      run: () => trainImages({ data, out: o.out ?? 'graft-model', head, cache: o.cache ?? true, ...classWeight, ...defined({ backbone: o.backbone, cut: o.cut, log: o.log }), ...probeCommon(o) }),
    };
  },

  evaluate: (dir, data) => evalImages(dir, data),

  async predict(dir, input, o) {
    if (typeof input !== 'string' && !Array.isArray(input) && 'images' in input) return { task: 'images', predictions: await predictImageBytes(dir, input.images, o.model) };
    if (typeof input !== 'string' && !Array.isArray(input)) throw wrongInput(dir, 'images', 'rows or texts');
    return { task: 'images', predictions: (await predictImages(dir, input as string | readonly string[], o.log, o.model)).predictions };
  },

  report: (ctx) => reportFolder(ctx, false),

  rank: (data, o) => rankImages(data, rankOptions(o)),

  embed: (data, o) => embedCommand({ data, out: o.out, ...defined({ backbone: o.backbone, cut: o.cut, cache: o.cache, log: o.log }) }),
};

/** The ranking options rank/rank.ts takes, from the API's. */
export function rankOptions(o: RankOptions) {
  return { cache: o.cache ?? true, ...defined({ backbones: o.backbones, top: o.top, seed: o.seed, threads: o.threads, log: o.log }) };
}
