import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import { assertGradcheck, input } from '../../runtime/gradcheck.ts';
import { GraphBuilder, type Sym } from '../builder.ts';
import { gradients } from '../autodiff.ts';
import { Session } from '../../runtime/session.ts';
import { tensor, toNumbers } from '../tensor.ts';
import { GraftError } from '../../errors.ts';
import { Graph, tensorFromProto } from '../ir.ts';

const { onnx } = onnxProto;

const check = assertGradcheck;

const A = input('a');
const B = input('b');
const C = input('c');
const i64 = (b: GraphBuilder, dims: number[], v: number[]) => b.constant(tensor('int64', dims, v));

test('Reshape, Flatten, Squeeze, Unsqueeze', async () => {
  await check('Reshape', (b, [x]) => b.reshape(x!, [4, 6]), [A([2, 3, 4])]);
  await check('Reshape -1 and 0', (b, [x]) => b.reshape(x!, [0, -1]), [A([2, 3, 4])]);
  for (const axis of [0, 1, 2, -1]) {
    await check(`Flatten axis=${axis}`, (b, [x]) => b.op1('Flatten', [x!], { axis }), [A([2, 3, 4])]);
  }
  await check('Squeeze axes', (b, [x]) => b.op1('Squeeze', [x!, b.ints([1, -1])]), [A([3, 1, 4, 1])]);
  await check('Squeeze all', (b, [x]) => b.op1('Squeeze', [x!]), [A([1, 3, 1, 4])]);
  await check('Unsqueeze', (b, [x]) => b.op1('Unsqueeze', [x!, b.ints([0, -1])]), [A([3, 4])]);
  await check('Unsqueeze middle', (b, [x]) => b.op1('Unsqueeze', [x!, b.ints([1, 3])]), [A([3, 4])]);
});

test('test_reshape_allowzero_reordered: forward, and the gradient of a reshape of a [0, 3, 4] tensor', async () => {
  // The backward Reshape to [0, 3, 4] read its 0 as "copy dY's dim" (3): [3, 3, 4], 36 values from 0.
  const dir = '/usr/share/libonnx-testdata/data/node/test_reshape_allowzero_reordered/';
  const model = onnx.ModelProto.decode(readFileSync(dir + 'model.onnx'));
  const pb = (f: string) => tensorFromProto(onnx.TensorProto.decode(readFileSync(dir + 'test_data_set_0/' + f)));
  const g = Graph.fromBytes(onnx.ModelProto.encode(model).finish());
  g.inputs = g.inputs.filter((v) => v.name !== 'shape');
  g.initializers.set('shape', pb('input_1.pb')); // [3, 4, 0], a constant so the builder can type the Reshape
  const b = new GraphBuilder(g);
  assert.deepEqual(b.sym('reshaped').shape, [3, 4, 0]);
  const loss = b.op1('ReduceSum', [b.sym('reshaped')], { keepdims: 0 });
  b.output(gradients(b, loss.name, ['data']).get('data')!, 'ddata');
  const s = await Session.create(b.graph, { threads: 1 });
  const r = await s.run({ data: pb('input_0.pb') });
  assert.deepEqual(r.reshaped!.dims, pb('output_0.pb').dims);
  assert.deepEqual(r.ddata!.dims, [0, 3, 4]);

  // Built here: zero-size reshapes with and without allowzero, -1, and Flatten, then a non-empty loss.
  const c = new GraphBuilder();
  const x = c.input('x', 'float32', [0, 3, 4]);
  const w = c.input('w', 'float32', [2]);
  const ys = [
    c.op1('Reshape', [x, c.ints([4, 0, 3])], { allowzero: 1 }),
    c.reshape(x, [-1, 12]),
    c.op1('Flatten', [x], { axis: 2 }),
  ];
  assert.deepEqual(ys.map((y) => y.shape), [[4, 0, 3], [0, 12], [0, 4]]);
  const l = ys.reduce((acc, y) => c.add(acc, c.op1('ReduceSum', [y], { keepdims: 0 })), c.op1('ReduceSum', [c.mul(w, w)], { keepdims: 0 }));
  const grads = gradients(c, l.name, ['x', 'w']);
  c.output(grads.get('x')!, 'dx');
  c.output(grads.get('w')!, 'dw');
  const out = await (await Session.create(c.graph, { threads: 1 })).run({ x: tensor('float32', [0, 3, 4]), w: tensor('float32', [2], [1, -2]) });
  assert.deepEqual(out.dx!.dims, [0, 3, 4]);
  assert.deepEqual([...out.dw!.data], [2, -4]);
});

