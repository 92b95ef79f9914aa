/** Shape-moving ops: type inference and gradient rules. */
import { GraftError } from '../../errors.ts';
import type { GraphBuilder, Sym } from '../builder.ts';
import type { Dim } from '../ir.ts';
import { type DType, isRawBits, sizeOf, tensor, toNumbers } from '../tensor.ts';
import { type GradCtx, type InferCtx, type TypeInfo, defineOp, noGradient, normAxis, shapeError, staticShape } from './registry.ts';

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
    // A small known value keeps its values (torch exports expand's sizes as Reshape(Concat(...), [-1])).
    const v = x.value && !isRawBits(x.value.dtype) && out.length <= 2 && out.every((d) => typeof d === 'number') ? toNumbers(x.value) : undefined;
    return [withSmallValue({ dtype: x.dtype, shape: out }, v)];
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
    const x = c.inputs[0]!;
    const out = { dtype: x.dtype, shape: perm.map((p) => s[p]!) };
    if (x.value && !isRawBits(x.value.dtype) && s.length === 2 && perm[0] === 1) {
      const [r, k] = s as [number, number];
      const v = toNumbers(x.value);
      return [withSmallValue(out, Array.from({ length: r * k }, (_, i) => v[(i % r) * k + Math.floor(i / r)]!))];
    }
    return [x.value && s.length <= 2 ? withSmallValue(out, toNumbers(x.value)) : out];
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

// ---- helpers ---------------------------------------------------------------------------------------------

/** Zeros of a static shape, made at run time (ConstantOfShape) so no large constant is stored. */
function zeros(b: GraphBuilder, shape: number[], dtype: DType): Sym {
  return b.op1('ConstantOfShape', [b.ints(shape)], { value: tensor(dtype, [1], [0]) });
}

function constOrThrow(c: InferCtx, i: number, what: string): number[] {
  const v = c.constInts(i);
  if (!v) throw shapeError(c.node, `${what} must be a constant known when the graph is built`);
  return v;
}

/** Propagates small 1-D constant values (shape arithmetic in loaded models: Shape -> Slice/Gather -> Concat). */
function withValue(t: TypeInfo, values: number[] | undefined): TypeInfo {
  return values && t.shape.length <= 1 && values.length <= 64 ? { ...t, value: tensor(t.dtype, t.shape as number[], values) } : t;
}

/**
 * Also for small 2-D values, which shape arithmetic passes through on its way back to 1-D: PyTorch exports
 * F.pad's pads as Reshape(Concat(..), [-1, 2]), Slice(step -1), Transpose, Reshape([-1]) (Swin's window padding).
 */
function withSmallValue(t: TypeInfo, values: number[] | undefined): TypeInfo {
  const ok = values && t.shape.length <= 2 && t.shape.every((d) => typeof d === 'number') && values.length <= 64;
  return ok ? { ...t, value: tensor(t.dtype, t.shape as number[], values) } : t;
}

// ---- Concat / Split ------------------------------------------------------------------------------------

defineOp('Concat', {
  infer: (c) => {
    const ins = c.inputs.filter((t): t is TypeInfo => !!t);
    const first = ins[0]!;
    const axis = normAxis(c.int('axis', 0), first.shape.length);
    const shape = [...first.shape];
    const dims = ins.map((t) => t.shape[axis]!);
    shape[axis] = dims.every((d) => typeof d === 'number') ? (dims as number[]).reduce((a, d) => a + d, 0) : '?';
    const vals = ins.every((t) => t.value) ? ins.flatMap((t) => toNumbers(t.value!)) : undefined;
    return [withValue({ dtype: first.dtype, shape }, vals)];
  },
  grad: (c) => {
    const x0 = c.x(0);
    const axis = normAxis(c.int('axis', 0), x0.shape.length);
    const sizes = c.node.inputs.map((_, i) => Number(c.x(i).shape[axis]));
    const parts = c.b.op('Split', [c.dy(0)!, c.b.ints(sizes)], { axis }, { outputs: sizes.length });
    return parts.map((p, i) => (c.needs(i) ? p : null));
  },
});

function splitSizes(c: InferCtx, dim: Dim, n: number): Dim[] {
  const given = c.node.inputs[1] ? c.constInts(1) : c.ints('split', []);
  if (given && given.length) return given;
  if (typeof dim !== 'number') return new Array<Dim>(n).fill('?');
  // Opset 18 allows a smaller last chunk (num_outputs); equal chunks otherwise.
  const chunk = Math.ceil(dim / n);
  return Array.from({ length: n }, (_, i) => Math.max(0, Math.min(chunk, dim - i * chunk)));
}

