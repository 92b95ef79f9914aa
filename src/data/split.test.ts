import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shuffle, stratifiedSplit, take } from './split.ts';

const count = (y: Int32Array, idx: Int32Array, c: number) => Array.from(idx).filter((i) => y[i] === c).length;

test('stratified split keeps class proportions, is seeded, and covers every index once', () => {
  const y = Int32Array.from([...Array(100).fill(0), ...Array(30).fill(1), ...Array(3).fill(2), 3]);
  const a = stratifiedSplit(y, 0.2, 1);
  assert.deepEqual(stratifiedSplit(y, 0.2, 1), a);
  assert.notDeepEqual(stratifiedSplit(y, 0.2, 2).val, a.val);
  assert.deepEqual([...a.train, ...a.val].sort((p, q) => p - q), [...y.keys()]);
  assert.equal(count(y, a.val, 0), 20);
  assert.equal(count(y, a.val, 1), 6);
  assert.equal(count(y, a.val, 2), 1); // round(0.6) = 1, and a small class lands on both sides
  assert.equal(count(y, a.train, 2), 2);
  assert.equal(count(y, a.val, 3), 0); // a single example stays in training
  assert.equal(count(y, a.train, 3), 1);
});

test('every class with two or more examples is on both sides, whatever the fraction', () => {
  const y = Int32Array.from([0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
  for (const f of [0.01, 0.5, 0.99]) {
    for (const seed of [0, 1, 123456789]) {
      const s = stratifiedSplit(y, f, seed);
      for (const c of [0, 1, 2]) {
        assert.ok(count(y, s.val, c) >= 1 && count(y, s.train, c) >= 1, `fraction ${f} seed ${seed} class ${c}`);
      }
      assert.equal(s.train.length + s.val.length, y.length);
    }
  }
  for (const f of [0, 1, -0.1, NaN]) assert.throws(() => stratifiedSplit(y, f, 0), { code: 'E_BAD_OPTION' });
});

test('shuffle is a seeded permutation that leaves its input alone; take gathers rows', () => {
  const idx = Int32Array.from([...Array(50).keys()]);
  const s = shuffle(idx, 3);
  assert.deepEqual([...s].sort((a, b) => a - b), [...idx]);
  assert.deepEqual(shuffle(idx, 3), s);
  assert.notDeepEqual(shuffle(idx, 4), s);
  assert.notDeepEqual(s, idx);
  assert.deepEqual([...idx], [...Array(50).keys()]);
  assert.deepEqual(Array.from(take(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, [2, 0, 2])), [5, 6, 1, 2, 5, 6]);
  assert.equal(take(Float32Array.from([1, 2]), 2, []).length, 0);
  assert.throws(() => take(Float32Array.from([1, 2, 3, 4]), 2, [2]), RangeError);
});
