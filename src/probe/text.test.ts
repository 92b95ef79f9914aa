import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSpamSplit } from '../data/spam.ts';
import { evalText, predictTexts, trainText } from './text.ts';

test('text probe on real emails (SpamAssassin) with GloVe: pooling chosen by CV, >= 90% on held-out mail', { timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'graft-text-probe-'));
  const { train, test: testCsv } = writeSpamSplit(dir, 300, 200, 0);
  const r = await trainText({ data: train, out: join(dir, 'model') });
  assert.deepEqual(Object.keys(r.cutScores), ['mean', 'sif']);
  assert.equal(r.cutScores[r.cut], Math.max(...Object.values(r.cutScores)));
  const e = await evalText(join(dir, 'model'), testCsv);
  assert.equal(e.n, 400);
  assert.ok(e.accuracy >= 0.9, `test accuracy ${e.accuracy}`);
  const p = await predictTexts(join(dir, 'model'), ['', 'qwxz zzkq']); // empty and unknown-word texts still predict
  assert.equal(p.probs.length, 4);
  assert.ok(p.probs.every(Number.isFinite));
});
