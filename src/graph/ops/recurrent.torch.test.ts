// An LSTM and a GRU sequence classifier exported by PyTorch (scripts/gen_rnn_fixtures.py): graft loads the
// ONNX file as any downloaded model, appends a cross-entropy loss, differentiates the whole graph with respect
// to every weight (the recurrent layers through recurrent.ts), and one step's loss, logits and gradients match
// PyTorch's float64 values to 1e-4 relative. graft runs float32: ORT has no float64 LSTM or GRU kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gradients } from '../autodiff.ts';
import { GraphBuilder } from '../builder.ts';
import { Graph } from '../ir.ts';
import { tensor } from '../tensor.ts';
import { Session } from '../../runtime/session.ts';

interface Fx { kind: string; dims: number[]; x: number[]; labels: number[]; loss: number; logits: number[]; grads: Record<string, { shape: number[]; values: number[] }> }

const relL2 = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0, n = 0;
  for (let i = 0; i < b.length; i++) { d += (a[i]! - b[i]!) ** 2; n += b[i]! ** 2; }
  return Math.sqrt(d / n);
};

for (const kind of ['lstm', 'gru']) {
  test(`a PyTorch ${kind.toUpperCase()} classifier: one step's loss and every weight's gradient match PyTorch float64 (1e-4 relative)`, async () => {
    const dir = new URL('../../../fixtures/torch/rnn/', import.meta.url).pathname;
    const fx = JSON.parse(readFileSync(`${dir}${kind}.json`, 'utf8')) as Fx;
    const [N, T, I, , C] = fx.dims as [number, number, number, number, number];
    const g = Graph.load(`${dir}${kind}.onnx`);
    const b = new GraphBuilder(g);
    const logits = b.sym(g.outputs[0]!.name);
    // Mean cross-entropy against the fixture's labels.
    const onehot = b.constant(tensor('float32', [N, C], fx.labels.flatMap((l) => Array.from({ length: C }, (_, c) => (c === l ? 1 : 0)))));
    const ll = b.op1('ReduceSum', [b.mul(b.op1('LogSoftmax', [logits], { axis: 1 }), onehot)], { keepdims: 0 });
    const loss = b.mul(ll, b.scalar(-1 / N));
    b.output(loss, 'loss');
    // The weights by shape: W [1, G*H, I], R [1, G*H, H], B [1, 2*G*H], then the head.
    const byShape = (shape: number[]) => [...g.initializers].find(([, t]) => t.dims.join() === shape.join())![0];
    const names = Object.fromEntries(Object.entries(fx.grads).map(([k, v]) => [k, byShape(v.shape)]));
    const grads = gradients(b, loss.name, Object.values(names));
    for (const [k, n] of Object.entries(names)) b.output(grads.get(n)!, `grad_${k}`);
    const s = await Session.create(b.graph, { threads: 1, optimization: 'disabled' });
    try {
      const out = await s.run({ x: tensor('float32', [N, T, I], fx.x) });
      const rel = (got: number, want: number) => Math.abs(got - want) / Math.abs(want);
      assert.ok(rel(Number(out['loss']!.data[0]), fx.loss) < 1e-4, `loss ${out['loss']!.data[0]} vs torch ${fx.loss}`);
      assert.ok(relL2(out[g.outputs[0]!.name]!.data as Float32Array, fx.logits) < 1e-4, 'logits');
      for (const [k, v] of Object.entries(fx.grads)) {
        const e = relL2(out[`grad_${k}`]!.data as Float32Array, v.values);
        assert.ok(e < 1e-4, `${kind} ${k}: relative L2 error ${e.toExponential(2)} against PyTorch float64`);
      }
    } finally {
      await s.dispose();
    }
  });
}
