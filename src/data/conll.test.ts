import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseConll, readConll, writeConll } from './conll.ts';
import { getEntities } from '../text/ner.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-conll-'));
const file = (name: string, body: string | Buffer) => { const p = join(dir, name); writeFileSync(p, body); return p; };
const err = (code: string, re: RegExp) => (e: { code: string; message: string }) => e.code === code && re.test(e.message);

test('reads CoNLL-2003 (four columns, -DOCSTART-), tabs, comments, CRLF and a BOM', () => {
  const c = readConll(file('a.conll', '\ufeff-DOCSTART- -X- -X- O\r\n\r\nEU NNP B-NP B-ORG\r\nrejects VBZ B-VP O\r\nGerman JJ B-NP B-MISC\r\n\r\n'
    + '-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n\n'));
  assert.deepEqual(c.sentences, [
    { tokens: ['EU', 'rejects', 'German'], tags: ['B-ORG', 'O', 'B-MISC'], line: 3, doc: 1 },
    { tokens: ['Peter', 'Blackburn'], tags: ['B-PER', 'I-PER'], line: 9, doc: 2 },
  ]);
  assert.deepEqual(c.labels, ['O', 'B-MISC', 'I-MISC', 'B-ORG', 'I-ORG', 'B-PER', 'I-PER']);
  assert.deepEqual([c.scheme, c.converted, c.skipped], ['iob2', 0, []]);
  // tabs (a token may hold a space), '#' comments, and a '#' token that looks like a token line
  const t = parseConll('# sent_id = 1\n# text = New York, # 1\nNew York\tB-LOC\n,\tO\n#\tO\n1\tO\n', 't.conll');
  assert.deepEqual(t.sentences[0]!.tokens, ['New York', ',', '#', '1']);
  assert.equal(t.sentences[0]!.line, 3);
});

test('JSONL: {"tokens": [...], "tags": [...]} per line, gzip recognised', () => {
  const body = '{"tokens": ["Pay", "$", "5"], "tags": ["O", "B-MONEY", "I-MONEY"]}\n\n{"tokens": ["hi"], "ner_tags": ["O"]}\n';
  const c = readConll(file('a.jsonl', body));
  assert.deepEqual(c.sentences.map((s) => [s.tokens, s.tags, s.line]), [[['Pay', '$', '5'], ['O', 'B-MONEY', 'I-MONEY'], 1], [['hi'], ['O'], 3]]);
  assert.deepEqual(readConll(file('b.jsonl.gz', gzipSync(body))).sentences, c.sentences);
  assert.deepEqual(readConll(file('c.conll.gz', gzipSync('a O\nb B-X\n'))).sentences[0]!.tags, ['O', 'B-X']);
});

test('IOB1 and IOBES/BILOU files come back as IOB2, read the way seqeval reads them', () => {
  // IOB1: I- starts an entity, B- separates two adjacent ones of one type
  const iob1 = parseConll('Peter I-PER\nBlackburn I-PER\nMary B-PER\nin O\nBonn I-LOC\n', 'a.conll');
  assert.equal(iob1.scheme, 'iob1');
  assert.deepEqual(iob1.sentences[0]!.tags, ['B-PER', 'I-PER', 'B-PER', 'O', 'B-LOC']);
  assert.equal(iob1.converted, 2);
  const bioes = parseConll('New B-LOC\nYork E-LOC\nand O\nBonn S-LOC\nnow O\n\nA U-X\nB B-X\nC L-X\n', 'b.conll');
  assert.equal(bioes.scheme, 'bioes');
  assert.deepEqual(bioes.sentences.map((s) => s.tags), [['B-LOC', 'I-LOC', 'O', 'B-LOC', 'O'], ['B-X', 'B-X', 'I-X']]);
  // the entities are the ones seqeval's default mode finds in the original tags
  assert.deepEqual(getEntities(bioes.sentences[0]!.tags), getEntities(['B-LOC', 'E-LOC', 'O', 'S-LOC', 'O']));
  // E- and S- are refused when the file is declared IOB2
  assert.throws(() => parseConll('a O\nb S-X\n', 'c.conll', { scheme: 'iob2' }), err('E_NER_TAG', /c\.conll line 2: tag "S-X" is IOBES/));
});

