// The unrolled recurrence (the graph LSTM/GRU/RNN gradients are taken through) against ONNX's reference
// outputs for every backend case, batch-first ones included (ORT's CPU kernels refuse those), and against
// ORT's fused op for the forms no backend case covers: bidirectional and reverse, with initial states.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { BACKEND_DATA_DIR } from '../../runtime/backend.ts';
import { gradcheck } from '../../runtime/gradcheck.ts';
import { Session } from '../../runtime/session.ts';
import { GraphBuilder, inferCtx } from '../builder.ts';
import { Graph, tensorFromProto } from '../ir.ts';
import { type TensorData, tensor } from '../tensor.ts';
import { rng } from '../../rng.ts';
import { unrollRecurrent } from './recurrent.ts';

const { onnx } = onnxProto;
const CASES = ['lstm_defaults', 'lstm_with_initial_bias', 'lstm_with_peepholes', 'lstm_batchwise', 'gru_defaults', 'gru_seq_length', 'gru_with_initial_bias',
  'gru_batchwise', 'rnn_seq_length', 'simple_rnn_defaults', 'simple_rnn_with_initial_bias', 'simple_rnn_batchwise'];
const skip = existsSync(join(BACKEND_DATA_DIR, 'node', 'test_lstm_defaults')) ? false : `no ONNX backend test data at ${BACKEND_DATA_DIR}`;

/** Runs the unrolled form of graph g's single recurrent node on `feeds`; returns its outputs by the node's output names. */
async function unrolled(g: Graph, feeds: Record<string, TensorData>): Promise<Record<string, TensorData>> {
  const node = g.nodes[0]!;
  const b = new GraphBuilder();
  b.graph.opset = g.opset;
  for (const [k, t] of Object.entries(feeds)) {
    if (t.dtype === 'int32' || t.dtype === 'int64') b.init(k, t);
    else b.input(k, t.dtype, t.dims);
  }
  const ctx = inferCtx(node, node.inputs.map((i) => (i ? b.types.get(i) : undefined)));
  const outs = unrollRecurrent(b, ctx, node.inputs.map((i) => (i ? b.sym(i) : null)));
  const names: string[] = [];
  node.outputs.forEach((o, i) => { if (o) names.push(b.output(outs[i]!, o)); });
  const s = await Session.create(b.graph, { threads: 1 });
  try {
    return await s.run(Object.fromEntries(Object.entries(feeds).filter(([k]) => g.inputs.some((v) => v.name === k) && !b.graph.initializers.has(k))));
  } finally {
    await s.dispose();
  }
}

const close = (got: TensorData, want: TensorData, what: string) => {
  assert.deepEqual([...got.dims], [...want.dims], `${what}: shape`);
  (want.data as Float32Array).forEach((v, i) => assert.ok(Math.abs((got.data as Float32Array)[i]! - v) <= 1e-5 + 1e-4 * Math.abs(v), `${what}[${i}]: ${(got.data as Float32Array)[i]} vs ${v}`));
};

test('unrolled LSTM, GRU and RNN give ONNX\'s reference outputs on the 12 backend cases (batch-first included)', { skip }, async () => {
  for (const name of CASES) {
    const dir = join(BACKEND_DATA_DIR, 'node', `test_${name}`);
    const g = Graph.load(join(dir, 'model.onnx'));
    const ds = join(dir, 'test_data_set_0');
    const read = (p: string) => readdirSync(ds).filter((f) => f.startsWith(p)).sort().map((f) => tensorFromProto(onnx.TensorProto.decode(readFileSync(join(ds, f)))));
    const ins = read('input_');
    const outs = read('output_');
    const feeds = Object.fromEntries(g.inputs.map((v, i) => [v.name, ins[i]!]));
    const got = await unrolled(g, feeds);
    g.outputs.forEach((o, i) => close(got[o.name]!, outs[i]!, `${name} ${o.name}`));
  }
});

test('unrolled bidirectional and reverse LSTM/GRU with initial states equal ORT\'s fused op, and their gradients pass finite differences', async () => {
  const rand = rng(7);
  const T = 3, N = 2, I = 3, H = 2;
  const rnd = (dims: number[]) => tensor('float32', dims, Array.from({ length: dims.reduce((a, d) => a * d, 1) }, () => rand() - 0.5));
  for (const [op, G, direction, extra] of [['LSTM', 4, 'bidirectional', {}], ['GRU', 3, 'reverse', { linear_before_reset: 1 }], ['GRU', 3, 'bidirectional', {}], ['RNN', 1, 'bidirectional', {}]] as const) {
    const D = direction === 'bidirectional' ? 2 : 1;
    const feeds: Record<string, TensorData> = { x: rnd([T, N, I]), w: rnd([D, G * H, I]), r: rnd([D, G * H, H]), bias: rnd([D, 2 * G * H]), h0: rnd([D, N, H]) };
    if (op === 'LSTM') feeds['c0'] = rnd([D, N, H]);
    const b = new GraphBuilder();
    b.graph.opset = 14;
    for (const [k, t] of Object.entries(feeds)) b.input(k, 'float32', t.dims);
    const inputs = op === 'LSTM' ? ['x', 'w', 'r', 'bias', '', 'h0', 'c0'] : ['x', 'w', 'r', 'bias', '', 'h0'];
    const ys = b.op(op, inputs.map((n) => (n ? b.sym(n) : null)), { hidden_size: H, direction, ...extra }, { outputs: op === 'LSTM' ? 3 : 2 });
    ys.forEach((y, i) => b.output(y, `y${i}`));
    const s = await Session.create(b.graph, { threads: 1 });
    const fused = await s.run(feeds);
    await s.dispose();
    const g = b.graph.clone();
    g.outputs.forEach((o, i) => { g.nodes[0]!.outputs[i] = o.name; });
    const got = await unrolled(Graph.fromBytes(g.toBytes()), feeds);
    g.outputs.forEach((o) => close(got[o.name]!, fused[o.name]!, `${op} ${direction} ${o.name}`));
    // Gradients through the op (its rule differentiates the unrolled form) against finite differences of ORT's op.
    const r = await gradcheck((gb, xs) => {
      const args = inputs.map((n) => (n ? xs[Object.keys(feeds).indexOf(n)]! : null));
      const outs = gb.op(op, args, { hidden_size: H, direction, ...extra }, { outputs: op === 'LSTM' ? 3 : 2 });
      return gb.op1('Concat', outs.map((y) => gb.reshape(y, [-1])), { axis: 0 });
    }, Object.entries(feeds).map(([name, t]) => ({ name, shape: t.dims, values: Array.from(t.data as Float32Array), dtype: 'float32' as const })),
    { dtype: 'float32', eps: 1e-2, atol: 2e-3, rtol: 2e-2 });
    assert.ok(r.ok && r.checked > 20, `${op} ${direction}: max abs err ${r.maxAbsErr}, ${r.checked} checked`);
  }
});