defineOp('Split', {
  nondiff: [1],
  infer: (c) => {
    const x = c.inputs[0]!;
    const axis = normAxis(c.int('axis', 0), x.shape.length);
    return splitSizes(c, x.shape[axis]!, c.node.outputs.length).map((d) => {
      const shape = [...x.shape];
      shape[axis] = d;
      return { dtype: x.dtype, shape };
    });
  },
  grad: (c) => {
    const x = c.x(0);
    const axis = normAxis(c.int('axis', 0), x.shape.length);
    const xs = staticShape(x);
    const sizes = splitSizes(c, xs[axis]!, c.node.outputs.length) as number[];
    const parts = sizes.map((d, i) => c.dy(i) ?? zeros(c.b, xs.map((e, k) => (k === axis ? d : e)), x.dtype));
    return [parts.length === 1 ? parts[0]! : c.b.op1('Concat', parts, { axis })];
  },
});

// ---- Slice -----------------------------------------------------------------------------------------------

interface SliceAxis { axis: number; start: number; step: number; count: number }

/**
 * Resolves Slice's starts/ends/axes/steps against a shape, clamping as the ONNX spec says. Before opset 10
 * starts, ends and axes are attributes and there are no steps.
 */
function sliceAxes(c: InferCtx, shape: Dim[]): SliceAxis[] {
  const attrs = c.node.inputs.length < 2 && 'starts' in c.node.attrs;
  const starts = attrs ? c.ints('starts', []) : constOrThrow(c, 1, 'Slice starts');
  const ends = attrs ? c.ints('ends', []) : constOrThrow(c, 2, 'Slice ends');
  const axes = attrs ? c.ints('axes', starts.map((_, i) => i))
    : c.node.inputs[3] ? constOrThrow(c, 3, 'Slice axes') : starts.map((_, i) => i);
  const steps = !attrs && c.node.inputs[4] ? constOrThrow(c, 4, 'Slice steps') : starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
    throw shapeError(c.node, `starts [${starts}], ends [${ends}], axes [${axes}] and steps [${steps}] differ in length`);
  }
  return axes.map((a, i) => {
    const axis = normAxis(a, shape.length);
    const dim = shape[axis]!;
    const step = steps[i]!;
    if (step === 0) throw shapeError(c.node, 'Slice step cannot be 0');
    if (typeof dim !== 'number') return { axis, start: 0, step, count: -1 };
    let s = starts[i]!;
    let e = ends[i]!;
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
      s = Math.min(Math.max(s, 0), dim);
      e = Math.min(Math.max(e, 0), dim);
    } else {
      s = Math.min(Math.max(s, 0), dim - 1);
      e = Math.min(Math.max(e, -1), dim - 1);
    }
    const count = Math.max(0, Math.ceil((e - s) / step));
    return { axis, start: s, step, count };
  });
}

defineOp('Slice', {
  nondiff: [1, 2, 3, 4],
  infer: (c) => {
    const x = c.inputs[0]!;
    const shape = [...x.shape];
    const sl = sliceAxes(c, shape);
    for (const a of sl) shape[a.axis] = a.count < 0 ? '?' : a.count;
    let vals: number[] | undefined;
    if (x.value && !isRawBits(x.value.dtype) && x.shape.length <= 2 && shape.every((d) => typeof d === 'number')) {
      // Each output index read from start + k * step along the sliced axes (rank 1 or 2).
      const v = toNumbers(x.value);
      const xs = x.shape as number[];
      const pick = xs.map((d, ax) => { const a = sl.find((q) => q.axis === ax); return a ? Array.from({ length: a.count }, (_, k) => a.start + k * a.step) : Array.from({ length: d }, (_, k) => k); });
      vals = xs.length === 1 ? pick[0]!.map((i) => v[i]!) : pick[0]!.flatMap((i) => pick[1]!.map((j) => v[i * xs[1]! + j]!));
    }
    return [withSmallValue({ dtype: x.dtype, shape }, vals)];
  },
  grad: (c) => {
    const { b } = c;
    const x = c.x(0);
    const xs = staticShape(x);
    const r = xs.length;
    const sl = sliceAxes(c, xs);
    let dy = c.dy(0)!;
    if (sl.every((a) => Math.abs(a.step) === 1)) {
      // Contiguous slice: pad dy back out with zeros (reversed first where the step is -1).
      const rev = sl.filter((a) => a.step === -1 && a.count > 1);
      if (rev.length) {
        dy = b.op1('Slice', [dy, b.ints(rev.map(() => -1)), b.ints(rev.map(() => -Number.MAX_SAFE_INTEGER)),
          b.ints(rev.map((a) => a.axis)), b.ints(rev.map(() => -1))]);
      }
      const pads = new Array<number>(2 * r).fill(0);
      for (const a of sl) {
        const lo = a.step === 1 ? a.start : a.start - a.count + 1;
        pads[a.axis] = a.count ? lo : 0;
        pads[a.axis + r] = xs[a.axis]! - (a.count ? lo : 0) - a.count;
      }
      return [pads.some((p) => p) ? b.op1('Pad', [dy, b.ints(pads)]) : dy];
    }
    // Strided slice: scatter dy into flat zeros at the (static) positions it was read from.
    const index = xs.map((_, d) => Array.from({ length: xs[d]! }, (_, k) => k));
    for (const a of sl) index[a.axis] = Array.from({ length: a.count }, (_, k) => a.start + k * a.step);
    const strides = xs.map((_, d) => sizeOf(xs.slice(d + 1)));
    let flat = [0];
    for (let d = 0; d < r; d++) flat = flat.flatMap((f) => index[d]!.map((k) => f + k * strides[d]!));
    const n = sizeOf(xs);
    const upd = b.reshape(dy, [flat.length]);
    const dx = b.op1('ScatterElements', [zeros(b, [n], x.dtype), b.constant(tensor('int64', [flat.length], flat)), upd], { axis: 0 });
    return [b.reshape(dx, xs)];
  },
});

