/**
 * Convolution, pooling and inference-mode BatchNormalization: type inference and gradient rules.
 * Each backward formulation is its own small function so a faster one can be swapped in by measurement.
 */
import { GraftError } from '../../errors.ts';
import { type GraphBuilder, type Sym, staticShape } from '../builder.ts';
import type { Dim } from '../ir.ts';
import { type DType, sizeOf, tensor } from '../tensor.ts';
import { type GradCtx, type InferCtx, type TypeInfo, defineOp, shapeError } from './registry.ts';

/** Resolved window geometry per spatial axis: kernel, strides, dilations, begin/end pads. */
interface Window { k: number[]; s: number[]; d: number[]; pb: number[]; pe: number[] }

const range = (lo: number, hi: number): number[] => Array.from({ length: Math.max(0, hi - lo) }, (_, i) => lo + i);
const ext = (w: Window, i: number): number => (w.k[i]! - 1) * w.d[i]! + 1;

function unsupported(c: GradCtx, why: string): GraftError {
  return new GraftError('E_GRAD_UNSUPPORTED', `op ${c.node.op} (node "${c.node.name}") has no gradient ${why}`,
    'Freeze the layers up to this node (train from a later cut), or re-export the model without this option.',
    { op: c.node.op, node: c.node.name });
}

/** Window geometry of Conv and the pools; auto_pad SAME_* needs static input sizes to place its pads. */
function window(c: InferCtx, inSp: Dim[], kernel: number[]): Window {
  const r = inSp.length;
  const k = kernel;
  const s = c.ints('strides', new Array<number>(r).fill(1));
  const d = c.ints('dilations', new Array<number>(r).fill(1));
  const auto = c.str('auto_pad', 'NOTSET');
  const pads = c.ints('pads', new Array<number>(2 * r).fill(0));
  if (k.length !== r || s.length !== r || d.length !== r || (auto === 'NOTSET' && pads.length !== 2 * r)) {
    throw shapeError(c.node, `kernel_shape/strides/dilations/pads do not match ${r} spatial axes`);
  }
  const w: Window = { k, s, d, pb: pads.slice(0, r), pe: pads.slice(r) };
  if (auto === 'VALID') [w.pb, w.pe] = [new Array<number>(r).fill(0), new Array<number>(r).fill(0)];
  else if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
    inSp.forEach((n, i) => {
      const total = typeof n === 'number' ? Math.max(0, (Math.ceil(n / s[i]!) - 1) * s[i]! + ext(w, i) - n) : 0;
      const small = Math.floor(total / 2);
      w.pb[i] = auto === 'SAME_UPPER' ? small : total - small; // the odd pad goes at the end for SAME_UPPER
      w.pe[i] = total - w.pb[i]!;
    });
  }
  return w;
}

/** Output sizes of a sliding window; ceil mode drops a last window that would start in the end padding. */
function windowOut(inSp: Dim[], w: Window, ceil = false): Dim[] {
  return inSp.map((n, i) => {
    if (typeof n !== 'number') return '?';
    const span = n + w.pb[i]! + w.pe[i]! - ext(w, i);
    let o = (ceil ? Math.ceil(span / w.s[i]!) : Math.floor(span / w.s[i]!)) + 1;
    if (ceil && (o - 1) * w.s[i]! >= n + w.pb[i]!) o--;
    return o;
  });
}

const padsAttr = (w: Window): number[] => [...w.pb, ...w.pe];
const convAttrs = (w: Window, group: number) => ({ kernel_shape: w.k, strides: w.s, dilations: w.d, pads: padsAttr(w), group });

function zeros(b: GraphBuilder, shape: number[], dtype: DType): Sym {
  return b.op1('ConstantOfShape', [b.ints(shape)], { value: tensor(dtype, [1], [0]) });
}

/** Cuts trailing spatial positions so that `g` has spatial sizes `want`. */
function cropTo(b: GraphBuilder, g: Sym, want: number[]): Sym {
  const have = staticShape(g).slice(2);
  if (have.every((h, i) => h === want[i])) return g;
  const axes = range(2, 2 + want.length);
  return b.op1('Slice', [g, b.ints(want.map(() => 0)), b.ints(want), b.ints(axes)]);
}

/** Bias gradient: dY summed over batch and spatial axes. */
function biasGrad(b: GraphBuilder, dy: Sym): Sym {
  return b.reduceSum(dy, [0, ...range(2, dy.shape.length)], false);
}

