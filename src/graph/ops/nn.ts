/**
 * Convolution, pooling and inference-mode BatchNormalization: type inference and gradient rules.
 * Each backward formulation is its own small function so a faster one can be swapped in by measurement.
 */
import { GraftError } from '../../errors.ts';
import type { GraphBuilder, Sym } from '../builder.ts';
import type { Dim } from '../ir.ts';
import { type DType, DTYPE_OF_ONNX, sizeOf, tensor } from '../tensor.ts';
import { type InferCtx, type TypeInfo, defineOp, shapeError, staticShape } from './registry.ts';
import { extremumGrad } from './reduce.ts';

/** Resolved window geometry per spatial axis: kernel, strides, dilations, begin/end pads. */
interface Window { k: number[]; s: number[]; d: number[]; pb: number[]; pe: number[] }

const range = (lo: number, hi: number): number[] => Array.from({ length: Math.max(0, hi - lo) }, (_, i) => lo + i);
const ext = (w: Window, i: number): number => (w.k[i]! - 1) * w.d[i]! + 1;

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

/** Whether depthwise convs over c channels will run as ORT's blocked (NCHWc) kernels (runtime/nchwc.ts). */
function blocked(b: GraphBuilder, c: number): boolean {
  const block = b.hints.nchwcBlock ?? 0;
  return block > 1 && c % block === 0;
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

/** A 1x1 kernel at stride 1 without padding: the conv is a matrix product over channels at each position. */
function isPointwise(win: Window, group: number): boolean {
  return group === 1 && win.k.every((k) => k === 1) && win.s.every((s) => s === 1) && [...win.pb, ...win.pe].every((p) => p === 0);
}

/** One weight per channel (W [C, 1, ...], group C): a depthwise conv with channel multiplier 1. */
const isDepthwise = (ws: number[], xs: number[], group: number): boolean => group > 1 && group === xs[1] && ws[0] === group && ws[1] === 1;

/**
 * Depthwise 2-D maps small enough (input positions x output positions) for the dense per-channel form: up to
 * 14x14 for the weight gradient, up to 14x14 to 7x7 for the input gradient (at 14x14 to 14x14 the dense
 * input gradient measured no faster than the rotated-kernel Conv).
 */
const denseFits = (xs: number[], ys: number[], max: number): boolean => xs.length === 4 && sizeOf(xs.slice(2)) * sizeOf(ys.slice(2)) <= max;
const DENSE_MAX_WEIGHT = 196 * 196;
const DENSE_MAX_INPUT = 128 * 128;

const shiftCache = new WeakMap<GraphBuilder, Map<string, Sym>>();

/**
 * The 0/1 matrices E[t] [Q, P] of a 2-D window: E[t][q, p] = 1 where output position q reads input position p
 * through kernel tap t. A depthwise conv is then y_c = A_c x_c with A_c = sum_t W[c, t] E[t], a dense
 * [Q, P] matrix per channel. One constant [T, Q*P] per geometry, shared by the input and weight gradients.
 */
function shiftMatrices(b: GraphBuilder, xs: number[], ys: number[], win: Window): Sym {
  const [h, w] = [xs[2]!, xs[3]!];
  const [ho, wo] = [ys[2]!, ys[3]!];
  const key = JSON.stringify([h, w, ho, wo, win]);
  let cache = shiftCache.get(b);
  if (!cache) shiftCache.set(b, (cache = new Map()));
  const hit = cache.get(key);
  if (hit) return hit;
  const [p, q, t] = [h * w, ho * wo, win.k[0]! * win.k[1]!];
  const e = new Float32Array(t * q * p);
  for (let i = 0; i < win.k[0]!; i++) {
    for (let j = 0; j < win.k[1]!; j++) {
      for (let oh = 0; oh < ho; oh++) {
        for (let ow = 0; ow < wo; ow++) {
          const r = oh * win.s[0]! + i * win.d[0]! - win.pb[0]!;
          const c = ow * win.s[1]! + j * win.d[1]! - win.pb[1]!;
          if (r >= 0 && r < h && c >= 0 && c < w) e[((i * win.k[1]! + j) * q + oh * wo + ow) * p + r * w + c] = 1;
        }
      }
    }
  }
  const s = b.init(b.graph.fresh('dw_shift'), tensor('float32', [t, q * p], e));
  cache.set(key, s);
  return s;
}

/** [N, C, ...] as [C, N, positions]: each channel's maps as the rows of one matrix. */
const channelRows = (b: GraphBuilder, t: Sym, [n, c]: number[]): Sym => b.transpose(b.reshape(t, [n!, c!, sizeOf(staticShape(t).slice(2))]), [1, 0, 2]);

/**
 * Conv input gradient. By measurement (MobileNetV2, batch 32, 1 thread, ORT 1.30), three cases beat the
 * general ConvTranspose: a pointwise conv's is a pointwise Conv of dY with W's channel axes swapped
 * (1.2x faster over the network's 1x1 layers); a depthwise conv's over small maps is dense, dX_c = dY_c A_c
 * with A_c = sum_t W[c, t] E[t] (1.6x faster at 7x7, 3x faster than the next form); over larger maps at
 * stride 1 it is the depthwise Conv of dY with the kernel rotated 180 degrees, padded by
 * (extent - 1 - pad) (1.3-1.7x faster than the grouped ConvTranspose). Everything else is a ConvTranspose
 * with the same W; output_padding restores X's size.
 */
function convInputGrad(b: GraphBuilder, dy: Sym, w: Sym, xs: number[], win: Window, group: number): Sym {
  const ws = staticShape(w);
  const r = win.k.length;
  const rest = range(2, 2 + r);
  if (isPointwise(win, group)) {
    return b.op1('Conv', [dy, b.transpose(w, [1, 0, ...rest])], { kernel_shape: win.k });
  }
  const ys = staticShape(dy);
  if (isDepthwise(ws, xs, group) && r === 2 && blocked(b, xs[1]!)) {
    const dx = depthwiseInputGradBlocked(b, dy, w, xs, win);
    if (dx) return dx;
  }
  if (isDepthwise(ws, xs, group) && denseFits(xs, ys, DENSE_MAX_INPUT)) {
    // dX_c = dY_c A_c: one batched MatMul [C, N, Q] x [C, Q, P].
    const [n, c] = [xs[0]!, xs[1]!];
    const a = b.reshape(b.matmul(b.reshape(w, [c, sizeOf(win.k)]), shiftMatrices(b, xs, ys, win)), [c, sizeOf(ys.slice(2)), sizeOf(xs.slice(2))]);
    return b.reshape(b.transpose(b.matmul(channelRows(b, dy, [n, c]), a), [1, 0, 2]), xs);
  }
  const fullPads = [...win.pb.map((p, i) => ext(win, i) - 1 - p), ...win.pe.map((p, i) => ext(win, i) - 1 - p)];
  if (isDepthwise(ws, xs, group) && win.s.every((s) => s === 1) && fullPads.every((p) => p >= 0)) {
    const rot = b.op1('Slice', [w, b.ints(rest.map(() => -1)), b.ints(win.k.map((k) => -k - 1)), b.ints(rest), b.ints(rest.map(() => -1))]);
    return b.op1('Conv', [dy, rot], { kernel_shape: win.k, dilations: win.d, pads: fullPads, group });
  }
  const outPad = xs.slice(2).map((n, i) => n - ((ys[i + 2]! - 1) * win.s[i]! + ext(win, i) - win.pb[i]! - win.pe[i]!));
  return b.op1('ConvTranspose', [dy, w], { ...convAttrs(win, group), output_padding: outPad });
}

/**
 * Depthwise input gradient where depthwise convs run as ORT's blocked kernels: the depthwise Conv of dY with
 * the kernel rotated 180 degrees, at stride s over dY with s - 1 zeros inserted after each element (the
 * transposed conv written as a plain one). null where that would need a negative end pad.
 */
function depthwiseInputGradBlocked(b: GraphBuilder, dy: Sym, w: Sym, xs: number[], win: Window): Sym | null {
  const [n, c, ho, wo] = staticShape(dy) as [number, number, number, number];
  const [s0, s1] = [win.s[0]!, win.s[1]!];
  const up = s0 === 1 && s1 === 1 ? dy : b.reshape(b.op1('Pad', [b.reshape(dy, [n, c, ho, 1, wo, 1]), b.ints([0, 0, 0, 0, 0, 0, 0, 0, 0, s0 - 1, 0, s1 - 1])]), [n, c, ho * s0, wo * s1]);
  const upSp = [ho * s0, wo * s1];
  const pb = win.pb.map((p, i) => ext(win, i) - 1 - p);
  const pe = pb.map((p, i) => xs[i + 2]! - upSp[i]! - p + ext(win, i) - 1);
  if ([...pb, ...pe].some((p) => p < 0)) return null;
  const rest = [2, 3];
  const rot = b.op1('Slice', [w, b.ints([-1, -1]), b.ints(win.k.map((k) => -k - 1)), b.ints(rest), b.ints([-1, -1])]);
  return b.op1('Conv', [up, rot], { kernel_shape: win.k, dilations: win.d, pads: [...pb, ...pe], group: c });
}

/**
 * Depthwise weight gradient where depthwise convs run as ORT's blocked kernels: every (example, channel) map
 * of X correlated with its own map of dY, as one depthwise Conv over N*C channels whose kernels are dY
 * (strides and dilations swapped), then summed over the batch. 5-10x faster than the other forms over
 * MobileNetV2's depthwise layers at batch 32 (measured, 2 threads).
 */
function depthwiseWeightGradBlocked(b: GraphBuilder, x: Sym, dy: Sym, win: Window): Sym {
  const [n, c, ho, wo] = staticShape(dy) as [number, number, number, number];
  const xs = staticShape(x);
  const g = b.op1('Conv', [b.reshape(x, [1, n * c, ...xs.slice(2)]), b.reshape(dy, [n * c, 1, ho, wo])], {
    group: n * c, kernel_shape: [ho, wo], strides: win.d, dilations: win.s, pads: padsAttr(win),
  });
  const k = staticShape(g).slice(2);
  return cropTo(b, b.reshape(b.reduceSum(b.reshape(g, [n, c, ...k]), [0], false), [c, 1, ...k]), win.k);
}

/**
 * Pointwise conv weight gradient, dW[m, c] = sum_n,p dY[n, m, p] X[n, c, p], as matrix products (4x
 * faster than the general Conv-based rule over MobileNetV2's 1x1 layers). Over large maps, one product per example, [N, M, P] x [N, P, C]
 * (the smaller of X and dY transposed), summed over N; over small maps (under 128 positions, where those
 * products are thin), one Gemm over all N*P positions with both operands moved channel-first.
 */
function pointwiseWeightGrad(b: GraphBuilder, x: Sym, dy: Sym, ws: number[]): Sym {
  const xs = staticShape(x);
  const [n, c] = [xs[0]!, xs[1]!];
  const m = ws[0]!;
  const p = sizeOf(xs.slice(2));
  const x3 = b.reshape(x, [n, c, p]);
  const dy3 = b.reshape(dy, [n, m, p]);
  let g: Sym;
  if (p >= 128) {
    g = c <= m
      ? b.reduceSum(b.matmul(dy3, b.transpose(x3, [0, 2, 1])), [0], false)
      : b.transpose(b.reduceSum(b.matmul(x3, b.transpose(dy3, [0, 2, 1])), [0], false), [1, 0]);
  } else {
    const flat = (t: Sym, ch: number) => b.reshape(b.transpose(t, [1, 0, 2]), [ch, n * p]);
    g = b.op1('Gemm', [flat(dy3, m), flat(x3, c)], { transB: 1 });
  }
  return b.reshape(g, ws);
}

/**
 * Depthwise 2-D conv weight gradient, dW[c, i, j] = sum_n,h,w dY[n, c, h, w] Xpad[n, c, h*s + i*d, w*s + j*d], in
 * the two cases where it beats the general rule (a grouped Conv over N*C channels, which ORT 1.30 runs as an
 * im2col of the whole map per channel with a 3-element inner loop), by measurement on MobileNetV2's depthwise
 * layers (batch 32), or null:
 * - small maps (input x output positions <= 196^2): dense, dW[c, t] = sum E[t] * (dY_c^T X_c), one batched
 *   MatMul and one Gemm (2x faster at 14x14 and 7x7);
 * - stride 1 over larger maps: channel-first [C, N*H*W], one Slice per kernel tap and the tap's dot with dY
 *   as a batched MatMul [C, 1, K] x [C, K, 1] (1.6x faster on one thread, 1.3x on two).
 * Strided large maps stay with the general rule: nine strided taps in channels-last layout were 1.3x faster
 * on one thread but 1.5x slower on two (Slice and Transpose are single-threaded in ORT).
 */
function depthwiseWeightGrad(b: GraphBuilder, x: Sym, dy: Sym, ws: number[], win: Window): Sym | null {
  const [n, c, ho, wo] = staticShape(dy) as [number, number, number, number];
  const xs = staticShape(x);
  if (blocked(b, c)) return depthwiseWeightGradBlocked(b, x, dy, win);
  if (denseFits(xs, staticShape(dy), DENSE_MAX_WEIGHT)) {
    // dW[c, t] = sum_q,p E[t][q, p] (dY_c^T X_c)[q, p]: a batched MatMul [C, Q, N] x [C, N, P], then one Gemm.
    const g = b.matmul(b.transpose(channelRows(b, dy, [n, c]), [0, 2, 1]), channelRows(b, x, [n, c]));
    const e = shiftMatrices(b, xs, staticShape(dy), win);
    return b.reshape(b.op1('Gemm', [b.reshape(g, [c, ho * wo * sizeOf(xs.slice(2))]), e], { transB: 1 }), ws);
  }
  if (win.s.some((s) => s !== 1) || ho * wo < 196) return null;
  let xt = b.transpose(x, [1, 0, 2, 3]); // [C, N, H, W]
  if ([...win.pb, ...win.pe].some((p) => p > 0)) xt = b.op1('Pad', [xt, b.ints([0, 0, win.pb[0]!, win.pb[1]!, 0, 0, win.pe[0]!, win.pe[1]!])]);
  const k = n * ho * wo;
  const dyt = b.reshape(b.transpose(dy, [1, 0, 2, 3]), [c, 1, k]);
  const cols: Sym[] = [];
  for (let i = 0; i < win.k[0]!; i++) {
    for (let j = 0; j < win.k[1]!; j++) {
      const start = [i * win.d[0]!, j * win.d[1]!];
      const tap = b.op1('Slice', [xt, b.ints(start), b.ints([start[0]! + ho, start[1]! + wo]), b.ints([2, 3])]);
      cols.push(b.reshape(b.matmul(dyt, b.transpose(b.reshape(tap, [c, 1, k]), [0, 2, 1])), [c, 1]));
    }
  }
  return b.reshape(b.op1('Concat', cols, { axis: 1 }), ws);
}

/**
 * Conv weight gradient: dW[m, c, i] = sum_n,o dY[n, m, o] X[n, c, o*s + i*d]. That is a Conv of X (channels
 * to the batch axis, batch to channels, per group) with dY as the kernel, strides and dilations swapped.
 * It may come out larger than the kernel when the last rows of X were never read; those are cut off.
 */
function convWeightGrad(b: GraphBuilder, x: Sym, dy: Sym, kernel: number[], win: Window, group: number): Sym {
  const xs = staticShape(x);
  const ys = staticShape(dy);
  const ws = [ys[1]!, xs[1]! / group, ...kernel];
  if (isPointwise(win, group)) return pointwiseWeightGrad(b, x, dy, ws);
  const dw = xs.length === 4 && isDepthwise(ws, xs, group) ? depthwiseWeightGrad(b, x, dy, ws, win) : null;
  if (dw) return dw;
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
    // Training mode: batch statistics, and the running statistics as outputs; differentiated through the same
    // computation in primitive ops (ReduceMean over every axis but the channel's).
    if (c.int('training_mode', 0)) return c.vjp((sb, ins) => bnTraining(sb, ins, c.float('epsilon', 1e-5), c.float('momentum', 0.9)));
    const { b } = c;
    const x = c.x(0);
    const xs = staticShape(x);
    const perC = (s: Sym) => (xs.length > 2 ? b.reshape(s, [xs[1]!, ...new Array<number>(xs.length - 2).fill(1)]) : s);
    const dy = c.dy(0)!;
    const inv = b.op1('Reciprocal', [b.sqrt(b.add(c.x(4), b.like(c.float('epsilon', 1e-5), c.x(4))))]);
    // Per-channel sums in two stages, the contiguous spatial axes first, then the batch (1.2x faster than one
    // ReduceSum over [0, 2, ...]). The scale gradient is (sum dY*X - mean * sum dY) / sqrt(var + eps), which
    // skips the full-size X - mean (1.7x faster with the two stages over MobileNetV2's shapes). float32 loses
    // about eps * |mean| / std to the cancellation: 7e-7 relative at |mean| = 10 std (MobileNetV2's worst is 22).
    const sum = (t: Sym) => (xs.length > 2 ? b.reduceSum(b.reduceSum(t, range(2, xs.length), false), [0], false) : b.reduceSum(t, [0], false));
    const dBias = c.needs(1) || c.needs(2) ? sum(dy) : null;
    return [
      c.needs(0) ? b.mul(dy, perC(b.mul(c.x(1), inv))) : null,
      c.needs(1) ? b.mul(b.sub(sum(b.mul(dy, x)), b.mul(c.x(3), dBias!)), inv) : null,
      c.needs(2) ? dBias : null,
      null,
      null,
    ];
  },
});

