import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shuffle, stratifiedSplit, take } from './split.ts';

test('stratified split keeps class proportions, is seeded, and covers every index once', () => {
  const y = Int32Array.from([...Array(100).fill(0), ...Array(30).fill(1), ...Array(3).fill(2), 3]);
  const a = stratifiedSplit(y, 0.2, 1);
  const b = stratifiedSplit(y, 0.2, 1);
  assert.deepEqual(a, b);
  assert.notDeepEqual(stratifiedSplit(y, 0.2, 2).val, a.val);
  const all = [...a.train, ...a.val].sort((p, q) => p - q);
  assert.deepEqual(all, [...y.keys()]);
  const count = (idx: Int32Array, c: number) => Array.from(idx).filter((i) => y[i] === c).length;
  assert.equal(count(a.val, 0), 20);
  assert.equal(count(a.val, 1), 6);
  assert.equal(count(a.val, 2), 1); // a small class still lands on both sides
  assert.equal(count(a.train, 2), 2);
  assert.equal(count(a.val, 3), 0); // a single example stays in training
  assert.throws(() => stratifiedSplit(y, 1, 0), { code: 'E_BAD_OPTION' });
});

test('shuffle is a seeded permutation; take gathers rows', () => {
  const s = shuffle(Int32Array.from([0, 1, 2, 3, 4, 5]), 3);
  assert.deepEqual([...s].sort(), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(shuffle(Int32Array.from([0, 1, 2, 3, 4, 5]), 3), s);
  assert.deepEqual(Array.from(take(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, [2, 0])), [5, 6, 1, 2]);
});
