import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import { Graph, tensorFromProto } from './ir.ts';
import { GraphBuilder } from './builder.ts';
import { Session, toOrt } from '../runtime/session.ts';
import { GraftError } from '../errors.ts';
import { tensor } from './tensor.ts';

const ONNX = new URL('../../fixtures/torch/tiny_cnn.onnx', import.meta.url).pathname;
const ref = JSON.parse(readFileSync(new URL('../../fixtures/torch/tiny_cnn.json', import.meta.url), 'utf8'));
const x = tensor('float32', [2, 3, 8, 8], ref.x);

function close(a: ArrayLike<number>, b: number[], tol: number, what: string) {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

test('loads a PyTorch-exported ONNX file and runs it to the same logits', async () => {
  const g = Graph.load(ONNX);
  assert.equal(g.opset, 13);
  assert.deepEqual(g.inputs[0]!.shape, ['n', 3, 8, 8]);
  assert.deepEqual(g.nodes.map((n) => n.op), ['Conv', 'Relu', 'MaxPool', 'Flatten', 'Gemm']);
  const s = await Session.create(g, { threads: 1 });
  close((await s.run({ pixels: x })).logits!.data as Float32Array, ref.logits, 1e-5, 'logits');
});

test('save and load round-trip keeps nodes, attributes, initializers and value infos', () => {
  const g = Graph.load(ONNX);
  const h = Graph.fromBytes(g.toBytes());
  assert.deepEqual(h.nodes, g.nodes);
  assert.deepEqual([...h.initializers.keys()], [...g.initializers.keys()]);
  for (const [k, v] of g.initializers) assert.deepEqual(h.initializers.get(k)!.data, v.data);
  assert.deepEqual(h.inputs, g.inputs);
  assert.deepEqual(h.outputs, g.outputs);
});

test('cut at a named tensor keeps only what computes it; append grafts a new head onto the cut', async () => {
  const g = Graph.load(ONNX);
  const prefix = g.cut('/2/Relu_output_0', 'features');
  assert.deepEqual(prefix.nodes.map((n) => n.op), ['Conv', 'Relu', 'Identity']);
  assert.equal(prefix.initializers.size, 2);
  const s = await Session.create(prefix, { threads: 1 });
  close((await s.run({ pixels: x })).features!.data as Float32Array, ref.relu, 1e-5, 'relu');

  // Append a head written with the builder: global average pool, then a fixed linear map.
  const head = new GraphBuilder();
  const f = head.input('f', 'float32', ['n', 4, 8, 8]);
  const pooled = head.op1('Flatten', [head.op1('GlobalAveragePool', [f])], { axis: 1 });
  const w = head.init('w', tensor('float32', [4, 2], [1, 0, 0, 1, 1, 0, 0, 1]));
  head.output(head.matmul(pooled, w), 'scores');
  const whole = prefix.clone();
  const [scores] = whole.append(head.graph, { f: 'features' }, 'head/');
  whole.outputs = [{ name: scores!, dtype: 'float32', shape: ['n', 2] }];
  const r = await Session.create(Graph.fromBytes(whole.toBytes()), { threads: 1 });
  const out = (await r.run({ pixels: x }))[scores!]!.data as Float32Array;
  // Reference: mean over each channel of the relu output, then the same map.
  const mean = (n: number, c: number) => { let s2 = 0; for (let i = 0; i < 64; i++) s2 += ref.relu[(n * 4 + c) * 64 + i]; return s2 / 64; };
  const want = [0, 1].flatMap((n) => [mean(n, 0) + mean(n, 2), mean(n, 1) + mean(n, 3)]);
  close(out, want, 1e-5, 'scores');
});

test('errors: unknown cut tensor, truncated or garbage protobuf', () => {
  const g = Graph.load(ONNX);
  assert.throws(() => g.cut('no_such_tensor'), { code: 'E_GRAPH_UNKNOWN_TENSOR' });
  const bytes = readFileSync(ONNX);
  assert.throws(() => Graph.fromBytes(bytes.subarray(0, 1000)), { code: 'E_ONNX_PARSE' });
  assert.throws(() => Graph.fromBytes(new TextEncoder().encode('not a model at all')), { code: 'E_ONNX_PARSE' });
  assert.throws(() => Graph.load('/no/such/file.onnx'), { code: 'E_FILE_MISSING' });
});

test('the builder infers shapes as it goes and reports shape errors at build time', () => {
  const b = new GraphBuilder();
  const a = b.input('a', 'float32', ['N', 8]);
  const w = b.init('w', tensor('float32', [8, 3]));
  const y = b.add(b.matmul(a, w), b.init('bias', tensor('float32', [3])));
  assert.deepEqual(y.shape, ['N', 3]);
  assert.deepEqual(b.reshape(b.input('c', 'float32', [2, 6]), [3, -1]).shape, [3, 4]);
  assert.throws(() => b.matmul(a, b.init('w2', tensor('float32', [5, 2]))), { code: 'E_GRAPH_SHAPE' });
  assert.throws(() => b.add(b.input('d', 'float32', [2, 3]), b.input('e', 'float32', [4, 3])), { code: 'E_GRAPH_SHAPE' });
});

test('building an op that graft cannot type is a typed error naming it', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2]);
  assert.throws(() => b.op1('NoSuchOp', [x]), (e: { code?: string; message: string }) => e.code === 'E_GRAPH_INVALID' && /NoSuchOp/.test(e.message));
});

