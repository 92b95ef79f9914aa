/**
 * The text-classification entry: a CSV with text,label columns, or JSONL. Word vectors (glove-100d)
 * or a sentence/BERT-family encoder give frozen features for a head (probe/text.ts), or the encoder is
 * fine-tuned (finetune/text.ts, also few-shot SetFit). The pair and NER entries share its fine-tuning
 * plan and its report.
 */
import { GraftError } from '../errors.ts';
import type { ModelCard } from '../model/folder.ts';
import { encodeLabels } from '../data/csv.ts';
import { readTextTable } from '../data/text.ts';
import { checkHead } from '../probe/fit.ts';
import { evalText, predictTexts, trainText } from '../probe/text.ts';
import { fineTuneText, predictPairs } from '../finetune/text.ts';
import { rankTexts } from '../rank/rank.ts';
import { checkFineTune, classWeightOf, defined, probeCommon, toPredictions, wrongInput } from './common.ts';
import { isDir, isTextFile } from './detect.ts';
import { type EvalResult, REFIT_CAVEAT, heldOut, omitWrong, pct, recordedData, refitted, summarise } from './evalkit.ts';
import { rankOptions } from './images.ts';
import type { Mode, ReportContext, Task, TaskId, TrainOptions, TrainPlan } from './types.ts';

/** Whether a model folder takes texts (pooled word vectors, or token ids for an encoder). */
export const takesText = (card: ModelCard): boolean => card.input.kind === 'pooled-word-vectors' || card.input.kind === 'token-ids';

/** The column of a pair model's second text (null for other models). */
export function pairColumnOf(card: ModelCard): string | null {
  const pre = card.input.preprocess as { task?: string; pairColumn?: string } | undefined;
  return pre?.task === 'pair' ? pre.pairColumn ?? 'text_pair' : null;
}

/** Fine-tuning a text encoder (classify, pair, ner): the encoder is required; pooling is cls or mean. */
export function fineTuneTextPlan(id: TaskId, data: string, o: TrainOptions, mode: Mode): TrainPlan {
  if (!o.backbone) throw new GraftError('E_BAD_OPTION', `--task ${o.task ?? 'classify'} --mode ${mode} trains a transformer encoder: pass one with --backbone`, 'Give a model folder, an .onnx file or a hub id (owner/name), or use --mode probe with word vectors.');
  checkFineTune(o);
  const pooling = o.cut;
  if (pooling && pooling !== 'cls' && pooling !== 'mean') throw new GraftError('E_BAD_OPTION', `an encoder pools by --cut cls or mean, not "${pooling}"`, 'Use --cut cls (the first token) or --cut mean.');
  const backbone = o.backbone;
  return {
    task: id, trainer: 'text-finetune', mode,
    run: () => fineTuneText({
      data, out: o.out ?? 'graft-model', backbone, mode, ...(o.task ? { task: o.task } : {}),
      ...defined({
        unfreeze: o.unfreeze, epochs: o.epochs, freezeEpochs: o.freezeEpochs, lr: o.lr, lrMult: o.lrMult, batchSize: o.batchSize, val: o.val, seed: o.seed,
        threads: o.threads, dropout: o.dropout, weightDecay: o.weightDecay, labelSmoothing: o.labelSmoothing, patience: o.patience, checkpoint: o.checkpoint,
        resume: o.resume, pooling: pooling as 'cls' | 'mean' | undefined, pairColumn: o.pairColumn, valData: o.valData, warmup: o.warmup, maxLength: o.maxLength, log: o.log,
      }),
    }),
  };
}