// ---- Scatter / gather by index tensors ------------------------------------------------------------------

/**
 * ScatterElements and ScatterND (PyTorch's scatter/index_put rules): with no reduction, data's gradient is dY
 * with the overwritten positions zeroed and the updates' is dY gathered there; with `add`, data's is dY.
 */
// Scatter (opset 9-10) is ScatterElements under its old name.
for (const [op, gather] of [['ScatterElements', 'GatherElements'], ['ScatterND', 'GatherND'], ['Scatter', 'GatherElements']] as const) {
  defineOp(op, {
    nondiff: [1],
    infer: (c) => [{ dtype: c.inputs[0]!.dtype, shape: [...c.inputs[0]!.shape] }],
    grad: (c) => {
      const { b } = c;
      const red = c.str('reduction', 'none');
      const dy = c.dy(0)!;
      const attrs = op === 'ScatterND' ? {} : { axis: c.int('axis', 0) };
      const us = staticShape(c.x(2));
      const groups = red === 'mul' ? targetGroups(c, op) : null;
      if (groups && (op === 'ScatterND' || groups.every((g) => g.length === 1))) {
        // Y = data with Y[i] = data[i] * (the product of the updates written to i): data's gradient is dY times
        // that factor; an update's is dY * data at its position times the other updates written there.
        const x = c.x(0);
        const factor = b.op1(op === 'Scatter' ? 'ScatterElements' : op, [b.add(zeros(b, staticShape(x), x.dtype), b.like(1, x)), c.x(1), c.x(2)], { ...attrs, reduction: 'mul' });
        let du = c.needs(2) ? b.op1(gather, [b.mul(dy, x), c.x(1)], attrs) : null;
        if (du && groups.some((g) => g.length > 1)) {
          // ScatterND: update k is slice k of u; multiply it by the product of the other slices of its group.
          const u = c.x(2);
          const rows = groups.flatMap((g) => g).length;
          const others = new Array<Sym>(rows);
          for (const g of groups) {
            for (const k of g) {
              const rest = g.filter((j) => j !== k);
              const one = b.add(zeros(b, [1, ...us.slice(1)], u.dtype), b.like(1, u));
              others[k] = rest.reduce((acc, j) => b.mul(acc, slice0(b, u, j)), one);
            }
          }
          du = b.mul(du, b.op1('Concat', others, { axis: 0 }));
        }
        return [c.needs(0) ? b.mul(dy, factor) : null, null, du];
      }
      if (red !== 'none' && red !== 'add') {
        throw new GraftError('E_GRAD_UNSUPPORTED', `op ${op} (node "${c.node.name}") has no gradient with reduction "${red}"${red === 'mul' ? ' unless its indices are a constant (and, for ScatterElements, never repeat a position)' : ''}`,
          'Freeze the layers up to this node.', { op, node: c.node.name });
      }
      return [
        c.needs(0) ? red === 'add' ? dy : b.op1(op === 'Scatter' ? 'ScatterElements' : op, [dy, c.x(1), zeros(b, us, dy.dtype)], attrs) : null,
        null,
        c.needs(2) ? b.op1(gather, [dy, c.x(1)], attrs) : null,
      ];
    },
  });
}

/** Row k of a tensor along axis 0, kept as [1, ...]. */
const slice0 = (b: GraphBuilder, t: Sym, k: number): Sym => b.op1('Slice', [t, b.ints([k]), b.ints([k + 1]), b.ints([0])]);

/**
 * The updates of a scatter grouped by the position they write (update k: row k of ScatterND's indices, or
 * element k of ScatterElements'), or null when the indices are not a constant of the graph.
 */
function targetGroups(c: GradCtx, op: string): number[][] | null {
  const t = c.b.graph.initializers.get(c.node.inputs[1] ?? '') ?? c.constant(1);
  if (!t) return null;
  const idx = toNumbers(t);
  const shape = t.dims;
  const byTarget = new Map<string, number[]>();
  const add = (key: string, k: number) => byTarget.set(key, [...(byTarget.get(key) ?? []), k]);
  if (op === 'ScatterND') {
    const q = shape.at(-1) ?? 1;
    for (let i = 0; i < idx.length; i += q) add(idx.slice(i, i + q).join(','), i / q);
  } else {
    // ScatterElements: the target is the index's own coordinate with the axis coordinate replaced by its value.
    const axis = normAxis(c.int('axis', 0), shape.length);
    const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, v) => a * v, 1));
    for (let i = 0; i < idx.length; i++) {
      const coord = shape.map((_, d) => Math.floor(i / strides[d]!) % shape[d]!);
      coord[axis] = idx[i]!;
      add(coord.join(','), i);
    }
  }
  return [...byTarget.values()];
}

