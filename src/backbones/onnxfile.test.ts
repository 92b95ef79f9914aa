import { test, after, mock } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import onnxProto from 'onnx-proto';
import { checkOnnxFile, loadOnnxFolder } from './onnxfile.ts';
import { Graph } from '../graph/ir.ts';
import { f32, toBytes, toNumbers } from '../graph/tensor.ts';
import { Session } from '../runtime/session.ts';
import { GraftError } from '../errors.ts';

const { onnx } = onnxProto;
type ModelP = onnxProto.onnx.ModelProto;
type TensorP = onnxProto.onnx.ITensorProto;
const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;

const root = fs.realpathSync(fs.mkdtempSync(join(tmpdir(), 'graft-onnxfile-')));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const W = Array.from({ length: 12 }, (_, i) => (i - 5) / 4);
const B = [0.5, -1, 2, 0];
const C = [10, 20, 30, 40];
const X = [1, 2, 3, -1, 0.5, 4];

/** y = x @ W + b + c, with c a Constant node's tensor attribute. */
function model(): Graph {
  const g = new Graph();
  g.inputs = [{ name: 'x', dtype: 'float32', shape: [2, 3] }];
  g.initializers.set('W', f32([3, 4], W));
  g.initializers.set('b', f32([4], B));
  g.addNode('MatMul', ['x', 'W'], ['xw']);
  g.addNode('Add', ['xw', 'b'], ['y0']);
  g.addNode('Constant', [], ['c'], { value: { t: f32([4], C) } });
  g.addNode('Add', ['y0', 'c'], ['y']);
  g.outputs = [{ name: 'y', dtype: 'float32', shape: [2, 4] }];
  return g;
}

function expected(w = W): number[] {
  const y: number[] = [];
  for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) {
    let s = B[j]! + C[j]!;
    for (let k = 0; k < 3; k++) s += X[i * 3 + k]! * w[k * 4 + j]!;
    y.push(s);
  }
  return y;
}

const proto = (): ModelP => onnx.ModelProto.decode(model().toBytes());
const encode = (m: ModelP): Uint8Array => onnx.ModelProto.encode(m).finish();

/** A tensor of the model: an initializer by name, or 'const:c' for the Constant node that makes c. */
function find(m: ModelP, name: string): TensorP {
  if (name.startsWith('const:')) {
    const n = (m.graph!.node ?? []).find((x) => x.output?.[0] === name.slice(6))!;
    return n.attribute![0]!.t!;
  }
  return (m.graph!.initializer ?? []).find((t) => t.name === name)!;
}

/** Moves the named tensors into one external data buffer (16-byte aligned) at `location`. */
function externalize(m: ModelP, names: string[], location: string): Buffer {
  const chunks: Buffer[] = [];
  let off = 0;
  for (const name of names) {
    const t = find(m, name);
    const raw = Buffer.from(t.rawData!);
    const pad = (16 - (off % 16)) % 16;
    chunks.push(Buffer.alloc(pad), raw);
    off += pad;
    t.dataLocation = EXTERNAL;
    t.externalData = [{ key: 'location', value: location }, { key: 'offset', value: String(off) }, { key: 'length', value: String(raw.length) }];
    t.rawData = new Uint8Array(0);
    off += raw.length;
  }
  return Buffer.concat(chunks);
}

function write(path: string, data: Uint8Array | string): string {
  fs.mkdirSync(join(path, '..'), { recursive: true });
  fs.writeFileSync(path, data);
  return path;
}

/** bytes of W with other values: a file an attacker would like read as the weights. */
const SECRET = Buffer.from(toBytes(f32([3, 4], W.map((v) => v * 100))));

/**
 * A case folder: <case>/secret (outside the model folder) and <case>/model/model.onnx whose W points at
 * external data through `entries`. Returns the model path.
 */
function hostile(name: string, entries: Record<string, string>): { path: string; modelDir: string; caseDir: string } {
  const caseDir = join(root, name);
  const modelDir = join(caseDir, 'model');
  fs.mkdirSync(modelDir, { recursive: true });
  write(join(caseDir, 'secret'), SECRET);
  const m = proto();
  const t = find(m, 'W');
  t.dataLocation = EXTERNAL;
  t.rawData = new Uint8Array(0);
  t.externalData = Object.entries(entries).map(([key, value]) => ({ key, value }));
  return { path: write(join(modelDir, 'model.onnx'), encode(m)), modelDir, caseDir };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof GraftError, `not a GraftError: ${e}`);
    assert.ok(e.hint.length > 0);
    return e.code;
  }
  return 'no error';
}

async function run(g: Graph): Promise<number[]> {
  const s = await Session.create(g, { threads: 1 });
  try {
    return toNumbers((await s.run({ x: f32([2, 3], X) })).y!);
  } finally {
    await s.dispose();
  }
}

function close(a: number[], b: number[]) {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-5, `[${i}] ${a[i]} vs ${b[i]}`);
}