/** BatchNormalization with training_mode = 1 in primitive ops: [Y, running_mean, running_var] (ONNX's biased batch variance). */
function bnTraining(b: GraphBuilder, ins: (Sym | null)[], eps: number, momentum: number): Sym[] {
  const [x, scale, bias, mean, vr] = ins as Sym[];
  const xs = staticShape(x!);
  const axes = [0, ...range(2, xs.length)];
  const perC = (s: Sym) => (xs.length > 2 ? b.reshape(s, [xs[1]!, ...new Array<number>(xs.length - 2).fill(1)]) : s);
  const mu = b.reduceMean(x!, axes, true);
  const d = b.sub(x!, mu);
  const v = b.reduceMean(b.mul(d, d), axes, true);
  const y = b.add(b.mul(b.div(d, b.sqrt(b.add(v, b.like(eps, v)))), perC(scale!)), perC(bias!));
  const run = (old: Sym, cur: Sym) => b.add(b.mul(old, b.like(momentum, old)), b.mul(b.reshape(cur, [xs[1]!]), b.like(1 - momentum, old)));
  return [y, run(mean!, mu), run(vr!, v)];
}

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
defineOp('GlobalMaxPool', {
  infer: globalInfer,
  grad: (c) => {
    const xs = staticShape(c.x(0));
    const axes = xs.slice(2).map((_, i) => i + 2);
    return [extremumGrad(c.b, c.x(0), c.y(0), c.dy(0)!, xs.map((d, i) => (i < 2 ? d : 1)), axes)];
  },
});

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
  if (inSp.every((n, i) => win.s[i] === win.k[i] && win.d[i] === 1 && win.pb[i] === 0 && win.pe[i] === 0 && ys[i]! * win.k[i]! === n)) {
    // Windows that tile the input exactly (e.g. Keras' final 7x7 pool): each input gets dY / window size,
    // spread by Expand (MobileNetV2's 7x7 pool: 20 ms as a depthwise ConvTranspose of ones at batch 32).
    const [n, ch] = [xs[0]!, xs[1]!];
    // Scaled as one flat axis: ORT 1.30 is ~50x slower multiplying a tensor whose last axis is 1 by a scalar.
    const g = b.mul(b.reshape(dy, [n * ch * sizeOf(ys)]), b.like(1 / sizeOf(win.k), dy));
    const spread = b.expand(b.reshape(g, [n, ch, ...ys.flatMap((o) => [o, 1])]), [n, ch, ...ys.flatMap((o, i) => [o, win.k[i]!])]);
    return b.reshape(spread, xs);
  }
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
    // With storage_order = 1 the node's own indices are column-major: a twin with row-major ones is asked for.
    if (c.int('storage_order', 0) !== 0) {
      const attrs = Object.fromEntries(Object.entries(c.node.attrs).filter(([k]) => k !== 'storage_order'));
      const twin = c.b.graph.addNode('MaxPool', [c.node.inputs[0]!], [c.b.graph.fresh(`${c.node.name}_y`), c.b.graph.fresh(`${c.node.name}_rowmajor_indices`)], attrs, c.b.graph.fresh(`${c.node.name}_rowmajor`));
      c.b.inferNode(twin);
      return [maxPoolGrad(c.b, c.dy(0)!, c.b.sym(twin.outputs[1]!), staticShape(c.x(0)))];
    }
    return [maxPoolGrad(c.b, c.dy(0)!, c.ensureOutput(1), staticShape(c.x(0)))];
  },
});

