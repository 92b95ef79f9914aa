import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diagnose } from './diagnose.ts';
import type { EpochRecord } from './callbacks.ts';

const curve = (train: number[], val: number[]): EpochRecord[] => train.map((t, i) => ({ epoch: i, trainLoss: t, valLoss: val[i]!, lr: [1e-3], seconds: 0 }));

test('overfitting: a wide gap and a rising validation loss', () => {
  const d = diagnose({ history: curve([1, 0.5, 0.2, 0.1, 0.05, 0.02], [1, 0.7, 0.6, 0.65, 0.8, 0.95]), trainAccuracy: 0.99, valAccuracy: 0.78, classes: 5, nTrain: 500 });
  assert.equal(d.verdict, 'overfitting');
  assert.match(d.summary, /99\.0%.*78\.0%/);
  assert.ok(d.advice.some((a) => /regularisation/.test(a)));
  assert.ok(d.advice.some((a) => /epoch 3/.test(a)));
});

test('underfitting: low training accuracy with close curves; advice depends on what was trained', () => {
  const h = curve([2.2, 2.0, 1.9, 1.9, 1.88], [2.2, 2.05, 1.95, 1.93, 1.92]);
  const probe = diagnose({ history: h, trainAccuracy: 0.35, valAccuracy: 0.33, classes: 10, nTrain: 1000 });
  assert.equal(probe.verdict, 'underfitting');
  assert.ok(probe.advice.some((a) => /later cut|fine-tune/.test(a)));
  const ft = diagnose({ history: h, trainAccuracy: 0.35, valAccuracy: 0.33, classes: 10, nTrain: 1000, trained: ['stage4', 'head'] });
  assert.ok(ft.advice.some((a) => /Unfreeze more/.test(a)));
});

test('good fit, not converged, unstable, and no validation', () => {
  assert.equal(diagnose({ history: curve([1, 0.4, 0.3, 0.28, 0.27, 0.27], [1, 0.45, 0.35, 0.33, 0.33, 0.33]), trainAccuracy: 0.95, valAccuracy: 0.93, classes: 3, nTrain: 900 }).verdict, 'good-fit');
  assert.equal(diagnose({ history: curve([1, 0.8, 0.6, 0.45, 0.35, 0.28], [1, 0.8, 0.62, 0.5, 0.4, 0.32]), trainAccuracy: 0.9, valAccuracy: 0.88, classes: 3, nTrain: 900 }).verdict, 'not-converged');
  assert.equal(diagnose({ history: curve([1, 0.3, 2.5, 0.4, 3.0, 2.9], [1, 0.5, 2.0, 0.6, 2.8, 2.9]), trainAccuracy: 0.8, valAccuracy: 0.78, classes: 3, nTrain: 900 }).verdict, 'unstable');
  const nv = diagnose({ history: [{ epoch: 0, trainLoss: 1, lr: [1], seconds: 0 }], trainAccuracy: 0.9, valAccuracy: null, classes: 2, nTrain: 10 });
  assert.equal(nv.verdict, 'no-validation');
});

test('a fine-tune diagnosis names the trained groups, and knows when every group already trained', () => {
  const h = curve([2.2, 2.0, 1.9, 1.9, 1.88], [2.2, 2.05, 1.95, 1.93, 1.92]);
  const part = diagnose({ history: h, trainAccuracy: 0.35, valAccuracy: 0.33, classes: 10, nTrain: 1000, trained: ['block_16', 'top', 'head'], canFineTune: true });
  assert.ok(part.evidence.includes('trained layer groups: block_16, top, head'));
  assert.ok(part.advice.some((a) => /2 of the backbone's were trained; raise --unfreeze/.test(a)));
  const all = diagnose({ history: h, trainAccuracy: 0.35, valAccuracy: 0.33, classes: 10, nTrain: 1000, trained: ['stem', 'top', 'head'], canFineTune: false });
  assert.ok(all.advice.some((a) => /every layer group already trains/.test(a)));
});

test('overfitting with close accuracies (a rising validation loss) says so, not that training accuracy is much higher', () => {
  const d = diagnose({ history: curve([1, 0.5, 0.3, 0.2, 0.1, 0.05], [0.8, 0.5, 0.45, 0.6, 0.7, 0.8]), trainAccuracy: 1, valAccuracy: 1, classes: 2, nTrain: 12 });
  assert.equal(d.verdict, 'overfitting');
  assert.doesNotMatch(d.summary, /much better/);
  assert.match(d.summary, /validation loss rose after epoch 3 .*100\.0% training, 100\.0% validation/);
});
