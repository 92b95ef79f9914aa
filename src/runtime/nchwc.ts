/**
 * A lowering for ONNX Runtime's CPU provider: depthwise Convs whose weights are graph inputs (every
 * trainable conv, and the rotated-kernel convs of their input gradients) run as ORT's blocked-layout
 * (NCHWc) kernels, with the activations reordered in and out and the kernel reordered in the graph.
 *
 * ORT reorders a conv into NCHWc itself only when the weight is a constant, so a training graph, whose
 * weights are inputs, kept the plain NCHW depthwise kernel. The blocked kernel with both reorders was 2-4x
 * faster over MobileNetV2's depthwise shapes at batch 32 (measured, 2 threads, ORT 1.30). Results match
 * the plain kernel to float32 rounding (the same products, summed in another order).
 *
 * The block size (16 with AVX-512, 8 with AVX2) is read from ORT itself: ReorderInput pads 4 channels up to it.
 * Where ORT has no NCHWc kernels the graph is left as it is.
 */
import * as ort from 'onnxruntime-node';
import type { GraphBuilder } from '../graph/builder.ts';
import { Graph, type Node } from '../graph/ir.ts';
import { toAttr } from '../graph/ops/registry.ts';

const DOMAIN = 'com.microsoft.nchwc';
let probed: Promise<number> | undefined;

/** ORT's NCHWc channel block on this machine, or 0 where the blocked kernels are missing or turned off. */
export function nchwcBlock(): Promise<number> {
  if (process.env['GRAFT_NCHWC'] === '0') return Promise.resolve(0);
  probed ??= (async () => {
    const g = new Graph();
    g.extraOpsets.set(DOMAIN, 1);
    g.inputs.push({ name: 'x', dtype: 'float32', shape: [1, 4, 1, 1] });
    g.outputs.push({ name: 'y', dtype: 'float32', shape: null });
    g.addNode('ReorderInput', ['x'], ['y'], { channels_last: { i: 0 } }, 'probe', DOMAIN);
    try {
      const s = await ort.InferenceSession.create(g.toBytes(), { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
      const y = (await s.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 4, 1, 1]) }))['y']!;
      await s.release();
      const block = Number(y.dims[1]);
      return block > 1 ? block : 0;
    } catch {
      return 0;
    }
  })();
  return probed;
}

/**
 * Rewrites, in place, every float32 2-D depthwise Conv (group = channels, one filter per channel, channels
 * a multiple of the block) whose weight depends on a graph input: ReorderInput -> NCHWc Conv -> ReorderOutput,
 * the kernel [C, 1, kh, kw] reordered to ORT's [C/B, kh, kw, B] by Reshape and Transpose. Each input is
 * reordered once however many convs read it. Returns the number of convs rewritten.
 */