test('a hub-layout folder with external data (initializers and a Constant) loads self-contained and runs in ORT', async () => {
  const dir = join(root, 'good');
  const m = proto();
  const data = externalize(m, ['W', 'b', 'const:c'], 'model.onnx_data');
  write(join(dir, 'onnx', 'model.onnx'), encode(m));
  write(join(dir, 'onnx', 'model.onnx_data'), data);
  write(join(dir, 'config.json'), '{}');
  assert.throws(() => Graph.load(join(dir, 'onnx', 'model.onnx')), /external file/);

  const { graph, modelPath } = loadOnnxFolder(dir);
  assert.equal(modelPath, join(dir, 'onnx', 'model.onnx'));
  assert.deepEqual(toNumbers(graph.initializers.get('W')!), W);
  // What ORT gets holds every byte itself: no tensor refers to a file any more.
  const out = onnx.ModelProto.decode(graph.toBytes());
  const all = [...out.graph!.initializer ?? [], ...(out.graph!.node ?? []).flatMap((n) => (n.attribute ?? []).map((a) => a.t))];
  assert.equal(all.length, 3);
  for (const t of all) {
    assert.notEqual(t!.dataLocation, EXTERNAL);
    assert.equal(t!.externalData?.length ?? 0, 0);
  }
  close(await run(graph), expected());
  close(await run(checkOnnxFile(join(dir, 'onnx', 'model.onnx'))), expected());
});

test('external data reached through a symlink that stays inside the folder is read', async () => {
  const { path, modelDir } = hostile('inside-link', { location: 'link.bin', offset: '16', length: '48' });
  write(join(modelDir, 'data', 'real.bin'), Buffer.concat([Buffer.alloc(16), Buffer.from(toBytes(f32([3, 4], W)))]));
  fs.symlinkSync(join('data', 'real.bin'), join(modelDir, 'link.bin'));
  close(await run(checkOnnxFile(path)), expected());
});

test('external data outside the model folder is refused, and no file outside it is ever opened', () => {
  const spy = mock.method(fs, 'openSync');
  try {
    // Control: the secret copied into the folder is read without complaint, so only the location stops the others.
    const ok = hostile('control', { location: 'secret' });
    fs.copyFileSync(join(ok.caseDir, 'secret'), join(ok.modelDir, 'secret'));
    assert.deepEqual(toNumbers(checkOnnxFile(ok.path).initializers.get('W')!), W.map((v) => v * 100));

    const cases: [string, (c: { caseDir: string; modelDir: string }) => string][] = [
      ['dotdot', () => '../secret'],
      ['dotdot-inner', () => 'sub/../../secret'],
      ['backslash', () => '..\\secret'],
      ['absolute', (c) => join(c.caseDir, 'secret')],
      ['etc-passwd', () => '/etc/passwd'],
      ['drive', () => 'C:\\secret'],
      ['symlink-file', (c) => { fs.symlinkSync('../secret', join(c.modelDir, 'escape.bin')); return 'escape.bin'; }],
      ['symlink-abs', (c) => { fs.symlinkSync(join(c.caseDir, 'secret'), join(c.modelDir, 'escape.bin')); return 'escape.bin'; }],
      ['symlink-dir', (c) => { fs.symlinkSync(c.caseDir, join(c.modelDir, 'd')); return 'd/secret'; }],
    ];
    for (const [name, loc] of cases) {
      const c = hostile(`out-${name}`, {});
      const m = onnx.ModelProto.decode(fs.readFileSync(c.path));
      find(m, 'W').externalData = [{ key: 'location', value: loc(c) }];
      write(c.path, encode(m));
      spy.mock.resetCalls();
      assert.equal(code(() => checkOnnxFile(c.path)), 'E_ONNX_UNSAFE', name);
      assert.equal(code(() => loadOnnxFolder(c.modelDir)), 'E_ONNX_UNSAFE', name);
      const opened = spy.mock.calls.map((call) => String(call.arguments[0]));
      assert.ok(opened.length > 0, `${name}: the model itself was opened`);
      for (const p of opened) assert.ok(p.startsWith(c.modelDir + sep), `${name}: opened ${p}`);
    }
  } finally {
    spy.mock.restore();
  }
});

test('a model file that links out of its folder is refused by loadOnnxFolder', () => {
  const c = hostile('model-link', { location: 'x' });
  const dir = join(c.caseDir, 'linked');
  fs.mkdirSync(dir);
  fs.symlinkSync(c.path, join(dir, 'model.onnx'));
  assert.equal(code(() => loadOnnxFolder(dir)), 'E_ONNX_UNSAFE');
});

