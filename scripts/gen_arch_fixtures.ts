/**
 * Second half of the per-architecture fixtures (issue 17, item 4). scripts/gen_arch_fixtures.py exports each
 * torchvision backbone with its weights inline to /tmp/graft-arch/NAME.onnx (tens of MB for ResNet-18) and
 * writes fixtures/torch/arch/NAME.json, whose `weights` give every floating tensor as a hash stream
 * (value = float32(shift + scale * hashUniform(i, seed))). This script moves every float initializer of more
 * than 1024 elements out to external data (NAME.weights.bin, not committed), after checking that its bytes are
 * exactly what the spec rebuilds, and writes fixtures/torch/arch/NAME.onnx (small). The test rebuilds
 * NAME.weights.bin with rebuildWeights() below and loads the model as any downloaded ONNX folder.
 *
 *   /usr/bin/python3 scripts/gen_arch_fixtures.py && npx tsx scripts/gen_arch_fixtures.ts
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import onnxProto from 'onnx-proto';
import { hashUniform } from './gen_mobilenet_grad_fixture.ts';

const { onnx } = onnxProto;
export const ARCH_DIR = new URL('../fixtures/torch/arch/', import.meta.url).pathname;
const EXTERNAL_MIN = 1024;

export interface WeightSpec { seed: number; shift: number; scale: number }

export function specValues(n: number, s: WeightSpec): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = s.shift + s.scale * hashUniform(i, s.seed);
  return v;
}

const count = (dims: unknown[]) => dims.reduce<number>((p, d) => p * Number(d), 1);
const location = (name: string) => `${name}.weights.bin`;

/** Moves the large float initializers of /tmp/graft-arch/NAME.onnx out to external data; writes NAME.onnx here. */
function strip(name: string, src: string): void {
  const fx = JSON.parse(readFileSync(join(ARCH_DIR, `${name}.json`), 'utf8')) as { weights: Record<string, WeightSpec> };
  const model = onnx.ModelProto.decode(readFileSync(src));
  let offset = 0;
  let moved = 0;
  for (const t of model.graph!.initializer ?? []) {
    const n = count(t.dims ?? []);
    if (t.dataType !== onnx.TensorProto.DataType.FLOAT || n <= EXTERNAL_MIN) continue;
    const spec = fx.weights[t.name!];
    if (!spec) throw new Error(`${name}: initializer ${t.name} (${n} elements) has no weight spec`);
    const raw = t.rawData!;
    const want = new Uint8Array(specValues(n, spec).buffer);
    if (raw.length !== want.length || !Buffer.from(raw).equals(Buffer.from(want))) throw new Error(`${name}: ${t.name} does not rebuild from its spec`);
    t.rawData = new Uint8Array(0);
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.externalData = [{ key: 'location', value: location(name) }, { key: 'offset', value: String(offset) }, { key: 'length', value: String(want.length) }];
    offset += want.length;
    moved++;
  }
  const out = join(ARCH_DIR, `${name}.onnx`);
  writeFileSync(out, onnx.ModelProto.encode(model).finish());
  console.log(`${out}: ${moved} initializers (${offset} bytes) external`);
}

/** Writes NAME.onnx and the rebuilt NAME.weights.bin into `dir` (a folder of its own, as a download would be). */
export function rebuildWeights(name: string, weights: Record<string, WeightSpec>, dir: string): string {
  const bytes = readFileSync(join(ARCH_DIR, `${name}.onnx`));
  const model = onnx.ModelProto.decode(bytes);
  const parts: { offset: number; data: Float32Array }[] = [];
  let size = 0;
  for (const t of model.graph!.initializer ?? []) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const kv = Object.fromEntries((t.externalData ?? []).map((e) => [e.key, e.value]));
    const offset = Number(kv['offset'] ?? 0);
    const data = specValues(count(t.dims ?? []), weights[t.name!]!);
    parts.push({ offset, data });
    size = Math.max(size, offset + data.byteLength);
  }
  const buf = Buffer.alloc(size);
  for (const p of parts) buf.set(new Uint8Array(p.data.buffer), p.offset);
  writeFileSync(join(dir, location(name)), buf);
  const path = join(dir, `${name}.onnx`);
  writeFileSync(path, bytes);
  return path;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const src = process.argv[2] ?? '/tmp/graft-arch';
  for (const f of readdirSync(src).filter((f) => f.endsWith('.onnx'))) strip(f.replace(/\.onnx$/, ''), join(src, f));
}
