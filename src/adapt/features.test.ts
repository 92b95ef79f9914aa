// Domain adaptation on features: the linear algebra against hand-checked values, the shift measure on real
// same-domain and cross-domain data, and the default method against source-only on a real shift (sklearn's
// digits -> MNIST, pixel columns), with the target labels used only to score.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adaptFeatures, adaptedLogits, coral, covariance, symmetricEigen } from './features.ts';
import { measureShift } from './shift.ts';
import { loadDigits } from '../data/digits.ts';
import { mnistAsDigits } from '../data/mnist.ts';
import { stratifiedSplit } from '../data/split.ts';
import { rng } from '../rng.ts';
import { GraftError } from '../errors.ts';

const digits = () => { const { rows, y } = loadDigits(); return { x: Float32Array.from(rows.flat()), y }; };
const accuracy = (z: Float64Array, y: Int32Array, k: number) => {
  let ok = 0;
  for (let i = 0; i < y.length; i++) { let b = 0; for (let c = 1; c < k; c++) if (z[i * k + c]! > z[i * k + b]!) b = c; if (b === y[i]) ok++; }
  return ok / y.length;
};

test('symmetricEigen: a 2x2 by hand, and V diag(w) V^T rebuilds a random symmetric 12x12 to 1e-10', () => {
  const two = symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
  assert.deepEqual([...two.values].map((v) => Math.round(v * 1e9) / 1e9).sort(), [1, 3]);
  const d = 12;
  const r = rng(3);
  const a = new Float64Array(d * d);
  for (let p = 0; p < d; p++) for (let q = p; q < d; q++) { const v = r() * 2 - 1; a[p * d + q] = v; a[q * d + p] = v; }
  const { values, vectors } = symmetricEigen(a, d);
  let err = 0;
  for (let p = 0; p < d; p++) for (let q = 0; q < d; q++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += vectors[p * d + k]! * values[k]! * vectors[q * d + k]!;
    err = Math.max(err, Math.abs(s - a[p * d + q]!));
  }
  assert.ok(err < 1e-10, `reconstruction error ${err}`);
});

test('CORAL without regularisation gives the source the target\'s mean and covariance', () => {
  const d = 5;
  const r = rng(7);
  const xs = Float32Array.from({ length: 400 * d }, (_, i) => (r() - 0.5) * (1 + (i % d)));
  // Target rows with correlated columns (each mixes in the row's first draw) and a shifted mean.
  const xt = new Float32Array(300 * d);
  for (let i = 0; i < 300; i++) { const u0 = r() - 0.5; for (let j = 0; j < d; j++) xt[i * d + j] = 3 * (j === 0 ? u0 : r() - 0.5) + 2 * u0 + j; }
  const out = coral(xs, xt, d, 1e-9);
  const [co, ct] = [covariance(out, d), covariance(xt, d)];
  const mean = (x: Float32Array, j: number) => { let s = 0; for (let i = j; i < x.length; i += d) s += x[i]!; return s / (x.length / d); };
  for (let j = 0; j < d; j++) assert.ok(Math.abs(mean(out, j) - mean(xt, j)) < 1e-4, `mean ${j}`);
  for (let i = 0; i < d * d; i++) assert.ok(Math.abs(co[i]! - ct[i]!) < 1e-3 * (1 + Math.abs(ct[i]!)), `covariance ${i}: ${co[i]} vs ${ct[i]}`);
});

test('measureShift: two halves of sklearn digits look alike; digits against MNIST made 8x8 are far apart', async () => {
  const dg = digits();
  const { train, val } = stratifiedSplit(dg.y, 0.5, 0);
  const rows = (idx: Int32Array) => Float32Array.from(Array.from(idx).flatMap((i) => Array.from(dg.x.subarray(i * 64, i * 64 + 64))));
  const same = await measureShift({ xs: rows(train), ys: Int32Array.from(train, (i) => dg.y[i]!), xt: rows(val), d: 64, k: 10 });
  const m = mnistAsDigits(100);
  const far = await measureShift({ xs: dg.x, ys: dg.y, xt: m.x, d: 64, k: 10 });
  assert.ok(same.proxyADistance < 0.5, `same domain: PAD ${same.proxyADistance} (${same.words})`);
  assert.ok(far.proxyADistance > 1.5, `digits vs MNIST: PAD ${far.proxyADistance}`);
  assert.match(same.words, /look alike/);
  assert.match(far.words, /far apart/);
});

