/**
 * The ONNX backend test suite (Debian's libonnx-testdata: ONNX's own model + input + reference output cases)
 * run against graft. For each case whose ops and types graft supports it checks:
 *   a. round trip: graft loads the model and saves it, ONNX Runtime runs the saved bytes, the outputs match
 *      the references (rtol 1e-3, atol 1e-5 for floats, NaN equal to NaN; exact for ints and bools); not
 *      applicable where ORT cannot load the original model either, or where the reference is random;
 *   b. inference: graft's shape and type inference over every node gives the references' dtypes and shapes,
 *      for the graph outputs and for every node output ONNX Runtime reports;
 *   c. gradients: for single-node cases with floating inputs and a gradient rule, graft's gradients agree
 *      with central finite differences (float64 where ORT has the kernels, else float32), at the model's opset.
 * backend.test.ts holds the results to a committed ratchet, so a case that passed cannot silently stop passing.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { GraftError } from '../errors.ts';
import { Session } from './session.ts';
import { GraphBuilder, type Sym } from '../graph/builder.ts';
import { type CheckInput, gradcheck } from './gradcheck.ts';
import { Graph, tensorFromProto } from '../graph/ir.ts';
import { OPS, type AttrInput } from '../graph/ops/registry.ts';
import { type DType, ONNX_DTYPE, type TensorData, bfloat16ToFloat, halfToFloat, isFloat, tensor } from '../graph/tensor.ts';

const { onnx } = onnxProto;

export const BACKEND_DATA_DIR = process.env['GRAFT_ONNX_TESTDATA'] ?? '/usr/share/libonnx-testdata/data';
export const BACKEND_SUITES = ['node', 'pytorch-converted', 'pytorch-operator', 'real', 'simple'];

export type Check = 'a' | 'b' | 'c';
export const CHECKS: Check[] = ['a', 'b', 'c'];

/** A check's outcome: passed, failed (with why), or not applicable / skipped (with why). */
export type Outcome = { status: 'pass'; note?: string } | { status: 'fail'; reason: string } | { status: 'skip'; reason: string };

export interface CaseResult {
  /** suite/case, e.g. node/test_abs. */
  name: string;
  /** Why graft cannot take the case at all (empty when supported): 'op Loop', 'dtype string', 'type sequence', ... */
  blocked: string[];
  a?: Outcome;
  b?: Outcome;
  c?: Outcome;
  ms: number;
}

export interface BackendOptions {
  /** Skip the gradient check when a floating input has more elements than this. */
  maxGradElems?: number;
  /** Finite differences per input (chosen evenly). */
  gradSamples?: number;
}

/** Every case directory, as suite/case, sorted. Throws a GraftError naming the package when the data is absent. */
export function listBackendCases(root = BACKEND_DATA_DIR): string[] {
  if (!existsSync(join(root, 'node'))) {
    throw new GraftError('E_FILE_MISSING', `the ONNX backend test data is not at ${root}`,
      'Install it: apt-get install -y --no-install-recommends libonnx-testdata (a CI dependency, see .ci/run), ' +
        'or point GRAFT_ONNX_TESTDATA at a copy of onnx/backend/test/data.');
  }
  const out: string[] = [];
  for (const s of BACKEND_SUITES) {
    if (!existsSync(join(root, s))) continue;
    for (const c of readdirSync(join(root, s)).sort()) out.push(`${s}/${c}`);
  }
  return out;
}

// ---- support ----------------------------------------------------------------------------------------------

const DTYPE_NAME = (n: number): string => (onnx.TensorProto.DataType[n] ?? `type${n}`).toLowerCase();
const SUPPORTED_ELEM = new Set(Object.values(ONNX_DTYPE));

function typeBlock(t: onnxProto.onnx.ITypeProto | null | undefined): string | null {
  if (!t) return 'type missing';
  if (t.tensorType) return SUPPORTED_ELEM.has(t.tensorType.elemType ?? 0) ? null : `dtype ${DTYPE_NAME(t.tensorType.elemType ?? 0)}`;
  if (t.sequenceType) return 'type sequence';
  if (t.optionalType) return 'type optional';
  if (t.mapType) return 'type map';
  if (t.sparseTensorType) return 'type sparse tensor';
  return 'type unknown';
}

