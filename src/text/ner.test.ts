import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '@huggingface/tokenizers';
import {
  alignTags, chunksToTags, encodeTags, encodeWords, entitiesInText, formatNerReport, getEntities, IGNORE_INDEX, nerScores,
  toIob2, wordIdsFromOffsets, wordsFromTokens, wordTagsFromTokens, wordTokenize, type EntityScores,
} from './ner.ts';

// Expected numbers below are computed by hand (the comments show how); the same cases, and 3,000
// random ones, were checked once against seqeval 1.2.2's get_entities and classification_report.

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);
const prf = (s: EntityScores, p: number, r: number, f: number) => { close(s.precision, p); close(s.recall, r); close(s.f1, f); };
const ents = (tags: string[], mode: 'default' | 'strict' = 'default') => getEntities(tags, mode).map((c) => `${c.type}:${c.start}-${c.end}`);

test('scorer 1: a perfect prediction scores 1', () => {
  const y = [['B-PER', 'I-PER', 'O', 'B-LOC']];
  const r = nerScores(y, y);
  prf(r.micro, 1, 1, 1);
  assert.deepEqual(r.types, ['LOC', 'PER']);
  assert.equal(r.micro.support, 2);
});

test('scorer 2: a partial overlap is a miss (and a false positive)', () => {
  // true PER[0,3), predicted PER[0,2): no exact match; P = 0/1, R = 0/1
  const r = nerScores([['B-PER', 'I-PER', 'I-PER']], [['B-PER', 'I-PER', 'O']]);
  prf(r.micro, 0, 0, 0);
  assert.deepEqual([r.micro.predicted, r.micro.support, r.micro.correct], [1, 1, 0]);
});

test('scorer 3: the right span with the wrong type is a miss for both types', () => {
  const r = nerScores([['B-PER', 'I-PER', 'O']], [['B-ORG', 'I-ORG', 'O']]);
  assert.deepEqual(r.types, ['ORG', 'PER']);
  assert.deepEqual([r.perType.ORG!.predicted, r.perType.ORG!.support], [1, 0]);
  assert.deepEqual([r.perType.PER!.predicted, r.perType.PER!.support], [0, 1]);
  prf(r.micro, 0, 0, 0);
});

test('scorer 4: an I- after O starts an entity in default mode, and is no entity in strict IOB2', () => {
  const yt = [['O', 'B-X', 'I-X', 'O']];
  const yp = [['O', 'I-X', 'I-X', 'O']];
  assert.deepEqual(ents(yp[0]!), ['X:1-3']);
  prf(nerScores(yt, yp).micro, 1, 1, 1); // X[1,3) both sides
  assert.deepEqual(ents(yp[0]!, 'strict'), []);
  const s = nerScores(yt, yp, 'strict'); // nothing predicted: P = 0/0 -> 0, R = 0/1
  prf(s.micro, 0, 0, 0);
  assert.equal(s.micro.support, 1);
  // strict: B-X I-Y is X[0,1) and a stray I-Y; default: X[0,1) and Y[1,2)
  assert.deepEqual(ents(['B-X', 'I-Y'], 'strict'), ['X:0-1']);
  assert.deepEqual(ents(['B-X', 'I-Y']), ['X:0-1', 'Y:1-2']);
  assert.throws(() => getEntities(['B-X', 'E-X'], 'strict'), { code: 'E_NER_TAG' });
});

test('scorer 5: adjacent B-X B-X are two entities', () => {
  assert.deepEqual(ents(['B-X', 'B-X', 'I-X']), ['X:0-1', 'X:1-3']);
  // true X[0,1), X[1,2); predicted X[0,2): P = 0/1, R = 0/2
  const r = nerScores([['B-X', 'B-X']], [['B-X', 'I-X']]);
  prf(r.micro, 0, 0, 0);
  assert.deepEqual([r.micro.predicted, r.micro.support], [1, 2]);
  // predicted X[0,1) only: P = 1/1, R = 1/2, F1 = 2 * 1 * 0.5 / 1.5 = 2/3
  prf(nerScores([['B-X', 'B-X']], [['B-X', 'O']]).micro, 1, 0.5, 2 / 3);
});

test('scorer 6: an entity at the end of a sentence closes there, never running into the next sentence', () => {
  assert.deepEqual(ents(['O', 'O', 'B-X', 'I-X']), ['X:2-4']);
  // [O B-X] [I-X O]: X[1,2) in sentence 0 and X[0,1) in sentence 1, not one entity
  const r = nerScores([['O', 'B-X'], ['I-X', 'O']], [['O', 'B-X'], ['B-X', 'O']]);
  assert.equal(r.micro.support, 2);
  prf(r.micro, 1, 1, 1);
});