test('Transpose and Expand', async () => {
  await check('Transpose default', (b, [x]) => b.op1('Transpose', [x!]), [A([2, 3, 4])]);
  await check('Transpose perm', (b, [x]) => b.transpose(x!, [1, 2, 0]), [A([2, 3, 4])]);
  await check('Expand same rank', (b, [x]) => b.expand(x!, [3, 4]), [A([3, 1])]);
  await check('Expand rank-lifted', (b, [x]) => b.expand(x!, [2, 3, 4]), [A([1, 4])]);
  await check('Expand target smaller', (b, [x]) => b.expand(x!, [1, 4]), [A([2, 3, 1])]);
});

test('Concat on each axis', async () => {
  for (const axis of [0, 1, -1]) {
    const shapes = [[2, 3], [2, 3], [2, 3]].map((s, i) => s.map((d, k) => (k === (axis + 2) % 2 ? d + i : d)));
    await check(`Concat axis=${axis}`, (b, [x, y, z]) => b.op1('Concat', [x!, y!, z!], { axis }),
      [A(shapes[0]!), B(shapes[1]!), C(shapes[2]!)]);
  }
  await check('Concat same input twice, 3d', (b, [x, y]) => b.op1('Concat', [x!, y!, x!], { axis: 1 }), [A([2, 1, 3]), B([2, 2, 3])]);
  await check('Concat with a constant', (b, [x]) => b.op1('Concat', [x!, b.constant(tensor('float64', [1, 3], [1, 2, 3]))], { axis: 0 }), [A([2, 3])]);
});

test('Slice: negative, clamped and strided indices', async () => {
  const slice = (starts: number[], ends: number[], axes?: number[], steps?: number[]) => (b: GraphBuilder, [x]: Sym[]) =>
    b.op1('Slice', [x!, b.ints(starts), b.ints(ends), axes ? b.ints(axes) : null, steps ? b.ints(steps) : null]);
  const cases: [string, ReturnType<typeof slice>][] = [
    ['basic', slice([1, 0], [3, 2])],
    ['negative start/end', slice([-3], [-1], [1])],
    ['clamped end', slice([2], [1e9], [-1])],
    ['clamped negative start', slice([-100], [2], [0])],
    ['step 2', slice([0], [5], [1], [2])],
    ['step 2 odd start', slice([1, 1], [4, 1e9], [0, 1], [2, 2])],
    ['step -1 reverse all', slice([-1], [-1e9], [1], [-1])],
    ['step -1 partial', slice([3], [0], [1], [-1])],
    ['step -1 two axes', slice([-1, 2], [-1e9, 0], [0, 1], [-1, -1])],
    ['step -2', slice([4], [-1e9], [-1], [-2])],
    ['step 3 and -1 mixed', slice([0, 3], [4, 0], [0, 1], [3, -1])],
    ['step 1 and -1 mixed', slice([1, 3], [3, 0], [0, 1], [1, -1])],
    ['empty axes default', slice([1, 1, 1], [2, 4, 5])],
  ];
  for (const [name, build] of cases) await check(`Slice ${name}`, build, [A([4, 5, 6])]);
});

test('Slice before opset 10 (starts, ends, axes as attributes): pytorch-operator test_operator_index, and a loaded opset-9 graph', async () => {
  const dir = '/usr/share/libonnx-testdata/data/pytorch-operator/test_operator_index/';
  const pb = (f: string) => tensorFromProto(onnx.TensorProto.decode(readFileSync(dir + 'test_data_set_0/' + f)));
  const g = Graph.load(dir + 'model.onnx');
  assert.equal(g.opset, 6);
  const b = new GraphBuilder(g); // threw E_GRAPH_SHAPE: "Slice starts must be a constant"
  assert.deepEqual(b.sym('1').shape, [1, 1]);
  assert.deepEqual(b.sym('2').shape, [1]);
  const r = await (await Session.create(g, { threads: 1 })).run({ 0: pb('input_0.pb') });
  assert.deepEqual(r['2']!.data, pb('output_0.pb').data);

  // Opset 9, saved and loaded: x[1:-1, 2:] with the open end as INT64_MAX, as exporters write it.
  const c = new GraphBuilder();
  c.graph.opset = 9;
  const x = c.input('x', 'float32', [4, 5]);
  c.output(c.op1('Slice', [x], { starts: [1, 2], ends: { ints: [-1, 2n ** 63n - 1n] }, axes: [0, -1] }), 'y');
  const h = Graph.fromBytes(c.graph.toBytes());
  assert.equal(h.opset, 9);
  assert.deepEqual(h.nodes[0]!.attrs['ends'], { ints: [-1, 2n ** 63n - 1n] });
  assert.deepEqual(new GraphBuilder(h).sym('y').shape, [2, 3]);
  const xs = Array.from({ length: 20 }, (_, k) => k);
  const y = (await (await Session.create(h, { threads: 1 })).run({ x: tensor('float32', [4, 5], xs) })).y!;
  assert.deepEqual(y.dims, [2, 3]);
  assert.deepEqual([...y.data], [7, 8, 9, 12, 13, 14]);
});

