import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTextTable } from './text.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-text-'));
const file = (name: string, body: string | Buffer) => { const p = join(dir, name); writeFileSync(p, body); return p; };

test('reads texts and labels from CSV (quoted commas and line breaks) and JSONL', () => {
  const c = readTextTable(file('a.csv', 'label,text\nspam,"Buy now, cheap!"\nham,"line one\nline two"\nham,\n'));
  assert.deepEqual(c.texts, ['Buy now, cheap!', 'line one\nline two', '']);
  assert.deepEqual(c.labels, ['spam', 'ham', 'ham']);
  const j = readTextTable(file('a.jsonl', '{"text": "héllo wörld", "label": 1}\n\n{"text": "", "label": 0}\n'));
  assert.deepEqual(j.texts, ['héllo wörld', '']);
  assert.deepEqual(j.labels, ['1', '0']);
});

test('bad text files are typed errors: not UTF-8, no text column, no labels, bad JSON, empty', () => {
  assert.throws(() => readTextTable(file('latin1.csv', Buffer.from([...Buffer.from('text,label\ncaf'), 0xe9, ...Buffer.from(',x\n')]))), { code: 'E_TEXT_ENCODING' });
  assert.throws(() => readTextTable(file('b.csv', 'body,label\nx,y\n')), { code: 'E_CSV_COLUMNS' });
  assert.throws(() => readTextTable(file('c.csv', 'text\nx\n')), { code: 'E_CSV_NO_LABEL' });
  assert.equal(readTextTable(file('d.csv', 'text\nx\n'), { requireLabel: false }).labels, null);
  assert.throws(() => readTextTable(file('e.jsonl', '{"text": "a", "label": 1}\nnot json\n')), (e: { code: string; message: string }) => e.code === 'E_CSV_RAGGED' && /line 2/.test(e.message));
  assert.throws(() => readTextTable(file('f.csv', 'text,label\n')), { code: 'E_CSV_EMPTY' });
});