defineOp('GatherElements', {
  nondiff: [1],
  infer: (c) => [{ dtype: c.inputs[0]!.dtype, shape: [...c.inputs[1]!.shape] }],
  // Scatter-add dY into zeros at the gathered positions (ScatterElements with reduction add: opset 16).
  grad: (c) => {
    const x = c.x(0);
    return [c.b.op1('ScatterElements', [zeros(c.b, staticShape(x), x.dtype), c.x(1), c.dy(0)!], { axis: c.int('axis', 0), reduction: 'add' }), null];
  },
});

defineOp('GatherND', {
  nondiff: [1],
  infer: (c) => {
    const x = c.inputs[0]!.shape;
    const idx = c.inputs[1]!.shape;
    const bd = c.int('batch_dims', 0);
    const k = idx[idx.length - 1]!;
    if (typeof k !== 'number') return [{ dtype: c.inputs[0]!.dtype, shape: ['?'] }];
    return [{ dtype: c.inputs[0]!.dtype, shape: [...idx.slice(0, -1), ...x.slice(bd + k)] }];
  },
  grad: (c) => {
    if (c.int('batch_dims', 0) !== 0) {
      throw new GraftError('E_GRAD_UNSUPPORTED', `op GatherND (node "${c.node.name}") has no gradient with batch_dims > 0`,
        'Freeze the layers up to this node.', { op: 'GatherND', node: c.node.name });
    }
    const x = c.x(0);
    return [c.b.op1('ScatterND', [zeros(c.b, staticShape(x), x.dtype), c.x(1), c.dy(0)!], { reduction: 'add' }), null];
  },
});

defineOp('OneHot', {
  ...noGradient(3),
  infer: (c) => {
    const idx = c.inputs[0]!.shape;
    const depth = c.constant(1);
    const d: Dim = depth ? toNumbers(depth)[0]! : '?';
    const axis = normAxis(c.int('axis', -1), idx.length + 1);
    return [{ dtype: c.inputs[2]!.dtype, shape: [...idx.slice(0, axis), d, ...idx.slice(axis)] }];
  },
});

defineOp('Compress', {
  nondiff: [1],
  infer: (c) => {
    const x = c.inputs[0]!;
    const cond = c.constant(1);
    const n: Dim = cond ? toNumbers(cond).filter((v) => v).length : '?';
    if (!c.node.attrs['axis']) return [{ dtype: x.dtype, shape: [n] }];
    const axis = normAxis(c.int('axis', 0), x.shape.length);
    return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (i === axis ? n : d)) }];
  },
  // A constant condition makes Compress a Gather of the kept positions (of the flattened input without
  // an axis): differentiated as that Gather.
  grad: (c) => {
    const cond = c.b.graph.initializers.get(c.node.inputs[1] ?? '') ?? c.constant(1);
    if (!cond) {
      throw new GraftError('E_GRAD_UNSUPPORTED', `op Compress (node "${c.node.name}") has no gradient when its condition is not a constant`,
        'Make the condition an initializer, or freeze the layers before this node.', { op: 'Compress', node: c.node.name });
    }
    const keep = toNumbers(cond).flatMap((v, i) => (v ? [i] : []));
    return c.vjp((b, [x]) => {
      const idx = b.constant(tensor('int64', [keep.length], keep));
      if (!c.node.attrs['axis']) return [b.op1('Gather', [b.reshape(x!, [-1]), idx], { axis: 0 })];
      return [b.op1('Gather', [x!, idx], { axis: normAxis(c.int('axis', 0), x!.shape.length) })];
    });
  },
});

defineOp('Trilu', {
  nondiff: [1],
  infer: (c) => [{ dtype: c.inputs[0]!.dtype, shape: [...c.inputs[0]!.shape] }],
  // The same triangle of dY.
  grad: (c) => [c.b.op1('Trilu', [c.dy(0)!, ...(c.node.inputs[1] ? [c.x(1)] : [])], { upper: c.int('upper', 1) }), null],
});

defineOp('ReverseSequence', {
  nondiff: [1],
  infer: (c) => [{ dtype: c.inputs[0]!.dtype, shape: [...c.inputs[0]!.shape] }],
  // Reversing the same prefixes again undoes it.
  grad: (c) => [c.b.op1('ReverseSequence', [c.dy(0)!, c.x(1)], { batch_axis: c.int('batch_axis', 1), time_axis: c.int('time_axis', 0) }), null],
});

// ---- DepthToSpace / SpaceToDepth: a reshape, a transpose and a reshape ----------------------------------

