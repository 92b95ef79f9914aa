import { test } from 'node:test';
import assert from 'node:assert/strict';
import { orderRanking, verdictOf, type RankEntry } from './rank.ts';

const entry = (cut: string, logme: number, cv: number | null): RankEntry => ({ backbone: 'b', cut, dim: 4, scores: { logme }, cvAccuracy: cv, cvStd: cv === null ? null : 0.01 });

test('ranking: probed candidates first by cross-validated accuracy, the rest by LogME', () => {
  const r = orderRanking([entry('a', 0.5, null), entry('b', 0.1, 0.8), entry('c', 0.9, null), entry('d', 0.2, 0.9)]);
  assert.deepEqual(r.map((q) => q.cut), ['d', 'b', 'c', 'a']);
});

test('negative transfer is said when the no-transfer baseline is at least as good as the best probed candidate', () => {
  const ranking = orderRanking([entry('x', 0.1, 0.7), entry('y', 0.2, 0.6)]);
  const lose = verdictOf(ranking, { kind: 'raw pixels (32x32 RGB)', dim: 3072, cvAccuracy: 0.75, cvStd: 0.02 });
  assert.equal(lose.negativeTransfer, true);
  assert.match(lose.verdict, /^negative transfer: the no-transfer baseline \(raw pixels \(32x32 RGB\), 75\.0%\) is at least as good as the best pretrained features \(b at x, 70\.0%\)/);
  const win = verdictOf(ranking, { kind: 'raw pixels (32x32 RGB)', dim: 3072, cvAccuracy: 0.5, cvStd: 0.02 });
  assert.equal(win.negativeTransfer, false);
  assert.match(win.verdict, /20\.0 points above the no-transfer baseline/);
});