// ---- int64 values: exact through load and save ----------------------------------------------------------

const { onnx } = onnxProto;
const I64 = [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, -(2n ** 53n) - 1n, 2n ** 53n, 7n, -1n, 0n];
type Bits = { low: number; high: number };
// protobufjs reads and writes int64 as two 32-bit halves (a Long); these build and read them without doubles.
const longOf = (v: bigint) => ({ low: Number(BigInt.asIntN(32, v)), high: Number(BigInt.asIntN(32, v >> 32n)), unsigned: false }) as unknown as number;
const bitsOf = (l: unknown) => String(typeof l === 'number' ? BigInt(l) : BigInt.asIntN(64, (BigInt((l as Bits).high) << 32n) | BigInt((l as Bits).low >>> 0)));
const rawOf = (v: bigint[]) => new Uint8Array(BigInt64Array.from(v).buffer);

test('int64 round trip: INT64_MAX, INT64_MIN and 2^53+1 in INT/INTS attributes, int64_data and raw_data come back bit for bit', () => {
  const T = onnx.AttributeProto.AttributeType;
  const model = onnx.ModelProto.create({
    irVersion: 8, opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'int64s',
      node: [
        { opType: 'Constant', output: ['c'], attribute: [{ name: 'value_ints', type: T.INTS, ints: I64.map(longOf) }] },
        ...I64.map((v, k) => ({ opType: 'Constant', output: [`i${k}`], attribute: [{ name: 'value_int', type: T.INT, i: longOf(v) }] })),
        { opType: 'Concat', input: ['c', 'typed', 'raw'], output: ['y'], attribute: [{ name: 'axis', type: T.INT, i: 0 }] },
      ],
      initializer: [
        { name: 'typed', dataType: 7, dims: [I64.length], int64Data: I64.map(longOf) },
        { name: 'raw', dataType: 7, dims: [I64.length], rawData: rawOf(I64) },
      ],
      output: [{ name: 'y', type: { tensorType: { elemType: 7, shape: { dim: [{ dimValue: 3 * I64.length }] } } } }],
    },
  });
  const g = Graph.fromBytes(onnx.ModelProto.encode(model).finish());
  // Exact JS numbers stay numbers; only values beyond 2^53 are bigints.
  assert.deepEqual(g.nodes[0]!.attrs['value_ints'], { ints: [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, -(2n ** 53n) - 1n, 2n ** 53n, 7, -1, 0] });
  assert.deepEqual([...g.initializers.get('typed')!.data], I64);
  assert.deepEqual([...g.initializers.get('raw')!.data], I64);

  const back = onnx.ModelProto.decode(g.toBytes()).graph as onnxProto.onnx.GraphProto;
  assert.deepEqual(back.node[0]!.attribute![0]!.ints!.map(bitsOf), I64.map(String));
  I64.forEach((v, k) => assert.equal(bitsOf(back.node[k + 1]!.attribute![0]!.i), String(v), `value_int ${v}`));
  // graft writes every initializer as raw_data: the int64_data one as the same 64-bit values.
  for (const name of ['typed', 'raw']) {
    const t = back.initializer.find((x) => x.name === name)!;
    assert.deepEqual(new Uint8Array(t.rawData!), rawOf(I64), `${name} raw_data bytes`);
  }
  // And a second trip changes nothing.
  assert.deepEqual(Graph.fromBytes(g.toBytes()).toBytes(), g.toBytes());
});