test('scorer 7: empty predictions score 0, and so does nothing on either side (zero_division = 0)', () => {
  // true X[0,1), Y[2,3); nothing predicted: P = 0/0 -> 0, R = 0/2
  const r = nerScores([['B-X', 'O', 'B-Y']], [['O', 'O', 'O']]);
  prf(r.micro, 0, 0, 0);
  assert.deepEqual([r.micro.predicted, r.micro.support], [0, 2]);
  const none = nerScores([['O', 'O']], [['O', 'O']]);
  assert.deepEqual(none.types, []);
  prf(none.micro, 0, 0, 0);
  prf(nerScores([], []).micro, 0, 0, 0);
});

test('scorer 8: several types, per-type, micro, macro and weighted numbers by hand', () => {
  const yt = [
    ['B-PER', 'I-PER', 'O', 'B-LOC', 'O', 'B-ORG'], // PER[0,2) LOC[3,4) ORG[5,6)
    ['B-LOC', 'I-LOC', 'O', 'B-PER', 'O'], //          LOC[0,2) PER[3,4)
    ['O', 'B-MISC', 'O', 'B-PER', 'I-PER'], //         MISC[1,2) PER[3,5)
  ];
  const yp = [
    ['B-PER', 'I-PER', 'O', 'B-LOC', 'O', 'O'], //     PER[0,2) ok, LOC[3,4) ok, ORG missed
    ['B-LOC', 'O', 'O', 'B-PER', 'B-PER'], //          LOC[0,1) partial: wrong, PER[3,4) ok, PER[4,5) wrong
    ['O', 'B-ORG', 'O', 'B-PER', 'I-PER'], //          ORG[1,2) wrong type, PER[3,5) ok
  ];
  const r = nerScores(yt, yp);
  assert.deepEqual(r.types, ['LOC', 'MISC', 'ORG', 'PER']);
  // LOC: 1 correct of 2 predicted, 2 true -> P 1/2, R 1/2, F 1/2
  prf(r.perType.LOC!, 0.5, 0.5, 0.5);
  // MISC: 0 of 0 predicted, 1 true -> 0, 0, 0
  prf(r.perType.MISC!, 0, 0, 0);
  // ORG: 0 of 1 predicted, 1 true -> 0, 0, 0
  prf(r.perType.ORG!, 0, 0, 0);
  // PER: 3 of 4 predicted, 3 true -> P 3/4, R 1, F 2 * 0.75 / 1.75 = 6/7
  prf(r.perType.PER!, 0.75, 1, 6 / 7);
  assert.deepEqual(['LOC', 'MISC', 'ORG', 'PER'].map((t) => r.perType[t]!.support), [2, 1, 1, 3]);
  // micro: 4 correct, 7 predicted, 7 true -> 4/7 each
  prf(r.micro, 4 / 7, 4 / 7, 4 / 7);
  // macro: P (0.5 + 0 + 0 + 0.75) / 4, R (0.5 + 0 + 0 + 1) / 4, F (0.5 + 6/7) / 4
  prf(r.macro, 0.3125, 0.375, (0.5 + 6 / 7) / 4);
  // weighted by support 2, 1, 1, 3: P (2 * 0.5 + 3 * 0.75) / 7, R (2 * 0.5 + 3) / 7, F (1 + 3 * 6/7) / 7
  prf(r.weighted, 3.25 / 7, 4 / 7, 25 / 49);
  // seqeval 1.2.2's classification_report(yt, yp, digits=4), character for character
  assert.equal(formatNerReport(r, 4), '              precision    recall  f1-score   support\n\n         LOC     0.5000    0.5000    0.5000         2\n        MISC     0.0000    0.0000    0.0000         1\n         ORG     0.0000    0.0000    0.0000         1\n         PER     0.7500    1.0000    0.8571         3\n\n   micro avg     0.5714    0.5714    0.5714         7\n   macro avg     0.3125    0.3750    0.3393         7\nweighted avg     0.4643    0.5714    0.5102         7\n');
});

