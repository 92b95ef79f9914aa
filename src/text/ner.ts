/**
 * Token classification (NER) with BIO tags: entity extraction and entity-level scores exactly as
 * seqeval computes them, the word tokenizer graft's NER data is cut with, and the alignment between
 * words and a sub-word tokenizer's tokens, both ways, down to entities with character offsets.
 *
 * Entities are spans of tokens [start, end) (end exclusive, unlike seqeval's inclusive end), and
 * character offsets are JavaScript string indices (UTF-16 code units), so `text.slice(start, end)`
 * is always the entity's text.
 */
import { GraftError } from '../errors.ts';

export { type Chunk, type NerMode, chunksToTags, getEntities, toIob2 } from '../data/iob.ts';
import { type Chunk, type NerMode, getEntities, splitTag } from '../data/iob.ts';

// ---------------------------------------------------------------------------------------------
// Scores

export interface EntityScores {
  precision: number;
  recall: number;
  f1: number;
  /** True entities (seqeval's support). */
  support: number;
  /** Predicted entities. */
  predicted: number;
  /** Predicted entities that match a true one exactly: same type, same start, same end. */
  correct: number;
}

export interface NerReport {
  /** Entity types seen in either the truth or the predictions, sorted. */
  types: string[];
  perType: Record<string, EntityScores>;
  /** Pooled over all entities: the number seqeval's f1_score returns. */
  micro: EntityScores;
  /** Unweighted mean over types (support, predicted and correct are totals). */
  macro: EntityScores;
  /** Mean over types weighted by support. */
  weighted: EntityScores;
}

const div = (a: number, b: number) => (b ? a / b : 0);
const f1 = (p: number, r: number) => (p + r ? (2 * p * r) / (p + r) : 0);

function scores(correct: number, predicted: number, support: number): EntityScores {
  const precision = div(correct, predicted);
  const recall = div(correct, support);
  return { precision, recall, f1: f1(precision, recall), support, predicted, correct };
}

/**
 * Entity-level precision, recall and F1 over sentences of tags, as seqeval's classification_report:
 * an entity counts only when type, start and end all match; a 0/0 ratio is 0 (zero_division=0), so
 * no entities on either side scores 0. Sentences never share an entity.
 */
export function nerScores(yTrue: readonly (readonly string[])[], yPred: readonly (readonly string[])[], mode: NerMode = 'default'): NerReport {
  if (yTrue.length !== yPred.length) throw new RangeError(`nerScores: ${yTrue.length} true sentences but ${yPred.length} predicted`);
  const truth = new Map<string, Set<string>>();
  const pred = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, c: Chunk, s: number) => {
    let set = m.get(c.type);
    if (!set) m.set(c.type, (set = new Set()));
    set.add(`${s}:${c.start}:${c.end}`);
  };
  yTrue.forEach((t, s) => {
    const p = yPred[s]!;
    if (t.length !== p.length) throw new RangeError(`nerScores: sentence ${s} has ${t.length} true tags but ${p.length} predicted`);
    for (const c of getEntities(t, mode)) add(truth, c, s);
    for (const c of getEntities(p, mode)) add(pred, c, s);
  });
  const types = [...new Set([...truth.keys(), ...pred.keys()])].sort();
  const perType: Record<string, EntityScores> = {};
  let C = 0;
  let P = 0;
  let T = 0;
  for (const type of types) {
    const t = truth.get(type) ?? new Set<string>();
    const p = pred.get(type) ?? new Set<string>();
    let c = 0;
    for (const k of p) if (t.has(k)) c++;
    perType[type] = scores(c, p.size, t.size);
    C += c; P += p.size; T += t.size;
  }
  const all = types.map((k) => perType[k]!);
  const mean = (f: (s: EntityScores) => number, w: (s: EntityScores) => number) => {
    const W = all.reduce((a, s) => a + w(s), 0);
    return div(all.reduce((a, s) => a + f(s) * w(s), 0), W);
  };
  const avg = (w: (s: EntityScores) => number): EntityScores => ({
    precision: mean((s) => s.precision, w), recall: mean((s) => s.recall, w), f1: mean((s) => s.f1, w), support: T, predicted: P, correct: C,
  });
  return { types, perType, micro: scores(C, P, T), macro: avg(() => 1), weighted: avg((s) => s.support) };
}