test('test_slice_end_out_of_bounds with ends = INT64_MAX (int64_data, as exporters write x[:, 1:]) slices after a round trip', async () => {
  const dir = '/usr/share/libonnx-testdata/data/node/test_slice_end_out_of_bounds/';
  const model = onnx.ModelProto.decode(readFileSync(dir + 'model.onnx'));
  const pb = (f: string) => tensorFromProto(onnx.TensorProto.decode(readFileSync(dir + 'test_data_set_0/' + f)));
  const graph = model.graph!;
  // starts/axes/steps from the case, ends = INT64_MAX instead of 1000, as initializers.
  graph.initializer = [
    ...['starts', 'axes', 'steps'].map((name, k) => ({ name, dataType: 7, dims: [1], int64Data: [Number(pb(`input_${[1, 3, 4][k]}.pb`).data[0])] })),
    { name: 'ends', dataType: 7, dims: [1], int64Data: [longOf(2n ** 63n - 1n)] },
  ];
  graph.input = graph.input!.filter((v) => v.name === 'x');
  const g = Graph.fromBytes(Graph.fromBytes(onnx.ModelProto.encode(model).finish()).toBytes());
  assert.deepEqual([...g.initializers.get('ends')!.data], [2n ** 63n - 1n]);
  const b = new GraphBuilder(g);
  assert.deepEqual(b.sym('y').shape, [20, 9, 5]);
  const want = pb('output_0.pb');
  const s = await Session.create(g, { threads: 1 });
  const y = (await s.run({ x: pb('input_0.pb') })).y!;
  assert.deepEqual(y.dims, want.dims);
  assert.deepEqual(y.data, want.data);
});

test('a builder constant keeps INT64_MAX and INT64_MAX - 1 apart; numbers past 2^63 saturate instead of wrapping', () => {
  const b = new GraphBuilder();
  const a = b.constant(tensor('int64', [1], [2n ** 63n - 1n]));
  const c = b.constant(tensor('int64', [1], [2n ** 63n - 2n]));
  assert.notEqual(a.name, c.name);
  assert.deepEqual([...tensor('int64', [3], [Number(2n ** 63n - 1n), -(2 ** 63), -(2 ** 64)]).data], [2n ** 63n - 1n, -(2n ** 63n), -(2n ** 63n)]);
});