test('Split, with unused outputs getting zero gradient', async () => {
  await check('Split equal', (b, [x]) => {
    const [p, q] = b.op('Split', [x!], { axis: 1 }, { outputs: 2 });
    return b.mul(p!, q!);
  }, [A([3, 4, 2])]);
  await check('Split sizes, negative axis, one output used', (b, [x]) => b.op('Split', [x!, b.ints([1, 2, 3])], { axis: -1 }, { outputs: 3 })[1]!, [A([2, 6])]);
  await check('Split axis 0 middle unused', (b, [x]) => {
    const [p, , r] = b.op('Split', [x!, b.ints([2, 1, 1])], { axis: 0 }, { outputs: 3 });
    return b.add(p!, b.expand(r!, [2, 3]));
  }, [A([4, 3])]);
});

test('Gather: any axis, repeated and negative indices', async () => {
  await check('Gather axis 0 repeated+negative', (b, [x]) => b.op1('Gather', [x!, b.ints([0, 2, -1, 0, -4])], { axis: 0 }), [A([4, 3])]);
  await check('Gather axis 1 2-D indices', (b, [x]) => b.op1('Gather', [x!, i64(b, [2, 3], [1, -1, 1, 0, 3, 3])], { axis: 1 }), [A([2, 4, 3])]);
  await check('Gather axis -1', (b, [x]) => b.op1('Gather', [x!, b.ints([2, 2, -3])], { axis: -1 }), [A([2, 3, 4])]);
  await check('Gather scalar index', (b, [x]) => b.op1('Gather', [x!, i64(b, [], [-2])], { axis: 1 }), [A([3, 4, 2])]);
  await check('Gather int32 indices', (b, [x]) => b.op1('Gather', [x!, b.constant(tensor('int32', [3], [1, 1, -1]))], { axis: 0 }), [A([3, 2])]);
  await check('Gather embedding-like', (b, [x]) => b.op1('Gather', [x!, i64(b, [2, 2], [3, 0, 3, 3])]), [A([5, 4])]);
});

test('Pad: positive, negative and mixed pads', async () => {
  const pad = (pads: number[], value?: number) => (b: GraphBuilder, [x]: Sym[]) =>
    b.op1('Pad', [x!, b.ints(pads), ...(value === undefined ? [] : [b.scalar(value, 'float64')])]);
  await check('Pad positive', pad([1, 0, 2, 3]), [A([3, 4])]);
  await check('Pad constant value', pad([0, 2, 1, 0], 0.5), [A([3, 4])]);
  await check('Pad negative', pad([-1, 0, 0, -2]), [A([3, 4])]);
  await check('Pad mixed signs', pad([2, -1, 0, -1, 0, 3]), [A([2, 4, 3])]);
  await check('Pad all zero', pad([0, 0, 0, 0]), [A([2, 2])]);
});

test('Pad in reflect and edge modes: gradients add each copied element back to its source', async () => {
  const pad = (pads: number[], mode: string) => (b: GraphBuilder, [x]: Sym[]) => b.op1('Pad', [x!, b.ints(pads)], { mode });
  await check('Pad reflect', pad([1, 2, 2, 1], 'reflect'), [A([3, 4])]);
  await check('Pad reflect, as far as it goes', pad([0, 3, 0, 3], 'reflect'), [A([2, 4])]);
  await check('Pad edge', pad([2, 0, 1, 3], 'edge'), [A([3, 4])]);
  await check('Pad reflect NCHW (ReflectionPad2d)', pad([0, 0, 1, 2, 0, 0, 2, 1], 'reflect'), [A([1, 2, 3, 4])]);
  await check('Pad edge NCHW (ReplicationPad2d)', pad([0, 0, 2, 1, 0, 0, 1, 2], 'edge'), [A([1, 2, 3, 4])]);
});