test('strict refuses sequences invalid in the scheme, naming the line', () => {
  assert.throws(() => parseConll('a O\nb O\n\nc O\nd I-X\n', 'a.conll', { strict: true }), err('E_NER_TAG', /a\.conll line 5: "I-X" does not continue a B-X or I-X \(strict IOB2\)/));
  assert.throws(() => parseConll('a B-X\nb I-Y\n', 'a.conll', { strict: true, scheme: 'iob2' }), err('E_NER_TAG', /line 2/));
  assert.throws(() => parseConll('a I-X\nb B-Y\n', 'a.conll', { strict: true, scheme: 'iob1' }), err('E_NER_TAG', /line 2: "B-Y" does not follow/));
  assert.throws(() => parseConll('a B-X\nb I-X\nc O\n', 'a.conll', { strict: true, scheme: 'bioes' }), err('E_NER_TAG', /line 3: "I-X" is not closed by E-X/));
  assert.throws(() => parseConll('a O\nb B-X\n', 'a.conll', { strict: true, scheme: 'bioes' }), err('E_NER_TAG', /line 2: "B-X" is not closed by E-X before the end/));
  assert.equal(parseConll('a B-X\nb I-X\nc E-X\nd S-Y\n', 'a.conll', { strict: true }).sentences[0]!.tags.join(' '), 'B-X I-X I-X B-Y');
  // without strict the same I- after O is a start, as in seqeval's default mode
  assert.deepEqual(parseConll('c O\nd I-X\n', 'a.conll').sentences[0]!.tags, ['O', 'B-X']);
});

test('malformed lines are typed errors with the file and line', () => {
  const cases: [string, string, RegExp][] = [
    ['a O\nb B-X I-X\n', 'E_CONLL_MALFORMED', /x\.conll line 2 has 3 columns; expected 2 like most lines of the file \(e\.g\. line 1\)/],
    ['a O\nb O\nc O\n\nword\n', 'E_CONLL_MALFORMED', /line 5 has one column \("word"\)/],
    ['a\tO\n\tO\n', 'E_CONLL_MALFORMED', /line 2 has an empty token/],
    ['a O\nb PER\n', 'E_NER_TAG', /line 2: tag "PER" is not O or PREFIX-TYPE .*unknown tag scheme/],
    ['a O\nb X-PER\n', 'E_NER_TAG', /line 2: tag "X-PER"/],
    ['a O\nb b-per\n', 'E_NER_TAG', /line 2: tag "b-per"/],
  ];
  for (const [body, code, re] of cases) assert.throws(() => parseConll(body, 'x.conll'), err(code, re), body);
  const jsonl: [string, RegExp][] = [
    ['{"tokens": ["a"], "tags": ["O"]}\nnot json\n', /y\.jsonl line 2 is not a JSON object/],
    ['{"tokens": ["a", "b"], "tags": ["O"]}\n', /line 1 has 2 tokens but 1 tags/],
    ['{"tokens": ["a"], "tags": [3]}\n', /line 1 has numeric tags/],
    ['{"tokens": ["a", " "], "tags": ["O", "O"]}\n', /line 1 has an empty token \(token 2\)/],
    ['{"words": ["a"], "tags": ["O"]}\n', /line 1 has no "tokens" array/],
  ];
  for (const [body, re] of jsonl) assert.throws(() => parseConll(body, 'y.jsonl'), err('E_CONLL_MALFORMED', re), body);
  assert.throws(() => parseConll('\n\n# only a comment\n', 'e.conll'), { code: 'E_CONLL_EMPTY' });
  assert.throws(() => readConll(join(dir, 'missing.conll')), (e: { code: string; message: string }) => e.code === 'E_FILE_MISSING' && !/CSV/.test(e.message));
});

