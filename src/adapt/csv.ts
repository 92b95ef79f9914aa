/**
 * `graft adapt` on numeric CSV: a labelled source CSV and a target CSV with the same feature columns (its
 * label column, if it has one, is read only to report target accuracy, and the result says so). The
 * adapted classifier (adapt/features.ts; or DANN's network, adapt/dann.ts, as an MLP) is saved as an ordinary
 * model folder whose standardisation is the target's (DANN's: both domains'), so `graft eval`, `predict` and `serve` take it like any CSV model.
 */
import { GraftError } from '../errors.ts';
import { checkClasses, encodeLabels, readNumericCsv } from '../data/csv.ts';
import { linearHead, mlpHead } from '../heads/heads.ts';
import type { Network } from '../train/network.ts';
import { dannLogits, fitDann } from './dann.ts';
import { Learner } from '../train/learner.ts';
import { accuracy, argmaxRows } from '../train/metrics.ts';
import { readFileSync } from 'node:fs';
import { GRAFT_VERSION, saveModel, sha256 } from '../model/folder.ts';
import { type AdaptChoice, type AdaptMethod, adaptFeatures, adaptedLogits } from './features.ts';
import { type ShiftReport, measureShift } from './shift.ts';

/** What `graft adapt` can run: a linear method on the features (or 'auto' among them), or DANN. */
export type AdaptCsvMethod = AdaptChoice | 'dann';

export interface AdaptCsvOptions {
  source: string;
  target: string;
  out: string;
  method?: AdaptCsvMethod;
  seed?: number;
  threads?: number;
  log?: (line: string) => void;
}

export interface AdaptCsvResult {
  out: string;
  method: AdaptMethod | 'dann';
  labels: string[];
  nSource: number;
  nTarget: number;
  shift: ShiftReport;
  sourceCvAccuracy: number | null;
  pseudoLabelled: number;
  /** Only when the target CSV has labels: accuracy there, and of the source-only model, for reporting. */
  targetAccuracy: number | null;
  sourceOnlyTargetAccuracy: number | null;
  notes: string[];
  seconds: number;
}

