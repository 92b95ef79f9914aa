/**
 * The NER entry: CoNLL "token tag" lines (BIO/IOBES) or JSONL tokens/tags; an encoder fine-tuned to tag
 * words; entities scored by seqeval's rules and predicted with character offsets in raw texts.
 */
import { GraftError } from '../errors.ts';
import { evalNer, predictEntities, tagSentences } from '../finetune/text.ts';
import { nerScores } from '../text/ner.ts';
import { defined } from './common.ts';
import { isDir, isTextFile } from './detect.ts';
import { omitWrong, summarise } from './evalkit.ts';
import { fineTuneTextPlan, textsOf } from './text.ts';
import type { Task } from './types.ts';

export const nerTask: Task = {
  id: 'ner',
  description: 'named entities: CoNLL (token tag, BIO/IOBES) or JSONL tokens/tags; raw texts to predict',
  textTask: 'ner',
  detect: isTextFile,
  owns: (card) => card.task === 'token-classification',
  train: (data, o, mode) => fineTuneTextPlan('ner', data, o, mode),
  evaluate: (dir, data, o) => evalNer(dir, data, defined({ threads: o.threads, log: o.log })),

  async predict(dir, input, o) {
    return { task: 'ner', predictions: await predictEntities(dir, textsOf(dir, input), defined({ threads: o.threads, log: o.log })) };
  },

  async report({ dir, card, chosen: c, worst: worstN, log }) {
    // Word-level tag scores (each word's first token), the entity-level F1 in the description.
    const labels = card.labels;
    if (isDir(c.data)) throw new GraftError('E_BAD_OPTION', `model ${dir} tags words, not a folder (${c.data})`, 'Pass --data with a CoNLL file.');
    const r = await tagSentences(dir, c.data, log ? { log } : {});
    const words = r.sentences.flatMap((s, si) => s.tokens.map((w, wi) => ({ si, wi, w })));
    const k = labels.length;
    const probs = new Float32Array(words.length * k);
    let at = 0;
    for (const p of r.probs) { probs.set(p, at); at += p.length; }
    const y = Int32Array.from(r.sentences.flatMap((s) => s.tags.map((t) => Math.max(0, labels.indexOf(t)))));
    const s = summarise(labels, y, probs, worstN);
    const ner = nerScores(r.sentences.map((q) => q.tags), r.pred);
    const worst = s.wrong.map((w) => {
      const { si, wi } = words[w.index]!;
      const toks = r.sentences[si]!.tokens;
      return { ...w, line: r.sentences[si]!.line + wi, text: `${toks.slice(Math.max(0, wi - 6), wi).join(' ')} [${toks[wi]}] ${toks.slice(wi + 1, wi + 7).join(' ')}` };
    });
    const description = `the ${words.length} words of ${r.sentences.length} sentences in ${c.data}, scored per word tag; entities (seqeval): precision ${ner.micro.precision.toFixed(4)}, recall ${ner.micro.recall.toFixed(4)}, F1 ${ner.micro.f1.toFixed(4)}`;
    const caveat = c.fromCard ? 'This is the training file (graft.json records no separate test file): the scores are optimistic. Pass --data test.conll.' : undefined;
    return { data: c.data, origin: c.origin, description, ...(caveat ? { caveat } : {}), skipped: 0, labels, ...omitWrong(s), worst };
  },
};
