/**
 * Every op of the registry's image backbones, with the attributes that matter for its gradient, has a
 * gradient rule, and that rule passes a finite-difference check here with small random inputs and the
 * real attributes (the real group count, strides, pads, dilations, pooling windows, Clip bounds, BN
 * epsilon). Float64 differences where ORT has float64 kernels for the op, else float32 with the looser
 * tolerance of graph/ops/nn.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadImageBackbone } from './image.ts';
import { gradcheck, type CheckInput, type GradcheckOptions } from '../runtime/gradcheck.ts';
import { GraphBuilder } from '../graph/builder.ts';
import type { Node } from '../graph/ir.ts';
import { OPS, type AttrInput } from '../graph/ops/registry.ts';
import { toNumbers } from '../graph/tensor.ts';

const BACKBONES = ['mobilenet_v2', 'inception_v3', 'mobilenet_v3_centernet'];
/** Ops ORT runs only in float32 on the CPU (no double kernels): checked with float32 differences. */
const FLOAT32_ONLY = new Set(['Conv', 'ConvTranspose', 'AveragePool', 'GlobalAveragePool']);
const SPATIAL = new Set(['Conv', 'AveragePool', 'MaxPool']);

interface Variant {
  op: string;
  key: string;
  node: Node;
  /** Input shapes at the backbone's native size, batch 2. */
  shapes: number[][];
  /** Values of constant non-differentiable inputs (Clip bounds). */
  consts: (number[] | null)[];
  where: Set<string>;
  count: number;
}

const ints = (n: Node, name: string, dflt: number[]): number[] => {
  const a = n.attrs[name];
  return a && 'ints' in a ? a.ints.map(Number) : dflt;
};
const int = (n: Node, name: string, dflt: number): number => {
  const a = n.attrs[name];
  return a && 'i' in a ? Number(a.i) : dflt;
};

/** Attributes as a stable string (sorted keys; floats as written). */
function attrKey(n: Node): string {
  return Object.keys(n.attrs).sort().map((k) => `${k}=${JSON.stringify(Object.values(n.attrs[k]!)[0])}`).join(' ');
}

/**
 * A smaller spatial extent with the same boundary behaviour: the same remainder modulo the stride (so
 * the last window meets the end padding as it does at full size), at least two outputs; extents of 8 or
 * less (whole-map pools) are kept as they are.
 */
function smallExtent(real: number, k: number, s: number, d: number): number {
  if (real <= 8) return real;
  const keff = (k - 1) * d + 1;
  let h = Math.max(4, keff + s);
  while (h % s !== real % s) h++;
  return h;
}

/** Per-axis shrink for elementwise-style ops: 1 stays 1 (broadcast), anything else at most 3. */
const shrink = (shape: number[]) => shape.map((d) => (d === 1 ? 1 : Math.min(d, 3)));

function variantsOf(id: string, b: GraphBuilder, nodes: Node[], into: Map<string, Variant>): void {
  const g = b.graph;
  for (const n of nodes) {
    const shapes = n.inputs.map((i) => (i ? b.sym(i).shape.map(Number) : []));
    const nondiff = new Set(OPS.get(n.op)?.nondiff ?? []);
    const consts = n.inputs.map((i, k) => (nondiff.has(k) && n.op !== 'BatchNormalization' && g.initializers.has(i)
      ? toNumbers(g.initializers.get(i)!) : null));
    let key = `${n.op} ${attrKey(n)}`;
    if (n.op === 'Conv') key += ` bias=${n.inputs.length > 2 && !!n.inputs[2]}`;
    else if (n.op === 'BatchNormalization') key += ` rank=${shapes[0]!.length}`;
    else if (!SPATIAL.has(n.op) && n.op !== 'GlobalAveragePool') {
      key += ` ${shapes.map((s, k) => (consts[k] ? `const(${consts[k]})` : `[${shrink(s)}]`)).join(' ')}`;
    }
    const v = into.get(key);
    if (v) {
      v.where.add(id);
      v.count++;
    } else {
      into.set(key, { op: n.op, key, node: n, shapes, consts, where: new Set([id]), count: 1 });
    }
  }
}