/** The intermediate 6-D shape and permutation of the op (ONNX's reference formulation). */
function blockPlan(c: InferCtx, s: number[]): { pre: number[]; perm: number[]; out: number[] } {
  const bs = c.int('blocksize', 1);
  const [n, ch, h, w] = s as [number, number, number, number];
  if (c.node.op === 'SpaceToDepth') {
    return { pre: [n, ch, h / bs, bs, w / bs, bs], perm: [0, 3, 5, 1, 2, 4], out: [n, ch * bs * bs, h / bs, w / bs] };
  }
  const cOut = ch / (bs * bs);
  return c.str('mode', 'DCR') === 'CRD'
    ? { pre: [n, cOut, bs, bs, h, w], perm: [0, 1, 4, 2, 5, 3], out: [n, cOut, h * bs, w * bs] }
    : { pre: [n, bs, bs, cOut, h, w], perm: [0, 3, 4, 1, 5, 2], out: [n, cOut, h * bs, w * bs] };
}

for (const op of ['DepthToSpace', 'SpaceToDepth']) {
  defineOp(op, {
    infer: (c) => {
      const x = c.inputs[0]!;
      if (x.shape.some((d) => typeof d !== 'number')) return [{ dtype: x.dtype, shape: ['?', '?', '?', '?'] }];
      return [{ dtype: x.dtype, shape: blockPlan(c, x.shape as number[]).out }];
    },
    grad: (c) => {
      const { b } = c;
      const xs = staticShape(c.x(0));
      const { pre, perm } = blockPlan(c, xs);
      const inv = new Array<number>(perm.length);
      perm.forEach((p, i) => (inv[p] = i));
      return [b.reshape(b.transpose(b.reshape(c.dy(0)!, perm.map((p) => pre[p]!)), inv), xs)];
    },
  });
}

// ---- Resize / Upsample (inference only) -----------------------------------------------------------------

// No gradient rule yet: a gradient reaching Resize or Upsample fails with E_GRAD_NO_RULE rather than stopping there.
defineOp('Resize', {
  nondiff: [1, 2, 3],
  infer: (c) => {
    const x = c.inputs[0]!;
    const r = x.shape.length;
    const old = c.node.inputs.length === 2; // opset 10: X, scales
    const axes = c.ints('axes', [...Array(r).keys()]).map((a) => normAxis(a, r));
    const sizes = !old && c.node.inputs[3] ? c.constInts(3) : undefined;
    const scalesT = old ? c.constant(1) : c.node.inputs[2] ? c.constant(2) : undefined;
    const scales = scalesT && scalesT.data.length ? toNumbers(scalesT) : undefined;
    const shape: Dim[] = [...x.shape];
    if (sizes && sizes.length) {
      const policy = c.str('keep_aspect_ratio_policy', 'stretch');
      if (policy === 'stretch') axes.forEach((a, i) => (shape[a] = sizes[i]!));
      else {
        const ratios = axes.map((a, i) => sizes[i]! / Number(x.shape[a]));
        const s = policy === 'not_larger' ? Math.min(...ratios) : Math.max(...ratios);
        axes.forEach((a) => (shape[a] = typeof x.shape[a] === 'number' ? Math.round(s * (x.shape[a] as number)) : '?'));
      }
    } else if (scales) {
      axes.forEach((a, i) => (shape[a] = typeof x.shape[a] === 'number' ? Math.floor((x.shape[a] as number) * scales[i]! + 1e-9) : '?'));
    } else axes.forEach((a) => (shape[a] = '?'));
    return [{ dtype: x.dtype, shape }];
  },
  // Nearest, linear and cubic resizing are separable linear maps: along each axis y = W x with W [out, in]
  // built here from the coordinate transformation, so dX applies each W's transpose to dY.
  grad: (c) => {
    const { b } = c;
    const x = c.x(0);
    const xs = staticShape(x);
    const ys = staticShape(c.y(0));
    const mode = c.str('mode', 'nearest');
    const ctm = c.str('coordinate_transformation_mode', 'half_pixel');
    const roiT = ctm === 'tf_crop_and_resize' && c.node.inputs[1] ? c.constant(1) : undefined;
    if (!['nearest', 'linear', 'cubic'].includes(mode) || (ctm === 'tf_crop_and_resize' && !roiT) || c.int('antialias', 0)) {
      throw new GraftError('E_GRAD_UNSUPPORTED', `op Resize (node "${c.node.name}") has no gradient with mode ${mode}, ${ctm}${c.int('antialias', 0) ? ', antialias' : ''}`,
        'Freeze the layers before this node.', { op: 'Resize', node: c.node.name });
    }
    const old = c.node.inputs.length === 2;
    const scalesT = old ? c.constant(1) : c.node.inputs[2] ? c.constant(2) : undefined;
    const given = scalesT && scalesT.data.length ? toNumbers(scalesT) : undefined;
    const r = xs.length;
    const axesAttr = c.ints('axes', [...Array(r).keys()]).map((a) => normAxis(a, r));
    const roi = roiT ? toNumbers(roiT) : undefined;
    return [resizeBack(b, c.dy(0)!, xs, ys, (a, n, m) => {
      const k = axesAttr.indexOf(a);
      const scale = given && k >= 0 ? given[k]! : m / n;
      if (n === m && scale === 1) return null;
      // tf_crop_and_resize: the roi as [starts, ends] over the resized axes (or all of them).
      const ra = roi ? (roi.length === 2 * r ? [roi[a]!, roi[a + r]!] : [roi[k]!, roi[k + axesAttr.length]!]) as [number, number] : undefined;
      return resizeMatrix(n, m, scale, mode, ctm, c.str('nearest_mode', 'round_prefer_floor'), c.float('cubic_coeff_a', -0.75), c.int('exclude_outside', 0), ra);
    }), null, null, null];
  },
});

