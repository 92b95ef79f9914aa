/**
 * Token-classification data: CoNLL files (one token per line, whitespace- or tab-separated columns,
 * the token first and the tag last, a blank line between sentences, `-DOCSTART-` lines between
 * documents, `#` comment lines) and JSONL (one `{"tokens": [...], "tags": [...]}` per line).
 *
 * Tags come back as IOB2 whatever the file used. IOB2 and IOB1 files (an I- tag may start an entity)
 * and IOBES/BILOU files (E-, S-, L-, U- tags) are read the way seqeval's default mode reads them and
 * rewritten as IOB2, so a model trains on exactly the entities it will be scored on; `strict` instead
 * refuses any sequence that is invalid in the file's scheme. Every problem is a typed error naming
 * the file and line; `onError: 'skip'` drops the sentence with a warning instead.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { GraftError, isGraftError } from '../errors.ts';
import { readText } from './csv.ts';
import { getEntities, toIob2 } from './iob.ts';

export type TagScheme = 'iob2' | 'iob1' | 'bioes';

export interface ConllSentence {
  tokens: string[];
  /** IOB2 tags, one per token. */
  tags: string[];
  /** 1-based line of the sentence's first token (CoNLL) or of its JSON object (JSONL). */
  line: number;
  /** Document index: 0 before the first `-DOCSTART-`, one more after each (always 0 in JSONL). */
  doc: number;
}

export interface ConllData {
  sentences: ConllSentence[];
  /** The IOB2 tag set: O, then B- and I- of each entity type, types sorted. */
  labels: string[];
  /** Entity types, sorted. */
  types: string[];
  /** The scheme the file was read as. */
  scheme: TagScheme;
  /** Tags rewritten on the way to IOB2 (an I- that starts an entity, E-, S-, ...). */
  converted: number;
  /** Sentences dropped with onError 'skip': the line of the problem and what it was. */
  skipped: { line: number; message: string }[];
}

export interface ReadConllOptions {
  /**
   * The tag scheme. `auto` (default): IOBES if any tag starts E-, S-, L- or U-; else IOB1 if an I- tag
   * starts an entity, else IOB2 (with `strict`, IOB2: name IOB1 to check a file against it).
   */
  scheme?: 'auto' | TagScheme;
  /** Refuse tag sequences that are invalid in the scheme (an I-X after O in IOB2, B-X not closed by E-X in IOBES) instead of reading them as seqeval does. */
  strict?: boolean;
  /** `throw` (default): the first problem is an E_CONLL_MALFORMED or E_NER_TAG error; `skip`: drop the sentence and warn. */
  onError?: 'throw' | 'skip';
  /** Receives one `warning: ...` line per skipped sentence. */
  log?: (line: string) => void;
}

const TAG = /^(?:O|([BIESLU])-(\S+))$/;
const JSONL = /\.jsonl(\.gz)?$/i;

class Bad extends Error {
  constructor(readonly code: 'E_CONLL_MALFORMED' | 'E_NER_TAG', readonly line: number, message: string, readonly hint: string) { super(message); }
}

const HINTS = {
  tag: 'Tags are O or PREFIX-TYPE with prefix B, I (IOB2/IOB1) or B, I, E, S (IOBES), e.g. B-PER, I-PER, O.',
  columns: 'Write one token per line with the same columns on every line (the token first, the tag last), separated by spaces or tabs, and a blank line between sentences.',
};

/** Position of the first byte that is not UTF-8, or -1. */
function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length;) {
    const c = b[i]!;
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n < 0) return i;
    for (let k = 1; k <= n; k++) if (i + k >= b.length || (b[i + k]! & 0xc0) !== 0x80) return i;
    if ((c === 0xe0 && b[i + 1]! < 0xa0) || (c === 0xed && b[i + 1]! > 0x9f) || (c === 0xf0 && b[i + 1]! < 0x90) || (c === 0xf4 && b[i + 1]! > 0x8f)) return i;
    i += n + 1;
  }
  return -1;
}

