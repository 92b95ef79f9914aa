/**
 * RNN, GRU and LSTM: shape inference, and a gradient rule that differentiates the same recurrence written in
 * primitive ops (MatMul, Sigmoid, Tanh, Slice, Concat), unrolled over the static sequence length and
 * recomputed in the backward pass (GradCtx.vjp). ORT runs the fused op forward; the unrolled copy exists only
 * to be differentiated. ONNX's defaults only: sigmoid/tanh activations, no clip, no input_forget, and
 * sequence_lens absent or equal to the full length (else E_GRAD_UNSUPPORTED).
 */
import { GraftError } from '../../errors.ts';
import type { Dim } from '../ir.ts';
import type { GraphBuilder, Sym } from '../builder.ts';
import { type InferCtx, defineOp, shapeError, staticShape } from './registry.ts';
import { tensor } from '../tensor.ts';

/** Gates per step: RNN 1, GRU 3 (z, r, h), LSTM 4 (i, o, f, c); W is [directions, gates * hidden, input]. */
const GATES: Record<string, number> = { RNN: 1, GRU: 3, LSTM: 4 };
const DEFAULT_ACTIVATIONS: Record<string, string[]> = { RNN: ['Tanh'], GRU: ['Sigmoid', 'Tanh'], LSTM: ['Sigmoid', 'Tanh', 'Tanh'] };

const slice = (b: GraphBuilder, x: Sym, axis: number, start: number, end: number): Sym =>
  b.op1('Slice', [x, b.ints([start]), b.ints([end]), b.ints([axis])]);

function unsupported(c: InferCtx, what: string): GraftError {
  return new GraftError('E_GRAD_UNSUPPORTED', `op ${c.node.op} (node "${c.node.name}") has no gradient ${what}`,
    'Export the recurrent layer with ONNX\'s defaults (sigmoid/tanh, no clip), or freeze it.', { op: c.node.op, node: c.node.name });
}

/**
 * The node's outputs (Y, Y_h and, for LSTM, Y_c) computed from its inputs `xs` in primitive ops.
 * Exported for the tests, which check it against ORT's fused op on ONNX's backend cases.
 */
