/** Shape-moving ops: type inference and gradient rules. */
import type { Sym } from '../builder.ts';
import type { Dim } from '../ir.ts';
import { sizeOf } from '../tensor.ts';
import { type GradCtx, type InferCtx, defineOp, normAxis, shapeError } from './registry.ts';

/** The gradient of any op that only rearranges or renames elements without reordering them. */
const reshapeBack = (c: GradCtx): (Sym | null)[] => [c.b.reshape(c.dy(0)!, c.x(0).shape.map(Number))];

function knownSize(shape: Dim[]): number | null {
  return shape.every((d) => typeof d === 'number') ? sizeOf(shape as number[]) : null;
}

defineOp('Reshape', {
  nondiff: [1],
  infer: (c) => {
    const x = c.inputs[0]!;
    const target = c.constInts(1);
    if (!target) throw shapeError(c.node, 'the target shape must be a constant known when the graph is built');
    const allowzero = c.int('allowzero', 0);
    const out: Dim[] = target.map((d, i) => (d === 0 && !allowzero ? x.shape[i]! : d));
    const neg = out.indexOf(-1);
    if (neg >= 0) {
      const total = knownSize(x.shape);
      const rest = knownSize(out.filter((_, i) => i !== neg));
      if (total !== null && rest !== null) {
        if (rest === 0 || total % rest !== 0) throw shapeError(c.node, `cannot reshape [${x.shape}] to [${target}]`);
        out[neg] = total / rest;
      } else {
        out[neg] = x.shape[0] === out[0] ? '?' : (typeof x.shape[0] === 'string' ? x.shape[0] : '?');
      }
    } else {
      const a = knownSize(x.shape);
      const b = knownSize(out);
      if (a !== null && b !== null && a !== b) throw shapeError(c.node, `cannot reshape [${x.shape}] (${a} values) to [${target}] (${b} values)`);
    }
    return [{ dtype: x.dtype, shape: out }];
  },
  grad: reshapeBack,
});

defineOp('Flatten', {
  infer: (c) => {
    const s = c.inputs[0]!.shape;
    const axis = normAxis(c.int('axis', 1), s.length);
    const left = knownSize(s.slice(0, axis));
    const right = knownSize(s.slice(axis));
    return [{ dtype: c.inputs[0]!.dtype, shape: [left ?? (axis === 1 ? s[0]! : '?'), right ?? '?'] }];
  },
  grad: reshapeBack,
});

function squeezeAxes(c: InferCtx): number[] {
  return c.constInts(1) ?? c.ints('axes', []);
}

defineOp('Squeeze', {
  nondiff: [1],
  infer: (c) => {
    const s = c.inputs[0]!.shape;
    const axes = squeezeAxes(c).map((a) => normAxis(a, s.length));
    const out = axes.length ? s.filter((_, i) => !axes.includes(i)) : s.filter((d) => d !== 1);
    return [{ dtype: c.inputs[0]!.dtype, shape: out }];
  },
  grad: reshapeBack,
});

defineOp('Unsqueeze', {
  nondiff: [1],
  infer: (c) => {
    const s = c.inputs[0]!.shape;
    const axes = squeezeAxes(c);
    const rank = s.length + axes.length;
    const norm = axes.map((a) => normAxis(a, rank)).sort((a, b) => a - b);
    const out: Dim[] = [];
    let k = 0;
    for (let i = 0; i < rank; i++) out.push(norm.includes(i) ? 1 : s[k++]!);
    const v = c.inputs[0]!.value;
    return [{ dtype: c.inputs[0]!.dtype, shape: out, ...(v ? { value: { ...v, dims: out as number[] } } : {}) }];
  },
  grad: reshapeBack,
});

defineOp('Transpose', {
  infer: (c) => {
    const s = c.inputs[0]!.shape;
    const perm = c.ints('perm', [...s.keys()].reverse());
    if (perm.length !== s.length) throw shapeError(c.node, `perm [${perm}] does not match rank ${s.length}`);
    return [{ dtype: c.inputs[0]!.dtype, shape: perm.map((p) => s[p]!) }];
  },
  grad: (c) => {
    const perm = c.ints('perm', [...c.x(0).shape.keys()].reverse());
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [c.b.transpose(c.dy(0)!, inv)];
  },
});

defineOp('Expand', {
  nondiff: [1],
  infer: (c) => {
    const s = c.inputs[0]!.shape;
    const target = c.constInts(1);
    if (!target) throw shapeError(c.node, 'the target shape must be a constant known when the graph is built');
    const rank = Math.max(s.length, target.length);
    const out: Dim[] = [];
    for (let i = 0; i < rank; i++) {
      const a = s[i - (rank - s.length)] ?? 1;
      const t = target[i - (rank - target.length)] ?? 1;
      out.push(a === 1 ? t : a);
    }
    return [{ dtype: c.inputs[0]!.dtype, shape: out }];
  },
  grad: (c) => [c.unbroadcast(c.dy(0)!, c.x(0))],
});
