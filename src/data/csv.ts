/**
 * Numeric CSV tables: a header row, a label column and numeric feature columns. Every problem in the
 * file is a typed error that names the file, line and column, says what arrived, and what to do.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { GraftError } from '../errors.ts';

export interface NumericTable {
  /** Feature column names, in the order of x's columns. */
  columns: string[];
  /** Row-major features, n * d. */
  x: Float32Array;
  n: number;
  d: number;
  /** Raw label strings per row (null when the file has no label column and none was required). */
  labels: string[] | null;
  /** 1-based line number of each row in the file. */
  rowNumbers: Int32Array;
}

export interface ReadCsvOptions {
  labelColumn?: string;
  requireLabel?: boolean;
  /** The columns a model was trained on; the file must hold them (in any order). */
  featureColumns?: string[];
}

/** Splits one CSV record into fields (RFC 4180 quotes; a doubled quote is a literal quote). */
export function splitCsvLine(line: string): string[] {
  if (!line.includes('"')) return line.split(','); // fast path: most numeric rows
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (q) {
      if (ch === '"') {
        if (line[i + 1] === '"') { cur += '"'; i++; } else q = false;
      } else cur += ch;
    } else if (ch === '"') q = true;
    else if (ch === ',') { out.push(cur); cur = ''; } else cur += ch;
  }
  out.push(cur);
  return out;
}

const list = (xs: string[], max = 8) => xs.slice(0, max).map((s) => `"${s}"`).join(', ') + (xs.length > max ? `, … (${xs.length} in all)` : '');