/**
 * dX of a separable resize: along each axis a whose matrix W [out, in] `matrixOf` gives (null: unchanged),
 * W's transpose applied to dY (a moved last, multiplied by W, moved back).
 */
function resizeBack(b: GraphBuilder, dy: Sym, xs: number[], ys: number[], matrixOf: (axis: number, n: number, m: number) => number[] | null): Sym {
  let g = dy;
  xs.forEach((n, a) => {
    const W = matrixOf(a, n, ys[a]!);
    if (!W) return;
    const perm = [...xs.keys()].filter((d) => d !== a).concat([a]);
    g = b.transpose(b.matmul(b.transpose(g, perm), b.constant(tensor(dy.dtype, [ys[a]!, n], W))), perm.map((_, i) => perm.indexOf(i)));
  });
  return g;
}

/** The [out, in] interpolation matrix of ONNX Resize along one axis. */
function resizeMatrix(n: number, m: number, scale: number, mode: string, ctm: string, nearest: string, A: number, exclude: number, roi?: [number, number]): number[] {
  const W = new Array<number>(m * n).fill(0);
  const orig = (x: number): number => {
    switch (ctm) {
      case 'align_corners': return m === 1 ? 0 : (x * (n - 1)) / (m - 1);
      case 'asymmetric': return x / scale;
      case 'pytorch_half_pixel': return m > 1 ? (x + 0.5) / scale - 0.5 : 0;
      case 'tf_half_pixel_for_nn': return (x + 0.5) / scale;
      case 'half_pixel_symmetric': { const adj = m / (scale * n); return (n / 2) * (1 - adj) + (x + 0.5) / scale - 0.5; }
      case 'tf_crop_and_resize': return m > 1 ? roi![0] * (n - 1) + (x * (roi![1] - roi![0]) * (n - 1)) / (m - 1) : 0.5 * (roi![0] + roi![1]) * (n - 1);
      default: return (x + 0.5) / scale - 0.5;
    }
  };
  const clamp = (i: number) => Math.min(Math.max(i, 0), n - 1);
  for (let o = 0; o < m; o++) {
    const u = orig(o);
    // Outside the input, tf_crop_and_resize writes extrapolation_value: a constant, no gradient.
    if (ctm === 'tf_crop_and_resize' && (u < 0 || u > n - 1)) continue;
    if (mode === 'nearest') {
      const f = Math.floor(u);
      const half = Math.abs(u - f - 0.5) < 1e-9;
      const i = nearest === 'floor' ? f : nearest === 'ceil' ? Math.ceil(u) : nearest === 'round_prefer_ceil' ? (half ? f + 1 : Math.round(u)) : (half ? f : Math.round(u));
      W[o * n + clamp(i)]! += 1;
    } else if (mode === 'linear') {
      const v = Math.min(Math.max(u, 0), n - 1);
      const i0 = Math.floor(v);
      const t = v - i0;
      W[o * n + clamp(i0)]! += 1 - t;
      W[o * n + clamp(i0 + 1)]! += t;
    } else {
      const i0 = Math.floor(u);
      const t = u - i0;
      const k = (d: number) => { const z = Math.abs(d); return z <= 1 ? ((A + 2) * z - (A + 3)) * z * z + 1 : z < 2 ? ((A * z - 5 * A) * z + 8 * A) * z - 4 * A : 0; };
      const taps = [-1, 0, 1, 2].map((j) => ({ i: i0 + j, w: k(t - j) }));
      const inside = exclude ? taps.filter((q) => q.i >= 0 && q.i < n) : taps;
      const total = exclude ? inside.reduce((acc, q) => acc + q.w, 0) : 1;
      for (const q of inside) W[o * n + clamp(q.i)]! += q.w / total;
    }
  }
  return W;
}

defineOp('Upsample', {
  nondiff: [1],
  infer: (c) => {
    const x = c.inputs[0]!;
    const scales = c.node.inputs[1] ? c.constant(1) && toNumbers(c.constant(1)!) : c.node.attrs['scales'] && 'floats' in c.node.attrs['scales'] ? c.node.attrs['scales'].floats : undefined;
    return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (scales && typeof d === 'number' ? Math.floor(d * scales[i]!) : '?')) }];
  },
  // Upsample is Resize with asymmetric coordinates (nearest: floor): the same separable matrices.
  grad: (c) => {
    const { b } = c;
    const x = c.x(0);
    const xs = staticShape(x);
    const ys = staticShape(c.y(0));
    const mode = c.str('mode', 'nearest');
    if (mode !== 'nearest' && mode !== 'linear') {
      throw new GraftError('E_GRAD_UNSUPPORTED', `op Upsample (node "${c.node.name}") has no gradient with mode ${mode}`, 'Freeze the layers before this node.', { op: 'Upsample', node: c.node.name });
    }
    return [resizeBack(b, c.dy(0)!, xs, ys, (_a, n, m) => (n === m ? null : resizeMatrix(n, m, m / n, mode, 'asymmetric', 'floor', -0.75, 0))), null];
  },
});

