/**
 * The numeric-CSV entry: a header row, a label column and numeric feature columns; trained by the
 * convex linear probe or the MLP (tabular/csv.ts), no backbone.
 */
import { readFileSync } from 'node:fs';
import { GraftError } from '../errors.ts';
import { loadModel, sha256 } from '../model/folder.ts';
import { encodeLabels, readNumericCsv } from '../data/csv.ts';
import { take } from '../data/split.ts';
import { evalCsv, predictCsv, trainCsv } from '../tabular/csv.ts';
import { classWeightOf, defined, probeOnly, toPredictions, wrongInput } from './common.ts';
import { isAudioFile, isDir, isImageFile, isTextFile } from './detect.ts';
import { REFIT_CAVEAT, heldOut, omitWrong, pct, recordedData, refitted, summarise } from './evalkit.ts';
import type { Task } from './types.ts';

export const csvTask: Task = {
  id: 'csv',
  description: 'numeric CSV: a header row, a label column and numeric feature columns',
  textTask: 'classify',
  detect: (p) => !isDir(p) && !isTextFile(p) && !isImageFile(p) && !isAudioFile(p),
  owns: (card) => card.input.kind === 'features',

  train(data, o, mode) {
    probeOnly(data, mode);
    classWeightOf(o);
    if (o.backbone !== undefined && o.backbone !== 'none') {
      throw new GraftError('E_BAD_OPTION', `--backbone ${o.backbone} needs image or text data; numeric CSV trains with --backbone none`, 'Pass --backbone none for numeric CSV features.');
    }
    const head = o.head ?? 'mlp';
    if (head !== 'linear' && head !== 'mlp') throw new GraftError('E_BAD_OPTION', `unknown head "${o.head}"`, 'Use --head linear or --head mlp.');
    if (o.optimizer && o.optimizer !== 'adamw' && o.optimizer !== 'sgd') throw new GraftError('E_BAD_OPTION', `unknown optimizer "${o.optimizer}"`, 'Use --optimizer adamw or sgd.');
    if (o.schedule && !['one-cycle', 'cosine', 'constant'].includes(o.schedule)) throw new GraftError('E_BAD_OPTION', `unknown schedule "${o.schedule}"`, 'Use one-cycle, cosine or constant.');
    // With a progress bar on a terminal, per-epoch lines would only repeat it.
    const log = o.progressBar && process.stderr.isTTY ? undefined : o.log;
    return {
      task: 'csv', trainer: 'tabular', mode,
      run: () => trainCsv({
        train: data, out: o.out ?? 'graft-model', head,
        ...defined({
          hidden: o.hidden, dropout: o.dropout, val: o.val, epochs: o.epochs, lr: o.lr, batchSize: o.batchSize, seed: o.seed, weightDecay: o.weightDecay,
          optimizer: o.optimizer, schedule: o.schedule, labelSmoothing: o.labelSmoothing, patience: o.patience, threads: o.threads, checkpoint: o.checkpoint, resume: o.resume, log,
        }),
      }),
    };
  },

  evaluate: (dir, data) => evalCsv(dir, data),

  async predict(dir, input, o) {
    if (typeof input === 'string') return { task: 'csv', predictions: await predictCsv(dir, input) };
    if (!('rows' in input)) throw wrongInput(dir, 'numeric rows ({ rows: [{ column: value }] }) or a CSV file', Array.isArray(input) ? 'files' : 'texts');
    const model = o.model ?? await loadModel(dir, o.threads ? { threads: o.threads } : {});
    try {
      const cols = model.card.input.columns;
      const x = new Float32Array(input.rows.length * cols.length);
      input.rows.forEach((row, i) => cols.forEach((c, j) => {
        const v = row[c];
        if (typeof v !== 'number' || !Number.isFinite(v)) {
          throw new GraftError('E_CSV_COLUMNS', `row ${i + 1}: column "${c}" is ${v === undefined ? 'missing' : `not a finite number (${String(v)})`}`,
            `The model takes the columns ${cols.join(', ')}, each a finite number.`);
        }
        x[i * cols.length + j] = v;
      }));
      const probs = await model.predict(x, input.rows.length);
      return { task: 'csv', predictions: toPredictions(model.card.labels, probs, input.rows.length) };
    } finally {
      if (!o.model) await model.dispose();
    }
  },

  async report({ dir, card, chosen: c, worst: worstN }) {
    const labels = card.labels;
    if (isDir(c.data)) throw new GraftError('E_BAD_OPTION', `model ${dir} takes numeric CSV rows, not a folder (${c.data})`, 'Pass --data with a labelled CSV file.');
    const table = readNumericCsv(c.data, { requireLabel: true, featureColumns: card.input.columns });
    let idx: Int32Array = Int32Array.from({ length: table.n }, (_, i) => i);
    let description = `all ${table.n} rows of ${c.data}`;
    let caveat: string | undefined;
    const recorded = recordedData(card);
    if (c.fromCard || recorded === c.data) {
      const want = (card.provenance as { data?: { sha256?: unknown } }).data?.sha256;
      const same = typeof want !== 'string' || want === sha256(readFileSync(c.data));
      const h = same ? heldOut(card, encodeLabels(table.labels!).y) : null;
      if (h) {
        idx = h.idx;
        description = `the ${idx.length} validation rows of ${c.data} (${pct(h.fraction)} held out with seed ${h.seed}, as in training)`;
      } else {
        caveat = same
          ? (refitted(card) ? REFIT_CAVEAT : 'The model was trained on these rows (no validation split could be reproduced), so the scores are optimistic.')
          : 'The file has changed since training (its sha256 differs); it may include rows the model was trained on.';
      }
    }
    const { y } = encodeLabels(idx.length === table.n ? table.labels! : Array.from(idx, (i) => table.labels![i]!), labels);
    const x = idx.length === table.n ? table.x : take(table.x, table.d, idx);
    const model = await loadModel(dir);
    let probs: Float32Array;
    try { probs = await model.predict(x, idx.length); } finally { await model.dispose(); }
    const s = summarise(labels, y, probs, worstN);
    const worst = s.wrong.map((w) => {
      const row = idx[w.index]!;
      return { ...w, line: table.rowNumbers[row]!, values: table.columns.map((col, j): [string, number] => [col, table.x[row * table.d + j]!]) };
    });
    return { data: c.data, origin: c.origin, description, ...(caveat ? { caveat } : {}), skipped: 0, labels, ...omitWrong(s), worst };
  },
};
