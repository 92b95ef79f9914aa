import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { makeSchedule } from './schedules.ts';

const fx = JSON.parse(readFileSync(new URL('../../fixtures/torch/train.json', import.meta.url), 'utf8'));

test('one-cycle matches PyTorch OneCycleLR', () => {
  const o = fx.onecycle;
  const s = makeSchedule({ kind: 'one-cycle', pctStart: o.pct_start, divFactor: 25, finalDivFactor: 1e4 });
  o.lrs.forEach((want: number, i: number) => assert.ok(Math.abs(s(i, o.total, o.max_lr) - want) < 1e-12, `step ${i}: ${s(i, o.total, o.max_lr)} vs ${want}`));
});

test('cosine matches PyTorch CosineAnnealingLR', () => {
  const o = fx.cosine;
  const s = makeSchedule({ kind: 'cosine', minFactor: o.min_lr / o.max_lr });
  o.lrs.forEach((want: number, i: number) => assert.ok(Math.abs(s(i, o.total, o.max_lr) - want) < 1e-12, `step ${i}`));
});

test('linear warm-up rises linearly, then holds or decays to zero', () => {
  const hold = makeSchedule({ kind: 'linear-warmup', warmup: 4 });
  assert.deepEqual([0, 1, 2, 3, 4, 9].map((i) => hold(i, 10, 1)), [0.25, 0.5, 0.75, 1, 1, 1]);
  const decay = makeSchedule({ kind: 'linear-warmup', warmup: 2, decay: 'linear' });
  assert.equal(decay(1, 10, 1), 1);
  assert.ok(Math.abs(decay(6, 10, 1) - 0.5) < 1e-12);
  assert.equal(makeSchedule({ kind: 'constant' })(5, 10, 0.3), 0.3);
});

test('an unknown schedule is a typed error', () => {
  assert.throws(() => makeSchedule({ kind: 'nope' } as never), { code: 'E_BAD_OPTION' });
});