/** What in a model graft does not support: ops missing from the registry (subgraphs too), element and value types. */
function blockers(m: onnxProto.onnx.IModelProto): string[] {
  const out = new Set<string>();
  const walk = (g: onnxProto.onnx.IGraphProto) => {
    const inits = new Set((g.initializer ?? []).map((t) => t.name));
    for (const t of g.initializer ?? []) if (!SUPPORTED_ELEM.has(t.dataType ?? 0)) out.add(`dtype ${DTYPE_NAME(t.dataType ?? 0)}`);
    for (const v of [...(g.input ?? []).filter((v) => !inits.has(v.name)), ...(g.output ?? [])]) {
      const b = typeBlock(v.type);
      if (b) out.add(b);
    }
    for (const n of g.node ?? []) {
      const domain = n.domain ?? '';
      if (domain && domain !== 'ai.onnx') out.add(`op ${domain}.${n.opType}`);
      else if (!OPS.has(n.opType ?? '')) out.add(`op ${n.opType}`);
      for (const a of n.attribute ?? []) {
        if (a.g) walk(a.g);
        for (const sg of a.graphs ?? []) walk(sg);
        if (a.t && !SUPPORTED_ELEM.has(a.t.dataType ?? 0)) out.add(`dtype ${DTYPE_NAME(a.t.dataType ?? 0)}`);
        if (a.sparseTensor) out.add('type sparse tensor');
      }
    }
  };
  if (m.graph) walk(m.graph);
  return [...out].sort();
}

// ---- comparison -------------------------------------------------------------------------------------------

/** Values as numbers (float16 decoded), for comparison and finite differences. */
function values(t: TensorData): number[] {
  if (t.dtype === 'float16') return Array.from(t.data as Uint16Array, halfToFloat);
  if (t.dtype === 'bfloat16') return Array.from(t.data as Uint16Array, bfloat16ToFloat);
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

const shapeStr = (dtype: string, dims: readonly (number | string)[]) => `${dtype}[${dims.join(',')}]`;

/** Why `got` differs from the reference `want`, or null: numpy's assert_allclose (rtol 1e-3, atol 1e-5) for floats. */
export function compareTensors(got: TensorData, want: TensorData): string | null {
  if (got.dtype !== want.dtype || got.dims.join() !== want.dims.join()) {
    return `got ${shapeStr(got.dtype, got.dims)}, reference ${shapeStr(want.dtype, want.dims)}`;
  }
  if (!isFloat(want.dtype)) {
    const a = got.data as ArrayLike<number | bigint>;
    const b = want.data as ArrayLike<number | bigint>;
    for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) return `element ${i}: got ${a[i]}, reference ${b[i]}`;
    return null;
  }
  const a = values(got);
  const b = values(want);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < b.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue; // infinities of one sign
    const err = Math.abs(x - y);
    if (!(err <= 1e-5 + 1e-3 * Math.abs(y)) && !(err <= worstErr)) {
      worst = i;
      worstErr = Number.isNaN(err) ? Infinity : err;
    }
  }
  return worst < 0 ? null : `element ${worst}: got ${a[worst]}, reference ${b[worst]} (max abs err ${worstErr.toPrecision(3)})`;
}

// ---- one case ---------------------------------------------------------------------------------------------

interface CaseData {
  bytes: Uint8Array;
  feeds: Record<string, TensorData>;
  refs: { name: string; t: TensorData }[];
}

function readTensor(path: string): TensorData & { name: string } {
  const p = onnx.TensorProto.decode(readFileSync(path));
  return { ...tensorFromProto(p, path), name: p.name ?? '' };
}

function readSet(dir: string, prefix: 'input' | 'output'): (TensorData & { name: string })[] {
  const out: (TensorData & { name: string })[] = [];
  for (let i = 0; existsSync(join(dir, `${prefix}_${i}.pb`)); i++) out.push(readTensor(join(dir, `${prefix}_${i}.pb`)));
  return out;
}