test('default mode reads IOB1 and IOBES as seqeval does; toIob2 rewrites them', () => {
  assert.deepEqual(ents(['I-X', 'I-X', 'B-X', 'O', 'I-Y', 'E-Y', 'I-Y']), ['X:0-2', 'X:2-3', 'Y:4-6', 'Y:6-7']);
  assert.deepEqual(ents(['S-X', 'B-Y', 'E-Y', 'S-Y']), ['X:0-1', 'Y:1-3', 'Y:3-4']);
  assert.deepEqual(toIob2(['I-X', 'I-X', 'B-X', 'O', 'I-Y', 'E-Y', 'I-Y']), ['B-X', 'I-X', 'B-X', 'O', 'B-Y', 'I-Y', 'B-Y']);
  assert.deepEqual(toIob2(['S-X', 'B-Y', 'I-Y', 'E-Y']), ['B-X', 'B-Y', 'I-Y', 'I-Y']);
  assert.deepEqual(chunksToTags([{ type: 'A', start: 1, end: 3 }], 4), ['O', 'B-A', 'I-A', 'O']);
  assert.throws(() => nerScores([['O']], [['O', 'O']]), RangeError);
});

test('wordTokenize: URLs and addresses whole, numbers kept, punctuation split, offsets in the text', () => {
  const text = 'Call (800) 555-1212, e-mail jo.smith@example.com or see http://ex.com/a?b=1. Only $12.99 (50%) at 10:30am — don\'t wait!';
  const w = wordTokenize(text);
  assert.deepEqual(w.map((x) => x.text), ['Call', '(', '800', ')', '555-1212', ',', 'e-mail', 'jo.smith@example.com', 'or', 'see', 'http://ex.com/a?b=1', '.',
    'Only', '$', '12.99', '(', '50', '%', ')', 'at', '10:30am', '—', "don't", 'wait', '!']);
  for (const x of w) assert.equal(text.slice(x.start, x.end), x.text);
  assert.deepEqual(wordTokenize('Visit www.foo.org/x), amazon.com. or (http://a.b/c_(d)).').map((x) => x.text),
    ['Visit', 'www.foo.org/x', ')', ',', 'amazon.com', '.', 'or', '(', 'http://a.b/c_(d)', ')', '.']);
  assert.deepEqual(wordTokenize('Wait... U.S. e.g. mailto:a@b.co'), [
    { text: 'Wait', start: 0, end: 4 }, { text: '...', start: 4, end: 7 }, { text: 'U', start: 8, end: 9 }, { text: '.', start: 9, end: 10 },
    { text: 'S', start: 10, end: 11 }, { text: '.', start: 11, end: 12 }, { text: 'e', start: 13, end: 14 }, { text: '.', start: 14, end: 15 },
    { text: 'g', start: 15, end: 16 }, { text: '.', start: 16, end: 17 }, { text: 'mailto', start: 18, end: 24 }, { text: ':', start: 24, end: 25 },
    { text: 'a@b.co', start: 25, end: 31 }]);
});

// A WordPiece tokenizer built in memory with @huggingface/tokenizers: real sub-word splits, no download.
const wordPiece = new Tokenizer({
  version: '1.0',
  added_tokens: ['[UNK]', '[CLS]', '[SEP]'].map((content, id) => ({ id, content, special: true })),
  normalizer: { type: 'BertNormalizer', lowercase: true, strip_accents: false, clean_text: true, handle_chinese_chars: true },
  pre_tokenizer: { type: 'BertPreTokenizer' },
  post_processor: { type: 'BertProcessing', sep: ['[SEP]', 2], cls: ['[CLS]', 1] },
  decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
  model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100,
    vocab: { '[UNK]': 0, '[CLS]': 1, '[SEP]': 2, pay: 3, '##ing': 4, 'café': 5, '€': 6, '12': 7, '.': 8, '##99': 9, to: 10, 'mü': 11, '##ller': 12, '@': 13, ex: 14, '##ample': 15, com: 16, '99': 17 } },
}, {});

