/**
 * Evaluation for reports: a model folder's predictions on labelled data (a CSV file, an image or audio
 * folder, a text table), summarised as a confusion matrix, per-class scores and the most confidently
 * wrong examples. Without explicit data it uses the data graft.json records, and when it can, only
 * the part that training held out (the same seeded split), saying so in `description`. The model's
 * entry in the task table (tasks/table.ts) does the evaluation.
 */
import { existsSync } from 'node:fs';
import { GraftError } from '../errors.ts';
import { readCard } from '../model/folder.ts';
import { taskForModel } from '../tasks/table.ts';
import { type EvalResult, type EvaluateOptions, recordedData } from '../tasks/evalkit.ts';
import type { ReportData } from '../tasks/types.ts';

export { recordedData, summarise, type EvalResult, type EvaluateOptions, type WorstExample } from '../tasks/evalkit.ts';

/**
 * Evaluates a model folder for a report. Returns null (with the reason) when there is no data to
 * evaluate on: no --data and no recorded data path that still exists.
 */
export async function evaluateForReport(dir: string, o: EvaluateOptions = {}): Promise<{ result: EvalResult | null; reason?: string }> {
  const card = readCard(dir);
  let c: ReportData;
  if (o.data !== undefined) {
    if (!existsSync(o.data)) throw new GraftError('E_FILE_MISSING', `evaluation data not found: ${o.data}`, 'Pass --data with a labelled CSV file or a labelled folder.');
    c = { data: o.data, origin: 'option', fromCard: false };
  } else {
    const rec = recordedData(card);
    if (!rec) return { result: null, reason: 'graft.json records no training data path; pass --data to evaluate the model.' };
    if (!existsSync(rec)) return { result: null, reason: `graft.json records the training data at ${rec}, which no longer exists; pass --data to evaluate the model.` };
    c = { data: rec, origin: 'model card', fromCard: true };
  }
  const result = await taskForModel(card).report({ dir, card, chosen: c, worst: o.worst ?? 12, ...(o.log ? { log: o.log } : {}) });
  return { result };
}