test('MNIST as digits: 64 columns in 0..16, each image\'s darkest cell 16, labels in order', () => {
  const m = mnistAsDigits(5, 10);
  assert.equal(m.x.length, 50 * 64);
  assert.deepEqual([...m.y.slice(0, 6)], [0, 0, 0, 0, 0, 1]);
  for (let i = 0; i < 50; i++) {
    const row = m.x.subarray(i * 64, i * 64 + 64);
    assert.equal(Math.max(...row), 16);
    assert.ok(Math.min(...row) >= 0);
  }
});

test('adapting sklearn digits -> MNIST: the default (self-training) beats source-only by 8+ points on the target rows, whose labels it never sees', async (t) => {
  const src = digits();
  const tgt = mnistAsDigits(200, 2000);
  const data = { xs: src.x, ys: src.y, xt: tgt.x, d: 64, k: 10 };
  const base = await adaptFeatures(data, { method: 'source-only' });
  const lines: string[] = [];
  const adapted = await adaptFeatures(data, { log: (l) => lines.push(l) });
  assert.equal(adapted.method, 'self-train');
  assert.ok(adapted.pseudoLabelled > 0);
  const a0 = accuracy(adaptedLogits(base, tgt.x, 64), tgt.y, 10);
  const a1 = accuracy(adaptedLogits(adapted, tgt.x, 64), tgt.y, 10);
  t.diagnostic(`source-only ${(100 * a0).toFixed(1)}%, self-train ${(100 * a1).toFixed(1)}%; ${lines.at(-1)}`);
  assert.ok(a1 >= a0 + 0.08, `self-train ${a1} vs source-only ${a0}`);
});

test('adapt: bad input is a typed error', async () => {
  const xs = new Float32Array(40 * 4);
  const ys = Int32Array.from({ length: 40 }, (_, i) => i % 2);
  await assert.rejects(adaptFeatures({ xs, ys, xt: new Float32Array(30 * 4 + 1), d: 4, k: 2 }), (e: unknown) => e instanceof GraftError && e.code === 'E_GRAPH_SHAPE' && /same feature width/.test(e.hint));
  await assert.rejects(adaptFeatures({ xs, ys, xt: new Float32Array(3 * 4), d: 4, k: 2 }), (e: unknown) => e instanceof GraftError && e.code === 'E_TARGET_TOO_SMALL');
  const nan = new Float32Array(30 * 4);
  nan[7] = NaN;
  await assert.rejects(adaptFeatures({ xs, ys, xt: nan, d: 4, k: 2 }), (e: unknown) => e instanceof GraftError && e.code === 'E_FEATURES_NOT_FINITE' && /row 1/.test(e.message));
  await assert.rejects(adaptFeatures({ xs, ys, xt: new Float32Array(30 * 4), d: 4, k: 2 }, { method: 'dann' as never }), (e: unknown) => e instanceof GraftError && e.code === 'E_BAD_OPTION');
});

test("adapt 'auto': every method is scored by reverse validation and the best is kept; on one domain split in two the round trip is nearly exact", async (t) => {
  const dg = digits();
  const { train, val } = stratifiedSplit(dg.y, 0.5, 1);
  const rows = (idx: Int32Array) => Float32Array.from(Array.from(idx).flatMap((i) => Array.from(dg.x.subarray(i * 64, i * 64 + 64))));
  const lines: string[] = [];
  const f = await adaptFeatures({ xs: rows(train), ys: Int32Array.from(train, (i) => dg.y[i]!), xt: rows(val), d: 64, k: 10 }, { method: 'auto', log: (l) => lines.push(l) });
  t.diagnostic(lines.join(' | '));
  assert.deepEqual(f.candidates!.map((c) => c.method), ['source-only', 'standardize', 'coral', 'self-train']);
  const best = Math.max(...f.candidates!.map((c) => c.reverseAccuracy));
  assert.equal(f.reverseAccuracy, best);
  assert.equal(f.candidates!.find((c) => c.method === f.method)!.reverseAccuracy, best);
  // Same domain: labels given to the other half by a source classifier train one that labels the source back.
  assert.ok(f.candidates![0]!.reverseAccuracy > 0.9, `source-only reverse accuracy ${f.candidates![0]!.reverseAccuracy}`);
  assert.match(lines.at(-1)!, /chose /);
});