function readFile(path: string): string {
  try {
    return readText(path, true);
  } catch (e) {
    if (!isGraftError(e)) throw e;
    if (e.code === 'E_FILE_MISSING') throw new GraftError(e.code, e.message.replace('the CSV file', 'the file'), e.hint);
    if (e.code !== 'E_TEXT_ENCODING') throw e;
    let b: Uint8Array = readFileSync(path);
    if (b[0] === 0x1f && b[1] === 0x8b) b = gunzipSync(b);
    const at = firstInvalidUtf8(b);
    let line = 1;
    for (let i = 0; i < at; i++) if (b[i] === 0x0a) line++;
    const utf16 = (b[0] === 0xff && b[1] === 0xfe) || (b[0] === 0xfe && b[1] === 0xff);
    throw new GraftError('E_TEXT_ENCODING', `${path} is not valid UTF-8: ${utf16 ? 'it starts with a UTF-16 byte-order mark' : `line ${line} has the byte 0x${b[at]!.toString(16)}`}`,
      utf16 ? 'Save it as UTF-8, e.g. iconv -f utf-16 -t utf-8 in.conll > out.conll.' : 'Convert it to UTF-8 first, e.g. iconv -f latin1 -t utf-8 in.conll > out.conll.', { line });
  }
}

interface Raw { tokens: string[]; tags: string[]; lines: number[]; doc: number; line: number; error: Bad | null }

/** CoNLL text into raw sentences; structural problems are recorded on the sentence they occur in. */
function parseBlocks(text: string): Raw[] {
  const lines = text.split('\n');
  const fields = (l: string) => (l.includes('\t') ? l.split('\t') : l.trim().split(/\s+/));
  // the column count most token lines have (lines starting with '#' may be comments: left out)
  const counts = new Map<number, [number, number]>();
  lines.forEach((l, i) => {
    const s = l.trimEnd();
    if (!s || s.startsWith('#') || s.trimStart().startsWith('-DOCSTART-')) return;
    const n = fields(s).length;
    const c = counts.get(n);
    if (c) c[0]++; else counts.set(n, [1, i + 1]);
  });
  const [ncol, example] = [...counts].sort((a, b) => b[1][0] - a[1][0] || a[0] - b[0])[0] ?? [2, [0, 0]];
  const out: Raw[] = [];
  let doc = 0;
  let cur: Raw | null = null;
  const close = () => { if (cur) out.push(cur); cur = null; };
  lines.forEach((l, i) => {
    const s = l.trimEnd();
    const line = i + 1;
    if (!s.trim()) { close(); return; }
    if (s.trimStart().startsWith('-DOCSTART-')) { close(); doc++; return; }
    const f = fields(s);
    // '#' lines are comments unless they look exactly like a token line ("# O", "#1 B-X")
    if (s.startsWith('#') && !(f.length === ncol && TAG.test(f.at(-1)!.trim()))) return;
    cur ??= { tokens: [], tags: [], lines: [], doc, line, error: null };
    const r: Raw = cur;
    if (r.error) return;
    const tok = f[0]!.trim();
    const tag = f.at(-1)!.trim();
    if (f.length < 2) {
      r.error = new Bad('E_CONLL_MALFORMED', line, `line ${line} has one column (${JSON.stringify(s.trim().slice(0, 40))}); expected a token and a tag`, HINTS.columns);
    } else if (f.length !== ncol) {
      r.error = new Bad('E_CONLL_MALFORMED', line, `line ${line} has ${f.length} columns; expected ${ncol} like most lines of the file (e.g. line ${example[1]})`, HINTS.columns);
    } else if (!tok) {
      r.error = new Bad('E_CONLL_MALFORMED', line, `line ${line} has an empty token`, HINTS.columns);
    } else if (!tag) {
      r.error = new Bad('E_CONLL_MALFORMED', line, `line ${line} has an empty tag`, HINTS.columns);
    }
    r.tokens.push(tok);
    r.tags.push(tag);
    r.lines.push(line);
  });
  close();
  return out;
}