test('int16, uint16, uint32, uint64 and bfloat16 initializers load from their typed fields and raw_data, pass through ORT, and save bit for bit', async () => {
  const U64 = [0n, 1n, 2n ** 64n - 1n, 2n ** 63n, 2n ** 53n + 1n];
  const cases = [
    { name: 'i16', dataType: 5, values: [-32768, 32767, -1, 0, 7], field: 'int32Data' as const, Arr: Int16Array },
    { name: 'u16', dataType: 4, values: [0, 65535, 1, 32768, 7], field: 'int32Data' as const, Arr: Uint16Array },
    { name: 'u32', dataType: 12, values: [0, 4294967295, 1, 2 ** 31, 7], field: 'uint64Data' as const, Arr: Uint32Array },
    // bfloat16 1.5, -2, the largest finite, NaN, 0: the raw 16 bits.
    { name: 'bf16', dataType: 16, values: [0x3fc0, 0xc000, 0x7f7f, 0x7fc0, 0], field: 'int32Data' as const, Arr: Uint16Array },
  ];
  const ulong = (v: bigint) => ({ low: Number(BigInt.asIntN(32, v)), high: Number(BigInt.asIntN(32, v >> 32n)), unsigned: true });
  const initializer = [
    ...cases.flatMap((c) => [
      { name: `${c.name}_typed`, dataType: c.dataType, dims: [5], [c.field]: c.field === 'uint64Data' ? c.values.map((v) => ulong(BigInt(v))) : c.values },
      { name: `${c.name}_raw`, dataType: c.dataType, dims: [5], rawData: new Uint8Array(new c.Arr(c.values).buffer) },
    ]),
    { name: 'u64_typed', dataType: 13, dims: [5], uint64Data: U64.map(ulong) },
    { name: 'u64_raw', dataType: 13, dims: [5], rawData: new Uint8Array(new BigUint64Array(U64).buffer) },
  ];
  const model = onnx.ModelProto.create({
    irVersion: 8, opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'dtypes',
      node: ['i16', 'u16', 'u32', 'u64'].map((n) => ({ opType: 'Identity', input: [`${n}_typed`], output: [`${n}_max`] })),
      initializer,
      output: ['i16', 'u16', 'u32', 'u64'].map((n, k) => ({ name: `${n}_max`, type: { tensorType: { elemType: [5, 4, 12, 13][k], shape: { dim: [{ dimValue: 5 }] } } } })),
    },
  });
  const g = Graph.fromBytes(onnx.ModelProto.encode(model).finish());
  for (const c of cases) {
    for (const how of ['typed', 'raw']) assert.deepEqual([...g.initializers.get(`${c.name}_${how}`)!.data], c.values, `${c.name} ${how}`);
  }
  assert.equal(g.initializers.get('bf16_raw')!.dtype, 'bfloat16');
  for (const how of ['typed', 'raw']) assert.deepEqual([...g.initializers.get(`u64_${how}`)!.data], U64, `uint64 ${how}`);
  const b = new GraphBuilder(g);
  assert.deepEqual(['i16_max', 'u16_max', 'u32_max', 'u64_max'].map((n) => b.types.get(n)!.dtype), ['int16', 'uint16', 'uint32', 'uint64']);
  // ORT runs them: the typed-field tensors come back out of Identity.
  const s = await Session.create(g.toBytes(), { threads: 1 });
  try {
    const out = await s.run({});
    for (const c of cases.filter((q) => q.name !== 'bf16')) assert.deepEqual([...out[`${c.name}_max`]!.data], c.values, c.name);
    assert.deepEqual([...out['u64_max']!.data], U64);
  } finally {
    await s.dispose();
  }
  // ORT's JS API has no bfloat16 tensors: feeding one is a typed error, not a crash.
  assert.throws(() => toOrt(g.initializers.get('bf16_raw')!), (e: unknown) => e instanceof GraftError && e.code === 'E_GRAPH_INVALID' && /bfloat16/.test(e.message));
  // graft writes raw_data; a second trip changes nothing.
  assert.deepEqual(Graph.fromBytes(g.toBytes()).toBytes(), g.toBytes());
  const back = onnx.ModelProto.decode(g.toBytes()).graph as onnxProto.onnx.GraphProto;
  assert.deepEqual(new Uint8Array(back.initializer.find((t) => t.name === 'bf16_typed')!.rawData!), new Uint8Array(new Uint16Array(cases[3]!.values).buffer));
});