// ---- Gather ----------------------------------------------------------------------------------------------

defineOp('Gather', {
  nondiff: [1],
  infer: (c) => {
    const x = c.inputs[0]!;
    const idx = c.inputs[1]!;
    const axis = normAxis(c.int('axis', 0), x.shape.length);
    const shape = [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)];
    let vals: number[] | undefined;
    if (x.value && idx.value && x.shape.length === 1) {
      const v = toNumbers(x.value);
      vals = toNumbers(idx.value).map((i) => v[i < 0 ? i + v.length : i]!);
    }
    return [withValue({ dtype: x.dtype, shape }, vals)];
  },
  grad: (c) => {
    // Scatter-add dy into zeros along the gathered axis, moved to the front so ScatterND can index it.
    const { b } = c;
    const x = c.x(0);
    const xs = staticShape(x);
    const r = xs.length;
    const axis = normAxis(c.int('axis', 0), r);
    const q = c.x(1).shape.length;
    let idx = c.x(1).dtype === 'int64' ? c.x(1) : b.cast(c.x(1), 'int64');
    const dim = b.constant(tensor('int64', [], [xs[axis]!]));
    idx = b.op1('Where', [b.op1('Less', [idx, b.constant(tensor('int64', [], [0]))]), b.add(idx, dim), idx]);
    idx = b.op1('Unsqueeze', [idx, b.ints([-1])]);
    const range = (lo: number, hi: number) => Array.from({ length: Math.max(0, hi - lo) }, (_, k) => lo + k);
    let dy = c.dy(0)!;
    // dy is [pre, idx, post]; ScatterND wants updates shaped [idx, pre, post].
    if (axis > 0) dy = b.transpose(dy, [...range(axis, axis + q), ...range(0, axis), ...range(axis + q, r + q - 1)]);
    const front = [xs[axis]!, ...xs.slice(0, axis), ...xs.slice(axis + 1)];
    let dx = b.op1('ScatterND', [zeros(b, front, x.dtype), idx, dy], { reduction: 'add' });
    if (axis > 0) dx = b.transpose(dx, [...range(1, axis + 1), 0, ...range(axis + 1, r)]);
    return [dx, null];
  },
});

// ---- Pad -------------------------------------------------------------------------------------------------

/** Per-axis [begin, end] pads (opset 18 may name a subset of axes). */
function padAmounts(c: InferCtx, rank: number): [number[], number[]] {
  const raw = c.node.inputs[1] ? constOrThrow(c, 1, 'Pad pads') : c.ints('pads', []);
  const axes = c.node.inputs[3] ? constOrThrow(c, 3, 'Pad axes').map((a) => normAxis(a, rank)) : [...Array(rank).keys()];
  const begin = new Array<number>(rank).fill(0);
  const end = new Array<number>(rank).fill(0);
  axes.forEach((a, i) => {
    begin[a] = raw[i] ?? 0;
    end[a] = raw[i + axes.length] ?? 0;
  });
  return [begin, end];
}

defineOp('Pad', {
  nondiff: [1, 2, 3],
  infer: (c) => {
    const x = c.inputs[0]!;
    const [begin, end] = padAmounts(c, x.shape.length);
    const shape = x.shape.map((d, i) => (typeof d === 'number' ? d + begin[i]! + end[i]! : '?'));
    return [{ dtype: x.dtype, shape }];
  },
  grad: (c) => {
    const { b } = c;
    const mode = c.str('mode', 'constant');
    const xs = staticShape(c.x(0));
    const [begin, end] = padAmounts(c, xs.length);
    if (mode !== 'constant') {
      if ((mode !== 'reflect' && mode !== 'edge') || [...begin, ...end].some((p) => p < 0)) {
        throw new GraftError('E_GRAD_UNSUPPORTED', `op Pad (node "${c.node.name}") has no gradient in mode "${mode}"${mode === 'reflect' || mode === 'edge' ? ' with negative pads' : ''}`,
          'Constant, reflect and edge padding can be trained through; freeze the layers before this node.', { op: 'Pad', node: c.node.name });
      }
      // The same padding as slices of x joined by Concat, differentiated through their rules: every padded
      // element's gradient is added back to the element it copies.
      return c.vjp((sb, ins) => [padByParts(sb, ins[0]!, xs, begin, end, mode)]);
    }
    // Cut away what was padded on; where a pad was negative (a crop), zero-pad the cropped part back.
    const lo = begin.map((p) => Math.max(p, 0));
    const keep = xs.map((d, i) => d - Math.max(-begin[i]!, 0) - Math.max(-end[i]!, 0));
    let g = c.dy(0)!;
    if (lo.some((p) => p) || end.some((p) => p > 0)) g = b.op1('Slice', [g, b.ints(lo), b.ints(lo.map((p, i) => p + keep[i]!))]);
    const back = [...begin, ...end].map((p) => Math.max(-p, 0));
    if (back.some((p) => p)) g = b.op1('Pad', [g, b.ints(back)]);
    return [g];
  },
});

