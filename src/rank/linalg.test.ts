import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rng } from '../rng.ts';
import { cholesky, choleskySolve, gramCols, gramRows, lowerInverseTransposed, symEig, symEigProject, symEigValues } from './linalg.ts';
import { disposeProducts, gemm, gemmJs } from './products.ts';

function random(n: number, seed: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => 2 * r() - 1);
}

function symmetric(n: number, seed: number): Float64Array {
  const a = random(n * n, seed);
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[j * n + i] = a[i * n + j]!;
  return a;
}

/** max |A - V diag(w) V^T| / max |A| and max |V^T V - I|. */
function residuals(a: Float64Array, n: number, values: Float64Array, v: Float64Array): { rec: number; orth: number } {
  let rec = 0;
  let orth = 0;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale = Math.max(scale, Math.abs(a[i]!));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let o = 0;
      for (let t = 0; t < n; t++) { s += v[i * n + t]! * values[t]! * v[j * n + t]!; o += v[t * n + i]! * v[t * n + j]!; }
      rec = Math.max(rec, Math.abs(s - a[i * n + j]!));
      orth = Math.max(orth, Math.abs(o - (i === j ? 1 : 0)));
    }
  }
  return { rec: rec / Math.max(scale, 1e-300), orth };
}

test('symEig reconstructs A = V diag(w) V^T with orthonormal V, eigenvalues largest first', () => {
  const cases: [string, Float64Array, number][] = [];
  for (const n of [1, 2, 3, 7, 40, 90]) cases.push([`random ${n}`, symmetric(n, n), n]);
  const g = gramRows(random(30 * 50, 5), 30, 50);
  cases.push(['Gram 30 x 50', g, 30]);
  // A rank-one Gram matrix: a cluster of ~1e-28 ||A|| eigenvalues among one large one (once an endless QL loop).
  const f = Float64Array.from({ length: 120 }, (_, i) => Math.fround(1 + 0.1 * i));
  cases.push(['rank one', gramRows(Float64Array.from({ length: 80 * 120 }, (_, i) => f[i % 120]!), 80, 120), 80]);
  const rep = new Float64Array(25 * 25);
  for (let i = 0; i < 25; i++) rep[i * 25 + i] = i < 10 ? 2 : -1; // repeated eigenvalues
  cases.push(['repeated eigenvalues', rep, 25]);
  cases.push(['zero', new Float64Array(16), 4]);
  for (const [name, a, n] of cases) {
    const { values, vectors } = symEig(a, n);
    const r = residuals(a, n, values, vectors);
    assert.ok(r.rec <= 1e-12, `${name}: reconstruction ${r.rec}`);
    assert.ok(r.orth <= 1e-12, `${name}: orthogonality ${r.orth}`);
    for (let i = 1; i < n; i++) assert.ok(values[i - 1]! >= values[i]!, `${name}: eigenvalues out of order`);
  }
});

test('symEig matches the known spectrum of the second-difference matrix, 2 - 2 cos(j pi / (n + 1))', () => {
  const n = 50;
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) { a[i * n + i] = 2; if (i) { a[i * n + i - 1] = -1; a[(i - 1) * n + i] = -1; } }
  const w = symEigValues(a, n);
  for (let j = 1; j <= n; j++) assert.ok(Math.abs(w[n - j]! - (2 - 2 * Math.cos(j * Math.PI / (n + 1)))) <= 1e-13);
});

test('symEigProject gives the eigenvalues and V^T B of symEig without the vectors', () => {
  const n = 35;
  const k = 4;
  const a = symmetric(n, 11);
  const b = random(n * k, 12);
  const { values, vectors } = symEig(a, n);
  const p = symEigProject(a, n, b, k);
  for (let j = 0; j < n; j++) {
    assert.ok(Math.abs(p.values[j]! - values[j]!) <= 1e-13);
    for (let c = 0; c < k; c++) {
      let v = 0;
      for (let i = 0; i < n; i++) v += vectors[i * n + j]! * b[i * k + c]!;
      assert.ok(Math.abs(Math.abs(p.projections[j * k + c]!) - Math.abs(v)) <= 1e-12, `projection ${j},${c}`); // up to the eigenvector's sign
    }
  }
});

test('Cholesky solves SPD systems, refuses indefinite ones; L^-T inverts L^T', () => {
  const n = 30;
  const a = gramRows(random(n * 40, 3), n, 40);
  const b = random(n * 3, 4);
  const x = choleskySolve(a, n, b, 3)!;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      let s = 0;
      for (let t = 0; t < n; t++) s += a[i * n + t]! * x[t * 3 + c]!;
      assert.ok(Math.abs(s - b[i * 3 + c]!) <= 1e-10, `residual ${i},${c}`);
    }
  }
  const indefinite = symmetric(5, 9);
  indefinite[0] = -1;
  assert.equal(choleskySolve(indefinite, 5, new Float64Array(5), 1), undefined);
  const l = cholesky(a, n)!;
  const inv = lowerInverseTransposed(l, n); // L^-T
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < n; t++) s += l[i * n + t]! * inv[j * n + t]!; // (L L^-1)_ij, with L^-1 = (L^-T)^T
      assert.ok(Math.abs(s - (i === j ? 1 : 0)) <= 1e-12);
    }
  }
});

test('Gram matrices and products: JavaScript float64, ORT float64 and ORT float32 agree', async () => {
  const n = 23;
  const d = 17;
  const x = random(n * d, 21);
  const rows = gramRows(x, n, d);
  const cols = gramCols(x, n, d);
  const naive = (i: number, j: number, byRows: boolean) => {
    let s = 0;
    if (byRows) for (let t = 0; t < d; t++) s += x[i * d + t]! * x[j * d + t]!;
    else for (let t = 0; t < n; t++) s += x[t * d + i]! * x[t * d + j]!;
    return s;
  };
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.ok(Math.abs(rows[i * n + j]! - naive(i, j, true)) <= 1e-13);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) assert.ok(Math.abs(cols[i * d + j]! - naive(i, j, false)) <= 1e-13);
  const xm = { data: x, rows: n, cols: d };
  const x32 = { data: Float32Array.from(x), rows: n, cols: d };
  const ym = { data: random(d * 5, 22), rows: d, cols: 5 };
  for (const [transA, transB, ref] of [[false, true, rows], [true, false, cols]] as const) {
    assert.deepEqual(gemmJs(xm, xm, transA, transB).map((v, i) => Math.abs(v - ref[i]!) > 1e-13 ? 1 : 0).reduce((a, b) => a + b), 0);
    const ort64 = await gemm(xm, xm, { transA, transB, products: 'ort' });
    const ort32 = await gemm(x32, x32, { transA, transB, products: 'ort' });
    for (let i = 0; i < ref.length; i++) {
      assert.ok(Math.abs(ort64[i]! - ref[i]!) <= 1e-12, 'ORT float64');
      assert.ok(Math.abs(ort32[i]! - ref[i]!) <= 1e-5, 'ORT float32');
    }
  }
  const js = gemmJs(xm, ym);
  const ort = await gemm(xm, ym, { products: 'ort' });
  for (let i = 0; i < js.length; i++) assert.ok(Math.abs(js[i]! - ort[i]!) <= 1e-12);
  await disposeProducts();
});