/** Test data inputs matched to the graph inputs (by name when the .pb names one, else by position), as ONNX's runner does. */
function loadData(g: Graph, bytes: Uint8Array, dir: string): CaseData {
  const set = readdirSync(dir).filter((d) => d.startsWith('test_data_set_')).sort()[0];
  if (!set) throw new Error('no test_data_set_* directory');
  const ins = readSet(join(dir, set), 'input');
  const outs = readSet(join(dir, set), 'output');
  const names = g.inputs.map((v) => v.name);
  const feeds: Record<string, TensorData> = {};
  ins.forEach((t, i) => {
    const name = names.includes(t.name) ? t.name : names[i];
    if (name) feeds[name] = { dtype: t.dtype, dims: t.dims, data: t.data };
  });
  const refs = outs.map((t, i) => ({ name: g.outputs.some((o) => o.name === t.name) ? t.name : g.outputs[i]?.name ?? t.name, t }));
  // numpy has no bfloat16, so ONNX's data stores those tensors as their uint16 bits: read them as the graph declares.
  const declared = new Map([...g.inputs, ...g.outputs].map((v) => [v.name, v.dtype]));
  for (const [k, t] of Object.entries(feeds)) if (t.dtype === 'uint16' && declared.get(k) === 'bfloat16') feeds[k] = { ...t, dtype: 'bfloat16' };
  for (const r of refs) if (r.t.dtype === 'uint16' && declared.get(r.name) === 'bfloat16') r.t = { ...r.t, dtype: 'bfloat16' };
  return { bytes, feeds, refs };
}

const firstLine = (e: unknown): string => {
  const m = e instanceof Error ? `${e instanceof GraftError ? `${e.code}: ` : ''}${e.message}` : String(e);
  const line = m.split('\n')[0]!;
  return line.length > 240 ? `${line.slice(0, 237)}...` : line;
};

async function checkRoundTrip(g: Graph, d: CaseData): Promise<Outcome> {
  if ([...Object.values(d.feeds), ...d.refs.map((r) => r.t)].some((t) => t.dtype === 'bfloat16')) {
    return { status: 'skip', reason: 'a bfloat16 input or output: ONNX Runtime\'s JavaScript API has no bfloat16 tensors' };
  }
  let s: Session;
  try {
    s = await Session.create(g.toBytes(), { threads: 1 });
  } catch (e) {
    // A model ORT itself cannot load (kernels of opsets before 7 are gone) says nothing about graft's save.
    const orig = await Session.create(d.bytes, { threads: 1 }).then(async (o) => (await o.dispose(), true), () => false);
    const msg = firstLine(e).replace(/^E_RUNTIME: ONNX Runtime could not load the graph: /, '');
    return orig ? { status: 'fail', reason: `ORT cannot load graft's save, but loads the original: ${msg}` }
      : { status: 'skip', reason: `ORT cannot load the original model either: ${msg}` };
  }
  try {
    const got = await s.run(d.feeds, d.refs.map((r) => r.name));
    const bad = d.refs.flatMap((r) => {
      const why = compareTensors(got[r.name]!, r.t);
      return why ? [`output ${r.name}: ${why}`] : [];
    });
    if (!bad.length) return { status: 'pass' };
    // ORT on the original bytes: if it gives the same outputs, the difference is ORT's kernel, not graft's save.
    const orig = await Session.create(d.bytes, { threads: 1 }).then(async (o) => {
      try { return await o.run(d.feeds, d.refs.map((r) => r.name)); } finally { await o.dispose(); }
    }, () => null);
    const same = orig && d.refs.every((r) => compareTensors(got[r.name]!, orig[r.name]!) === null);
    return same ? { status: 'skip', reason: `ORT's own output on the original model differs from the reference as well (${bad[0]})` }
      : { status: 'fail', reason: bad.join('; ') };
  } catch (e) {
    return { status: 'fail', reason: `ORT run: ${firstLine(e)}` };
  } finally {
    await s.dispose();
  }
}

/**
 * Graft's inference over the loaded graph, given the inputs' shapes. Small inputs (rank <= 1, <= 64 values: shapes,
 * axes, pads, Range bounds) are given as constants too: graft types only graphs whose shape arithmetic is known when
 * they are built, as a loaded model's is (its initializers and Constant nodes).
 */