/** A text file's contents (gzip recognised by its magic bytes); `strict` refuses bytes that are not UTF-8. */
export function readText(path: string, strict = false): string {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder, not a file' : code === 'EACCES' ? 'permission denied' : String(code ?? e);
    throw new GraftError('E_FILE_MISSING', `cannot read the CSV file ${path}: ${why}`,
      'Check the path (relative paths are from the current folder) and that the file is readable.');
  }
  // gzip is recognised by its magic bytes, so .csv.gz (or a gzip without the suffix) just works
  if (buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new GraftError('E_FILE_MISSING', `cannot read ${path}: it looks gzip-compressed but does not decompress (${(e as Error).message})`,
        'The file is truncated or corrupt; copy it again, or pass the uncompressed .csv.');
    }
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: strict }).decode(buf);
  } catch {
    throw new GraftError('E_TEXT_ENCODING', `${path} is not valid UTF-8`,
      'Convert it to UTF-8 first, e.g. iconv -f latin1 -t utf-8 in.csv > out.csv.');
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * Yields [fields, line] per record, with the 1-based line the record starts on; blank lines yield
 * nothing. A quoted field may span lines. Works on the text in place, without an array of lines.
 */
export function* records(text: string, file: string): Generator<[string[], number]> {
  let pos = 0;
  let line = 1;
  const next = () => {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    let s = text.slice(pos, end);
    if (s.endsWith('\r')) s = s.slice(0, -1);
    pos = end + 1;
    line++;
    return s;
  };
  while (pos < text.length) {
    const start = line;
    let rec = next();
    // an odd number of quotes so far: a quoted field goes on past the line end
    while (rec.includes('"') && (rec.match(/"/g)!.length & 1) === 1) {
      if (pos >= text.length) {
        throw new GraftError('E_CSV_RAGGED', `${file} line ${start}: a quoted field opens but never closes`,
          'Close every opening double quote; write a literal quote inside a quoted field as "".');
      }
      rec += '\n' + next();
    }
    if (rec.trim() !== '') yield [splitCsvLine(rec), start];
  }
}

export function readNumericCsv(path: string, opts: ReadCsvOptions = {}): NumericTable {
  const labelCol = opts.labelColumn ?? 'label';
  const requireLabel = opts.requireLabel ?? true;
  const text = readText(path);
  const it = records(text, path);
  const first = it.next();
  if (first.done) {
    throw new GraftError('E_CSV_EMPTY', `${path} is empty: expected a header row and at least one data row`,
      `Write a header row (feature names and "${labelCol}") followed by one row per example.`);
  }
  const header = first.value[0].map((h) => h.trim());
  const seen = new Map<string, number>();
  header.forEach((h, i) => {
    if (seen.has(h)) {
      throw new GraftError('E_CSV_COLUMNS', `${path} line ${first.value[1]}: column "${h}" appears twice in the header (columns ${seen.get(h)! + 1} and ${i + 1})`,
        'Give every column a distinct name.');
    }
    seen.set(h, i);
  });
  const labelIdx = header.indexOf(labelCol);
  if (labelIdx < 0 && requireLabel) {
    throw new GraftError('E_CSV_NO_LABEL', `${path} has no "${labelCol}" column; expected one holding the classes, found the columns: ${list(header, 20)}`,
      `Rename the column that holds the classes to "${labelCol}", or name it with the label-column option.`);
  }
  let featIdx: number[];
  if (opts.featureColumns) {
    const want = opts.featureColumns;
    const missing = want.filter((c) => !seen.has(c));
    if (missing.length) {
      throw new GraftError('E_CSV_COLUMNS',
        `${path} does not have the model's feature columns: missing ${list(missing)}; the model expects ${want.length} columns (${list(want)}), the file has ${list(header)}`,
        'Pass a CSV with the same feature column names the model was trained on (any order; extra columns are ignored).');
    }
    featIdx = want.map((c) => seen.get(c)!);
  } else {
    featIdx = header.map((_, i) => i).filter((i) => i !== labelIdx);
  }
  const columns = featIdx.map((i) => header[i]!);
  if (featIdx.length === 0) {
    throw new GraftError('E_CSV_COLUMNS', `${path} has no feature columns besides "${labelCol}"`, 'Add at least one numeric feature column.');
  }
  // capacity: one row per remaining line (exact unless there are blank lines or multi-line fields)
  let cap = 0;
  for (let p = text.indexOf('\n'); p >= 0 && p < text.length - 1; p = text.indexOf('\n', p + 1)) cap++;
  const d = featIdx.length;
  let x = new Float32Array(cap * d);
  const labels: string[] | null = labelIdx >= 0 ? [] : null;
  let rowNumbers = new Int32Array(cap);
  let n = 0;
  for (const [f, line] of it) {
    if (f.length !== header.length) {
      throw new GraftError('E_CSV_RAGGED', `${path} line ${line} has ${f.length} field${f.length === 1 ? '' : 's'}; expected ${header.length}, one per header column`,
        'Every row needs one value per header column; check for stray or missing commas, and quote text that contains commas.');
    }
    for (let j = 0; j < d; j++) {
      const raw = f[featIdx[j]!]!.trim();
      const v = Number(raw);
      if (raw === '' || (Number.isNaN(v) ? /^[+-]?(nan|inf(inity)?)$/i.test(raw) : !Number.isFinite(v))) {
        throw new GraftError('E_CSV_NOT_FINITE', `${path} line ${line}, column "${columns[j]}": expected a finite number, got ${raw === '' ? 'an empty cell' : `"${raw}"`}`,
          'Fill in or drop rows with missing values, NaN or Infinity before training.');
      }
      // Number() also takes hex/binary/octal literals, which a CSV number never means
      if (Number.isNaN(v) || /^[+-]?0[xbo]/i.test(raw)) {
        throw new GraftError('E_CSV_NOT_NUMERIC', `${path} line ${line}, column "${columns[j]}": expected a number, got "${raw}"`,
          'Feature columns must be numeric; encode text or categories as numbers first, or drop the column.');
      }
      if (!Number.isFinite(Math.fround(v))) {
        throw new GraftError('E_CSV_NOT_FINITE', `${path} line ${line}, column "${columns[j]}": ${raw} overflows a float32 (max about 3.4e38)`,
          'Rescale the column so its values fit in float32.');
      }
      x[n * d + j] = v;
    }
    if (labels) {
      const lab = f[labelIdx]!.trim();
      if (lab === '') {
        throw new GraftError('E_CSV_NOT_FINITE', `${path} line ${line}: expected a class in the "${labelCol}" column, got an empty cell`,
          'Give every row a label, or drop unlabelled rows.');
      }
      labels.push(lab);
    }
    rowNumbers[n++] = line;
  }
  if (n === 0) {
    throw new GraftError('E_CSV_EMPTY', `${path} has a header but no data rows; expected at least one row after line ${first.value[1]}`,
      'Add data rows (at least a few per class) below the header.');
  }
  if (n < cap) { x = x.slice(0, n * d); rowNumbers = rowNumbers.slice(0, n); }
  return { columns, x, n, d, labels, rowNumbers };
}

/** Natural class order: numerically when every label is a number, else lexicographically. */
export function sortLabels(labels: Iterable<string>): string[] {
  const u = [...new Set(labels)];
  const numeric = u.every((s) => s.trim() !== '' && Number.isFinite(Number(s)));
  return numeric ? u.sort((a, b) => Number(a) - Number(b) || (a < b ? -1 : a > b ? 1 : 0)) : u.sort();
}

export function encodeLabels(labels: string[], classes?: string[]): { classes: string[]; y: Int32Array } {
  const cls = classes ?? sortLabels(labels);
  const index = new Map(cls.map((c, i) => [c, i]));
  const y = new Int32Array(labels.length);
  const unknown = new Map<string, number>(); // label -> first data row
  labels.forEach((l, i) => {
    const k = index.get(l);
    if (k === undefined) { if (!unknown.has(l)) unknown.set(l, i + 1); } else y[i] = k;
  });
  if (unknown.size) {
    const [l, row] = unknown.entries().next().value!;
    throw new GraftError('E_UNKNOWN_LABEL',
      `${unknown.size > 1 ? 'labels' : 'label'} ${list([...unknown.keys()])} ${unknown.size > 1 ? 'are' : 'is'} not among the model's classes (first at data row ${row}: "${l}"); the model knows ${list(cls, 12)}`,
      'Evaluate on data labelled with the classes the model was trained on, or retrain with these classes.');
  }
  return { classes: cls, y };
}

export function checkClasses(classes: string[], y: Int32Array): void {
  if (classes.length < 2) {
    throw new GraftError('E_ONE_CLASS', `the data has ${classes.length === 1 ? `only one class ("${classes[0]}")` : 'no classes'}; a classifier needs at least two`,
      'Add examples of at least one other class to the label column.');
  }
  const counts = new Int32Array(classes.length);
  for (const c of y) counts[c]!++;
  const empty = classes.filter((_, i) => counts[i] === 0);
  if (empty.length) {
    throw new GraftError('E_EMPTY_CLASS', `class(es) ${list(empty)} have no examples`, 'Add examples for every class, or remove the class.');
  }
}
