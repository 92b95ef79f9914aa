/**
 * The safetensors format (an 8-byte little-endian header length, a JSON header, then raw tensor bytes)
 * for checkpoints and cached features: compact, mmap-friendly, and it never executes code on load.
 */
import { readFileSync } from 'node:fs';
import { GraftError } from '../errors.ts';
import { writeFileAtomic } from './atomic.ts';

export interface NamedArrays {
  [name: string]: { shape: number[]; data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array };
}

const CODE: Record<string, string> = { Float32Array: 'F32', Float64Array: 'F64', Int32Array: 'I32', BigInt64Array: 'I64', Uint8Array: 'U8' };

export function encodeSafetensors(arrays: NamedArrays, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  const names = Object.keys(arrays);
  for (const n of names) {
    const a = arrays[n]!;
    const len = a.data.byteLength;
    header[n] = { dtype: CODE[a.data.constructor.name], shape: a.shape, data_offsets: [off, off + len] };
    off += len;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keep tensor data 8-byte aligned
  const hbytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + hbytes.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hbytes.length), true);
  out.set(hbytes, 8);
  let p = 8 + hbytes.length;
  for (const n of names) {
    const d = arrays[n]!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), p);
    p += d.byteLength;
  }
  return out;
}

export function writeSafetensors(path: string, arrays: NamedArrays, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(arrays, metadata));
}

export function decodeSafetensors(bytes: Uint8Array, source = 'file'): { arrays: NamedArrays; metadata: Record<string, string> } {
  const corrupt = (why: string) => new GraftError('E_MODEL_CORRUPT', `${source} is not a valid safetensors file: ${why}`,
    'The file is truncated or damaged; delete it and run the command that writes it again.');
  if (bytes.byteLength < 8) throw corrupt('shorter than its 8-byte header length');
  const hlen = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (hlen > bytes.byteLength - 8 || hlen > 100_000_000) throw corrupt(`header length ${hlen} exceeds the file`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, hlen).toString('utf8'));
  } catch {
    throw corrupt('header is not JSON');
  }
  const base = 8 + hlen;
  const arrays: NamedArrays = {};
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') { metadata = v as Record<string, string>; continue; }
    const e = v as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const [b, end] = e.data_offsets ?? [];
    if (typeof b !== 'number' || typeof end !== 'number' || b < 0 || end < b || base + end > bytes.byteLength) throw corrupt(`tensor "${name}" lies outside the file`);
    const count = e.shape.reduce((a, x) => a * x, 1);
    const slice = Uint8Array.prototype.slice.call(bytes, base + b, base + end); // a real copy (Buffer#slice is a view): aligned, independent of the file
    const ctor = { F32: Float32Array, F64: Float64Array, I32: Int32Array, I64: BigInt64Array, U8: Uint8Array }[e.dtype];
    if (!ctor) throw corrupt(`tensor "${name}" has unsupported dtype ${e.dtype}`);
    if (count * ctor.BYTES_PER_ELEMENT !== end - b) throw corrupt(`tensor "${name}" has ${end - b} bytes for shape [${e.shape}]`);
    arrays[name] = { shape: e.shape, data: new ctor(slice.buffer) };
  }
  return { arrays, metadata };
}

export function readSafetensors(path: string): { arrays: NamedArrays; metadata: Record<string, string> } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch {
    throw new GraftError('E_FILE_MISSING', `cannot read ${path}`, 'Check that the file exists.');
  }
  return decodeSafetensors(bytes, path);
}