async function checkInference(g: Graph, d: CaseData): Promise<Outcome> {
  const gi = g.clone();
  for (const [k, t] of Object.entries(d.feeds)) {
    if (t.dims.length <= 1 && t.data.length <= 64) {
      gi.initializers.set(k, t);
      gi.inputs = gi.inputs.filter((v) => v.name !== k);
    }
  }
  const shapes = Object.fromEntries(Object.entries(d.feeds).map(([k, t]) => [k, t.dims]));
  let b: GraphBuilder;
  try {
    b = new GraphBuilder(gi, shapes);
  } catch (e) {
    return { status: 'fail', reason: `inference threw: ${firstLine(e)}` };
  }
  const bad: string[] = [];
  let compared = 0;
  const compare = (name: string, dtype: DType, dims: readonly number[], what: string) => {
    compared++;
    const t = b.types.get(name);
    if (!t) bad.push(`${what} ${name}: graft did not type it`);
    else if (t.dtype !== dtype || t.shape.join() !== dims.join()) bad.push(`${what} ${name}: graft ${shapeStr(t.dtype, t.shape)}, reference ${shapeStr(dtype, dims)}`);
  };
  for (const r of d.refs) compare(r.name, r.t.dtype, r.t.dims, 'output');
  // Inner node outputs: their real types as ONNX Runtime computes them (graph outputs declared without a type).
  const outNames = new Set(g.outputs.map((o) => o.name));
  const inner = [...new Set(g.nodes.flatMap((n) => n.outputs).filter((o) => o && !outNames.has(o)))];
  if (inner.length && d.refs.length) {
    const m = g.toModelProto();
    m.graph!.output!.push(...inner.map((name) => ({ name })));
    let got: Record<string, TensorData> | null = null;
    try {
      const s = await Session.create(onnx.ModelProto.encode(onnx.ModelProto.create(m)).finish(), { threads: 1 });
      try {
        got = await s.run(d.feeds, inner);
      } finally {
        await s.dispose();
      }
    } catch {
      // ORT cannot run it: only the graph outputs are checked (check a reports why).
    }
    if (got) for (const name of inner) compare(name, got[name]!.dtype, got[name]!.dims, 'node output');
  }
  if (bad.length > 3) bad.splice(3, bad.length - 3, `and ${bad.length - 3} more`);
  return bad.length ? { status: 'fail', reason: bad.join('; ') } : { status: 'pass', note: `${compared} tensors` };
}

/** Ops whose gradient is zero wherever it exists. */
const STEP_OPS = new Set(['Floor', 'Ceil', 'Round', 'Sign', 'Hardmax']);