export async function adaptCsv(o: AdaptCsvOptions): Promise<AdaptCsvResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const src = readNumericCsv(o.source);
  const { classes, y: ys } = encodeLabels(src.labels!, undefined);
  checkClasses(classes, ys);
  const tgt = readNumericCsv(o.target, { requireLabel: false, featureColumns: src.columns });
  if (tgt.d !== src.d) {
    throw new GraftError('E_CSV_COLUMNS', `the target has ${tgt.d} feature columns and the source ${src.d}`, 'Source and target must have the same feature columns.');
  }
  const notes: string[] = [];
  let yt: Int32Array | null = null;
  if (tgt.labels) {
    const unknown = [...new Set(tgt.labels)].filter((l) => !classes.includes(l));
    if (unknown.length) {
      throw new GraftError('E_UNKNOWN_LABEL', `the target has classes the source does not: ${unknown.slice(0, 5).join(', ')}`,
        'Adaptation needs the same classes in both domains; drop those rows, or the target\'s label column.');
    }
    yt = encodeLabels(tgt.labels, classes).y;
    notes.push('the target has a label column: it was used only to report target accuracy, never to train or choose');
    log(`note: ${notes.at(-1)}`);
  }
  const data = { xs: src.x, ys, xt: tgt.x, d: src.d, k: classes.length };
  const seed = o.seed ?? 0;
  const common = { seed, ...(o.threads ? { threads: o.threads } : {}) };
  const shift = await measureShift(data, common);
  log(`shift: ${shift.words}`);
  const k = classes.length;
  let net: Network;
  let logits: Float64Array;
  let summary: { method: AdaptMethod | 'dann'; C: number | null; pseudoLabelled: number; sourceCvAccuracy: number | null; candidates?: unknown; domainAccuracy?: number };
  if (o.method === 'dann') {
    const f = await fitDann(data, { ...common, log });
    // The same network as an MLP head (Gemm weights [in, out]), reading rows through DANN's standardisation.
    net = mlpHead({ inputDim: src.d, classes: k, hidden: [f.hidden, f.hidden], dropout: 0, seed, standardize: f.standardize });
    const values: Record<string, Float32Array> = { 'hidden0.weight': f.w1, 'hidden0.bias': f.b1, 'hidden1.weight': f.w2, 'hidden1.bias': f.b2, 'out.weight': f.wc, 'out.bias': f.bc };
    for (const p of net.params) p.value = values[p.name]!;
    net.config = { ...net.config, adapted: 'dann' };
    logits = dannLogits(f, tgt.x, src.d);
    summary = { method: 'dann', C: null, pseudoLabelled: 0, sourceCvAccuracy: null, domainAccuracy: f.domainAccuracy };
    log(`adapt (dann): domain classifier accuracy ${(100 * f.domainAccuracy).toFixed(1)}% at the end (50% is full confusion)`);
  } else {
    const fit = await adaptFeatures(data, { ...common, ...(o.method ? { method: o.method } : {}), log });
    net = linearHead({ inputDim: src.d, classes: k, seed, standardize: fit.standardize });
    net.params[0]!.value = fit.weight;
    net.params[1]!.value = fit.bias;
    net.config = { ...net.config, solver: 'lbfgs', C: fit.C, adapted: fit.method };
    logits = adaptedLogits(fit, tgt.x, src.d);
    summary = { method: fit.method, C: fit.C, pseudoLabelled: fit.pseudoLabelled, sourceCvAccuracy: fit.sourceCvAccuracy, ...(fit.candidates ? { candidates: fit.candidates } : {}) };
  }
  let targetAccuracy: number | null = null;
  let sourceOnlyTargetAccuracy: number | null = null;
  if (yt) {
    targetAccuracy = accuracy(yt, argmaxRows(Float32Array.from(logits), k));
    // Source-only is the baseline; when it is the method itself, it is not fitted twice.
    sourceOnlyTargetAccuracy = summary.method === 'source-only' ? targetAccuracy
      : accuracy(yt, argmaxRows(Float32Array.from(adaptedLogits(await adaptFeatures(data, { ...common, method: 'source-only' }), tgt.x, src.d)), k));
    log(`target accuracy (labels used for this report only): ${summary.method} ${(100 * targetAccuracy).toFixed(1)}%, source-only ${(100 * sourceOnlyTargetAccuracy).toFixed(1)}%`);
  }
  const learner = new Learner({ net, train: { x: src.x, y: ys, n: ys.length }, seed, ...(o.threads ? { threads: o.threads } : {}) });
  try {
    saveModel(o.out, {
      createdAt: new Date().toISOString(), task: 'classification', labels: classes,
      input: { name: 'input', kind: 'features', columns: src.columns, shape: [src.d] },
      outputs: { probabilities: 'probabilities', logits: 'logits' }, backbone: null, head: net.config,
      training: {
        adapt: {
          ...summary, source: o.source, target: o.target, nSource: ys.length, nTarget: tgt.n,
          shift: { domainAccuracy: shift.domainAccuracy, proxyADistance: shift.proxyADistance, words: shift.words, projection: shift.projection },
        },
        seed,
      },
      metrics: { sourceCvAccuracy: summary.sourceCvAccuracy, targetAccuracy, sourceOnlyTargetAccuracy, nTrain: ys.length },
      history: [],
      provenance: {
        data: { source: { path: o.source, sha256: sha256(readFileSync(o.source)) }, target: { path: o.target, sha256: sha256(readFileSync(o.target)) } },
        graft: GRAFT_VERSION, node: process.version, platform: `${process.platform}-${process.arch}`,
      },
    }, learner.exportOnnx('softmax'));
  } finally {
    await learner.dispose();
  }
  return {
    out: o.out, method: summary.method, labels: classes, nSource: ys.length, nTarget: tgt.n, shift, sourceCvAccuracy: summary.sourceCvAccuracy,
    pseudoLabelled: summary.pseudoLabelled, targetAccuracy, sourceOnlyTargetAccuracy, notes, seconds: (performance.now() - t0) / 1000,
  };
}
