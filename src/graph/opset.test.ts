import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import { Graph, tensorFromProto } from './ir.ts';
import { GraphBuilder } from './builder.ts';
import { gradients } from './autodiff.ts';
import { Session } from '../runtime/session.ts';
import { tensor, toNumbers } from './tensor.ts';
import { GraftError } from '../errors.ts';
import { opsetRange } from './opset.ts';

const { onnx } = onnxProto;

/** A graph built at `opset`, saved and loaded back, as a model exported at that opset would be. */
function loaded(opset: number, build: (b: GraphBuilder) => void): GraphBuilder {
  const b = new GraphBuilder();
  b.graph.opset = opset;
  build(b);
  const g = Graph.fromBytes(b.graph.toBytes());
  assert.equal(g.opset, opset);
  return new GraphBuilder(g);
}

const sumLoss = (b: GraphBuilder, names: string[]) =>
  names.map((n) => b.op1('ReduceSum', [b.sym(n)], { keepdims: 0 })).reduce((acc, t) => b.add(acc, t));

test('gradients() of a loaded opset-11 graph with Gather and MaxPool raise it to opset 16 (ScatterND/ScatterElements reduction) and run in ORT', async () => {
  const b = loaded(11, (f) => {
    const w = f.init('W', tensor('float32', [5, 2], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    f.output(f.op1('Gather', [w, f.ints([3, 0, 0])], {}, { outputs: ['emb'] }));
    const x = f.input('x', 'float32', [1, 1, 4, 4]);
    f.output(f.op1('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2] }, { outputs: ['pooled'] }));
  });
  const loss = sumLoss(b, ['emb', 'pooled']);
  const g = gradients(b, loss.name, ['W', 'x']);
  assert.equal(b.graph.opset, 16); // was left at 11: ORT refused the Unsqueeze with an axes input, ScatterND's reduction
  b.output(g.get('W')!, 'dW');
  b.output(g.get('x')!, 'dx');
  const s = await Session.create(b.graph, { threads: 1 });
  const xs = [5, 1, 0, 2, 3, 4, 9, 1, 0, 0, 1, 1, 7, 0, 2, 8];
  const r = await s.run({ x: tensor('float32', [1, 1, 4, 4], xs) });
  assert.deepEqual([...r.dW!.data], [2, 2, 0, 0, 0, 0, 1, 1, 0, 0]); // row 0 gathered twice, row 3 once
  assert.deepEqual([...r.dx!.data], [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1]); // at each window's max
});

test('test_gather_0 (opset 13): its gradient raises the opset to 16 and runs in ORT', async () => {
  const dir = '/usr/share/libonnx-testdata/data/node/test_gather_0/';
  const pb = (f: string) => tensorFromProto(onnx.TensorProto.decode(readFileSync(dir + 'test_data_set_0/' + f)));
  const g = Graph.load(dir + 'model.onnx');
  assert.equal(g.opset, 13);
  const b = new GraphBuilder(g);
  const idx = pb('input_1.pb');
  const loss = sumLoss(b, ['y']);
  b.output(gradients(b, loss.name, ['data']).get('data')!, 'ddata');
  assert.equal(g.opset, 16);
  const r = await (await Session.create(g, { threads: 1 })).run({ data: pb('input_0.pb'), indices: idx });
  assert.deepEqual(r.y!.data, pb('output_0.pb').data);
  const rows = new Array<number>(5).fill(0);
  for (const i of toNumbers(idx)) rows[i]! += 1;
  assert.deepEqual([...r.ddata!.data], rows.flatMap((k) => new Array<number>(4 * 3 * 2).fill(k)));
});

test('gradients() throws a GraftError naming both nodes when a model node is not valid at the opset the gradient needs', () => {
  const expectThrow = (b: GraphBuilder, out: string, wrt: string, needs: RegExp, blocker: RegExp) => {
    const loss = sumLoss(b, [out]);
    const before = b.graph.opset;
    assert.throws(() => gradients(b, loss.name, [wrt]), (e: unknown) =>
      e instanceof GraftError && e.code === 'E_GRAD_UNSUPPORTED' && needs.test(e.message) && blocker.test(e.message));
    assert.equal(b.graph.opset, before);
  };
  // Unsqueeze with axes as an attribute (opset <= 12) after a Gather, whose gradient needs 16.
  expectThrow(loaded(11, (f) => {
    const w = f.init('W', tensor('float32', [5, 2]));
    f.output(f.op1('Unsqueeze', [f.op1('Gather', [w, f.ints([1])])], { axes: [0] }, { outputs: ['y'] }));
  }), 'y', 'W', /needs opset 16 for node "[^"]*" \(ScatterND\)/, /\(Unsqueeze\) is not valid past opset 12/);
  // An opset-9 Slice (attributes): its gradient pads with pads as an input (opset 11).
  expectThrow(loaded(9, (f) => {
    const x = f.input('x', 'float32', [4, 5]);
    f.output(f.op1('Slice', [x], { starts: [1], ends: [3], axes: [1] }, { outputs: ['y'] }));
  }), 'y', 'x', /needs opset 11 for node "[^"]*" \(Pad\)/, /\(Slice\) is not valid past opset 9/);
  // Softmax over axis 1 of a rank-3 tensor means axes 1 and 2 up to opset 12 and axis 1 alone from 13.
  expectThrow(loaded(11, (f) => {
    const w = f.init('W', tensor('float32', [5, 2, 3]));
    f.output(f.op1('Softmax', [f.op1('Gather', [w, f.ints([1, 2])])], { axis: 1 }, { outputs: ['y'] }));
  }), 'y', 'W', /needs opset 16/, /\(Softmax\) is not valid past opset 12/);
});

test('old forward forms are rewritten when the gradient needs a newer opset: Pad, Clip, Split attributes become inputs, Scatter becomes ScatterElements', async () => {
  const x = tensor('float32', [2, 5], [0.1, -2, 3, 0.4, -0.5, 1.5, 2.5, -3.5, 0.2, 0.9]);
  const b = loaded(6, (f) => {
    const xi = f.input('x', 'float32', [2, 5]);
    const p = f.op1('Pad', [xi], { pads: [0, 1, 0, 2], mode: 'reflect' });
    const cl = f.op1('Clip', [p], { min: -1, max: 2 });
    const [s0, s1] = f.op('Split', [cl], { axis: 1, split: [3, 5] }, { outputs: ['s0', 's1'] });
    f.output(s0!);
    f.output(s1!);
  });
  const loss = sumLoss(b, ['s0', 's1']);
  const g = gradients(b, loss.name, ['x']).get('x')!;
  b.output(g, 'dx');
  assert.equal(b.graph.opset, 13);
  assert.deepEqual(b.graph.nodes.slice(0, 3).map((n) => [n.op, Object.keys(n.attrs).sort().join(','), n.inputs.length]), [['Pad', 'mode', 3], ['Clip', '', 3], ['Split', 'axis', 2]]);
  // The same forward at opset 13, written in the new forms, gives the same outputs.
  const ref = new GraphBuilder();
  ref.graph.opset = 13;
  const xi = ref.input('x', 'float32', [2, 5]);
  const p = ref.op1('Pad', [xi, ref.ints([0, 1, 0, 2]), ref.scalar(0)], { mode: 'reflect' });
  const cl = ref.op1('Clip', [p, ref.scalar(-1), ref.scalar(2)]);
  const parts = ref.op('Split', [cl, ref.ints([3, 5])], { axis: 1 }, { outputs: ['s0', 's1'] });
  parts.forEach((t) => ref.output(t));
  const run = async (gr: Graph, names: string[]) => { const s = await Session.create(gr, { threads: 1 }); try { return await s.run({ x }, names); } finally { await s.dispose(); } };
  const got = await run(b.graph, ['s0', 's1', 'dx']);
  const want = await run(ref.graph, ['s0', 's1']);
  for (const k of ['s0', 's1']) assert.deepEqual(toNumbers(got[k]!), toNumbers(want[k]!), k);
  // Clip passes the gradient where it does not clip; reflect padding adds the copies back to their sources.
  assert.equal(got['dx']!.data.length, 10);
  // Scatter (opset 9-10) is renamed ScatterElements, same inputs and axis.
  const sc = loaded(10, (f) => {
    const d = f.input('d', 'float32', [3, 3]);
    f.output(f.op1('Scatter', [d, f.constant(tensor('int64', [1, 2], [1, 0])), f.constant(tensor('float32', [1, 2], [5, 6]))], { axis: 1 }, { outputs: ['y'] }));
  });
  gradients(sc, sumLoss(sc, ['y']).name, ['d']);
  assert.equal(sc.graph.opset, 11);
  assert.equal(sc.graph.nodes[0]!.op, 'ScatterElements');
  // A node that cannot be rewritten (Unsqueeze's axes attribute) blocks the raise: the Pad is left as it was.
  const mixed = loaded(6, (f) => {
    const w = f.init('W', tensor('float32', [5, 2]));
    const p = f.op1('Pad', [f.op1('Gather', [w, f.ints([1])])], { pads: [0, 1, 0, 1] });
    f.output(f.op1('Unsqueeze', [p], { axes: [0] }, { outputs: ['y'] }));
  });
  assert.throws(() => gradients(mixed, sumLoss(mixed, ['y']).name, ['W']), /needs opset 16 .* is not valid past opset 10/);
  assert.ok('pads' in mixed.graph.nodes.find((n) => n.op === 'Pad')!.attrs);
  assert.equal(mixed.graph.opset, 6);
});

test('opsetRange: forms of ops that moved attributes to inputs', () => {
  const node = (op: string, inputs: string[], attrs: Record<string, unknown> = {}) =>
    ({ name: op, op, domain: '', inputs, outputs: ['y'], attrs } as Parameters<typeof opsetRange>[0]);
  assert.deepEqual(opsetRange(node('ReduceSum', ['x', 'axes'])), { min: 13, max: Infinity });
  assert.deepEqual(opsetRange(node('ReduceSum', ['x'], { axes: { ints: [1] } })), { min: 1, max: 12 });
  assert.deepEqual(opsetRange(node('ReduceMean', ['x'], { axes: { ints: [1] } })), { min: 1, max: 17 });
  assert.deepEqual(opsetRange(node('ScatterElements', ['a', 'i', 'u'], { reduction: { s: 'add' } })), { min: 16, max: Infinity });
  assert.deepEqual(opsetRange(node('ScatterND', ['a', 'i', 'u'], { reduction: { s: 'max' } })), { min: 18, max: Infinity });
  assert.deepEqual(opsetRange(node('Reshape', ['x', 's'], { allowzero: { i: 1 } })), { min: 14, max: Infinity });
  assert.deepEqual(opsetRange(node('Softmax', ['x']), 2), { min: 1, max: Infinity });
  assert.deepEqual(opsetRange(node('Softmax', ['x']), 3), { min: 1, max: 12 });
  assert.deepEqual(opsetRange({ ...node('FusedConv', ['x']), domain: 'com.microsoft' }), { min: 1, max: Infinity });
});

test('LayerNormalization float64 gradient at opset 18 averages with axes as an input', async () => {
  const b = new GraphBuilder();
  b.graph.opset = 18;
  const x = b.input('x', 'float64', [2, 3]);
  const y = b.op1('LayerNormalization', [x, b.constant(tensor('float64', [3], [1, 2, 3]))]);
  const l = b.op1('ReduceSum', [b.mul(y, b.constant(tensor('float64', [2, 3], [1, -1, 2, 0, 1, -2])))], { keepdims: 0 });
  b.output(gradients(b, l.name, ['x']).get('x')!, 'dx');
  assert.equal(b.graph.opset, 18);
  const r = await (await Session.create(b.graph, { threads: 1 })).run({ x: tensor('float64', [2, 3], [1, 2, 4, -1, 0, 3]) });
  assert.equal(r.dx!.data.length, 6); // ORT refused ReduceMean with an axes attribute at opset 18
});