test('offsets, lengths and sizes beyond the external file are refused', () => {
  const data = (c: { modelDir: string }, n: number) => write(join(c.modelDir, 'w.bin'), Buffer.alloc(n, 1));
  const cases: [string, Record<string, string>, number, string][] = [
    ['offset-past-eof', { location: 'w.bin', offset: '200' }, 64, 'E_ONNX_UNSAFE'],
    ['length-past-eof', { location: 'w.bin', offset: '32', length: '48' }, 64, 'E_ONNX_UNSAFE'],
    ['tensor-larger-than-file', { location: 'w.bin' }, 40, 'E_ONNX_UNSAFE'],
    ['negative-offset', { location: 'w.bin', offset: '-4' }, 64, 'E_ONNX_UNSAFE'],
    ['float-offset', { location: 'w.bin', offset: '1e3' }, 64, 'E_ONNX_UNSAFE'],
    ['huge-offset', { location: 'w.bin', offset: '99999999999999999999' }, 64, 'E_ONNX_UNSAFE'],
    ['wrong-length', { location: 'w.bin', length: '44' }, 64, 'E_ONNX_PARSE'],
    ['no-location', { offset: '0' }, 64, 'E_ONNX_PARSE'],
    ['missing-file', { location: 'nope.bin' }, 64, 'E_FILE_MISSING'],
  ];
  for (const [name, entries, size, want] of cases) {
    const c = hostile(`range-${name}`, entries);
    data(c, size);
    assert.equal(code(() => checkOnnxFile(c.path)), want, name);
  }
  const d = hostile('range-dir', { location: 'sub' });
  fs.mkdirSync(join(d.modelDir, 'sub'));
  assert.equal(code(() => checkOnnxFile(d.path)), 'E_ONNX_UNSAFE', 'a folder as location');
  // A tensor of 2^30 floats (4 GiB) that points at a small file: refused from the sizes, nothing allocated.
  const big = hostile('range-big', { location: 'w.bin' });
  data(big, 64);
  const m = onnx.ModelProto.decode(fs.readFileSync(big.path));
  find(m, 'W').dims = [1 << 20, 1 << 10];
  write(big.path, encode(m));
  assert.equal(code(() => checkOnnxFile(big.path)), 'E_ONNX_UNSAFE');
});

test('truncated and inconsistent protobufs are E_ONNX_PARSE', () => {
  const dir = join(root, 'parse');
  const bytes = model().toBytes();
  for (const cut of [10, bytes.length >> 1, bytes.length - 3]) {
    const p = write(join(dir, `cut${cut}.onnx`), bytes.slice(0, cut));
    assert.equal(code(() => checkOnnxFile(p)), 'E_ONNX_PARSE', `cut at ${cut} of ${bytes.length}`);
  }
  const m1 = proto();
  find(m1, 'W').rawData = find(m1, 'W').rawData!.slice(0, 44);
  assert.equal(code(() => checkOnnxFile(write(join(dir, 'raw.onnx'), encode(m1)))), 'E_ONNX_PARSE');
  const m2 = proto();
  Object.assign(find(m2, 'b'), { rawData: new Uint8Array(0), floatData: [1, 2, 3] });
  assert.equal(code(() => checkOnnxFile(write(join(dir, 'floats.onnx'), encode(m2)))), 'E_ONNX_PARSE');
  assert.equal(code(() => checkOnnxFile(write(join(dir, 'junk.onnx'), Buffer.from('not an onnx model at all\n')))), 'E_ONNX_PARSE');
});

test('absurd dims and sizes beyond maxBytes are refused before anything is allocated', () => {
  const dir = join(root, 'dims');
  const m1 = proto();
  find(m1, 'W').dims = [-1, 4];
  assert.equal(code(() => checkOnnxFile(write(join(dir, 'neg.onnx'), encode(m1)))), 'E_ONNX_UNSAFE');
  const m2 = proto();
  Object.assign(find(m2, 'b'), { dims: [65536, 65536, 2], rawData: new Uint8Array(0) });
  const t0 = Date.now();
  assert.equal(code(() => checkOnnxFile(write(join(dir, 'huge.onnx'), encode(m2)))), 'E_ONNX_UNSAFE');
  const m3 = proto();
  Object.assign(find(m3, 'const:c'), { dims: [1 << 28], rawData: new Uint8Array(0) }); // 1 GiB of floats, no data
  assert.equal(code(() => checkOnnxFile(write(join(dir, 'big-const.onnx'), encode(m3)))), 'E_ONNX_PARSE');
  assert.ok(Date.now() - t0 < 1000, 'refused without allocating');

  // maxBytes bounds the model file and, with it, the external bytes read.
  const g = join(root, 'good', 'onnx', 'model.onnx');
  const size = fs.statSync(g).size;
  assert.equal(code(() => checkOnnxFile(g, { maxBytes: size - 1 })), 'E_ONNX_UNSAFE');
  assert.equal(code(() => checkOnnxFile(g, { maxBytes: size + 60 })), 'E_ONNX_UNSAFE'); // W alone is 48 bytes, b 16, c 16
  assert.equal(checkOnnxFile(g, { maxBytes: size + 80 }).initializers.size, 2);
});
