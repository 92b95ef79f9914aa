import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { checkClasses, encodeLabels, readNumericCsv, sortLabels, splitCsvLine } from './csv.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-csv-'));
const file = (name: string, text: string | Buffer) => { const p = join(dir, name); writeFileSync(p, text); return p; };

/** Asserts a GraftError with this code whose message matches, and a non-empty hint. */
function throwsCode(f: () => unknown, code: string, msg?: RegExp): void {
  assert.throws(f, (e: { code: string; message: string; hint: string }) => {
    assert.equal(e.code, code, e.message);
    if (msg) assert.match(e.message, msg);
    assert.ok(e.hint.length > 10, `hint for ${code}`);
    return true;
  });
}

test('reads header, label and numeric columns; quotes, BOM, CRLF, trailing blank lines', () => {
  const t = readNumericCsv(file('a.csv', '\ufeffx,"y, quoted",label\r\n1,2.5,cat\r\n-3," 4e2 ","dog, big"\r\n\r\n\r\n'));
  assert.deepEqual(t.columns, ['x', 'y, quoted']);
  assert.equal(t.n, 2);
  assert.equal(t.d, 2);
  assert.deepEqual(Array.from(t.x), [1, 2.5, -3, 400]);
  assert.deepEqual(t.labels, ['cat', 'dog, big']);
  assert.deepEqual(Array.from(t.rowNumbers), [2, 3]);
  assert.equal(t.x.length, t.n * t.d);
  assert.deepEqual(splitCsvLine('a,"b ""c"", d",e'), ['a', 'b "c", d', 'e']);
  assert.deepEqual(splitCsvLine('1,,3'), ['1', '', '3']);
});

test('label column may sit anywhere; blank lines inside are skipped and line numbers stay true', () => {
  const t = readNumericCsv(file('mid.csv', 'a,label,b\n1,x,2\n\n3,y,4\n'));
  assert.deepEqual(t.columns, ['a', 'b']);
  assert.deepEqual(Array.from(t.x), [1, 2, 3, 4]);
  assert.deepEqual(Array.from(t.rowNumbers), [2, 4]);
  assert.equal(t.x.buffer.byteLength, 16); // trimmed to n rows, not the line-count capacity
  const c = readNumericCsv(file('cls.csv', 'a,class\n1,x\n'), { labelColumn: 'class' });
  assert.deepEqual(c.labels, ['x']);
});

test('a quoted field may span lines', () => {
  const t = readNumericCsv(file('ml.csv', 'a,label\n1,"two\r\nlines"\n2,z\n'));
  assert.deepEqual(t.labels, ['two\nlines', 'z']);
  assert.deepEqual(Array.from(t.rowNumbers), [2, 4]);
  throwsCode(() => readNumericCsv(file('open.csv', 'a,label\n1,"never closed\n2,z\n')), 'E_CSV_RAGGED', /line 2: a quoted field opens but never closes/);
});

test('gzip is read transparently', () => {
  const g = readNumericCsv(file('b.csv.gz', gzipSync('\ufeffa,label\r\n1,x\r\n2,y\r\n')));
  assert.deepEqual(Array.from(g.x), [1, 2]);
  assert.deepEqual(g.labels, ['x', 'y']);
  throwsCode(() => readNumericCsv(file('broken.csv.gz', gzipSync('a,label\n1,x\n').subarray(0, 12))), 'E_FILE_MISSING', /does not decompress/);
});

test('feature columns from a model are matched by name, in the model order', () => {
  const t = readNumericCsv(file('c.csv', 'b,extra,a,label\n1,9,2,x\n'), { featureColumns: ['a', 'b'] });
  assert.deepEqual(t.columns, ['a', 'b']);
  assert.deepEqual(Array.from(t.x), [2, 1]);
  throwsCode(() => readNumericCsv(file('d.csv', 'b,label\n1,x\n'), { featureColumns: ['a', 'b'] }),
    'E_CSV_COLUMNS', /d\.csv.*missing "a".*expects 2 columns \("a", "b"\).*file has "b", "label"/);
  const p = readNumericCsv(file('e.csv', 'a,b\n1,2\n'), { requireLabel: false });
  assert.equal(p.labels, null);
  assert.deepEqual(p.columns, ['a', 'b']);
  // at predict time a label column, if present, is read but not used as a feature
  const q = readNumericCsv(file('f.csv', 'label,a\nx,1\n'), { requireLabel: false, featureColumns: ['a'] });
  assert.deepEqual(Array.from(q.x), [1]);
  assert.deepEqual(q.labels, ['x']);
});

