import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTransferDemo } from './transfer.ts';

test('the demo measures transfer on real digits: pretrained features beat raw pixels with 10 labels per class', async () => {
  const r = await runTransferDemo({ budgets: [10], pretrainPerClass: 300, testPerClass: 100 });
  assert.ok(r.pretrainAccuracy > 0.9, `source-task accuracy ${r.pretrainAccuracy}`);
  const row = r.rows[0]!;
  assert.equal(row.labelsPerClass, 10);
  assert.ok(row.mobilenetProbe > row.pixelProbe + 0.05, `MobileNetV2 probe ${row.mobilenetProbe} vs pixels ${row.pixelProbe}`);
  assert.ok(row.transferCnn > row.pixelProbe + 0.05, `pretrained CNN ${row.transferCnn} vs pixels ${row.pixelProbe}`);
  assert.ok(row.transferCnn >= row.scratchCnn - 0.03, `pretrained CNN ${row.transferCnn} vs scratch ${row.scratchCnn}`);
  assert.ok(row.fineTunedCnn > row.pixelProbe + 0.05, `fine-tuned CNN ${row.fineTunedCnn} vs pixels ${row.pixelProbe}`);
  assert.ok(row.fineTunedCnn >= row.scratchCnn - 0.03, `fine-tuned CNN ${row.fineTunedCnn} vs scratch ${row.scratchCnn}`);
  for (const cv of Object.values(r.curves)) assert.ok(cv.length >= 8);
});
