/**
 * sklearn's digits (1,797 8x8 images, 64 pixel columns; Debian package python3-sklearn) as CSV
 * files with a header, split into stratified train and test sets: the demo's and the tests' data.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GraftError } from '../errors.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { stratifiedSplit } from './split.ts';

export const DIGITS_PATH = '/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz';

export function loadDigits(path = DIGITS_PATH): { rows: number[][]; y: Int32Array } {
  if (!existsSync(path)) {
    throw new GraftError('E_FILE_MISSING', `sklearn's digits data set is not at ${path}`, 'Install it: apt-get update && apt-get install -y python3-sklearn');
  }
  const lines = gunzipSync(readFileSync(path)).toString('utf8').trim().split('\n');
  const rows = lines.map((l) => l.split(',').map(Number));
  const bad = rows.findIndex((r) => r.length !== 65 || r.some((v) => !Number.isFinite(v)));
  if (bad >= 0) {
    throw new GraftError('E_CSV_RAGGED', `${path} line ${bad + 1}: expected 64 pixel values and a label, got "${lines[bad]!.slice(0, 60)}"`,
      'The file is not sklearn\'s digits.csv.gz; reinstall it: apt-get install --reinstall python3-sklearn');
  }
  return { rows: rows.map((r) => r.slice(0, 64)), y: Int32Array.from(rows, (r) => r[64]!) };
}

/** Writes train.csv and test.csv into dir; returns their paths. */
export function writeDigitsSplit(dir: string, testFraction = 0.25, seed = 0, source = DIGITS_PATH): { train: string; test: string } {
  const { rows, y } = loadDigits(source);
  const { train, val } = stratifiedSplit(y, testFraction, seed);
  const header = [...Array(64).keys()].map((i) => `p${i}`).join(',') + ',label\n';
  const csv = (idx: Int32Array) => header + Array.from(idx, (i) => `${rows[i]!.join(',')},${y[i]}`).join('\n') + '\n';
  const paths = { train: join(dir, 'train.csv'), test: join(dir, 'test.csv') };
  writeFileAtomic(paths.train, csv(train));
  writeFileAtomic(paths.test, csv(val));
  return paths;
}