// ---- Conv ---------------------------------------------------------------------------------------------

function convWindow(c: InferCtx, xs: Dim[], ws: Dim[]): Window {
  const kernel = c.ints('kernel_shape', ws.slice(2).map(Number));
  return window(c, xs.slice(2), kernel);
}

/** Conv input gradient: ConvTranspose of dY with the same W; output_padding restores X's size. */
function convInputGrad(b: GraphBuilder, dy: Sym, w: Sym, xs: number[], win: Window, group: number): Sym {
  const ys = staticShape(dy).slice(2);
  const outPad = xs.slice(2).map((n, i) => n - ((ys[i]! - 1) * win.s[i]! + ext(win, i) - win.pb[i]! - win.pe[i]!));
  return b.op1('ConvTranspose', [dy, w], { ...convAttrs(win, group), output_padding: outPad });
}

/**
 * Conv weight gradient: dW[m, c, i] = sum_n,o dY[n, m, o] X[n, c, o*s + i*d]. That is a Conv of X (channels
 * to the batch axis, batch to channels, per group) with dY as the kernel, strides and dilations swapped.
 * It may come out larger than the kernel when the last rows of X were never read; those are cut off.
 */
function convWeightGrad(b: GraphBuilder, x: Sym, dy: Sym, kernel: number[], win: Window, group: number): Sym {
  const xs = staticShape(x);
  const ys = staticShape(dy);
  const [n, ch] = [xs[0]!, xs[1]!];
  const cg = ch / group;
  const sp = xs.slice(2);
  const rest = range(2, xs.length);
  // [N, g*Cg, ...] -> [Cg, g*N, ...]: group gi's batch rows sit at channels gi*N .. gi*N+N-1.
  const xt = group === 1
    ? b.transpose(x, [1, 0, ...rest])
    : b.reshape(b.transpose(b.reshape(x, [n, group, cg, ...sp]), [2, 1, 0, ...range(3, xs.length + 1)]), [cg, group * n, ...sp]);
  const dyt = b.transpose(dy, [1, 0, ...rest]); // [M, N, ...out]
  const g = b.op1('Conv', [xt, dyt], {
    kernel_shape: ys.slice(2), strides: win.d, dilations: win.s, pads: padsAttr(win), group,
  }); // [Cg, M, k' ...]
  return cropTo(b, b.transpose(g, [1, 0, ...rest]), kernel);
}

defineOp('Conv', {
  infer: (c) => {
    const x = c.inputs[0]!;
    const w = c.inputs[1]!;
    const group = c.int('group', 1);
    const [cin, wc] = [x.shape[1], w.shape[1]];
    if (typeof cin === 'number' && typeof wc === 'number' && cin !== wc * group) {
      throw shapeError(c.node, `input has ${cin} channels, weight [${w.shape}] with group ${group} expects ${Number(wc) * group}`);
    }
    const win = convWindow(c, x.shape, w.shape);
    return [{ dtype: x.dtype, shape: [x.shape[0]!, w.shape[0]!, ...windowOut(x.shape.slice(2), win)] }];
  },
  grad: (c) => {
    const { b } = c;
    const xs = staticShape(c.x(0));
    const ws = staticShape(c.x(1));
    const win = convWindow(c, xs, ws);
    const group = c.int('group', 1);
    const dy = c.dy(0)!;
    return [
      c.needs(0) ? convInputGrad(b, dy, c.x(1), xs, win, group) : null,
      c.needs(1) ? convWeightGrad(b, c.x(0), dy, ws.slice(2), win, group) : null,
      c.node.inputs[2] && c.needs(2) ? biasGrad(b, dy) : null,
    ];
  },
});

// ---- ConvTranspose --------------------------------------------------------------------------------------