function parseJsonl(text: string): Raw[] {
  const out: Raw[] = [];
  text.split('\n').forEach((s, i) => {
    const line = i + 1;
    if (!s.trim()) return;
    const r: Raw = { tokens: [], tags: [], lines: [], doc: 0, line, error: null };
    out.push(r);
    const bad = (m: string) => { r.error = new Bad('E_CONLL_MALFORMED', line, `line ${line} ${m}`, 'Write one JSON object per line: {"tokens": ["Pay", "$", "5"], "tags": ["O", "B-MONEY", "I-MONEY"]}.'); };
    let o: unknown;
    try { o = JSON.parse(s); } catch { bad('is not a JSON object'); return; }
    if (!o || typeof o !== 'object' || Array.isArray(o)) { bad('is not a JSON object'); return; }
    const obj = o as Record<string, unknown>;
    const tokens = obj.tokens;
    const tags = obj.tags ?? obj.ner_tags;
    if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === 'string')) { bad('has no "tokens" array of strings'); return; }
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
      bad(Array.isArray(tags) && tags.every((t) => typeof t === 'number') ? 'has numeric tags; expected tag strings such as "B-PER"' : 'has no "tags" array of strings');
      return;
    }
    if (tokens.length !== tags.length) { bad(`has ${tokens.length} tokens but ${tags.length} tags`); return; }
    if (!tokens.length) { bad('has no tokens'); return; }
    const empty = tokens.findIndex((t) => !t.trim());
    if (empty >= 0) { bad(`has an empty token (token ${empty + 1})`); return; }
    r.tokens = tokens.map((t) => t.trim());
    r.tags = tags.map((t) => t.trim());
    r.lines = tokens.map(() => line);
  });
  return out;
}

/** Checks a sentence's tags against the scheme; returns the IOB2 tags or records an error. */
function convert(r: Raw, scheme: TagScheme, strict: boolean): string[] | null {
  const where = (i: number) => `line ${r.lines[i]}`;
  for (let i = 0; i < r.tags.length; i++) {
    const t = r.tags[i]!;
    const m = TAG.exec(t);
    const ok = m && (scheme === 'bioes' ? true : 'BI'.includes(m[1] ?? 'B'));
    if (!ok) {
      const what = !m ? `tag "${t}" is not O or PREFIX-TYPE with a B-, I-, E- or S- prefix (unknown tag scheme)`
        : `tag "${t}" is IOBES, but the file is read as ${scheme.toUpperCase()}`;
      r.error = new Bad('E_NER_TAG', r.lines[i]!, `${where(i)}: ${what}`, m ? 'Pass scheme "bioes" (or "auto") to read E- and S- tags.' : HINTS.tag);
      return null;
    }
  }
  // BILOU is IOBES with other letters
  const tags = scheme === 'bioes' ? r.tags.map((t) => t.replace(/^L-/, 'E-').replace(/^U-/, 'S-')) : r.tags;
  if (strict) {
    let open: string | null = null; // the type of the entity the previous tag leaves open
    let prev = 'O';
    for (let i = 0; i <= tags.length; i++) {
      const t = tags[i] ?? 'O';
      const p = t[0]!;
      const type = t.slice(2);
      let why = '';
      if (scheme === 'iob2' && p === 'I' && open !== type) why = `"${t}" does not continue a B-${type} or I-${type} (strict IOB2)`;
      if (scheme === 'iob1' && p === 'B' && open !== type) why = `"${t}" does not follow an entity of type ${type} (strict IOB1 uses B- only between two adjacent ${type} entities)`;
      if (scheme === 'bioes') {
        if (open !== null && (p === 'O' || p === 'B' || p === 'S' || type !== open)) why = `"${prev}" is not closed by E-${open} before ${i < tags.length ? `"${t}"` : 'the end of the sentence'} (strict IOBES)`;
        else if (open === null && (p === 'I' || p === 'E')) why = `"${t}" does not continue a B-${type} (strict IOBES)`;
        open = p === 'B' || (p === 'I' && open !== null) ? type : null;
      } else open = p === 'O' ? null : type;
      if (why) {
        const j = Math.min(i, tags.length - 1);
        r.error = new Bad('E_NER_TAG', r.lines[j]!, `${where(j)}: ${why}`, `Fix the tags, or read without strict to take them as seqeval's default mode does.`);
        return null;
      }
      prev = t;
    }
  }
  return toIob2(tags);
}