/** The gradcheck inputs for one variant: small random tensors shaped to fit the real attributes. */
function checkInputs(v: Variant): CheckInput[] {
  const n = v.node;
  const [N, C, H, W] = v.shapes[0]!;
  if (n.op === 'Conv') {
    const [M, cg, kh, kw] = v.shapes[1]!;
    const group = int(n, 'group', 1);
    const s = ints(n, 'strides', [1, 1]);
    const d = ints(n, 'dilations', [1, 1]);
    // group > 1 keeps the real channel counts per group (depthwise: 1 in, the multiplier out).
    const cin = group > 1 ? C! : Math.min(C!, 3);
    const cout = group > 1 ? M! : Math.min(M!, 4);
    const hs = smallExtent(H!, kh!, s[0]!, d[0]!);
    const ws = smallExtent(W!, kw!, s[1]!, d[1]!);
    assert.equal(cg, C! / group);
    return [
      { name: 'x', shape: [1, cin, hs, ws] },
      { name: 'w', shape: [cout, cin / group, kh!, kw!], lo: -0.5, hi: 0.5 },
      ...(n.inputs[2] ? [{ name: 'bias', shape: [cout] }] : []),
    ];
  }
  if (n.op === 'AveragePool' || n.op === 'MaxPool') {
    const k = ints(n, 'kernel_shape', [1, 1]);
    const s = ints(n, 'strides', [1, 1]);
    const d = ints(n, 'dilations', [1, 1]);
    return [{ name: 'x', shape: [2, 2, smallExtent(H!, k[0]!, s[0]!, d[0]!), smallExtent(W!, k[1]!, s[1]!, d[1]!)] }];
  }
  if (n.op === 'GlobalAveragePool') return [{ name: 'x', shape: [2, 3, 4, 5] }];
  if (n.op === 'BatchNormalization') {
    const xs = [N!, 3, ...v.shapes[0]!.slice(2).map((e) => Math.min(e, 4))];
    return [
      { name: 'x', shape: xs, lo: -2, hi: 2 }, { name: 'scale', shape: [3] }, { name: 'B', shape: [3] },
      { name: 'mean', shape: [3], wrt: false }, { name: 'var', shape: [3], lo: 0.5, hi: 1.5, wrt: false },
    ];
  }
  // Elementwise, shape and linear ops: the real shapes shrunk axis by axis (broadcasting kept); constant
  // non-differentiable inputs (Clip's bounds) keep their real values, and the first input spans them.
  const bounds = v.consts.filter((c): c is number[] => !!c).flat();
  const lo = bounds.length ? Math.min(...bounds) - 1 : -1;
  const hi = bounds.length ? Math.max(...bounds) + 1 : 1;
  return v.shapes.map((s, k) => {
    const c = v.consts[k];
    if (c) return { name: `in${k}`, shape: s, values: c, wrt: false };
    return { name: `in${k}`, shape: shrink(s), lo, hi };
  });
}

test('every op variant of the registry\'s image backbones has a gradient rule that passes a finite-difference check', async (t) => {
  const variants = new Map<string, Variant>();
  const opsOf = new Map<string, Set<string>>();
  for (const id of BACKBONES) {
    const bb = await loadImageBackbone(id);
    const [h, w] = bb.preprocess.size;
    const b = new GraphBuilder(bb.graph.clone(), { [bb.inputName]: [2, 3, h, w] });
    variantsOf(id, b, b.graph.nodes, variants);
    opsOf.set(id, new Set(b.graph.nodes.map((n) => n.op)));
  }
  // What the enumeration must have found (guards against an empty or truncated listing).
  const expect: [string, string[]][] = [
    ['mobilenet_v2', ['Conv', 'BatchNormalization', 'Clip', 'Add', 'AveragePool', 'Flatten', 'Gemm']],
    ['inception_v3', ['Conv', 'BatchNormalization', 'Relu', 'Concat', 'MaxPool', 'AveragePool']],
    // Hard-swish and squeeze-excite as TF wrote them: Mul, Add, Clip (ReLU6), ReduceMean; BatchNorm folded into the convs.
    ['mobilenet_v3_centernet', ['Conv', 'Clip', 'Mul', 'Add', 'Relu', 'ReduceMean', 'GlobalAveragePool', 'Flatten']],
  ];
  for (const [id, ops] of expect) for (const op of ops) assert.ok(opsOf.get(id)!.has(op), `${id} has ${op}`);
  const depthwiseS2 = [...variants.values()]
    .filter((v) => v.op === 'Conv' && int(v.node, 'group', 1) > 1 && ints(v.node, 'strides', [1, 1])[0] === 2);
  assert.ok(depthwiseS2.length >= 3, 'MobileNetV2 has stride-2 depthwise convolutions (TF SAME padding, pads [0,0,1,1])');

  const allOps = [...new Set([...opsOf.values()].flatMap((s) => [...s]))].sort();
  const noRule = allOps.filter((op) => !OPS.get(op)?.grad);
  assert.deepEqual(noRule, [], `ops without a gradient rule in graph/ops: ${noRule.join(', ')}`);
  t.diagnostic(`op types: ${allOps.join(', ')}; ${variants.size} distinct variants`);

  const failures: string[] = [];
  for (const v of [...variants.values()].sort((a, c) => a.key.localeCompare(c.key))) {
    const f32 = FLOAT32_ONLY.has(v.op);
    const opts: GradcheckOptions = { dtype: f32 ? 'float32' : 'float64', maxElems: 32 };
    const inputs = checkInputs(v);
    const attrs = v.node.attrs as Record<string, AttrInput>;
    const r = await gradcheck((b, xs) => b.op1(v.op, xs, attrs), inputs, opts);
    const where = [...v.where].join('+');
    t.diagnostic(`${v.key} (x${v.count} in ${where}; ${opts.dtype}; inputs ${inputs.map((i) => `[${i.shape}]`).join(' ')}): ` +
      `max rel err ${r.maxRelErr.toExponential(1)}, max abs err ${r.maxAbsErr.toExponential(1)} over ${r.checked}`);
    if (!r.ok || r.checked === 0) {
      failures.push(`${v.key} (${where}): max abs err ${r.maxAbsErr}, max rel err ${r.maxRelErr} over ${r.checked} elements`);
    }
  }
  assert.deepEqual(failures, []);
});