/** ConvTranspose geometry: pads (from attrs, auto_pad or output_shape, as ONNX Runtime places them) and output size. */
function convTWindow(c: InferCtx, xs: Dim[], ws: Dim[]): { win: Window; outPad: number[]; out: Dim[] } {
  const inSp = xs.slice(2);
  const r = inSp.length;
  const kernel = c.ints('kernel_shape', ws.slice(2).map(Number));
  const auto = c.str('auto_pad', 'NOTSET');
  const win = window({ ...c, str: (n, d) => (n === 'auto_pad' ? 'NOTSET' : c.str(n, d)) }, inSp, kernel);
  if (auto === 'VALID') [win.pb, win.pe] = [new Array<number>(r).fill(0), new Array<number>(r).fill(0)];
  const outPad = c.ints('output_padding', new Array<number>(r).fill(0));
  const full = (i: number, n: number) => win.s[i]! * (n - 1) + outPad[i]! + ext(win, i);
  const given = c.ints('output_shape', []).slice(-r);
  const out: Dim[] = inSp.map((n, i) => {
    if (typeof n !== 'number') return '?';
    const want = given.length ? given[i]! : auto === 'SAME_UPPER' || auto === 'SAME_LOWER' ? n * win.s[i]! : undefined;
    if (want === undefined) return full(i, n) - win.pb[i]! - win.pe[i]!;
    const total = Math.max(0, full(i, n) - want);
    const half = Math.floor(total / 2);
    // As the spec (and ONNX Runtime) place it: the odd pad at the end for SAME_UPPER, at the start otherwise.
    win.pb[i] = auto === 'SAME_UPPER' ? half : total - half;
    win.pe[i] = total - win.pb[i]!;
    return want;
  });
  return { win, outPad, out };
}

/** ConvTranspose input gradient: the Conv it is the adjoint of, with the same W (X's size, as output_padding < stride). */
function convTInputGrad(b: GraphBuilder, dy: Sym, w: Sym, win: Window, group: number): Sym {
  return b.op1('Conv', [dy, w], convAttrs(win, group));
}

defineOp('ConvTranspose', {
  infer: (c) => {
    const x = c.inputs[0]!;
    const w = c.inputs[1]!;
    const group = c.int('group', 1);
    if (typeof x.shape[1] === 'number' && typeof w.shape[0] === 'number' && x.shape[1] !== w.shape[0]) {
      throw shapeError(c.node, `input has ${x.shape[1]} channels, weight [${w.shape}] expects ${w.shape[0]}`);
    }
    const m = typeof w.shape[1] === 'number' ? w.shape[1] * group : '?';
    return [{ dtype: x.dtype, shape: [x.shape[0]!, m, ...convTWindow(c, x.shape, w.shape).out] }];
  },
  grad: (c) => {
    const { b } = c;
    const xs = staticShape(c.x(0));
    const ws = staticShape(c.x(1));
    const { win } = convTWindow(c, xs, ws);
    const group = c.int('group', 1);
    const dy = c.dy(0)!;
    // <dY, ConvT(X, W)> = <Conv(dY, W), X>: the weight gradient is Conv's, with dY as input and X as output gradient.
    return [
      c.needs(0) ? convTInputGrad(b, dy, c.x(1), win, group) : null,
      c.needs(1) ? convWeightGrad(b, dy, c.x(0), ws.slice(2), win, group) : null,
      c.node.inputs[2] && c.needs(2) ? biasGrad(b, dy) : null,
    ];
  },
});

// ---- BatchNormalization (inference mode) ------------------------------------------------------------------

defineOp('BatchNormalization', {
  nondiff: [3, 4], // frozen running statistics
  infer: (c) => {
    const x = c.inputs[0]!;
    const stat: TypeInfo = { dtype: c.inputs[3]?.dtype ?? x.dtype, shape: [x.shape[1]!] };
    return [{ dtype: x.dtype, shape: [...x.shape] }, stat, { ...stat }];
  },
  grad: (c) => {
    if (c.int('training_mode', 0)) throw unsupported(c, 'in training mode (batch statistics); export the model in eval mode');
    const { b } = c;
    const x = c.x(0);
    const xs = staticShape(x);
    const axes = [0, ...range(2, xs.length)];
    const perC = (s: Sym) => (xs.length > 2 ? b.reshape(s, [xs[1]!, ...new Array<number>(xs.length - 2).fill(1)]) : s);
    const dy = c.dy(0)!;
    const inv = b.op1('Reciprocal', [b.sqrt(b.add(c.x(4), b.like(c.float('epsilon', 1e-5), c.x(4))))]);
    return [
      c.needs(0) ? b.mul(dy, perC(b.mul(c.x(1), inv))) : null,
      c.needs(1) ? b.mul(b.reduceSum(b.mul(dy, b.sub(x, perC(c.x(3)))), axes, false), inv) : null,
      c.needs(2) ? b.reduceSum(dy, axes, false) : null,
      null,
      null,
    ];
  },
});

// ---- pooling ------------------------------------------------------------------------------------------------

const globalInfer = (c: InferCtx): TypeInfo[] => {
  const x = c.inputs[0]!;
  return [{ dtype: x.dtype, shape: [x.shape[0]!, x.shape[1]!, ...x.shape.slice(2).map(() => 1)] }];
};

