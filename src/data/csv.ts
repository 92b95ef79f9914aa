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

/** Splits one CSV line into fields (RFC 4180 quotes; a doubled quote is a literal quote). */
export function splitCsvLine(line: string): string[] {
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

function readText(path: string): string {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch {
    throw new GraftError('E_FILE_MISSING', `cannot read ${path}: no such file, or it is not readable`, 'Check the path and the file permissions.');
  }
  if (path.endsWith('.gz')) {
    try {
      buf = gunzipSync(buf);
    } catch {
      throw new GraftError('E_CSV_EMPTY', `${path} is not a readable gzip file`, 'Pass a plain .csv, or a valid .csv.gz.');
    }
  }
  let text = buf.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text;
}

export function readNumericCsv(path: string, opts: ReadCsvOptions = {}): NumericTable {
  const labelCol = opts.labelColumn ?? 'label';
  const requireLabel = opts.requireLabel ?? true;
  const lines = readText(path).split(/\r?\n/);
  while (lines.length && lines[lines.length - 1]!.trim() === '') lines.pop();
  if (lines.length === 0 || lines[0]!.trim() === '') {
    throw new GraftError('E_CSV_EMPTY', `${path} is empty: expected a header row and at least one data row`, 'Add a header row (feature names and "label") and data rows.');
  }
  const header = splitCsvLine(lines[0]!).map((h) => h.trim());
  const labelIdx = header.indexOf(labelCol);
  if (labelIdx < 0 && requireLabel) {
    throw new GraftError('E_CSV_NO_LABEL', `${path} has no "${labelCol}" column; its columns are: ${header.join(', ')}`,
      `Name the column that holds the classes "${labelCol}".`);
  }
  let featIdx: number[];
  let columns: string[];
  if (opts.featureColumns) {
    const missing = opts.featureColumns.filter((c) => !header.includes(c));
    if (missing.length) {
      throw new GraftError('E_CSV_COLUMNS', `${path} lacks the model's feature column(s) ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
        `Pass rows with the columns the model was trained on: ${opts.featureColumns.slice(0, 8).join(', ')}${opts.featureColumns.length > 8 ? ', …' : ''}.`);
    }
    columns = [...opts.featureColumns];
    featIdx = columns.map((c) => header.indexOf(c));
  } else {
    featIdx = header.map((_, i) => i).filter((i) => i !== labelIdx);
    columns = featIdx.map((i) => header[i]!);
  }
  if (featIdx.length === 0) {
    throw new GraftError('E_CSV_COLUMNS', `${path} has no feature columns besides "${labelCol}"`, 'Add numeric feature columns.');
  }
  const rows = lines.length - 1;
  if (rows === 0) {
    throw new GraftError('E_CSV_EMPTY', `${path} has a header but no data rows`, 'Add at least one data row per class.');
  }
  const d = featIdx.length;
  const x = new Float32Array(rows * d);
  const labels: string[] | null = labelIdx >= 0 ? [] : null;
  const rowNumbers = new Int32Array(rows);
  let n = 0;
  for (let r = 1; r < lines.length; r++) {
    const line = lines[r]!;
    if (line.trim() === '') continue; // blank lines inside the file are skipped
    const f = splitCsvLine(line);
    if (f.length !== header.length) {
      throw new GraftError('E_CSV_RAGGED', `${path} line ${r + 1} has ${f.length} fields; the header has ${header.length}`,
        'Every row needs one value per header column; check for stray commas or unquoted text.');
    }
    for (let j = 0; j < d; j++) {
      const raw = f[featIdx[j]!]!.trim();
      const v = Number(raw);
      if (raw === '' || /^[+-]?(nan|inf(inity)?)$/i.test(raw)) {
        throw new GraftError('E_CSV_NOT_FINITE', `${path} line ${r + 1}, column "${columns[j]}": expected a finite number, got "${raw}"`,
          'Fill in or drop rows with missing values, NaN or Infinity before training.');
      }
      if (Number.isNaN(v)) {
        throw new GraftError('E_CSV_NOT_NUMERIC', `${path} line ${r + 1}, column "${columns[j]}": expected a number, got "${raw}"`,
          'Feature columns must be numeric; encode text or categories as numbers first.');
      }
      if (!Number.isFinite(v) || Math.abs(v) > 3.4e38) {
        throw new GraftError('E_CSV_NOT_FINITE', `${path} line ${r + 1}, column "${columns[j]}": ${raw} does not fit a float32`,
          'Rescale the column so its values are finite.');
      }
      x[n * d + j] = v;
    }
    if (labels) {
      const lab = f[labelIdx]!.trim();
      if (lab === '') {
        throw new GraftError('E_CSV_NOT_FINITE', `${path} line ${r + 1}: the "${labelCol}" cell is empty`, 'Give every row a label, or drop unlabelled rows.');
      }
      labels.push(lab);
    }
    rowNumbers[n] = r + 1;
    n++;
  }
  return { columns, x: x.subarray(0, n * d), n, d, labels, rowNumbers: rowNumbers.subarray(0, n) };
}

/** Natural class order: numerically when every label is a number, else lexicographically. */
export function sortLabels(labels: Iterable<string>): string[] {
  const u = [...new Set(labels)];
  const numeric = u.every((s) => s.trim() !== '' && Number.isFinite(Number(s)));
  return numeric ? u.sort((a, b) => Number(a) - Number(b)) : u.sort();
}

export function encodeLabels(labels: string[], classes?: string[]): { classes: string[]; y: Int32Array } {
  const cls = classes ?? sortLabels(labels);
  const index = new Map(cls.map((c, i) => [c, i]));
  const y = new Int32Array(labels.length);
  labels.forEach((l, i) => {
    const k = index.get(l);
    if (k === undefined) {
      throw new GraftError('E_UNKNOWN_LABEL', `label "${l}" (row ${i + 1}) is not one the model knows; it knows: ${cls.slice(0, 10).join(', ')}${cls.length > 10 ? ', …' : ''}`,
        'Evaluate on data labelled with the classes the model was trained on.');
    }
    y[i] = k;
  });
  return { classes: cls, y };
}

export function checkClasses(classes: string[], y: Int32Array): void {
  if (classes.length < 2) {
    throw new GraftError('E_ONE_CLASS', `the data has ${classes.length === 1 ? `only one class ("${classes[0]}")` : 'no classes'}; a classifier needs at least two`,
      'Add examples of at least one other class.');
  }
  const counts = new Int32Array(classes.length);
  for (const c of y) counts[c]!++;
  const empty = classes.filter((_, i) => counts[i] === 0);
  if (empty.length) {
    throw new GraftError('E_EMPTY_CLASS', `class(es) ${empty.join(', ')} have no examples`, 'Add examples for every class, or remove the class.');
  }
}
