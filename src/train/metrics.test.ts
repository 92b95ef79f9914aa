import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accuracy, argmaxRows, confusionMatrix, macroF1, perClass } from './metrics.ts';

// Reference values from sklearn 1.2 (Debian python3-sklearn):
// f1_score(yt, yp, average='macro', labels=[0,1,2,3], zero_division=0) and precision_recall_fscore_support.
const yt = [0, 0, 1, 1, 2, 2, 2, 3];
const yp = [0, 1, 1, 1, 2, 0, 2, 2];

test('macro-F1, precision and recall match sklearn', () => {
  assert.ok(Math.abs(macroF1(yt, yp, 4) - 0.4916666666666667) < 1e-12);
  const s = perClass(confusionMatrix(yt, yp, 4));
  const want = { precision: [0.5, 2 / 3, 2 / 3, 0], recall: [0.5, 1, 2 / 3, 0], f1: [0.5, 0.8, 2 / 3, 0], support: [2, 2, 3, 1] };
  s.forEach((c, i) => {
    assert.ok(Math.abs(c.precision - want.precision[i]!) < 1e-12);
    assert.ok(Math.abs(c.recall - want.recall[i]!) < 1e-12);
    assert.ok(Math.abs(c.f1 - want.f1[i]!) < 1e-12);
    assert.equal(c.support, want.support[i]);
  });
});

test('accuracy, confusion matrix and argmax by hand', () => {
  assert.equal(accuracy(yt, yp), 5 / 8);
  assert.deepEqual(confusionMatrix([0, 1, 1], [1, 1, 0], 2), [[0, 1], [1, 1]]);
  assert.deepEqual(Array.from(argmaxRows(Float32Array.from([0.1, 0.9, 0.7, 0.3, 0.2, 0.2]), 2)), [1, 0, 0]);
});
