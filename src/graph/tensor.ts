/** Dense tensors as they live outside ONNX Runtime: a dtype, dims and a typed array. */
import { GraftError } from '../errors.ts';

export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'bool' | 'uint8' | 'int8' | 'float16'
  | 'int16' | 'uint16' | 'uint32' | 'uint64' | 'bfloat16';

/** float16 and bfloat16 tensors hold their raw 16 bits (Uint16Array): graft carries them as data, never computes on them. */
export type TypedArray = Float32Array | Float64Array | BigInt64Array | BigUint64Array | Int32Array | Uint32Array | Int16Array | Uint8Array | Int8Array | Uint16Array;

export interface TensorData {
  dtype: DType;
  dims: number[];
  data: TypedArray;
}

/** ONNX TensorProto.DataType numbers. */
export const ONNX_DTYPE: Record<DType, number> = {
  float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11, uint32: 12, uint64: 13, bfloat16: 16,
};

/** DType by ONNX TensorProto.DataType number. */
export const DTYPE_OF_ONNX: Readonly<Record<number, DType>> = Object.fromEntries(Object.entries(ONNX_DTYPE).map(([k, v]) => [v, k as DType]));

export function dtypeFromOnnx(n: number): DType {
  for (const [k, v] of Object.entries(ONNX_DTYPE)) if (v === n) return k as DType;
  throw new GraftError('E_ONNX_PARSE', `ONNX element type ${n} is not supported by graft`,
    'graft supports float32, float64, float16, bfloat16, int64, int32, int16, int8, uint64, uint32, uint16, uint8 and bool tensors.');
}

export function sizeOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Types held as raw bits (float16, bfloat16): no build-time arithmetic on their values. */
export function isRawBits(dtype: DType): boolean {
  return dtype === 'float16' || dtype === 'bfloat16';
}

/** Floating types graft computes on (bfloat16 passes through as data only: ORT's JS API has no bfloat16 tensors). */
export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'float16';
}

export function allocate(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'int64': return new BigInt64Array(n);
    case 'int32': return new Int32Array(n);
    case 'bool': case 'uint8': return new Uint8Array(n);
    case 'int8': return new Int8Array(n);
    case 'float16': case 'bfloat16': case 'uint16': return new Uint16Array(n);
    case 'int16': return new Int16Array(n);
    case 'uint32': return new Uint32Array(n);
    case 'uint64': return new BigUint64Array(n);
  }
}

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/**
 * A number as an int64, saturating: Number(INT64_MAX) is 2^63, which BigInt64Array would wrap to INT64_MIN,
 * so an int64 read out as a number (toNumbers, constInts) comes back as itself.
 */
function toInt64(v: number | bigint): bigint {
  if (typeof v === 'bigint') return v;
  return v >= 2 ** 63 ? INT64_MAX : v < -(2 ** 63) ? INT64_MIN : BigInt(v);
}

export function tensor(dtype: DType, dims: number[], values?: ArrayLike<number | bigint>): TensorData {
  const n = sizeOf(dims);
  const data = allocate(dtype, n);
  if (values) {
    if (values.length !== n) {
      throw new GraftError('E_GRAPH_SHAPE', `tensor of shape [${dims}] needs ${n} values, got ${values.length}`,
        'Pass exactly as many values as the shape holds.');
    }
    if (data instanceof BigInt64Array) for (let i = 0; i < n; i++) data[i] = toInt64(values[i]!);
    else if (data instanceof BigUint64Array) for (let i = 0; i < n; i++) { const v = values[i]!; data[i] = typeof v === 'bigint' ? v : v >= 2 ** 64 ? 2n ** 64n - 1n : BigInt(Math.max(0, v)); }
    else for (let i = 0; i < n; i++) (data as Float32Array)[i] = Number(values[i]);
  }
  return { dtype, dims: [...dims], data };
}

export const f32 = (dims: number[], v?: ArrayLike<number>): TensorData => tensor('float32', dims, v);
export const f64 = (dims: number[], v?: ArrayLike<number>): TensorData => tensor('float64', dims, v);
export const i64 = (dims: number[], v?: ArrayLike<number | bigint>): TensorData => tensor('int64', dims, v);
export const scalarF = (dtype: DType, v: number): TensorData => tensor(dtype, [], [v]);

/** Little-endian bytes of a tensor's data, as ONNX raw_data expects. */
export function toBytes(t: TensorData): Uint8Array {
  const d = t.data;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice();
}

export function fromBytes(dtype: DType, dims: number[], bytes: Uint8Array): TensorData {
  const n = sizeOf(dims);
  const out = allocate(dtype, n);
  const view = new Uint8Array(out.buffer);
  if (bytes.byteLength !== view.byteLength) {
    throw new GraftError('E_ONNX_PARSE', `tensor of shape [${dims}] ${dtype} needs ${view.byteLength} bytes, the file holds ${bytes.byteLength}`,
      'The model file is truncated or corrupt; download or export it again.');
  }
  view.set(bytes);
  return { dtype, dims: [...dims], data: out };
}

/** Values as plain numbers (int64 converted), for tests and small constants. */
export function toNumbers(t: TensorData | { data: TypedArray }): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x));
}

/** A bfloat16 value (its 16 bits: the top half of a float32) as a number. */
export function bfloat16ToFloat(h: number): number {
  const f = new Float32Array(new Uint32Array([h << 16]).buffer);
  return f[0]!;
}

/** An IEEE 754 half-precision value (its 16 bits) as a number: float16 tensors hold raw bits. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}
