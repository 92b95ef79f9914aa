/**
 * Which ONNX opsets a node, as written, is valid at. Gradient rules emit the current forms of ops (axes and
 * pads as inputs, ScatterND with a reduction), which a graph loaded at an older opset does not allow; after
 * autodiff the graph's opset is raised to what its nodes need, or, when a node of the model is not valid
 * that far (an attribute that later became an input, a changed meaning), a GraftError says which.
 * Only changes that break a node as written are listed; type additions (bfloat16 and so on) are not.
 */
import { GraftError } from '../errors.ts';
import type { Graph, Node } from './ir.ts';
import { type DType, tensor } from './tensor.ts';
import { normAxis } from './ops/registry.ts';

const has = (n: Node, i: number): boolean => !!n.inputs[i];
const attr = (n: Node, k: string): boolean => k in n.attrs;
const str = (n: Node, k: string): string | undefined => {
  const a = n.attrs[k];
  return a && 's' in a ? a.s : undefined;
};

/** The reduce ops whose axes moved from attribute to input at opset 18 (ReduceSum moved at 13). */
const REDUCE_18 = ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare'];

const scatterMin = (n: Node): number => {
  const r = str(n, 'reduction') ?? 'none';
  return r === 'none' ? 11 : r === 'add' || r === 'mul' ? 16 : 18;
};

/** The first opset at which the node's op exists in the form used (for the dtypes graft's gradient rules use). */
const MIN: Record<string, (n: Node) => number> = {
  ScatterND: scatterMin,
  ScatterElements: scatterMin,
  Slice: (n) => (n.inputs.length > 1 ? 10 : 1),
  Reshape: (n) => (attr(n, 'allowzero') ? 14 : n.inputs.length > 1 ? 5 : 1),
  Pad: (n) => (has(n, 3) ? 18 : n.inputs.length > 1 ? 11 : 2),
  ReduceSum: (n) => (has(n, 1) || attr(n, 'noop_with_empty_axes') ? 13 : 1),
  ...Object.fromEntries(REDUCE_18.map((op) => [op, (n: Node) => (has(n, 1) || attr(n, 'noop_with_empty_axes') ? 18 : 1)])),
  Squeeze: (n) => (has(n, 1) ? 13 : 1),
  Unsqueeze: (n) => (has(n, 1) ? 13 : 1),
  Split: (n) => (attr(n, 'num_outputs') ? 18 : has(n, 1) ? 13 : 2),
  Clip: (n) => (n.inputs.length > 1 ? 11 : 1),
  Dropout: (n) => (n.inputs.length > 1 ? 12 : 1),
  TopK: (n) => (has(n, 1) ? 10 : 1),
  Shape: (n) => (attr(n, 'start') || attr(n, 'end') ? 15 : 1),
  Gemm: (n) => (n.inputs.length < 3 ? 11 : 1), // C optional from 11
  MaxPool: (n) => (attr(n, 'dilations') || attr(n, 'ceil_mode') ? 10 : n.outputs[1] ? 8 : 1),
  AveragePool: (n) => (attr(n, 'dilations') ? 19 : attr(n, 'ceil_mode') ? 10 : attr(n, 'count_include_pad') ? 7 : 1),
  ConstantOfShape: () => 9,
  Expand: () => 8,
  Where: () => 9,
  Range: () => 11,
  CumSum: () => 11,
  Erf: () => 9,
  Sign: () => 9,
  IsNaN: () => 9,
  IsInf: () => 10,
  Mod: () => 10,
  Less: () => 9, // 7 takes floats only; graft compares int64 indices
  Greater: () => 9,
  Equal: () => 11, // floats from 11
  LessOrEqual: () => 12,
  GreaterOrEqual: () => 12,
  // numpy broadcasting from 7 (before: a broadcast attribute), 8 for the variadic ops.
  ...Object.fromEntries(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'And', 'Or', 'Xor'].map((op) => [op, () => 7])),
  Cast: () => 6, // `to` an integer from 6
  Sum: () => 8,
  Max: () => 8,
  Min: () => 8,
  Mean: () => 8,
  GatherElements: () => 11,
  GatherND: () => 11,
  LayerNormalization: () => 17,
};