// ORT's type check of an op whose schema takes no double (Celu) reads as an invalid model, not a missing kernel.
// (ORT expands MeanVarianceNormalization's function body for doubles with a float epsilon: "bound to different types".)
const NO_KERNEL = /Could not find an implementation|NOT_IMPLEMENTED|Type Error: Type 'tensor\(double\)' of input parameter|does not support double|bound to different types \(tensor\(double\)/;
// Node forms ORT's CPU kernels refuse at load (batch-first recurrent layers: "layout_ == 0 was false").
const ORT_REFUSES = /are not supported|layout_ == 0 was/;

/** Dropout in training mode with a non-zero ratio draws its mask from the runtime's generator: no fixed reference. */
function randomCase(g: Graph, d: CaseData): string | null {
  for (const n of g.nodes) {
    if (n.op !== 'Dropout' || !n.inputs[2]) continue;
    const mode = d.feeds[n.inputs[2]] ?? g.initializers.get(n.inputs[2]);
    const ratio = n.inputs[1] ? d.feeds[n.inputs[1]] ?? g.initializers.get(n.inputs[1]) : undefined;
    if (mode && values(mode)[0] && (!ratio || values(ratio)[0] !== 0)) return 'training-mode Dropout draws a random mask';
  }
  return null;
}

/**
 * Central finite differences of a single-node case at the case's own inputs and opset. Floating inputs the op
 * differentiates are checked; the others (ints, bools, Clip's bounds) are constants with the case's values.
 * float64 when ORT has a float64 kernel for the op and the op's floating outputs follow its inputs' dtype
 * (Cast and LayerNormalization's statistics may not), else float32 with a step scaled to the outputs.
 */
async function checkGradient(g: Graph, d: CaseData, opts: Required<BackendOptions>): Promise<Outcome> {
  if (g.nodes.length !== 1) return { status: 'skip', reason: 'not a single-node case' };
  const node = g.nodes[0]!;
  const def = OPS.get(node.op)!;
  const src = (name: string): TensorData | undefined => d.feeds[name] ?? g.initializers.get(name);
  const nondiff = new Set(def.nondiff ?? []);
  const diff = node.inputs.map((name, i) => !!name && !nondiff.has(i) && !!src(name) && isFloat(src(name)!.dtype));
  if (!def.grad || !diff.some((x) => x)) return { status: 'skip', reason: 'no floating input with a gradient rule' };
  if (!d.refs.some((r) => isFloat(r.t.dtype))) return { status: 'skip', reason: 'no floating output' };
  const random = randomCase(g, d);
  if (random) return { status: 'skip', reason: random };
  if (d.refs.some((r) => isFloat(r.t.dtype) && values(r.t).some((v) => !Number.isFinite(v)))) {
    return { status: 'skip', reason: 'a reference output is not finite at the case\'s inputs' };
  }
  if (d.refs.every((r) => !isFloat(r.t.dtype) || r.t.data.length === 0)) return { status: 'skip', reason: 'zero-size output' };
  const wrt = node.inputs.filter((_, i) => diff[i]);
  if (wrt.some((name) => src(name)!.data.length === 0)) return { status: 'skip', reason: 'zero-size input' };
  if (wrt.some((name) => src(name)!.data.length > opts.maxGradElems)) return { status: 'skip', reason: `an input has over ${opts.maxGradElems} elements` };

  const forward = (dtype: DType) => (b: GraphBuilder, xs: Sym[]): Sym[] => {
    b.graph.opset = g.opset;
    let k = 0;
    const args = node.inputs.map((name, i): Sym | null => {
      if (!name) return null;
      if (diff[i]) return xs[k++]!;
      const t = src(name)!;
      // Floating constants (Clip's bounds) in the checked dtype, so the op's type constraints hold.
      return b.constant(isFloat(t.dtype) ? tensor(dtype, t.dims, values(t)) : t);
    });
    const ys = b.op(node.op, args, node.attrs as Record<string, AttrInput>, { outputs: node.outputs.length });
    return ys.filter((y, i) => node.outputs[i] && isFloat(y.dtype));
  };
  // Which dtype: the op's floating outputs at float64, and whether ORT has the kernel (the forward node alone).
  const probe = async (dtype: DType): Promise<string | null> => {
    const b = new GraphBuilder();
    const xs = wrt.map((name, k) => b.input(`x${k}`, dtype, src(name)!.dims));
    const ys = forward(dtype)(b, xs);
    const other = ys.find((y) => y.dtype !== dtype);
    if (other) return `the op makes a ${other.dtype} output`;
    ys.forEach((y, i) => b.output(y, `y${i}`));
    try {
      // Run it once too: some kernels load at float64 and refuse it when they run (GRU, LSTM).
      const s = await Session.create(b.graph, { threads: 1, optimization: 'disabled' });
      try {
        await s.run(Object.fromEntries(wrt.map((name, k) => [`x${k}`, tensor(dtype, src(name)!.dims)])));
      } finally {
        await s.dispose();
      }
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e); // whole: firstLine() may cut the telling part off
      if (NO_KERNEL.test(msg)) return `ORT has no ${dtype} kernel`;
      if (ORT_REFUSES.test(msg)) return /layout_ == 0/.test(msg) ? 'ORT\'s CPU kernel does not run layout = 1 (batch first)' : `ORT does not run it: ${firstLine(e)}`;
      throw e;
    }
    return null;
  };
  // A float64 kernel that rounds through float32 (ORT's Shrink) makes float64 finite differences noise: fed inputs
  // that float32 cannot hold, every output it returns is a float32 value.
  const roundsThroughFloat32 = async (): Promise<boolean> => {
    const b = new GraphBuilder();
    const xs = wrt.map((name, k) => b.input(`x${k}`, 'float64', src(name)!.dims));
    const ys = forward('float64')(b, xs);
    ys.forEach((y, i) => b.output(y, `y${i}`));
    const s = await Session.create(b.graph, { threads: 1, optimization: 'disabled' });
    try {
      // Scaled by 1.1 and nudged by 2^-40: a float64 kernel's outputs are then neither integers nor float32 values.
      const feeds = Object.fromEntries(wrt.map((name, k) => [`x${k}`, tensor('float64', src(name)!.dims, values(src(name)!).map((v) => 1.1 * v + (1 + Math.abs(v)) * 2 ** -40))]));
      const out = await s.run(feeds);
      const all = ys.flatMap((_, i) => Array.from(out[`y${i}`]!.data as Float64Array));
      // Integer outputs (Floor, Sign) are float32 values of any kernel: they say nothing.
      return all.some((v) => !Number.isInteger(v)) && all.every((v) => Math.fround(v) === v);
    } finally {
      await s.dispose();
    }
  };
  let dtype: DType = 'float64';
  const why = (await probe('float64')) ?? (await roundsThroughFloat32() ? 'its float64 kernel computes in float32' : null);
  if (why) {
    dtype = 'float32';
    const why32 = await probe('float32');
    if (why32?.startsWith('ORT has no') && why.startsWith('ORT has no')) return { status: 'skip', reason: `ORT has no ${node.op} kernel at opset ${g.opset}` };
    if (why32) return { status: 'skip', reason: why32 === why ? why : `float64: ${why}; float32: ${why32}` };
  }
  const inputs: CheckInput[] = wrt.map((name, k) => ({ name: `x${k}`, shape: src(name)!.dims, values: values(src(name)!), dtype }));
  // float32: the outputs are cast to float64 before gradcheck projects them onto a scalar, so the loss is summed
  // without float32 rounding, and the outputs a step leaves alone cancel exactly. What is left is the rounding of
  // the outputs a step moves, 2^-24 |y|max each, for a few dozen of them (8x as a random walk); the step keeps
  // that under atol / 8 over the central difference (2 * eps). No smaller than 1e-3, and no larger than needed:
  // a larger step crosses kinks (MaxPool's near-ties).
  let ymax = 0;
  for (const ref of d.refs) if (isFloat(ref.t.dtype)) for (const v of values(ref.t)) ymax = Math.max(ymax, Math.abs(v));
  const atol32 = 2e-3;
  const eps32 = Math.max(1e-3, (8 * 2 ** -24 * ymax) / (2 * (atol32 / 8)));
  const r = await gradcheck((b, xs) => {
    const fl = forward(dtype)(b, xs);
    // Every floating output counts: flattened and joined, so that one projection covers them all.
    const y = fl.length === 1 ? fl[0]! : b.op1('Concat', fl.map((y) => b.reshape(y, [-1])), { axis: 0 });
    return dtype === 'float32' ? b.cast(y, 'float64') : y;
  }, inputs, { dtype, maxElems: opts.gradSamples, ...(dtype === 'float32' ? { eps: eps32, atol: atol32 } : {}) });
  const all = (x: Record<string, Float64Array>) => Object.values(x).flatMap((a) => [...a].filter((v) => !Number.isNaN(v)));
  const zero = [...all(r.analytic), ...all(r.numeric)].every((v) => v === 0);
  // NaN among the sampled elements: an input on the edge of the op's domain (0 for Pow with an exponent below 1).
  let nanNum = 0;
  let nanGrad = 0;
  for (const [k, a] of Object.entries(r.analytic)) {
    const stride = Math.max(1, Math.floor(a.length / opts.gradSamples)); // gradcheck's sampling
    for (let i = 0; i < a.length; i += stride) {
      if (Number.isNaN(r.numeric[k]![i])) nanNum++;
      if (Number.isNaN(a[i])) nanGrad++;
    }
  }
  const nanNote = nanNum || nanGrad ? `, NaN in ${nanNum} finite differences and ${nanGrad} gradients` : '';
  const kinkNote = (r.kinks ? `, ${r.kinks} between disagreeing one-sided differences (a kink)` : '') + (r.edges ? `, ${r.edges} on the domain's edge (one-sided from inside)` : '') + (r.undefinedAt ? `, ${r.undefinedAt} where the function is undefined on both sides (not checked)` : '');
  const summary = `${dtype}${why ? ` (float64: ${why})` : ''}, ${r.checked} elements, max abs err ${r.maxAbsErr.toPrecision(2)}, max rel err ${r.maxRelErr.toPrecision(2)}${nanNote}${kinkNote}`;
  if (r.checked === 0) return { status: 'fail', reason: `nothing checked (${summary})` };
  // Step functions' gradients are zero by definition, and their finite differences agree: that is the check.
  if (zero && !STEP_OPS.has(node.op)) return { status: 'fail', reason: `every checked gradient is zero, which shows nothing (${summary})` };
  return r.ok ? { status: 'pass', note: summary } : { status: 'fail', reason: summary };
}