test('onError skip drops each bad sentence with one warning naming its lines', () => {
  const log: string[] = [];
  const c = parseConll('a O\nb B-X\n\nc O\nd Q-X\ne O\n\nf O g\n\nh B-Y\n', 'z.conll', { onError: 'skip', log: (l) => log.push(l) });
  assert.deepEqual(c.sentences.map((s) => s.tokens), [['a', 'b'], ['h']]);
  assert.deepEqual(c.skipped.map((s) => s.line), [5, 8]);
  assert.deepEqual(log, [
    'warning: z.conll line 5: tag "Q-X" is not O or PREFIX-TYPE with a B-, I-, E- or S- prefix (unknown tag scheme); skipped the sentence at lines 4-6',
    'warning: z.conll line 8 has 3 columns; expected 2 like most lines of the file (e.g. line 1); skipped the sentence at lines 8-8',
  ]);
  assert.throws(() => parseConll('a Q\n', 'z.conll', { onError: 'skip' }), err('E_CONLL_EMPTY', /all 1 were skipped/));
});

test('bytes that are not UTF-8 are refused with the line they are on', () => {
  const latin1 = Buffer.concat([Buffer.from('a O\n\ncaf'), Buffer.from([0xe9]), Buffer.from(' O\n')]);
  assert.throws(() => readConll(file('l.conll', latin1)), err('E_TEXT_ENCODING', /l\.conll is not valid UTF-8: line 3 has the byte 0xe9/));
  const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('a O\n', 'utf16le')]);
  assert.throws(() => readConll(file('u.conll', utf16)), err('E_TEXT_ENCODING', /UTF-16 byte-order mark/));
  assert.deepEqual(readConll(file('ok.conll', 'café O\n€ B-MONEY\n')).sentences[0]!.tokens, ['café', '€']);
});

test('writeConll writes what readConll reads back', () => {
  const s = [{ tokens: ['Pay', '$', '5', '#'], tags: ['O', 'B-MONEY', 'I-MONEY', 'O'], doc: 0 }, { tokens: ['New York'], tags: ['B-LOC'], doc: 0 }, { tokens: ['x'], tags: ['O'], doc: 1 }];
  const text = writeConll(s);
  assert.equal(text, '-DOCSTART- O\n\nPay O\n$ B-MONEY\n5 I-MONEY\n# O\n\nNew York\tB-LOC\n\n-DOCSTART- O\n\nx O\n');
  assert.deepEqual(parseConll(text, 'w.conll').sentences.map((x) => ({ tokens: x.tokens, tags: x.tags, doc: x.doc - 1 })), s);
  assert.throws(() => writeConll([{ tokens: ['a\tb'], tags: ['O'] }]), RangeError);
});

test('the NER fixture set reads strictly as IOB2, every type in every split, documents disjoint', () => {
  const types = ['DATE', 'EMAIL', 'MONEY', 'PERCENT', 'PHONE', 'TIME', 'URL'];
  const docs: Set<string>[] = [];
  for (const split of ['train', 'dev', 'test']) {
    const path = new URL(`../../fixtures/ner/${split}.conll`, import.meta.url).pathname;
    const c = readConll(path, { scheme: 'iob2', strict: true });
    assert.deepEqual(c.types, types, split);
    assert.equal(c.converted, 0);
    docs.push(new Set(readFileSync(path, 'utf8').match(/^# doc = .*$/gm)));
    assert.equal(docs.at(-1)!.size, new Set(c.sentences.map((s) => s.doc)).size, split);
  }
  for (const [a, b] of [[0, 1], [0, 2], [1, 2]] as const) assert.equal([...docs[a]!].filter((d) => docs[b]!.has(d)).length, 0);
});