test('Pad in reflect mode with a negative pad has no gradient', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float64', [3, 4]);
  const y = b.op1('Pad', [x, b.ints([1, -1, 1, 1])], { mode: 'reflect' }, { name: 'pad_reflect' });
  const loss = b.op1('ReduceSum', [y], { keepdims: 0 });
  assert.throws(() => gradients(b, loss.name, ['x']), (e: unknown) =>
    e instanceof GraftError && e.code === 'E_GRAD_UNSUPPORTED' && e.message.includes('pad_reflect') && e.message.includes('negative'));
});

test('Tile', async () => {
  await check('Tile', (b, [x]) => b.op1('Tile', [x!, b.ints([2, 1, 3])]), [A([2, 3, 2])]);
});

test('Dropout in inference mode is the identity', async () => {
  await check('Dropout no training_mode', (b, [x]) => b.op1('Dropout', [x!, b.scalar(0.3, 'float64')]), [A([4, 5])]);
  await check('Dropout training_mode=false', (b, [x]) => b.op1('Dropout', [x!, b.scalar(0.3, 'float64'), b.constant(tensor('bool', [], [0]))]), [A([4, 5])]);
});

test('Dropout in training mode: dX = dY * mask / (1 - ratio)', async () => {
  for (const dtype of ['float64', 'float32'] as const) {
    for (const dynamicMode of [false, true]) {
      const ratio = 0.4;
      const shape = [8, 16];
      const n = 128;
      const b = new GraphBuilder();
      const x = b.input('x', dtype, shape);
      const dy = b.input('dy', dtype, shape);
      const mode = dynamicMode ? b.input('mode', 'bool', []) : b.constant(tensor('bool', [], [1]));
      const [y] = b.op('Dropout', [x, b.scalar(ratio, dtype), mode], {}, { outputs: 1, name: 'drop' });
      const loss = b.op1('ReduceSum', [b.mul(y!, dy)], { keepdims: 0 });
      const dx = gradients(b, loss.name, ['x']).get('x')!;
      const node = b.graph.nodes.find((m) => m.name === 'drop')!;
      assert.equal(node.outputs.length, 2, 'the gradient rule exposes the mask');
      b.output(y!, 'y');
      b.output(node.outputs[1]!, 'mask_out');
      b.output(dx, 'dx');
      const s = await Session.create(b.graph, { threads: 1 });
      const xv = Array.from({ length: n }, (_, i) => 1 + (i % 7));
      const dyv = Array.from({ length: n }, (_, i) => Math.cos(i));
      const feeds = { x: tensor(dtype, shape, xv), dy: tensor(dtype, shape, dyv), ...(dynamicMode ? { mode: tensor('bool', [], [1]) } : {}) };
      const r = await s.run(feeds);
      const mask = toNumbers(r['mask_out']!);
      const kept = mask.filter((m) => m).length;
      assert.ok(kept > 0 && kept < n, `mask keeps ${kept} of ${n}`);
      const tol = dtype === 'float64' ? 1e-12 : 1e-5;
      toNumbers(r['dx']!).forEach((g, i) => assert.ok(Math.abs(g - dyv[i]! * mask[i]! / (1 - ratio)) < tol, `dx[${i}] = ${g}`));
      // ORT's Dropout computes its scale 1/(1-ratio) in float32 even for double tensors, so y is only float32-exact.
      toNumbers(r['y']!).forEach((v, i) => assert.ok(Math.abs(v - xv[i]! * mask[i]! / (1 - ratio)) < 1e-6 * Math.max(1, Math.abs(v)), `y[${i}] = ${v}`));
      if (dynamicMode) {
        // Same graph with training_mode fed false: the gradient is dy unchanged.
        const r0 = await s.run({ ...feeds, mode: tensor('bool', [], [0]) });
        toNumbers(r0['dx']!).forEach((g, i) => assert.ok(Math.abs(g - dyv[i]!) < tol, `inference dx[${i}] = ${g}`));
      }
      await s.dispose();
    }
  }
});