export async function runBackendCase(name: string, root = BACKEND_DATA_DIR, opts: BackendOptions = {}): Promise<CaseResult> {
  const t0 = performance.now();
  const o: Required<BackendOptions> = { maxGradElems: 1 << 16, gradSamples: 64, ...opts };
  const dir = join(root, name);
  const done = (r: Omit<CaseResult, 'ms' | 'name'>): CaseResult => ({ name, ...r, ms: performance.now() - t0 });
  const path = join(dir, 'model.onnx');
  if (!existsSync(path)) return done({ blocked: ['no model.onnx (the case downloads its model)'] });
  const bytes = readFileSync(path);
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    return done({ blocked: [`unreadable model: ${firstLine(e)}`] });
  }
  const blocked = blockers(model);
  if (blocked.length) return done({ blocked });
  let g: Graph;
  let d: CaseData;
  try {
    g = Graph.fromBytes(bytes, name);
    d = loadData(g, bytes, dir);
  } catch (e) {
    // Supported as far as its ops and types go, so graft should have read it.
    const fail: Outcome = { status: 'fail', reason: `graft cannot load the case: ${firstLine(e)}` };
    return done({ blocked: [], a: fail, b: fail });
  }
  const random = randomCase(g, d);
  const a: Outcome = random ? { status: 'skip', reason: random } : await checkRoundTrip(g, d);
  const b = await checkInference(g, d);
  const c = await checkGradient(g, d, o).catch((e: unknown): Outcome => ({ status: 'fail', reason: firstLine(e) }));
  return done({ blocked: [], a, b, c });
}