defineOp('GlobalAveragePool', {
  infer: globalInfer,
  grad: (c) => {
    const xs = staticShape(c.x(0));
    const dy = c.dy(0)!;
    return [c.b.expand(c.b.mul(dy, c.b.like(1 / sizeOf(xs.slice(2)), dy)), xs)];
  },
});
defineOp('GlobalMaxPool', { infer: globalInfer });

function poolWindow(c: InferCtx, xs: Dim[]): Window {
  const kernel = c.ints('kernel_shape', []);
  if (!kernel.length) throw shapeError(c.node, 'kernel_shape is required');
  return window(c, xs.slice(2), kernel);
}

const poolOut = (c: InferCtx): Dim[] => {
  const x = c.inputs[0]!;
  return [x.shape[0]!, x.shape[1]!, ...windowOut(x.shape.slice(2), poolWindow(c, x.shape), c.int('ceil_mode', 0) === 1)];
};

/** 1 / (number of inputs each AveragePool window averages), per output position, as ONNX Runtime counts them. */
function inverseCounts(inSp: number[], outSp: number[], win: Window, includePad: boolean): number[] {
  const perAxis = inSp.map((n, i) => range(0, outSp[i]!).map((o) => {
    const lo = o * win.s[i]! - win.pb[i]!;
    const [min, max] = includePad ? [-win.pb[i]!, n + win.pe[i]!] : [0, n];
    return range(0, win.k[i]!).filter((j) => lo + j * win.d[i]! >= min && lo + j * win.d[i]! < max).length;
  }));
  let counts = [1];
  for (const a of perAxis) counts = counts.flatMap((v) => a.map((k) => v * k));
  return counts.map((v) => 1 / v);
}

/** AveragePool gradient: dY divided by each window's count, spread back by a depthwise ConvTranspose of ones. */
function avgPoolGrad(b: GraphBuilder, dy: Sym, xs: number[], win: Window, includePad: boolean): Sym {
  const inSp = xs.slice(2);
  const ys = staticShape(dy).slice(2);
  const inv = inverseCounts(inSp, ys, win, includePad);
  const scale = inv.every((v) => v === inv[0]) ? b.like(inv[0]!, dy) : b.constant(tensor(dy.dtype, ys, inv));
  const ch = xs[1]!;
  const ones = b.constant(tensor(dy.dtype, [ch, 1, ...win.k], new Array<number>(ch * sizeOf(win.k)).fill(1)));
  // Ceil mode can leave the last window hanging past the end padding: crop more at the end instead.
  const short = inSp.map((n, i) => n - ((ys[i]! - 1) * win.s[i]! + ext(win, i) - win.pb[i]! - win.pe[i]!));
  const w2: Window = { ...win, pe: win.pe.map((p, i) => p + Math.max(0, -short[i]!)) };
  return b.op1('ConvTranspose', [b.mul(dy, scale), ones], { ...convAttrs(w2, ch), output_padding: short.map((v) => Math.max(0, v)) });
}

defineOp('AveragePool', {
  infer: (c) => [{ dtype: c.inputs[0]!.dtype, shape: poolOut(c) }],
  grad: (c) => {
    const xs = staticShape(c.x(0));
    const win = poolWindow(c, xs);
    return [avgPoolGrad(c.b, c.dy(0)!, xs, win, c.int('count_include_pad', 0) === 1)];
  },
});

/** MaxPool gradient: dY scatter-added at the flat positions the Indices output names. */
function maxPoolGrad(b: GraphBuilder, dy: Sym, idx: Sym, xs: number[]): Sym {
  const n = sizeOf(xs);
  const m = sizeOf(staticShape(dy));
  const flat = b.op1('ScatterElements', [zeros(b, [n], dy.dtype), b.reshape(idx, [m]), b.reshape(dy, [m])], { axis: 0, reduction: 'add' });
  return b.reshape(flat, xs);
}

defineOp('MaxPool', {
  infer: (c) => {
    const shape = poolOut(c);
    return [{ dtype: c.inputs[0]!.dtype, shape }, { dtype: 'int64', shape: [...shape] }];
  },
  grad: (c) => {
    if (c.int('storage_order', 0) !== 0) throw unsupported(c, 'with storage_order=1');
    return [maxPoolGrad(c.b, c.dy(0)!, c.ensureOutput(1), staticShape(c.x(0)))];
  },
});