export function unrollRecurrent(b: GraphBuilder, c: InferCtx, xs: (Sym | null)[]): Sym[] {
  const op = c.node.op;
  const G = GATES[op]!;
  const acts = c.node.attrs['activations'] ? (c.node.attrs['activations'] as { strs?: string[] }).strs ?? [] : [];
  const dflt = DEFAULT_ACTIVATIONS[op]!;
  if (acts.length && acts.some((a, i) => a !== dflt[i % dflt.length])) throw unsupported(c, `with activations ${acts.join(', ')}`);
  if (c.node.attrs['clip']) throw unsupported(c, 'with clip');
  if (c.int('input_forget', 0)) throw unsupported(c, 'with input_forget');
  const batchFirst = c.int('layout', 0) === 1;
  let X = xs[0]!;
  if (batchFirst) X = b.transpose(X, [1, 0, 2]);
  const [T, N, I] = staticShape(X) as [number, number, number];
  const [D, GH] = staticShape(xs[1]!) as [number, number];
  const H = c.node.attrs['hidden_size'] ? c.int('hidden_size', 0) : GH / G;
  if (xs[4]) {
    const lens = c.constInts(4);
    if (!lens || lens.some((l) => l !== T)) throw unsupported(c, 'with sequence_lens shorter than the sequence (or not known when the graph is built)');
  }
  const state = (s: Sym | null, d: number): Sym | null => {
    if (!s) return null;
    const t = batchFirst ? b.transpose(s, [1, 0, 2]) : s;
    return b.reshape(slice(b, t, 0, d, d + 1), [N, H]);
  };
  const zeros = b.constant(tensor(X.dtype, [N, H]));
  const rows = (m: Sym, k: number) => b.transpose(slice(b, m, 0, k * H, (k + 1) * H), [1, 0]); // gate k, transposed
  const Ys: Sym[][] = Array.from({ length: T }, () => []);
  const lastH: Sym[] = [];
  const lastC: Sym[] = [];
  for (let d = 0; d < D; d++) {
    const Wd = b.reshape(slice(b, xs[1]!, 0, d, d + 1), [G * H, I]);
    const Rd = b.reshape(slice(b, xs[2]!, 0, d, d + 1), [G * H, H]);
    const Bd = xs[3] ? b.reshape(slice(b, xs[3], 0, d, d + 1), [2 * G * H]) : null;
    const Wk = Array.from({ length: G }, (_, k) => rows(Wd, k));
    const Rk = Array.from({ length: G }, (_, k) => rows(Rd, k));
    const Wb = Array.from({ length: G }, (_, k) => (Bd ? slice(b, Bd, 0, k * H, (k + 1) * H) : null));
    const Rb = Array.from({ length: G }, (_, k) => (Bd ? slice(b, Bd, 0, (G + k) * H, (G + k + 1) * H) : null));
    const P = op === 'LSTM' && xs[7] ? b.reshape(slice(b, xs[7], 0, d, d + 1), [3 * H]) : null;
    const Pk = (k: number) => (P ? slice(b, P, 0, k * H, (k + 1) * H) : null);
    const plus = (...t: (Sym | null)[]) => t.filter((s): s is Sym => !!s).reduce((a, s) => b.add(a, s));
    let h = state(xs[5] ?? null, d) ?? zeros;
    let cs = op === 'LSTM' ? state(xs[6] ?? null, d) ?? zeros : null;
    const reverse = c.str('direction', 'forward') === 'reverse' || d === 1;
    for (let s = 0; s < T; s++) {
      const t = reverse ? T - 1 - s : s;
      const xt = b.reshape(slice(b, X, 0, t, t + 1), [N, I]);
      const pre = (k: number) => plus(b.matmul(xt, Wk[k]!), b.matmul(h, Rk[k]!), Wb[k] ?? null, Rb[k] ?? null);
      if (op === 'RNN') {
        h = b.op1('Tanh', [pre(0)]);
      } else if (op === 'GRU') {
        const z = b.sigmoid(pre(0));
        const r = b.sigmoid(pre(1));
        const xh = plus(b.matmul(xt, Wk[2]!), Wb[2] ?? null);
        const hh = c.int('linear_before_reset', 0)
          ? b.mul(r, plus(b.matmul(h, Rk[2]!), Rb[2] ?? null))
          : plus(b.matmul(b.mul(r, h), Rk[2]!), Rb[2] ?? null);
        const cand = b.op1('Tanh', [b.add(xh, hh)]);
        h = b.add(b.mul(b.sub(b.like(1, z), z), cand), b.mul(z, h));
      } else {
        // ONNX's gate order is i, o, f, c; peepholes are i, o, f.
        const peep = (k: number, cell: Sym) => { const p = Pk(k); return p ? b.mul(p, cell) : null; };
        const i = b.sigmoid(plus(pre(0), peep(0, cs!)));
        const f = b.sigmoid(plus(pre(2), peep(2, cs!)));
        cs = b.add(b.mul(f, cs!), b.mul(i, b.op1('Tanh', [pre(3)])));
        const o = b.sigmoid(plus(pre(1), peep(1, cs)));
        h = b.mul(o, b.op1('Tanh', [cs]));
      }
      Ys[t]!.push(b.reshape(h, [1, 1, N, H]));
    }
    lastH.push(b.reshape(h, [1, N, H]));
    if (cs) lastC.push(b.reshape(cs, [1, N, H]));
  }
  const cat = (parts: Sym[], axis: number) => (parts.length === 1 ? parts[0]! : b.op1('Concat', parts, { axis }));
  let Y = cat(Ys.map((perT) => cat(perT, 1)), 0);
  let Yh = cat(lastH, 0);
  let Yc = lastC.length ? cat(lastC, 0) : null;
  if (batchFirst) {
    Y = b.transpose(Y, [2, 0, 1, 3]);
    Yh = b.transpose(Yh, [1, 0, 2]);
    if (Yc) Yc = b.transpose(Yc, [1, 0, 2]);
  }
  return Yc ? [Y, Yh, Yc] : [Y, Yh];
}

for (const op of Object.keys(GATES)) {
  defineOp(op, {
    // sequence_lens carries no gradient.
    nondiff: [4],
    infer: (c) => {
      const x = c.inputs[0]!;
      const w = c.inputs[1]!;
      if (x.shape.length !== 3 || w.shape.length !== 3) throw shapeError(c.node, `${op} takes X [seq, batch, input] and W [directions, ${GATES[op]} x hidden, input], got X [${x.shape}] and W [${w.shape}]`);
      const dirs = c.str('direction', 'forward') === 'bidirectional' ? 2 : 1;
      const gw = w.shape[1]!;
      const hidden: Dim = c.node.attrs['hidden_size'] ? c.int('hidden_size', 0) : typeof gw === 'number' ? gw / GATES[op]! : '?';
      const batchFirst = c.int('layout', 0) === 1;
      const [seq, batch] = batchFirst ? [x.shape[1]!, x.shape[0]!] : [x.shape[0]!, x.shape[1]!];
      const y: Dim[] = batchFirst ? [batch, seq, dirs, hidden] : [seq, dirs, batch, hidden];
      const st: Dim[] = batchFirst ? [batch, dirs, hidden] : [dirs, batch, hidden];
      const outs = [{ dtype: x.dtype, shape: y }, { dtype: x.dtype, shape: st }];
      if (op === 'LSTM') outs.push({ dtype: x.dtype, shape: [...st] });
      return outs;
    },
    grad: (c) => c.vjp((b, xs) => unrollRecurrent(b, c, xs)),
  });
}