test('alignment: first sub-token labelled, the rest ignored (-100) or I-, and back to word tags', () => {
  const words = ['paying', '€', '12.99', 'to', 'müller@example.com'];
  const tags = ['O', 'B-MONEY', 'I-MONEY', 'O', 'B-EMAIL'];
  const enc = encodeWords(words, (w) => wordPiece.encode(w, { add_special_tokens: false }).ids, { prefix: [1], suffix: [2] });
  // [CLS] pay ##ing € 12 . 99 to mü ##ller @ ex ##ample . com [SEP]
  assert.deepEqual(enc.ids, [1, 3, 4, 6, 7, 8, 17, 10, 11, 12, 13, 14, 15, 8, 16, 2]);
  assert.deepEqual(enc.wordIds, [null, 0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 4, 4, 4, 4, null]);
  const ign = alignTags(enc.wordIds, tags);
  assert.deepEqual(ign, [null, 'O', null, 'B-MONEY', 'I-MONEY', null, null, 'O', 'B-EMAIL', null, null, null, null, null, null, null]);
  const inside = alignTags(enc.wordIds, tags, { subwords: 'inside' });
  assert.deepEqual(inside, [null, 'O', 'O', 'B-MONEY', 'I-MONEY', 'I-MONEY', 'I-MONEY', 'O', 'B-EMAIL', 'I-EMAIL', 'I-EMAIL', 'I-EMAIL', 'I-EMAIL', 'I-EMAIL', 'I-EMAIL', null]);
  const labels = ['O', 'B-EMAIL', 'I-EMAIL', 'B-MONEY', 'I-MONEY'];
  assert.deepEqual([...encodeTags(ign, labels)], [IGNORE_INDEX, 0, IGNORE_INDEX, 3, 4, IGNORE_INDEX, IGNORE_INDEX, 0, 1, ...new Array(7).fill(IGNORE_INDEX)]);
  assert.throws(() => encodeTags(['B-PER'], labels), { code: 'E_NER_TAG' });
  // round trip: whatever a model says on ignored positions, each word reads its first sub-token
  for (const aligned of [ign, inside]) {
    const predicted = aligned.map((t) => t ?? 'B-JUNK');
    assert.deepEqual(wordTagsFromTokens(enc.wordIds, predicted, words.length), tags);
  }
  // cut to 8 tokens: the words that did not fit get no tokens and read back as O
  const cut = encodeWords(words, (w) => wordPiece.encode(w, { add_special_tokens: false }).ids, { prefix: [1], suffix: [2], maxLength: 8 });
  assert.deepEqual(cut.wordIds, [null, 0, 0, 1, 2, 2, 2, null]);
  assert.deepEqual(wordTagsFromTokens(cut.wordIds, alignTags(cut.wordIds, tags).map((t) => t ?? 'O'), words.length), ['O', 'B-MONEY', 'I-MONEY', 'O', 'O']);
});

test('entities with character offsets on text with punctuation and multi-byte characters', () => {
  const text = 'Señor Müller — 😀 paid €1,299.50 (≈ ¥190,000!) to naïve@example.com on 5 März; see https://例え.jp/ü?q=1.';
  const words = wordTokenize(text);
  for (const w of words) assert.equal(text.slice(w.start, w.end), w.text);
  const i = (s: string) => words.findIndex((w) => w.text === s);
  const tags = words.map(() => 'O');
  tags[i('€')] = 'B-MONEY'; tags[i('1,299.50')] = 'I-MONEY';
  tags[i('¥')] = 'B-MONEY'; tags[i('190,000')] = 'I-MONEY';
  tags[i('example.com')] = 'B-EMAIL';
  tags[i('5')] = 'B-DATE'; tags[i('März')] = 'I-DATE';
  tags[i('https://例え.jp/ü?q=1')] = 'B-URL';
  // the address's local part is not ASCII, so "naïve", "@" and "example.com" are three words
  assert.deepEqual(words.slice(i('naïve'), i('naïve') + 3).map((w) => w.text), ['naïve', '@', 'example.com']);
  const got = entitiesInText(text, words, tags);
  const want = [['MONEY', '€1,299.50'], ['MONEY', '¥190,000'], ['EMAIL', 'example.com'], ['DATE', '5 März'], ['URL', 'https://例え.jp/ü?q=1']]
    .map(([type, s]) => ({ type: type!, start: text.indexOf(s!), end: text.indexOf(s!) + s!.length, text: s! }));
  assert.deepEqual(got, want);
  // the emoji is two UTF-16 code units: offsets after it are JavaScript string indices
  assert.equal(got[0]!.start, 23);
  // through a tokenizer with offsets (a byte-level BPE's, with the leading space inside the token)
  const offsets: ([number, number] | null)[] = [null, [0, 5], [5, 12], [12, 14], null];
  assert.deepEqual(wordIdsFromOffsets(offsets, words, text), [null, 0, 1, 2, null]);
  assert.deepEqual(wordIdsFromOffsets([[0, 3], [3, 5], [0, 0]], words, text), [0, 0, null]);
});

test('CoNLL tokens without their text: joined by spaces, offsets into the joined text', () => {
  const { text, words } = wordsFromTokens(['Pay', '$', '5', '.']);
  assert.equal(text, 'Pay $ 5 .');
  assert.deepEqual(entitiesInText(text, words, ['O', 'B-MONEY', 'I-MONEY', 'O']), [{ type: 'MONEY', start: 4, end: 7, text: '$ 5' }]);
});