const axesAttr = (n: Node): boolean => attr(n, 'axes');

/** The last opset at which the node, as written, keeps its meaning: before an attribute it uses was removed. */
const MAX: Record<string, (n: Node, rank: number | undefined) => number> = {
  Reshape: (n) => (attr(n, 'shape') ? 4 : Infinity),
  Slice: (n) => (attr(n, 'starts') ? 9 : Infinity),
  TopK: (n) => (attr(n, 'k') ? 9 : Infinity),
  Upsample: () => 9,
  Pad: (n) => (attr(n, 'pads') ? 10 : Infinity),
  Clip: (n) => (attr(n, 'min') || attr(n, 'max') ? 10 : Infinity),
  Scatter: () => 10,
  Resize: (n) => (n.inputs.length === 2 ? 10 : Infinity), // input 1 was scales, became roi at 11
  Dropout: (n) => (attr(n, 'is_test') ? 6 : attr(n, 'ratio') ? 11 : Infinity),
  Split: (n) => (attr(n, 'split') ? 12 : has(n, 1) || attr(n, 'num_outputs') ? Infinity : 17), // 18 wants one of them
  Squeeze: (n) => (axesAttr(n) ? 12 : Infinity),
  Unsqueeze: (n) => (axesAttr(n) ? 12 : Infinity),
  ReduceSum: (n) => (axesAttr(n) ? 12 : Infinity),
  ...Object.fromEntries(REDUCE_18.map((op) => [op, (n: Node) => (axesAttr(n) ? 17 : Infinity)])),
  BatchNormalization: (n) => (attr(n, 'is_test') ? 6 : attr(n, 'spatial') ? 8 : n.outputs.slice(1).some((o) => o) ? 13 : Infinity),
  // Up to 12 these normalise over all axes from `axis` (default 1); from 13 over `axis` alone (default -1).
  ...Object.fromEntries(['Softmax', 'LogSoftmax', 'Hardmax'].map((op) => [op, (n: Node, rank: number | undefined) => {
    const a = n.attrs['axis'];
    const axis = a && 'i' in a ? Number(a.i) : 1;
    return rank !== undefined && normAxis(axis, rank) === rank - 1 ? Infinity : 12;
  }])),
};

export interface OpsetRange { min: number; max: number }

/** The opsets at which node `n` is valid as written; `rank` is its first input's rank where known. */
export function opsetRange(n: Node, rank?: number): OpsetRange {
  if (n.domain && n.domain !== 'ai.onnx') return { min: 1, max: Infinity };
  let max = MAX[n.op]?.(n, rank) ?? Infinity;
  if (attr(n, 'consumed_inputs')) max = Math.min(max, 5);
  // Elementwise ops lost their explicit broadcast attributes at 7.
  if (attr(n, 'broadcast')) max = Math.min(max, 6);
  return { min: MIN[n.op]?.(n) ?? 1, max };
}

/** Each node's first valid opset, taken before autodiff so that fitOpset can tell what it added or changed. */
export function opsetMins(g: Graph): Map<Node, number> {
  return new Map(g.nodes.map((n) => [n, opsetRange(n).min]));
}

/**
 * Raises `g.opset` to the newest opset that the nodes added (or given more outputs) since `before` need.
 * Nodes already there are taken as valid at the graph's opset. Throws E_GRAD_UNSUPPORTED naming the node that
 * needs the newer opset and the node that is not valid that far, when there is one.
 */
