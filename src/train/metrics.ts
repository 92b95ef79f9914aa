/** Classification metrics (sklearn semantics; zero_division = 0). */

/** Index of the largest value per row of an n x k matrix (the first on ties). */
export function argmaxRows(p: Float32Array | Float64Array, k: number): Int32Array {
  if (!(k > 0) || p.length % k !== 0) throw new RangeError(`argmaxRows: ${p.length} values do not form rows of ${k}`);
  const n = p.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (p[i * k + j]! > p[i * k + best]!) best = j;
    out[i] = best;
  }
  return out;
}

function sameLength(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw new RangeError(`metrics: ${a.length} true labels but ${b.length} predictions`);
}

/** Fraction of exact matches (0 for no samples). */
export function accuracy(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  sameLength(yTrue, yPred);
  let c = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) c++;
  return yTrue.length ? c / yTrue.length : 0;
}

/** conf[t][p]: count of true class t predicted as p. */
export function confusionMatrix(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, k: number): number[][] {
  sameLength(yTrue, yPred);
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < yTrue.length; i++) {
    const t = yTrue[i]!;
    const p = yPred[i]!;
    if (!(t >= 0 && t < k && p >= 0 && p < k)) throw new RangeError(`confusionMatrix: sample ${i} has classes ${t}, ${p}; expected 0..${k - 1}`);
    m[t]![p]!++;
  }
  return m;
}

export interface ClassScores { precision: number; recall: number; f1: number; support: number }

/** Per-class scores from a confusion matrix; a 0/0 ratio is 0 (sklearn zero_division=0). */
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

/** Unweighted mean of per-class F1 over all k labels, absent ones included (sklearn average='macro', labels=0..k-1). */
export function macroF1(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, k: number): number {
  const s = perClass(confusionMatrix(yTrue, yPred, k));
  return s.reduce((a, c) => a + c.f1, 0) / k;
}