/** Quiet ORT's per-session warnings (old opsets, legacy kernels): a thousand sessions would bury the report. */
export function quietOrt(): void {
  ort.env.logLevel = 'error';
}

export interface BackendSummary {
  total: number;
  supported: number;
  pass: Record<Check, number>;
  applicable: Record<Check, number>;
  skipped: Record<Check, [string, number][]>;
  blockedBy: [string, number][];
  missingOps: [string, number][];
}

export function summarize(results: CaseResult[]): BackendSummary {
  const count = (keys: string[]) => {
    const m = new Map<string, number>();
    for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
    return [...m].sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]));
  };
  const blocked = results.filter((r) => r.blocked.length);
  // A case's reason kind: its missing ops first, then types (one count per case).
  const kind = (r: CaseResult) => (r.blocked.find((x) => x.startsWith('op ')) ? 'missing op' : r.blocked[0]!.replace(/:.*/, ''));
  const pass = { a: 0, b: 0, c: 0 };
  const applicable = { a: 0, b: 0, c: 0 };
  for (const r of results) {
    for (const k of CHECKS) {
      const oc = r[k];
      if (oc && oc.status !== 'skip') applicable[k]++;
      if (oc?.status === 'pass') pass[k]++;
    }
  }
  // Skip reasons grouped (ORT's node names left out).
  const skipped = Object.fromEntries(CHECKS.map((k) => [k, count(results.flatMap((r) => {
    const o = r[k];
    return o?.status === 'skip' ? [o.reason.replace(/ (?:node )?with name '[^']*'/g, '')] : [];
  }))])) as Record<Check, [string, number][]>;
  return {
    total: results.length,
    supported: results.length - blocked.length,
    pass,
    applicable,
    skipped,
    blockedBy: count(blocked.map(kind)),
    missingOps: count(blocked.flatMap((r) => r.blocked.filter((x) => x.startsWith('op ')).map((x) => x.slice(3)))),
  };
}

/** The names of the cases that pass each check, sorted: the ratchet fixture's content. */
export function passing(results: CaseResult[]): Record<Check, string[]> {
  const out = { a: [] as string[], b: [] as string[], c: [] as string[] };
  for (const r of results) for (const k of CHECKS) if (r[k]?.status === 'pass') out[k].push(r.name);
  for (const k of CHECKS) out[k].sort();
  return out;
}
