import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GraftError } from '../errors.ts';
import { fitConvexProbe, convexLogits, foldStandardize, pivotedCholesky, type ConvexLoss } from './convex.ts';
import { lbfgs } from '../train/lbfgs.ts';

interface Case { name: string; loss: ConvexLoss; C: number; k: number; d: number; x: number[]; y: number[]; weight: number[] | null; bias: number[]; objective?: number }
const ref = JSON.parse(readFileSync(new URL('../../fixtures/convex/reference.json', import.meta.url), 'utf8')) as { cases: Case[] };

/** graft's objective (float64) for weights on standardised features. */
function objective(c: Case, w: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = c.y.length;
  const x = Float32Array.from(c.x);
  const mean = new Float64Array(c.d);
  const sq = new Float64Array(c.d);
  for (let i = 0; i < n; i++) for (let j = 0; j < c.d; j++) { mean[j] += x[i * c.d + j]! / n; sq[j] += x[i * c.d + j]! ** 2 / n; }
  const std = mean.map((m, j) => { const v = Math.max(0, sq[j]! - m * m); return v > 1e-12 ? Math.sqrt(v) : 1; });
  let data = 0;
  for (let i = 0; i < n; i++) {
    const z = Array.from({ length: c.k }, (_, k) => { let s = b[k]!; for (let j = 0; j < c.d; j++) s += ((x[i * c.d + j]! - mean[j]!) / std[j]!) * w[j * c.k + k]!; return s; });
    if (c.loss === 'logistic') { const m = Math.max(...z); data += m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0)) - z[c.y[i]!]!; } else {
      for (let k = 0; k < c.k; k++) { const t = c.y[i] === k ? 1 : -1; data += c.loss === 'ridge' ? 0.5 * (z[k]! - t) ** 2 : Math.max(0, 1 - t * z[k]!) ** 2; }
    }
  }
  let pen = 0;
  for (let i = 0; i < c.d * c.k; i++) pen += w[i]! ** 2;
  return data / n + pen / (2 * c.C * n);
}

const relL2 = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let num = 0; let den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
  return Math.sqrt(num / den);
};

for (const c of ref.cases) {
  test(`convex probe ${c.name} (sklearn digits, ${c.y.length} x ${c.d}, ${c.k} classes) reaches scikit-learn's optimum`, async () => {
    const fit = await fitConvexProbe(Float32Array.from(c.x), Int32Array.from(c.y), c.d, c.k, { loss: c.loss, Cs: [c.C], tol: 1e-6, maxIter: 5000, threads: 1 });
    assert.equal(fit.path.length, 0, 'one C: no search');
    const ours = objective(c, fit.weight, fit.bias);
    const theirs = objective(c, c.weight ?? [], c.bias);
    // Same objective value to float32 precision, never worse than scikit-learn's by more than that.
    assert.ok(ours <= theirs * (1 + 2e-5) + 1e-7, `objective ${ours} vs scikit-learn ${theirs}`);
    if (c.loss !== 'squared-hinge') {
      // liblinear's squared-hinge solution is not converged to 1e-10 in the fixture; compare objectives only.
      assert.ok(relL2(fit.weight, c.weight!) < 2e-3, `weights rel L2 ${relL2(fit.weight, c.weight!)}`);
      // A multinomial intercept is free up to a constant shift (softmax ignores it): compare centred. It is
      // the least-determined direction, so float32 gradients leave it ~0.5% off while the objective agrees.
      const centred = (b: ArrayLike<number>) => { const m = Array.from(b).reduce((a, v) => a + v, 0) / b.length; return Array.from(b, (v) => (c.loss === 'logistic' ? v - m : v)); };
      assert.ok(relL2(centred(fit.bias), centred(c.bias)) < 1e-2, `bias rel L2 ${relL2(centred(fit.bias), centred(c.bias))}`);
    }
    if (c.name.startsWith('wide')) assert.ok(fit.rank !== null && fit.rank <= c.y.length, 'solved in the span of the examples');
    // The probe's own logits agree with the saved weights applied to raw features.
    const z = convexLogits(fit, Float32Array.from(c.x), c.d);
    let correct = 0;
    for (let i = 0; i < c.y.length; i++) { const row = Array.from(z.subarray(i * c.k, (i + 1) * c.k)); if (row.indexOf(Math.max(...row)) === c.y[i]) correct++; }
    assert.ok(Math.abs(correct / c.y.length - fit.trainAccuracy) < 1e-9);
  });
}

test('L-BFGS minimises a float64 quadratic to the tolerance and says why it stopped', async () => {
  const A = [4, 1, 0, 1, 3, 0.5, 0, 0.5, 2];
  const bv = [1, -2, 0.5];
  const r = await lbfgs((x, g) => {
    let f = 0;
    for (let i = 0; i < 3; i++) { let s = 0; for (let j = 0; j < 3; j++) s += A[i * 3 + j]! * x[j]!; g[i] = s - bv[i]!; f += 0.5 * x[i]! * s - bv[i]! * x[i]!; }
    return f;
  }, new Float64Array(3), { tol: 1e-10, ftol: 0 });
  assert.equal(r.reason, 'gtol');
  assert.ok(r.converged && r.gradMax <= 1e-10);
  assert.ok(r.iterations <= 10, `${r.iterations} iterations`);
});