/** A labelled text table's report evaluation (classification and pair models). */
export async function reportTexts({ dir, card, chosen: c, worst: worstN }: ReportContext): Promise<EvalResult> {
  const labels = card.labels;
  if (isDir(c.data)) throw new GraftError('E_BAD_OPTION', `model ${dir} takes texts, not a folder (${c.data})`, 'Pass --data with a labelled CSV (text,label) or JSONL file.');
  const t = readTextTable(c.data);
  let idx: Int32Array = Int32Array.from({ length: t.texts.length }, (_, i) => i);
  let description = `all ${t.texts.length} texts of ${c.data}`;
  let caveat: string | undefined;
  if (c.fromCard || recordedData(card) === c.data) {
    const h = heldOut(card, encodeLabels(t.labels!).y);
    if (h) {
      idx = h.idx;
      description = `the ${idx.length} validation texts of ${c.data} (${pct(h.fraction)} held out with seed ${h.seed}, as in training)`;
    } else caveat = refitted(card) ? REFIT_CAVEAT : 'The model was trained on these texts (no validation split could be reproduced), so the scores are optimistic.';
  }
  const texts = Array.from(idx, (i) => t.texts[i]!);
  const { y } = encodeLabels(Array.from(idx, (i) => t.labels![i]!), labels);
  const pairCol = pairColumnOf(card);
  const second = pairCol ? readTextTable(c.data, { textColumn: pairCol }).texts : null;
  const { probs } = second ? await predictPairs(dir, texts, Array.from(idx, (i) => second[i]!)) : await predictTexts(dir, texts);
  const s = summarise(labels, y, probs, worstN);
  const worst = s.wrong.map((w) => ({ ...w, text: texts[w.index]!, line: t.lines[idx[w.index]!]! }));
  return { data: c.data, origin: c.origin, description, ...(caveat ? { caveat } : {}), skipped: 0, labels, ...omitWrong(s), worst };
}

/** The texts of a predict input: a file's text column, or texts given directly. */
export function textsOf(dir: string, input: Parameters<Task['predict']>[1], column?: string): string[] {
  if (typeof input === 'string') return readTextTable(input, { requireLabel: false, ...(column ? { textColumn: column } : {}) }).texts;
  if (!Array.isArray(input) && 'texts' in input) {
    const texts = column ? input.pairs : input.texts;
    if (!texts) throw new GraftError('E_BAD_OPTION', `model ${dir} classifies sentence pairs: give the second texts as pairs`, 'Pass { texts: [...], pairs: [...] }, one second text per text.');
    return [...texts];
  }
  throw wrongInput(dir, 'texts', Array.isArray(input) ? 'files' : 'numeric rows');
}

export const textTask: Task = {
  id: 'text',
  description: 'text classification: a CSV with text,label columns, or JSONL (word vectors or an encoder, probed or fine-tuned)',
  textTask: 'classify',
  detect: isTextFile,
  owns: (card) => takesText(card) && card.task !== 'token-classification' && pairColumnOf(card) === null,

  train(data, o, mode) {
    if (mode !== 'probe') return fineTuneTextPlan('text', data, o, mode);
    const classWeight = classWeightOf(o);
    const cut = o.cut;
    if (cut && cut !== 'mean' && cut !== 'sif' && cut !== 'cls') {
      throw new GraftError('E_BAD_OPTION', `unknown text pooling "${cut}"`, 'Use --cut mean or sif for word vectors, cls or mean for a text encoder (or leave it out to choose by cross-validation).');
    }
    const head = checkHead(o.head ?? 'linear');
    return {
      task: 'text', trainer: 'text-probe', mode,
      run: () => trainText({
        data, out: o.out ?? 'graft-model', head, cache: o.cache ?? true, ...classWeight,
        ...defined({ backbone: o.backbone, cut: cut as 'mean' | 'sif' | 'cls' | undefined, maxLength: o.maxLength, log: o.log }), ...probeCommon(o),
      }),
    };
  },

  evaluate: (dir, data, o) => evalText(dir, data, defined({ threads: o.threads, log: o.log })),

  async predict(dir, input, o) {
    const texts = textsOf(dir, input);
    const { labels, probs } = await predictTexts(dir, texts, defined({ threads: o.threads, log: o.log }));
    return { task: 'text', predictions: toPredictions(labels, probs, texts.length) };
  },

  report: reportTexts,

  rank: (data, o) => rankTexts(data, rankOptions(o)),
};