export function lowerDepthwiseConvs(b: GraphBuilder, block: number | undefined): number {
  if (!block || block <= 1) return 0;
  const g = b.graph;
  const producers = g.producers();
  // Tensors that change from run to run. A kernel computed from constants alone (a frozen conv with its
  // BatchNorm folded in) is folded by ORT, whose own NCHWc pass then reorders it once and keeps the frozen
  // layers blocked from one to the next, which is faster than reordering around each conv here.
  const dynamic = new Set(g.inputs.map((v) => v.name));
  for (const n of g.nodes) if (n.inputs.some((t) => dynamic.has(t))) for (const o of n.outputs) dynamic.add(o);
  const reordered = new Map<string, string>();
  const out: Node[] = [];
  let count = 0;
  const node = (op: string, inputs: string[], attrs: Record<string, number | number[]>, domain = ''): string => {
    const y = g.fresh(`nchwc_${op}`);
    out.push({ name: g.fresh(op), op, domain, inputs, outputs: [y], attrs: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, toAttr(k, v)])) });
    return y;
  };
  const dims = (name: string): number[] | null => {
    const s = b.has(name) ? b.sym(name) : null;
    return s && s.dtype === 'float32' && s.shape.length === 4 && s.shape.every((d) => typeof d === 'number') ? s.shape as number[] : null;
  };
  const reorder = (name: string, cache = reordered): string => {
    let r = cache.get(name);
    if (!r) cache.set(name, (r = node('ReorderInput', [name], { channels_last: 0 }, DOMAIN)));
    return r;
  };
  // The weight gradient reorders its X again rather than reuse the forward conv's blocked copy: kept from
  // the forward to the backward pass, those copies added ~0.5 GB at batch 32 (MobileNetV2, 1.3 GB of
  // resident memory with ORT's arena) for no measurable speed.
  const late = new Map<string, string>();
  // A [N, C, H, W] tensor seen as [1, N*C, H, W] or [N*C, 1, H, W] (the depthwise weight gradient's input and
  // kernels) has the same blocked bytes as the tensor itself when C is a multiple of the block: reorder the
  // original once and reshape, in place of reordering the view (or transposing it, for a kernel).
  const viewOfBlocked = (name: string): string | null => {
    const p = producers.get(name);
    const src = p?.op === 'Reshape' && p.domain === '' ? dims(p.inputs[0]!) : null;
    const shape = dims(name);
    if (!src || !shape || src[1]! % block !== 0) return null;
    const nc = src[0]! * src[1]!;
    const ok = shape[2] === src[2] && shape[3] === src[3] && ((shape[0] === 1 && shape[1] === nc) || (shape[0] === nc && shape[1] === 1));
    return ok ? node('Reshape', [reorder(p!.inputs[0]!, shape[0] === 1 ? late : reordered), b.ints(shape).name], {}) : null;
  };
  // dY with zeros inserted after each element (a strided depthwise conv's input gradient, graph/ops/nn.ts):
  // Reshape [N, C, h, 1, w, 1] -> Pad the unit axes at their ends -> Reshape [N, C, h*s0, w*s1]. In NCHW the
  // Pad moves one float at a time; on the blocked tensor it moves runs of a whole block (3.5x faster, measured).
  const zeroInsertedBlocked = (name: string): string | null => {
    const r1 = producers.get(name);
    const pad = r1?.op === 'Reshape' ? producers.get(r1.inputs[0]!) : undefined;
    const r0 = pad?.op === 'Pad' && pad.inputs.length === 2 ? producers.get(pad.inputs[0]!) : undefined;
    if (!r0 || r0.op !== 'Reshape' || !pad) return null;
    const src = dims(r0.inputs[0]!);
    const pads = b.valueOf(pad.inputs[1]!);
    const mid = b.has(pad.inputs[0]!) ? b.sym(pad.inputs[0]!).shape : [];
    if (!src || !pads || src[1]! % block !== 0 || mid.length !== 6) return null;
    const [n, c, h, w] = src as [number, number, number, number];
    const pv = Array.from(pads.data as ArrayLike<number | bigint>, Number);
    const ok = [n, c, h, 1, w, 1].every((d, i) => mid[i] === d) && pv.every((v, i) => v === 0 || i === 9 || i === 11);
    if (!ok) return null;
    const six = node('Reshape', [reorder(r0.inputs[0]!), b.ints([(n * c) / block, h, 1, w, 1, block]).name], {});
    const padded = node('Pad', [six, b.ints([0, 0, 0, 0, 0, 0, 0, 0, pv[9]!, 0, pv[11]!, 0]).name], {});
    return node('Reshape', [padded, b.ints(dims(name)!).name], {});
  };
  for (const n of g.nodes) {
    const [xn, wn, bn] = n.inputs;
    const xs = xn ? dims(xn) : null;
    const ws = wn ? dims(wn) : null;
    const group = n.attrs['group'];
    const autoPad = n.attrs['auto_pad'];
    const c = xs?.[1];
    const eligible = n.op === 'Conv' && n.domain === '' && xs && ws && c !== undefined && c % block === 0
      && group && 'i' in group && group.i === c && ws[0] === c && ws[1] === 1 && dynamic.has(wn!)
      && !(autoPad && 's' in autoPad && autoPad.s !== 'NOTSET');
    if (!eligible) {
      out.push(n);
      continue;
    }
    const [kh, kw] = [ws[2]!, ws[3]!];
    const xr = viewOfBlocked(xn!) ?? zeroInsertedBlocked(xn!) ?? reorder(xn!);
    const wr = viewOfBlocked(wn!)
      ?? node('Reshape', [node('Transpose', [node('Reshape', [wn!, b.ints([c / block, block, kh * kw]).name], {})], { perm: [0, 2, 1] }), b.ints(ws).name], {});
    const conv: Record<string, number | number[]> = { group: c, kernel_shape: [kh, kw] };
    for (const k of ['strides', 'pads', 'dilations']) {
      const a = n.attrs[k];
      if (a && 'ints' in a) conv[k] = a.ints.map(Number);
    }
    const yr = node('Conv', bn ? [xr, wr, bn] : [xr, wr], conv, DOMAIN);
    out.push({ name: n.name, op: 'ReorderOutput', domain: DOMAIN, inputs: [yr], outputs: [n.outputs[0]!], attrs: { channels_last: { i: 0 }, channels: { i: c } } });
    count++;
  }
  if (count) {
    g.nodes = out;
    g.extraOpsets.set(DOMAIN, 1);
    g.prune(); // the NCHW views and zero insertions the blocked ones replaced
  }
  return count;
}
