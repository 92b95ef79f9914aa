/** Classification metrics (sklearn semantics; zero_division = 0). */

export function argmaxRows(p: Float32Array, k: number): Int32Array {
  const n = p.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (p[i * k + j]! > p[i * k + best]!) best = j;
    out[i] = best;
  }
  return out;
}

export function accuracy(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  let c = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) c++;
  return yTrue.length ? c / yTrue.length : 0;
}

/** conf[t][p]: count of true class t predicted as p. */
export function confusionMatrix(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, k: number): number[][] {
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < yTrue.length; i++) m[yTrue[i]!]![yPred[i]!]!++;
  return m;
}

export interface ClassScores { precision: number; recall: number; f1: number; support: number }

export function perClass(conf: number[][]): ClassScores[] {
  const k = conf.length;
  return conf.map((row, c) => {
    const tp = row[c]!;
    const support = row.reduce((a, b) => a + b, 0);
    let predicted = 0;
    for (let t = 0; t < k; t++) predicted += conf[t]![c]!;
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { precision, recall, f1, support };
  });
}

/** Unweighted mean of per-class F1 over all k labels. */
export function macroF1(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, k: number): number {
  const s = perClass(confusionMatrix(yTrue, yPred, k));
  return s.reduce((a, c) => a + c.f1, 0) / k;
}
