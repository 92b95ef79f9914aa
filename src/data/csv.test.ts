import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { checkClasses, encodeLabels, readNumericCsv, splitCsvLine } from './csv.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-csv-'));
const file = (name: string, text: string | Buffer) => { const p = join(dir, name); writeFileSync(p, text); return p; };

test('reads header, label and numeric columns; quotes, BOM, CRLF and gzip', () => {
  const t = readNumericCsv(file('a.csv', '\ufeffx,"y, quoted",label\r\n1,2.5,cat\r\n-3,4e2,"dog"\r\n\r\n'));
  assert.deepEqual(t.columns, ['x', 'y, quoted']);
  assert.equal(t.n, 2);
  assert.deepEqual(Array.from(t.x), [1, 2.5, -3, 400]);
  assert.deepEqual(t.labels, ['cat', 'dog']);
  assert.deepEqual(Array.from(t.rowNumbers), [2, 3]);
  const g = readNumericCsv(file('b.csv.gz', gzipSync('a,label\n1,x\n2,y\n')));
  assert.deepEqual(Array.from(g.x), [1, 2]);
  assert.deepEqual(splitCsvLine('a,"b ""c"", d",e'), ['a', 'b "c", d', 'e']);
});

test('feature columns from a model are matched by name, in the model order', () => {
  const t = readNumericCsv(file('c.csv', 'b,a,label\n1,2,x\n'), { featureColumns: ['a', 'b'] });
  assert.deepEqual(Array.from(t.x), [2, 1]);
  assert.throws(() => readNumericCsv(file('d.csv', 'b,label\n1,x\n'), { featureColumns: ['a', 'b'] }), { code: 'E_CSV_COLUMNS' });
  const p = readNumericCsv(file('e.csv', 'a,b\n1,2\n'), { requireLabel: false });
  assert.equal(p.labels, null);
});

test('every kind of bad CSV is a typed error naming the file, line and column', () => {
  const cases: [string, string, RegExp][] = [
    ['', 'E_CSV_EMPTY', /empty/],
    ['a,label\n', 'E_CSV_EMPTY', /no data rows/],
    ['a,b\n1,2\n', 'E_CSV_NO_LABEL', /columns are: a, b/],
    ['a,label\n1,x\nfoo,y\n', 'E_CSV_NOT_NUMERIC', /line 3, column "a".*"foo"/],
    ['a,label\n1,x\nNaN,y\n', 'E_CSV_NOT_FINITE', /line 3/],
    ['a,label\n-inf,x\n', 'E_CSV_NOT_FINITE', /line 2/],
    ['a,label\n,x\n', 'E_CSV_NOT_FINITE', /line 2/],
    ['a,label\n1e39,x\n', 'E_CSV_NOT_FINITE', /float32/],
    ['a,label\n1,x,3\n', 'E_CSV_RAGGED', /line 2 has 3 fields/],
  ];
  cases.forEach(([text, code, msg], i) => {
    assert.throws(() => readNumericCsv(file(`bad${i}.csv`, text)), (e: { code: string; message: string; hint: string }) => {
      assert.equal(e.code, code);
      assert.match(e.message, msg);
      assert.ok(e.hint.length > 0);
      return true;
    });
  });
  assert.throws(() => readNumericCsv(join(dir, 'missing.csv')), { code: 'E_FILE_MISSING' });
});

test('labels sort naturally; unknown labels and one class are typed errors', () => {
  assert.deepEqual(encodeLabels(['10', '9', '2', '9']).classes, ['2', '9', '10']);
  assert.deepEqual(Array.from(encodeLabels(['b', 'a', 'b']).y), [1, 0, 1]);
  assert.throws(() => encodeLabels(['a', 'z'], ['a', 'b']), { code: 'E_UNKNOWN_LABEL' });
  assert.throws(() => checkClasses(['a'], Int32Array.from([0, 0])), { code: 'E_ONE_CLASS' });
  assert.throws(() => checkClasses(['a', 'b'], Int32Array.from([0, 0])), { code: 'E_EMPTY_CLASS' });
});