test('shape-only ops infer shapes and constant values', () => {
  const b = new GraphBuilder();
  const z = b.op1('ConstantOfShape', [b.ints([2, 3])], { value: tensor('float64', [1], [0]) });
  assert.deepEqual([z.dtype, z.shape], ['float64', [2, 3]]);
  const r = b.op1('Range', [b.constant(tensor('int64', [], [1])), b.constant(tensor('int64', [], [10])), b.constant(tensor('int64', [], [3]))]);
  assert.deepEqual(r.shape, [3]);
  assert.deepEqual(toNumbers(b.valueOf(r.name)!), [1, 4, 7]);
  const x = b.input('x', 'float32', [2, 3, 4]);
  const shp = b.op1('Shape', [x]);
  const tail = b.op1('Slice', [shp, b.ints([-2]), b.ints([1e9])]);
  const head = b.op1('Gather', [shp, b.ints([0])]);
  const cat = b.op1('Concat', [head, b.ints([-1]), tail], { axis: 0 });
  assert.deepEqual(toNumbers(b.valueOf(cat.name)!), [2, -1, 3, 4]);
  assert.deepEqual(b.op1('Reshape', [x, cat]).shape, [2, 1, 3, 4]);
  assert.deepEqual(b.op('Split', [x], { axis: 2 }, { outputs: 2 }).map((s) => s.shape), [[2, 3, 2], [2, 3, 2]]);
  assert.deepEqual(b.op1('Pad', [x, b.ints([0, 1, -1, 0, 2, 0])]).shape, [2, 6, 3]);
  assert.deepEqual(b.op1('Slice', [x, b.ints([-1]), b.ints([-1e9]), b.ints([2]), b.ints([-3])]).shape, [2, 3, 2]);
});

// ---- index ops whose backend cases do not check their gradient ----------------------------------------------

test('Trilu (upper, lower, with k), GatherND, ScatterND/ScatterElements without reduction, OneHot/Size inference', async () => {
  for (const upper of [0, 1]) {
    await check(`Trilu upper=${upper}`, (b, [x]) => b.op1('Trilu', [x!], { upper }), [input('x')([2, 3, 4])]);
    await check(`Trilu upper=${upper} k=-1`, (b, [x]) => b.op1('Trilu', [x!, b.constant(tensor('int64', [], [-1]))], { upper }), [input('x')([3, 4])]);
  }
  // Repeated index rows: GatherND's gradient adds them up.
  const idx = tensor('int64', [3, 2], [0, 1, 1, 2, 0, 1]);
  await check('GatherND', (b, [x]) => b.op1('GatherND', [x!, b.constant(idx)]), [input('x')([2, 3, 4])]);
  const sidx = tensor('int64', [2, 1], [2, 0]);
  await check('ScatterND data and updates', (b, [x, u]) => b.op1('ScatterND', [x!, b.constant(sidx), u!]), [input('x')([3, 4]), input('u')([2, 4])]);
  const eidx = tensor('int64', [2, 2], [1, 0, 2, 1]);
  await check('ScatterElements axis 1', (b, [x, u]) => b.op1('ScatterElements', [x!, b.constant(eidx), u!], { axis: 1 }), [input('x')([2, 3]), input('u')([2, 2])]);
  // reduction mul: ScatterND with a repeated row (each update's gradient holds the other's factor), ScatterElements unique.
  const midx = tensor('int64', [3, 1], [2, 0, 2]);
  await check('ScatterND mul, repeated rows', (b, [x, u]) => b.op1('ScatterND', [x!, b.constant(midx), u!], { reduction: 'mul' }), [input('x')([3, 4]), input('u')([3, 4])]);
  await check('ScatterElements mul', (b, [x, u]) => b.op1('ScatterElements', [x!, b.constant(eidx), u!], { axis: 1, reduction: 'mul' }), [input('x')([2, 3]), input('u')([2, 2])]);
  const b = new GraphBuilder();
  const i = b.input('i', 'int64', [2, 3]);
  assert.deepEqual(b.op1('OneHot', [i, b.constant(tensor('int64', [], [5])), b.constant(tensor('float32', [2], [0, 1]))], { axis: 1 }).shape, [2, 5, 3]);
  assert.equal(toNumbers(b.valueOf(b.op1('Size', [i]).name)!)[0], 6);
});
