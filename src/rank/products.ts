/**
 * The large matrix products of the rank scores (Gram matrices, a Gram matrix times a block of
 * vectors). 'ort' runs them as one Gemm node on ONNX Runtime, a session per dtype and transpose
 * pattern, made once and kept; 'js' runs them in float64 JavaScript. A 1000 x 1280 Gram matrix takes
 * ~75 ms in float32 on ORT and ~2 s in JavaScript (2 shared cores), so 'auto' sends every product
 * above ORT_ABOVE multiply-adds to ORT and keeps small ones in float64 JavaScript, where the
 * reference tests check them to 1e-6.
 */
import * as ort from 'onnxruntime-node';
import { GraftError } from '../errors.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { defaultThreads } from '../runtime/session.ts';

export type Products = 'auto' | 'ort' | 'js';

/** Multiply-adds above which 'auto' runs a product on ORT. */
export const ORT_ABOVE = 2e7;

/** A row-major matrix. float32 data stays float32 on ORT (a float32 product); otherwise float64. */
export interface Mat {
  data: Float32Array | Float64Array;
  rows: number;
  cols: number;
}

const sessions = new Map<string, Promise<ort.InferenceSession>>();

/**
 * A Gemm session. Made with ORT directly rather than runtime/session.ts, to turn off the intra-op
 * threads' spin-waiting: after each run they otherwise spin for ~40 ms on the 2 cores that the
 * JavaScript eigensolver between two products needs (measured: 35-50 ms of CPU in the 300 ms after a
 * 1000 x 1000 x 256 product, none without spinning).
 */
function session(dtype: 'float32' | 'float64', transA: boolean, transB: boolean, threads: number): Promise<ort.InferenceSession> {
  const key = `${dtype}:${+transA}:${+transB}:${threads}`;
  let s = sessions.get(key);
  if (!s) {
    const b = new GraphBuilder();
    const a = b.input('a', dtype, ['A0', 'A1']);
    const c = b.input('b', dtype, ['B0', 'B1']);
    b.output(b.op1('Gemm', [a, c], { transA: +transA, transB: +transB }), 'c');
    s = ort.InferenceSession.create(b.graph.toBytes(), {
      intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    }).catch((e: Error) => {
      sessions.delete(key);
      throw new GraftError('E_RUNTIME', `ONNX Runtime could not load the Gemm graph of the rank scores: ${e.message}`, 'This is a bug in graft.');
    });
    sessions.set(key, s);
  }
  return s;
}

/** Releases the cached ORT sessions (a later product makes them again). */
export async function disposeProducts(): Promise<void> {
  const all = [...sessions.values()];
  sessions.clear();
  for (const s of all) await (await s).release();
}

function f64(a: Float32Array | Float64Array): Float64Array {
  return a instanceof Float64Array ? a : Float64Array.from(a);
}

/** op(A) as a row-major Float64Array, and its shape. */
function materialize(a: Mat, trans: boolean): { data: Float64Array; rows: number; cols: number } {
  if (!trans) return { data: f64(a.data), rows: a.rows, cols: a.cols };
  const t = new Float64Array(a.rows * a.cols);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) t[j * a.rows + i] = a.data[i * a.cols + j]!;
  return { data: t, rows: a.cols, cols: a.rows };
}

/** op(A) op(B) in float64 JavaScript: each entry one contiguous dot product. */
export function gemmJs(a: Mat, b: Mat, transA = false, transB = false): Float64Array {
  const l = materialize(a, transA);
  const r = materialize(b, !transB); // rows of r are the columns of op(B)
  const m = l.rows;
  const n = r.rows;
  const k = l.cols;
  const c = new Float64Array(m * n);
  const same = a === b && transA !== transB; // A A^T or A^T A: symmetric, compute half
  for (let i = 0; i < m; i++) {
    const oi = i * k;
    for (let j = same ? i : 0; j < n; j++) {
      const oj = j * k;
      let s = 0;
      for (let t = 0; t < k; t++) s += l.data[oi + t]! * r.data[oj + t]!;
      c[i * n + j] = s;
      if (same) c[j * n + i] = s;
    }
  }
  return c;
}

/**
 * op(A) op(B), op = transpose where asked, always returned as float64. On ORT the product runs in
 * float32 when both inputs are float32, else in float64.
 */
export async function gemm(a: Mat, b: Mat, o: { transA?: boolean; transB?: boolean; products?: Products; threads?: number } = {}): Promise<Float64Array> {
  const transA = o.transA ?? false;
  const transB = o.transB ?? false;
  const m = transA ? a.cols : a.rows;
  const k = transA ? a.rows : a.cols;
  const n = transB ? b.rows : b.cols;
  const products = o.products ?? 'auto';
  if (products === 'js' || (products === 'auto' && m * n * k <= ORT_ABOVE)) return gemmJs(a, b, transA, transB);
  const dtype = a.data instanceof Float32Array && b.data instanceof Float32Array ? 'float32' : 'float64';
  const cast = (x: Float32Array | Float64Array) => (dtype === 'float64' ? f64(x) : x);
  const s = await session(dtype, transA, transB, o.threads ?? defaultThreads());
  let out: ort.InferenceSession.ReturnType;
  try {
    out = await s.run({ a: new ort.Tensor(dtype, cast(a.data), [a.rows, a.cols]), b: new ort.Tensor(dtype, cast(b.data), [b.rows, b.cols]) });
  } catch (e) {
    throw new GraftError('E_RUNTIME', `ONNX Runtime failed on a ${m} x ${k} x ${n} product: ${(e as Error).message}`, 'Check free memory; this is otherwise a bug in graft.');
  }
  return f64(out['c']!.data as Float32Array | Float64Array);
}