export function fitOpset(g: Graph, before: Map<Node, number>, rankOf: (tensor: string) => number | undefined = () => undefined,
  dtypeOf: (tensor: string) => DType | undefined = () => undefined): void {
  let need = g.opset;
  let needBy: Node | null = null;
  const ranges = g.nodes.map((n) => ({ n, r: opsetRange(n, n.inputs[0] ? rankOf(n.inputs[0]) : undefined) }));
  for (const { n, r } of ranges) {
    if (r.min > need && r.min > (before.get(n) ?? 0)) {
      need = r.min;
      needBy = n;
    }
  }
  if (!needBy) return;
  // Old forward forms whose attributes later became inputs are rewritten in their new form, same meaning;
  // only when that clears every blocking node, so a graph that cannot be raised is left as it was.
  const blocking = ranges.filter(({ r }) => r.max < need);
  if (blocking.length && blocking.every(({ n }) => upgrade(g, n, dtypeOf, true))) {
    for (const x of blocking) {
      upgrade(g, x.n, dtypeOf, false);
      x.r = opsetRange(x.n, x.n.inputs[0] ? rankOf(x.n.inputs[0]) : undefined);
    }
  }
  const stop = ranges.filter(({ r }) => r.max < need).sort((a, b) => a.r.max - b.r.max)[0];
  if (stop) {
    throw new GraftError('E_GRAD_UNSUPPORTED',
      `the gradient of graph "${g.name}" (ONNX opset ${g.opset}) needs opset ${need} for node "${needBy.name}" (${needBy.op}), ` +
        `but node "${stop.n.name}" (${stop.n.op}) is not valid past opset ${stop.r.max}`,
      `Export the model again at opset ${need} or later (e.g. torch.onnx.export(..., opset_version=17)), or freeze the layers up to node "${stop.n.name}".`,
      { op: needBy.op, node: needBy.name, opset: need, blockedBy: stop.n.name });
  }
  g.opset = need;
}

const intsOf = (n: Node, k: string): number[] | undefined => {
  const a = n.attrs[k];
  return a && 'ints' in a ? a.ints.map(Number) : undefined;
};
const floatOf = (n: Node, k: string, d: number): number => {
  const a = n.attrs[k];
  return a && 'f' in a ? a.f : d;
};

/**
 * Rewrites node `n` of an old opset in the form that later opsets take, with the same meaning: Scatter as
 * ScatterElements (11), Pad's pads and value (11), Clip's min and max (11), and Split's sizes (13) as
 * constant inputs. Returns whether it can (dryRun) or did.
 */
function upgrade(g: Graph, n: Node, dtypeOf: (t: string) => DType | undefined, dryRun: boolean): boolean {
  const constant = (stem: string, t: ReturnType<typeof tensor>): string => {
    const name = g.fresh(`${n.name}_${stem}`);
    g.initializers.set(name, t);
    return name;
  };
  const dtype = n.inputs[0] ? dtypeOf(n.inputs[0]) : undefined;
  const can = n.op === 'Scatter' || (n.op === 'Pad' && attr(n, 'pads') && !!dtype) || (n.op === 'Clip' && (attr(n, 'min') || attr(n, 'max')) && !!dtype)
    || (n.op === 'Split' && attr(n, 'split'));
  if (!can || dryRun) return can;
  const dt = dtype ?? 'float32'; // present whenever Pad or Clip gets here
  if (n.op === 'Scatter') {
    n.op = 'ScatterElements';
    return true;
  }
  if (n.op === 'Pad') {
    const pads = intsOf(n, 'pads')!;
    const value = floatOf(n, 'value', 0);
    delete n.attrs['pads'];
    delete n.attrs['value'];
    n.inputs = [n.inputs[0]!, constant('pads', tensor('int64', [pads.length], pads)), constant('value', tensor(dt, [], [value]))];
    return true;
  }
  if (n.op === 'Clip') {
    const lo = attr(n, 'min') ? constant('min', tensor(dt, [], [floatOf(n, 'min', 0)])) : '';
    const hi = attr(n, 'max') ? constant('max', tensor(dt, [], [floatOf(n, 'max', 0)])) : '';
    delete n.attrs['min'];
    delete n.attrs['max'];
    n.inputs = [n.inputs[0]!, lo, hi];
    while (n.inputs.at(-1) === '') n.inputs.pop();
    return true;
  }
  if (n.op === 'Split') {
    const sizes = intsOf(n, 'split')!;
    delete n.attrs['split'];
    n.inputs = [n.inputs[0]!, constant('split', tensor('int64', [sizes.length], sizes))];
    return true;
  }
  return false;
}