test('every kind of bad CSV is a typed error naming the file, line and column', () => {
  const cases: [string, string, RegExp][] = [
    ['', 'E_CSV_EMPTY', /bad0\.csv is empty/],
    ['\n\r\n  \n', 'E_CSV_EMPTY', /empty/],
    ['a,label\n', 'E_CSV_EMPTY', /header but no data rows/],
    ['a,label\n\n\n', 'E_CSV_EMPTY', /header but no data rows/],
    ['a,b\n1,2\n', 'E_CSV_NO_LABEL', /no "label" column.*found the columns: "a", "b"/],
    ['a,label\n1,x\nfoo,y\n', 'E_CSV_NOT_NUMERIC', /bad\d\.csv line 3, column "a": expected a number, got "foo"/],
    ['a,label\n0x1F,y\n', 'E_CSV_NOT_NUMERIC', /line 2, column "a".*"0x1F"/],
    ['a,b,label\n1,NaN,y\n', 'E_CSV_NOT_FINITE', /line 2, column "b": expected a finite number, got "NaN"/],
    ['a,label\n-inf,x\n', 'E_CSV_NOT_FINITE', /line 2, column "a".*"-inf"/],
    ['a,label\nInfinity,x\n', 'E_CSV_NOT_FINITE', /line 2/],
    ['a,b,label\n1,,x\n', 'E_CSV_NOT_FINITE', /line 2, column "b".*an empty cell/],
    ['a,label\n1e39,x\n', 'E_CSV_NOT_FINITE', /overflows a float32/],
    ['a,label\n1,\n', 'E_CSV_NOT_FINITE', /line 2.*"label" column, got an empty cell/],
    ['a,label\n1,x\n1,x,3\n', 'E_CSV_RAGGED', /line 3 has 3 fields; expected 2/],
    ['a,label\n1\n', 'E_CSV_RAGGED', /line 2 has 1 field; expected 2/],
    ['a,a,label\n1,2,x\n', 'E_CSV_COLUMNS', /"a" appears twice/],
    ['label\nx\n', 'E_CSV_COLUMNS', /no feature columns/],
  ];
  cases.forEach(([text, code, msg], i) => throwsCode(() => readNumericCsv(file(`bad${i}.csv`, text)), code, msg));
  throwsCode(() => readNumericCsv(join(dir, 'missing.csv')), 'E_FILE_MISSING', /missing\.csv: no such file/);
  throwsCode(() => readNumericCsv(dir), 'E_FILE_MISSING', /folder/);
  // 3.4e38 is still a float32 (max 3.4028e38); only beyond that is an overflow
  assert.equal(readNumericCsv(file('big.csv', 'a,label\n3.4e38,x\n')).x[0], Math.fround(3.4e38));
});

test('labels sort naturally; unknown labels and one class are typed errors', () => {
  assert.deepEqual(encodeLabels(['10', '9', '2', '9', '-1.5']).classes, ['-1.5', '2', '9', '10']);
  assert.deepEqual(sortLabels(['b', '10', 'a', '9']), ['10', '9', 'a', 'b']); // mixed: lexicographic
  const e = encodeLabels(['b', 'a', 'b']);
  assert.deepEqual(e.classes, ['a', 'b']);
  assert.deepEqual(Array.from(e.y), [1, 0, 1]);
  assert.deepEqual(Array.from(encodeLabels(['b', 'c'], ['c', 'b', 'a']).y), [1, 0]); // given classes keep their order
  throwsCode(() => encodeLabels(['a', 'z', 'q', 'z'], ['a', 'b']), 'E_UNKNOWN_LABEL', /labels "z", "q" are not among.*data row 2.*knows "a", "b"/);
  throwsCode(() => checkClasses(['a'], Int32Array.from([0, 0])), 'E_ONE_CLASS', /only one class \("a"\)/);
  throwsCode(() => checkClasses([], new Int32Array(0)), 'E_ONE_CLASS', /no classes/);
  throwsCode(() => checkClasses(['a', 'b'], Int32Array.from([0, 0])), 'E_EMPTY_CLASS', /"b"/);
  checkClasses(['a', 'b'], Int32Array.from([0, 1]));
});