// ---- inference only: LRN, MeanVarianceNormalization, GridSample, quantization, signal windows ----------------

const sameType = (c: InferCtx): TypeInfo[] => [{ dtype: c.inputs[0]!.dtype, shape: [...c.inputs[0]!.shape] }];
defineOp('LRN', {
  infer: sameType,
  // y = x / (bias + alpha / size * sum of x^2 over the `size` channels around c)^beta, the channel window
  // summed from shifted slices of the zero-padded squares; differentiated in those primitive ops.
  grad: (c) => c.vjp((b, [x]) => {
    const size = c.int('size', 1);
    const xs = staticShape(x!);
    const lo = Math.floor((size - 1) / 2);
    const hi = Math.ceil((size - 1) / 2);
    const pads = xs.map((_, i) => (i === 1 ? lo : 0)).concat(xs.map((_, i) => (i === 1 ? hi : 0)));
    const sq = b.op1('Pad', [b.mul(x!, x!), b.ints(pads)]);
    let sum: Sym | null = null;
    for (let k = 0; k < size; k++) {
      const part = b.op1('Slice', [sq, b.ints([k]), b.ints([k + xs[1]!]), b.ints([1])]);
      sum = sum ? b.add(sum, part) : part;
    }
    const scale = b.add(b.like(c.float('bias', 1), x!), b.mul(sum!, b.like(c.float('alpha', 1e-4) / size, x!)));
    return [b.div(x!, b.op1('Pow', [scale, b.like(c.float('beta', 0.75), x!)]))];
  }),
});
defineOp('MeanVarianceNormalization', {
  infer: sameType,
  // ONNX's function body, (X - mean) / (sqrt(var) + 1e-9) over `axes`, differentiated in primitive ops.
  grad: (c) => c.vjp((b, [x]) => {
    const axes = c.ints('axes', [0, 2, 3]);
    const d = b.sub(x!, b.reduceMean(x!, axes, true));
    const sd = b.sqrt(b.reduceMean(b.mul(d, d), axes, true));
    return [b.div(d, b.add(sd, b.like(1e-9, sd)))];
  }),
});
defineOp('GridSample', {
  infer: (c) => {
    const x = c.inputs[0]!.shape;
    const grid = c.inputs[1]!.shape;
    return [{ dtype: c.inputs[0]!.dtype, shape: [x[0]!, x[1]!, ...grid.slice(1, -1)] }];
  },
  // 2-D bilinear, nearest or bicubic sampling with zeros, border or reflection padding, written as GatherElements of
  // the flattened input with their weights: gradients reach the input and the grid (a spatial transformer).
  grad: (c) => c.vjp((b, [x, grid]) => gridSample(b, x!, grid!, c.str('mode', 'bilinear'), c.str('padding_mode', 'zeros'), c.int('align_corners', 0), c.node.name)),
});