test('pivoted Cholesky factors a rank-deficient Gram matrix exactly at its rank', () => {
  const n = 6; const d = 3;
  const x = Float64Array.from({ length: n * d }, (_, i) => Math.sin(i * 1.7) + (i % 3));
  const K = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let q = 0; q < d; q++) K[i * n + j] += x[i * d + q]! * x[j * d + q]!;
  const { L, r } = pivotedCholesky(K, n);
  assert.equal(r, 3);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0; for (let q = 0; q < r; q++) s += L[i * r + q]! * L[j * r + q]!;
    assert.ok(Math.abs(s - K[i * n + j]!) < 1e-9);
  }
});

test('cross-validated C on real digits: a path over the grid, refit on all rows, estimate with spread', async () => {
  const c = ref.cases.find((q) => q.name === 'tall-logistic-C1.0')!;
  const fit = await fitConvexProbe(Float32Array.from(c.x), Int32Array.from(c.y), c.d, c.k, { threads: 1 });
  assert.equal(fit.path.length, 10);
  assert.equal(fit.folds, 5);
  const best = Math.max(...fit.path.map((p) => p.accuracy));
  assert.equal(fit.cvAccuracy, best);
  assert.ok(fit.cvAccuracy! > 0.85, `CV accuracy ${fit.cvAccuracy}`);
  assert.ok(fit.cvStd! >= 0 && fit.cvStd! < 0.15);
  assert.ok(fit.path[0]!.accuracy < best, 'the strongest penalty underfits');
  assert.ok(fit.trainAccuracy >= fit.cvAccuracy!);
});

test('repeated k-fold: the scores are the mean over repeats of single-split searches, each on fresh folds', async () => {
  const c = ref.cases.find((q) => q.name === 'tall-logistic-C1.0')!;
  const x = Float32Array.from(c.x), y = Int32Array.from(c.y);
  const three = await fitConvexProbe(x, y, c.d, c.k, { threads: 1, repeats: 3, seed: 4 });
  assert.equal(three.repeats, 3);
  assert.equal(three.path[0]!.foldAccuracy.length, 15);
  const singles = await Promise.all([0, 1, 2].map((r) => fitConvexProbe(x, y, c.d, c.k, { threads: 1, repeats: 1, seed: 4 + 7919 * r })));
  for (let i = 0; i < three.path.length; i++) {
    const mean = singles.reduce((a, f) => a + f.path[i]!.accuracy, 0) / 3;
    assert.ok(Math.abs(three.path[i]!.accuracy - mean) < 1e-12, `C ${three.path[i]!.C}: ${three.path[i]!.accuracy} vs ${mean}`);
  }
  assert.equal((await fitConvexProbe(x, y, c.d, c.k, { threads: 1 })).repeats, 1);
  await assert.rejects(fitConvexProbe(x, y, c.d, c.k, { repeats: 0 }), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION');
});

test('bad input: NaN features, a one-example class, a two-example class, constant features', async () => {
  const y = Int32Array.from([0, 0, 0, 1, 1, 1]);
  const x = Float32Array.from([1, 2, 3, 4, 5, NaN].flatMap((v) => [v, v * 2]));
  await assert.rejects(fitConvexProbe(x, y, 2, 2), (e: unknown) => e instanceof GraftError && e.code === 'E_FEATURES_NOT_FINITE');
  const warns: string[] = [];
  const one = await fitConvexProbe(Float32Array.from([0, 1, 2, 3, 10]), Int32Array.from([0, 0, 0, 0, 1]), 1, 2, { log: (s) => warns.push(s) });
  assert.equal(one.C, 1);
  assert.equal(one.path.length, 0);
  assert.match(one.warnings.join('\n'), /1 example: C cannot be chosen by cross-validation/);
  const two = await fitConvexProbe(Float32Array.from([0, 1, 2, 3, 10, 11]), Int32Array.from([0, 0, 0, 0, 1, 1]), 1, 2);
  assert.equal(two.folds, 2);
  assert.match(two.warnings.join('\n'), /2-fold cross-validation/);
  const flat = await fitConvexProbe(new Float32Array(12).fill(3), y, 2, 2);
  assert.match(flat.warnings.join('\n'), /constant/);
  assert.ok(Number.isFinite(flat.bias[0]!) && fit0(flat.weight));
  assert.ok(warns.some((w) => w.startsWith('warning:')));
});

const fit0 = (w: Float32Array) => w.every((v) => v === 0);

test('folding the standardisation into the weights gives the same logits on raw features (the LP-FT head)', async () => {
  const c = ref.cases.find((q) => q.name === 'wide-logistic-C1.0')!;
  const x = Float32Array.from(c.x);
  const fit = await fitConvexProbe(x, Int32Array.from(c.y), c.d, c.k, { Cs: [1], threads: 1 });
  const { weight, bias } = foldStandardize(fit);
  const z = convexLogits(fit, x, c.d);
  for (let i = 0; i < c.y.length; i++) {
    for (let k = 0; k < c.k; k++) {
      let v = bias[k]!;
      for (let j = 0; j < c.d; j++) v += x[i * c.d + j]! * weight[j * c.k + k]!;
      assert.ok(Math.abs(v - z[i * c.k + k]!) < 1e-3 * (1 + Math.abs(z[i * c.k + k]!)), `row ${i} class ${k}: ${v} vs ${z[i * c.k + k]}`);
    }
  }
});