/** Reads CoNLL or JSONL token-classification text (`file` names it in messages; JSONL when it ends in .jsonl). */
export function parseConll(text: string, file: string, o: ReadConllOptions = {}): ConllData {
  const raws = JSONL.test(file) ? parseJsonl(text) : parseBlocks(text);
  let scheme: TagScheme;
  if (!o.scheme || o.scheme === 'auto') {
    scheme = raws.some((r) => r.tags.some((t) => /^[ESLU]-/.test(t))) ? 'bioes'
      // strict checks IOB2 unless IOB1 is asked for by name
      : !o.strict && raws.some((r) => r.tags.some((t, i) => t.startsWith('I-') && (i === 0 || r.tags[i - 1]!.slice(2) !== t.slice(2)))) ? 'iob1' : 'iob2';
  } else scheme = o.scheme;
  const skipOn = o.onError === 'skip';
  const sentences: ConllSentence[] = [];
  const skipped: ConllData['skipped'] = [];
  let converted = 0;
  for (const r of raws) {
    const tags = r.error ? null : convert(r, scheme, o.strict ?? false);
    if (!tags) {
      const e = r.error!;
      if (!skipOn) throw new GraftError(e.code, `${file} ${e.message}`, e.hint + ' (Or skip bad sentences with a warning.)', { line: e.line });
      const span = r.lines.length ? `lines ${r.line}-${r.lines.at(-1)}` : `line ${r.line}`;
      skipped.push({ line: e.line, message: e.message });
      o.log?.(`warning: ${file} ${e.message}; skipped the sentence at ${span}`);
      continue;
    }
    tags.forEach((t, i) => { if (t !== r.tags[i]) converted++; });
    sentences.push({ tokens: r.tokens, tags, line: r.line, doc: r.doc });
  }
  if (!sentences.length) {
    throw new GraftError('E_CONLL_EMPTY', `${file} holds no sentences${skipped.length ? ` (all ${skipped.length} were skipped)` : ''}`,
      JSONL.test(file) ? 'Write one {"tokens": [...], "tags": [...]} object per line.' : HINTS.columns);
  }
  const types = [...new Set(sentences.flatMap((s) => getEntities(s.tags).map((c) => c.type)))].sort();
  return { sentences, labels: ['O', ...types.flatMap((t) => [`B-${t}`, `I-${t}`])], types, scheme, converted, skipped };
}

/** Reads a CoNLL or JSONL file (UTF-8, BOM stripped, gzip recognised; JSONL when the name ends in .jsonl or .jsonl.gz). */
export function readConll(path: string, o: ReadConllOptions = {}): ConllData {
  return parseConll(readFile(path), path, o);
}

/**
 * CoNLL text: `token tag` per line, a blank line after each sentence, a `-DOCSTART- O` line before
 * each new document when sentences carry `doc`. A token with a space in it is written tab-separated.
 */
export function writeConll(sentences: readonly { tokens: readonly string[]; tags: readonly string[]; doc?: number }[]): string {
  const out: string[] = [];
  let doc: number | undefined;
  for (const s of sentences) {
    if (s.tokens.length !== s.tags.length) throw new RangeError(`writeConll: ${s.tokens.length} tokens but ${s.tags.length} tags`);
    if (s.doc !== undefined && s.doc !== doc) { out.push('-DOCSTART- O', ''); doc = s.doc; }
    s.tokens.forEach((t, i) => {
      if (!t.trim() || /[\t\n\r]/.test(t) || t === '-DOCSTART-') throw new RangeError(`writeConll: token ${JSON.stringify(t)} cannot be written`);
      out.push(`${t}${/\s/.test(t) ? '\t' : ' '}${s.tags[i]}`);
    });
    out.push('');
  }
  return out.join('\n');
}