function gridSample(b: GraphBuilder, x: Sym, grid: Sym, mode: string, padding: string, align: number, name: string): Sym[] {
  const [N, C, H, W] = staticShape(x) as [number, number, number, number];
  const gs = staticShape(grid);
  // (Bicubic pads each of its 16 taps, not the sampling point: only its zeros padding is written here.)
  const cubic = mode === 'bicubic' || mode === 'cubic';
  if (gs.length !== 4 || !['bilinear', 'linear', 'nearest', 'bicubic', 'cubic'].includes(mode) || !['zeros', 'border', 'reflection'].includes(padding) || (cubic && padding !== 'zeros')) {
    throw new GraftError('E_GRAD_UNSUPPORTED', `op GridSample (node "${name}") has no gradient with mode ${mode}, padding ${padding} (or not 2-D)`,
      'GridSample gradients need a 4-D input and a known mode and padding; or freeze the layers before this node.', { op: 'GridSample', node: name });
  }
  const [, Ho, Wo] = gs as [number, number, number, number];
  const P = Ho * Wo;
  const like = (v: number) => b.like(v, x);
  const coord = (k: number, size: number) => {
    const g = b.reshape(b.op1('Slice', [grid, b.ints([k]), b.ints([k + 1]), b.ints([3])]), [N, 1, P]);
    // ONNX's unnormalisation: align_corners maps -1 and 1 to the centres of the corner pixels, else to their edges.
    const u = align ? b.mul(b.add(g, like(1)), like((size - 1) / 2)) : b.div(b.sub(b.mul(b.add(g, like(1)), like(size)), like(1)), like(2));
    if (padding === 'zeros') return u;
    if (padding === 'border') return b.op1('Clip', [u, like(0), like(size - 1)]);
    // reflection: mirror u about the borders (pixel centres with align_corners, else pixel edges), then clip.
    const lo = align ? 0 : -0.5;
    const span = align ? size - 1 : size;
    if (span <= 0) return b.mul(u, like(0));
    const t = b.op1('Abs', [b.sub(u, like(lo))]);
    const flips = b.op1('Floor', [b.div(t, like(span))]);
    const extra = b.sub(t, b.mul(flips, like(span)));
    const odd = b.op1('Equal', [b.op1('Mod', [flips, like(2)], { fmod: 1 }), like(1)]);
    const r = b.op1('Where', [odd, b.sub(like(span + lo), extra), b.add(extra, like(lo))]);
    return b.op1('Clip', [r, like(0), like(size - 1)]);
  };
  const ix = coord(0, W);
  const iy = coord(1, H);
  const flat = b.reshape(x, [N, C, H * W]);
  const sample = (xc: Sym, yc: Sym, w: Sym | null): Sym => {
    const inside = [b.op1('GreaterOrEqual', [xc, like(0)]), b.op1('LessOrEqual', [xc, like(W - 1)]), b.op1('GreaterOrEqual', [yc, like(0)]), b.op1('LessOrEqual', [yc, like(H - 1)])]
      .reduce((a, t) => b.op1('And', [a, t]));
    const idx = b.cast(b.add(b.mul(b.op1('Clip', [yc, like(0), like(H - 1)]), like(W)), b.op1('Clip', [xc, like(0), like(W - 1)])), 'int64');
    const v = b.op1('GatherElements', [flat, b.expand(idx, [N, C, P])], { axis: 2 });
    const m = b.cast(inside, x.dtype);
    return b.mul(v, w ? b.mul(w, m) : m);
  };
  let y: Sym;
  if (mode === 'nearest') y = sample(b.op1('Round', [ix]), b.op1('Round', [iy]), null);
  else if (cubic) {
    // 4 x 4 taps around floor(u), Keys' kernel with A = -0.75 (ONNX's and PyTorch's), zeros outside.
    const A = -0.75;
    const taps = (u: Sym) => {
      const f = b.op1('Floor', [u]);
      const t = b.sub(u, f);
      const near = (z: Sym) => b.add(b.mul(b.mul(b.sub(b.mul(z, like(A + 2)), like(A + 3)), z), z), like(1));
      const far = (z: Sym) => b.sub(b.mul(b.add(b.mul(b.sub(b.mul(z, like(A)), like(5 * A)), z), like(8 * A)), z), like(4 * A));
      const one = like(1);
      return [
        { at: b.sub(f, one), w: far(b.add(t, one)) }, { at: f, w: near(t) },
        { at: b.add(f, one), w: near(b.sub(one, t)) }, { at: b.add(f, like(2)), w: far(b.sub(like(2), t)) },
      ];
    };
    const tx = taps(ix);
    const ty = taps(iy);
    y = ty.flatMap((py) => tx.map((px) => sample(px.at, py.at, b.mul(px.w, py.w)))).reduce((a, t) => b.add(a, t));
  } else {
    const x0 = b.op1('Floor', [ix]);
    const y0 = b.op1('Floor', [iy]);
    const x1 = b.add(x0, like(1));
    const y1 = b.add(y0, like(1));
    const wx1 = b.sub(ix, x0);
    const wy1 = b.sub(iy, y0);
    const wx0 = b.sub(like(1), wx1);
    const wy0 = b.sub(like(1), wy1);
    y = [sample(x0, y0, b.mul(wx0, wy0)), sample(x1, y0, b.mul(wx1, wy0)), sample(x0, y1, b.mul(wx0, wy1)), sample(x1, y1, b.mul(wx1, wy1))]
      .reduce((a, t) => b.add(a, t));
  }
  return [b.reshape(y, [N, C, Ho, Wo])];
}
defineOp('QuantizeLinear', {
  nondiff: [0, 1, 2],
  infer: (c) => [{ dtype: c.inputs[2]?.dtype ?? 'uint8', shape: [...c.inputs[0]!.shape] }],
  grad: () => [],
});
defineOp('DequantizeLinear', {
  nondiff: [0, 1, 2],
  infer: (c) => [{ dtype: c.inputs[1]!.dtype, shape: [...c.inputs[0]!.shape] }],
  grad: () => [],
});
const WINDOW_DTYPES = DTYPE_OF_ONNX;
for (const op of ['BlackmanWindow', 'HammingWindow', 'HannWindow']) {
  defineOp(op, {
    nondiff: [0],
    grad: () => [],
    infer: (c) => {
      const n = c.constInts(0)?.[0];
      return [{ dtype: WINDOW_DTYPES[c.int('output_datatype', 1)] ?? 'float32', shape: [n ?? '?'] }];
    },
  });
}