/** The report as seqeval's classification_report prints it. */
export function formatNerReport(r: NerReport, digits = 2): string {
  const width = Math.max('weighted avg'.length, digits, ...r.types.map((t) => t.length));
  const head = ' '.repeat(width) + ' ' + ['precision', 'recall', 'f1-score', 'support'].map((h) => ' ' + h.padStart(9)).join('');
  const row = (name: string, s: EntityScores) => name.padStart(width) + ' ' +
    [s.precision, s.recall, s.f1].map((v) => ' ' + v.toFixed(digits).padStart(9)).join('') + ' ' + String(s.support).padStart(9);
  return [head, '', ...r.types.map((t) => row(t, r.perType[t]!)), '', row('micro avg', r.micro), row('macro avg', r.macro), row('weighted avg', r.weighted), ''].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Words

/** A word of an original text and its span [start, end) in UTF-16 code units. */
export interface Word { text: string; start: number; end: number }

// URLs with a scheme or www., e-mail addresses, then bare domains under common generic TLDs
const URL_SCHEME = /(?:https?|ftp):\/\/[^\s<>"'`{}|\\^[\]]+|www\.[a-z0-9-]+\.[^\s<>"'`{}|\\^[\]]+/iy;
const EMAIL = /[a-z0-9][a-z0-9._%+-]*@(?:[a-z0-9-]+\.)+[a-z]{2,}(?![a-z0-9-])/iy;
const URL_BARE = /(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:com|net|org|edu|gov|info|biz|co\.uk|org\.uk|ac\.uk)(?![a-z0-9_-])(?:\/[^\s<>"'`{}|\\^[\]]*)?/iy;
// digits joined by colons ("10:30:15") or by . / - and thousands commas ("12.99", "1,000", "2002-08-22"),
// then any letters ("5pm", "3rd"); "29,10", "08:00-17:00" and "2002-10-08T00:22:08" are three words each
const NUMBER = /[0-9]+(?:(?::[0-9]+)+|(?:,[0-9]{3}(?![0-9])|[./-][0-9]+)+)?(?:(?!T[0-9]{2}:)\p{L})*/uy;
// the T between an ISO 8601 date and time ("2002-10-08T00:22:08")
const ISO_T = /(?<=[0-9])T(?=[0-9]{2}:)/y;
// letters, marks and digits with inner apostrophes or hyphens ("don't", "e-mail")
const WORD = /[\p{L}\p{M}\p{N}_]+(?:['’-][\p{L}\p{M}\p{N}_]+)*/uy;
// anything else: a run of one repeated symbol ("...", "!!", "--"), or one symbol
const SYMBOL = /([^\p{L}\p{M}\p{N}\s])\1*/uy;

/** Drops trailing punctuation a URL is unlikely to end with (a closing bracket only when unbalanced). */
function trimUrl(u: string): string {
  for (;;) {
    const last = u.at(-1)!;
    if ('.,;:!?\'"'.includes(last)) u = u.slice(0, -1);
    else if (last === ')' && (u.match(/\(/g)?.length ?? 0) < (u.match(/\)/g)?.length ?? 0)) u = u.slice(0, -1);
    else return u;
  }
}

/**
 * Splits text into words with their character offsets: URLs and e-mail addresses stay whole, numbers
 * keep inner separators ("$12.99" is "$", "12.99"), punctuation is split off. graft's NER fixtures are
 * cut with this, so text to tag at prediction time should be too.
 */
export function wordTokenize(text: string): Word[] {
  const out: Word[] = [];
  let p = 0;
  const at = (re: RegExp): string | null => { re.lastIndex = p; const m = re.exec(text); return m ? m[0] : null; };
  while (p < text.length) {
    const c = text.charCodeAt(p);
    if (/\s/.test(text[p]!)) { p++; continue; }
    let w: string | null = null;
    // URLs and addresses start a word: not right after a letter, digit or underscore
    if (c < 128 && /[a-z0-9]/i.test(text[p]!) && !(p > 0 && /[\p{L}\p{N}_]/u.test(text[p - 1]!))) {
      const u = at(URL_SCHEME);
      w = u ? trimUrl(u) : at(EMAIL);
      if (w === null) { const b = at(URL_BARE); if (b) w = trimUrl(b); }
    }
    w ??= at(NUMBER) ?? at(ISO_T) ?? at(WORD) ?? at(SYMBOL)!;
    out.push({ text: w, start: p, end: p + w.length });
    p += w.length;
  }
  return out;
}

/** Words for tokens that come without their text (a CoNLL file): joined by single spaces. */
export function wordsFromTokens(tokens: readonly string[]): { text: string; words: Word[] } {
  const words: Word[] = [];
  let p = 0;
  for (const t of tokens) {
    words.push({ text: t, start: p, end: p + t.length });
    p += t.length + 1;
  }
  return { text: tokens.join(' '), words };
}

// ---------------------------------------------------------------------------------------------
// Sub-word alignment

/**
 * What any tokenizer has to say for alignment: for each of its tokens, the index of the word it came
 * from, or null for tokens that belong to no word ([CLS], [SEP], padding), as Hugging Face's
 * `encoding.word_ids()`. Build it with `encodeWords` (one word at a time) or `wordIdsFromOffsets`.
 */
export type WordIds = readonly (number | null)[];

/** The label a token gets when the loss should ignore it (PyTorch's ignore_index). */
export const IGNORE_INDEX = -100;

/**
 * Tokenizes words one at a time with any tokenizer (`encodeWord` returns the ids of one word; pass
 * `i > 0` to add a leading space for BPE tokenizers that want one), between `prefix` and `suffix`
 * special tokens, cut to `maxLength` tokens in all. Words cut off get no tokens.
 */
export function encodeWords(words: readonly string[], encodeWord: (word: string, i: number) => readonly number[],
  o: { prefix?: readonly number[]; suffix?: readonly number[]; maxLength?: number } = {}): { ids: number[]; wordIds: (number | null)[] } {
  const prefix = o.prefix ?? [];
  const suffix = o.suffix ?? [];
  const room = (o.maxLength ?? Infinity) - prefix.length - suffix.length;
  const ids = [...prefix];
  const wordIds: (number | null)[] = prefix.map(() => null);
  for (let i = 0; i < words.length; i++) {
    const t = encodeWord(words[i]!, i);
    if (ids.length - prefix.length + t.length > room) break;
    for (const id of t) { ids.push(id); wordIds.push(i); }
  }
  for (const id of suffix) { ids.push(id); wordIds.push(null); }
  return { ids, wordIds };
}

/**
 * Word ids from a tokenizer's character offsets ([start, end) per token in the same text the words
 * were cut from; null or an empty span for special tokens): a token belongs to the word that holds
 * its first non-space character, or to none.
 */
export function wordIdsFromOffsets(offsets: readonly (readonly [number, number] | null)[], words: readonly Word[], text: string): (number | null)[] {
  return offsets.map((o) => {
    if (!o || o[1] <= o[0]) return null;
    let s = o[0];
    while (s < o[1] && /\s/.test(text[s]!)) s++;
    if (s >= o[1]) return null;
    // words are sorted and disjoint: binary search for the one whose span holds s
    let lo = 0;
    let hi = words.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const w = words[mid]!;
      if (s < w.start) hi = mid - 1;
      else if (s >= w.end) lo = mid + 1;
      else return mid;
    }
    return null;
  });
}

export interface AlignOptions {
  /** The sub-tokens after a word's first: `ignore` (null, loss-masked; the default) or `inside` (I-X for B-X and I-X words, O for O). */
  subwords?: 'ignore' | 'inside';
}

/** Token tags from word tags: the first sub-token of each word carries the word's tag; null means ignored. */
export function alignTags(wordIds: WordIds, wordTags: readonly string[], o: AlignOptions = {}): (string | null)[] {
  let prev: number | null = null;
  return wordIds.map((w) => {
    if (w === null) { prev = null; return null; }
    if (!(w >= 0 && w < wordTags.length)) throw new RangeError(`alignTags: word id ${w} but there are ${wordTags.length} word tags`);
    const tag = wordTags[w]!;
    const first = w !== prev;
    prev = w;
    if (first) return tag;
    if (o.subwords !== 'inside') return null;
    return tag === 'O' ? 'O' : `I-${splitTag(tag)[1]}`;
  });
}

/** Label ids for token tags; ignored tokens get IGNORE_INDEX (-100). */
export function encodeTags(tokenTags: readonly (string | null)[], labels: readonly string[]): Int32Array {
  const index = new Map(labels.map((l, i) => [l, i]));
  return Int32Array.from(tokenTags, (t) => {
    if (t === null) return IGNORE_INDEX;
    const k = index.get(t);
    if (k === undefined) throw new GraftError('E_NER_TAG', `tag "${t}" is not among the model's labels (${labels.join(', ')})`, 'Train on data with the same tag set, or add the tag to the labels.');
    return k;
  });
}

/** Word tags from token predictions: each word takes its first sub-token's tag; a word without tokens (cut off) is O. */
export function wordTagsFromTokens(wordIds: WordIds, tokenTags: readonly string[], nWords: number): string[] {
  if (wordIds.length !== tokenTags.length) throw new RangeError(`wordTagsFromTokens: ${wordIds.length} word ids but ${tokenTags.length} token tags`);
  const out = new Array<string>(nWords).fill('O');
  const seen = new Uint8Array(nWords);
  wordIds.forEach((w, i) => {
    if (w === null || seen[w]) return;
    if (!(w >= 0 && w < nWords)) throw new RangeError(`wordTagsFromTokens: word id ${w} but there are ${nWords} words`);
    seen[w] = 1;
    out[w] = tokenTags[i]!;
  });
  return out;
}

/** An entity in an original text: its type, its span [start, end) in UTF-16 code units and its text. */
export interface TextEntity { type: string; start: number; end: number; text: string }

/** Entities with character offsets from word tags over words of `text` (decoded as getEntities does). */
export function entitiesInText(text: string, words: readonly Word[], wordTags: readonly string[], mode: NerMode = 'default'): TextEntity[] {
  if (words.length !== wordTags.length) throw new RangeError(`entitiesInText: ${words.length} words but ${wordTags.length} tags`);
  return getEntities(wordTags, mode).map((c) => {
    const start = words[c.start]!.start;
    const end = words[c.end - 1]!.end;
    return { type: c.type, start, end, text: text.slice(start, end) };
  });
}
