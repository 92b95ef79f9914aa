/** The sentence-pair entry: text,text_pair,label rows (CSV or JSONL), an encoder fine-tuned on both texts as one sequence. */
import { readCard } from '../model/folder.ts';
import { evalPairs, predictPairs } from '../finetune/text.ts';
import { defined, toPredictions } from './common.ts';
import { isTextFile } from './detect.ts';
import { fineTuneTextPlan, pairColumnOf, reportTexts, takesText, textsOf } from './text.ts';
import type { Task } from './types.ts';

export const pairTask: Task = {
  id: 'pair',
  description: 'sentence pairs: text,text_pair,label (CSV or JSONL), an encoder fine-tuned on both',
  textTask: 'pair',
  detect: isTextFile,
  owns: (card) => takesText(card) && pairColumnOf(card) !== null,
  train: (data, o, mode) => fineTuneTextPlan('pair', data, o, mode),
  evaluate: (dir, data, o) => evalPairs(dir, data, defined({ threads: o.threads, log: o.log })),

  async predict(dir, input, o) {
    const col = pairColumnOf(readCard(dir)) ?? 'text_pair';
    const a = textsOf(dir, input);
    const b = textsOf(dir, input, col);
    const { labels, probs } = await predictPairs(dir, a, b, defined({ threads: o.threads, log: o.log }));
    return { task: 'pair', predictions: toPredictions(labels, probs, a.length) };
  },

  report: reportTexts,
};
