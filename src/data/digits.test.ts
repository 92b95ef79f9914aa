import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DIGITS_PATH } from './digits.ts';
import { encodeLabels, readNumericCsv } from './csv.ts';

const script = fileURLToPath(new URL('../../scripts/digits.ts', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { encoding: 'utf8' });

test('scripts/digits.ts writes a seeded, stratified split that graft reads back', { skip: !existsSync(DIGITS_PATH) && 'python3-sklearn is not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'graft-digits-'));
  const r = run('--out', dir, '--test', '0.25', '--seed', '0');
  assert.equal(r.status, 0, r.stderr);
  const train = readNumericCsv(join(dir, 'train.csv'));
  const test = readNumericCsv(join(dir, 'test.csv'), { featureColumns: train.columns });
  assert.deepEqual(train.columns, Array.from({ length: 64 }, (_, i) => `p${i}`));
  assert.equal(train.n + test.n, 1797);
  // per-class counts, checked with numpy on the written files; sklearn's totals are 178,182,177,183,181,182,181,179,174,180
  const counts = (labels: string[]) => Array.from({ length: 10 }, (_, c) => labels.filter((l) => l === String(c)).length);
  assert.deepEqual(counts(test.labels!), [45, 46, 44, 46, 45, 46, 45, 45, 44, 45]);
  assert.deepEqual(counts(train.labels!), [133, 136, 133, 137, 136, 136, 136, 134, 130, 135]);
  assert.deepEqual(encodeLabels(train.labels!).classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  const sum = (x: Float32Array) => x.reduce((a, b) => a + b, 0);
  assert.equal(sum(train.x) + sum(test.x), 421740 + 139978); // pixel sums of train and test (numpy)
  const again = mkdtempSync(join(tmpdir(), 'graft-digits-'));
  assert.equal(run('--out', again).status, 0); // defaults are --test 0.25 --seed 0
  assert.equal(readFileSync(join(again, 'test.csv'), 'utf8'), readFileSync(join(dir, 'test.csv'), 'utf8'));
});

test('scripts/digits.ts explains a missing data set and bad options', () => {
  const r = run('--out', join(tmpdir(), 'never'), '--data', join(tmpdir(), 'no-such-digits.csv.gz'));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /error \[E_FILE_MISSING\]: .*no-such-digits/);
  assert.match(r.stderr, /hint: .*apt-get install -y python3-sklearn/);
  assert.match(run().stderr, /E_USAGE.*--out/);
  assert.match(run('--out', join(tmpdir(), 'never'), '--seed', 'x').stderr, /E_BAD_OPTION/);
});