/** Reflect or edge padding written as Slice and Concat, axis by axis (non-negative pads). */
function padByParts(b: GraphBuilder, x: Sym, shape: number[], begin: number[], end: number[], mode: 'reflect' | 'edge'): Sym {
  let y = x;
  const slice = (t: Sym, axis: number, start: number, stop: number, step: number) =>
    b.op1('Slice', [t, b.ints([start]), b.ints([stop]), b.ints([axis]), b.ints([step])]);
  shape.forEach((n, a) => {
    const lo = begin[a]!;
    const hi = end[a]!;
    if (!lo && !hi) return;
    const parts: Sym[] = [];
    if (mode === 'reflect') {
      // x[lo], ..., x[1] before; x[n-2], ..., x[n-1-hi] after (a stop before index 0 is written as -n-1).
      if (lo) parts.push(slice(y, a, lo, 0, -1));
      parts.push(y);
      if (hi) parts.push(slice(y, a, n - 2, n - 2 - hi < 0 ? -n - 1 : n - 2 - hi, -1));
    } else {
      const first = slice(y, a, 0, 1, 1);
      const last = slice(y, a, n - 1, n, 1);
      for (let k = 0; k < lo; k++) parts.push(first);
      parts.push(y);
      for (let k = 0; k < hi; k++) parts.push(last);
    }
    y = b.op1('Concat', parts, { axis: a });
  });
  return y;
}

// ---- Dropout ---------------------------------------------------------------------------------------------

defineOp('Dropout', {
  nondiff: [1, 2],
  infer: (c) => {
    const x = c.inputs[0]!;
    return [{ dtype: x.dtype, shape: [...x.shape] }, { dtype: 'bool', shape: [...x.shape] }];
  },
  grad: (c) => {
    const { b } = c;
    const dy = c.dy(0)!;
    const mode = c.node.inputs[2] ? c.constInts(2) : [0];
    if (mode && !mode[0]) return [dy]; // inference mode: the identity
    const ratio = c.node.inputs[1] ? c.constant(1) : tensor('float32', [], [c.float('ratio', 0.5)]);
    const scale = ratio
      ? b.like(1 / (1 - toNumbers(ratio)[0]!), dy)
      : b.div(b.like(1, dy), b.sub(b.like(1, dy), b.cast(c.x(1), dy.dtype)));
    const train = b.mul(b.mul(dy, b.cast(c.ensureOutput(1), dy.dtype)), scale);
    // training_mode known only at run time: choose between the two rules then.
    return [mode ? train : b.op1('Where', [c.x(2), train, dy])];
  },
});

// ---- shape-only ops --------------------------------------------------------------------------------------

defineOp('ConstantOfShape', {
  ...noGradient(1),
  infer: (c) => {
    const shape = constOrThrow(c, 0, 'ConstantOfShape shape');
    const v = c.node.attrs['value'];
    const dtype: DType = v && 't' in v ? v.t.dtype : 'float32';
    const fill = v && 't' in v ? toNumbers(v.t)[0]! : 0;
    return [withValue({ dtype, shape }, shape.length <= 1 ? new Array<number>(sizeOf(shape)).fill(fill) : undefined)];
  },
});

defineOp('Range', {
  ...noGradient(3),
  infer: (c) => {
    const dtype = c.inputs[0]!.dtype;
    const [s, l, d] = [0, 1, 2].map((i) => c.constInts(i)?.[0]);
    if (s === undefined || l === undefined || d === undefined) return [{ dtype, shape: ['?'] }];
    const n = Math.max(0, Math.ceil((l - s) / d));
    return [withValue({ dtype, shape: [n] }, Array.from({ length: n }, (_, k) => s + k * d))];
  },
});

defineOp('Tile', {
  nondiff: [1],
  infer: (c) => {
    const x = c.inputs[0]!;
    const reps = constOrThrow(c, 1, 'Tile repeats');
    return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (typeof d === 'number' ? d * reps[i]! : '?')) }];
  },
  grad: (c) => {
    // Output axis i is reps[i] copies of x's axis i: view it as [reps[i], d_i] and sum the copies.
    const xs = staticShape(c.x(0));
    const reps = c.constInts(1)!;
    const g = c.b.reshape(c.dy(0)!, xs.flatMap((d, i) => [reps[i]!, d]));
    return [c.b.reduceSum(g, xs.map((_, i) => 2 * i), false)];
  },
});
