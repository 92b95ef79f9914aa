/**
 * Reverse-mode automatic differentiation over ONNX graphs. Given a scalar loss and the tensors to
 * differentiate with respect to, it appends the backward pass to the same graph, as ordinary ONNX nodes
 * emitted by one small rule per op (graph/ops/*). ORT then runs forward and backward in one session.
 */
import { GraftError } from '../errors.ts';
import { GraphBuilder, type Sym, inferCtx, staticShape } from './builder.ts';
import type { Node } from './ir.ts';
import { fitOpset, opsetMins } from './opset.ts';
import { type GradCtx, OPS } from './ops/registry.ts';
import { GRAFT_DOMAIN } from './ops/gradreverse.ts';
import { sizeOf, tensor } from './tensor.ts';

export interface GradientOptions {
  /** Gradient fed into the loss (default: ones, i.e. d loss / d loss = 1). */
  seed?: Sym;
}

/** Returns the gradient of `loss` for each name in `wrt` that the loss depends on. */
export function gradients(b: GraphBuilder, loss: string, wrt: string[], opts: GradientOptions = {}): Map<string, Sym> {
  const g = b.graph;
  const forward = [...g.toposort().nodes];
  const mins = opsetMins(g);
  const wrtSet = new Set(wrt);

  // Tensors that depend on a wrt tensor, and tensors the loss depends on.
  const reach = new Set<string>(wrt);
  for (const n of forward) {
    if (n.inputs.some((i) => reach.has(i))) for (const o of n.outputs) if (o) reach.add(o);
  }
  const prod = g.producers();
  const needed = new Set<string>();
  const stack = [loss];
  while (stack.length) {
    const t = stack.pop()!;
    if (needed.has(t)) continue;
    needed.add(t);
    const n = prod.get(t);
    if (n) for (const i of n.inputs) if (i) stack.push(i);
  }
  const active = forward.filter((n) => n.outputs.some((o) => needed.has(o) && reach.has(o)));

  const acc = new Map<string, Sym[]>();
  const push = (name: string, s: Sym) => {
    const list = acc.get(name);
    if (list) list.push(s);
    else acc.set(name, [s]);
  };
  const total = (name: string): Sym | null => {
    const list = acc.get(name);
    if (!list || list.length === 0) return null;
    if (list.length === 1) return list[0]!;
    const s = b.op1('Sum', list);
    acc.set(name, [s]);
    return s;
  };

  const l = b.sym(loss);
  push(loss, opts.seed ?? b.constant(tensor(l.dtype, staticShape(l), new Array(sizeOf(staticShape(l))).fill(1))));

  for (let k = active.length - 1; k >= 0; k--) {
    const node = active[k]!;
    const dys = node.outputs.map((o) => (o ? total(o) : null));
    if (dys.every((d) => d === null)) continue;
    const def = OPS.get(node.op);
    if (!def?.grad || (node.domain && node.domain !== 'ai.onnx' && node.domain !== GRAFT_DOMAIN)) {
      throw new GraftError('E_GRAD_NO_RULE', `no gradient rule for op ${node.domain ? node.domain + '.' : ''}${node.op} (node "${node.name}")`,
        'Freeze the layers that use this op (train from a later cut), or file an issue asking for the rule.',
        { op: node.op, node: node.name });
    }
    const needs = (i: number) => {
      const name = node.inputs[i];
      return !!name && reach.has(name) && !(def.nondiff ?? []).includes(i);
    };
    const ctx = gradCtx(b, node, dys, needs);
    const grads = def.grad(ctx);
    node.inputs.forEach((name, i) => {
      if (!needs(i)) return;
      const gi = grads[i];
      if (gi === undefined) {
        throw new GraftError('E_GRAD_UNSUPPORTED', `op ${node.op} (node "${node.name}") has no gradient for its input ${i} ("${name}")`,
          'That input cannot be trained through this op; freeze what feeds it.', { op: node.op, node: node.name });
      }
      if (gi) push(name, gi);
    });
  }

  // Backward nodes may need a newer opset than a loaded graph declares (ScatterND with reduction: 16).
  fitOpset(g, mins, (t) => b.types.get(t)?.shape.length, (t) => b.types.get(t)?.dtype);

  const out = new Map<string, Sym>();
  for (const w of wrtSet) {
    const s = total(w);
    if (s) out.set(w, s);
  }
  return out;
}

function gradCtx(b: GraphBuilder, node: Node, dys: (Sym | null)[], needs: (i: number) => boolean): GradCtx {
  const base = inferCtx(node, node.inputs.map((i) => (i ? b.types.get(i) : undefined)));
  return {
    ...base,
    b,
    x: (i) => {
      const name = node.inputs[i];
      if (!name) throw new GraftError('E_GRAPH_INVALID', `node ${node.name} (${node.op}) has no input ${i}`, 'The graph is malformed.');
      return b.sym(name);
    },
    y: (i) => b.sym(node.outputs[i]!),
    dy: (i) => dys[i] ?? null,
    needs,
    unbroadcast: (gs, target) => unbroadcast(b, gs, target),
    vjp: (forward) => vjpOf(b, node, dys, needs, forward),
    ensureOutput: (i) => {
      while (node.outputs.length <= i) node.outputs.push('');
      if (!node.outputs[i]) {
        node.outputs[i] = b.graph.fresh(`${node.name}_out${i}`);
        b.inferNode(node);
      }
      return b.sym(node.outputs[i]!);
    },
  };
}

/**
 * GradCtx.vjp: the node's forward rebuilt in a subgraph from its inputs, the loss sum(y_k * dy_k) over the
 * outputs that get a gradient, differentiated there, and the subgraph inlined into `b` (names prefixed).
 */
function vjpOf(b: GraphBuilder, node: Node, dys: (Sym | null)[], needs: (i: number) => boolean,
  forward: (b: GraphBuilder, xs: (Sym | null)[]) => Sym[]): (Sym | null)[] {
  const sub = new GraphBuilder();
  sub.graph.opset = b.graph.opset;
  sub.hints = { ...b.hints };
  const connect: Record<string, string> = {};
  const xs = node.inputs.map((name, i) => {
    if (!name) return null;
    const t = b.types.get(name)!;
    connect[`x${i}`] = name;
    return sub.input(`x${i}`, t.dtype, t.shape);
  });
  const ys = forward(sub, xs);
  const terms: Sym[] = [];
  ys.forEach((y, k) => {
    const dy = dys[k];
    if (!dy) return;
    connect[`dy${k}`] = dy.name;
    terms.push(sub.op1('ReduceSum', [sub.mul(y, sub.input(`dy${k}`, dy.dtype, dy.shape))], { keepdims: 0 }));
  });
  const wrt = node.inputs.flatMap((name, i) => (name && needs(i) ? [`x${i}`] : []));
  if (!terms.length || !wrt.length) return node.inputs.map(() => null);
  const loss = terms.reduce((a, t) => sub.add(a, t));
  const grads = gradients(sub, loss.name, wrt);
  const got = wrt.filter((w) => grads.has(w));
  got.forEach((w) => sub.output(grads.get(w)!, `grad_${w}`));
  const before = b.graph.nodes.length;
  const prefix = `${node.name}/vjp/`;
  // append() would take the subgraph's opset; the outer fitOpset decides instead (or says what blocks it).
  const opset = b.graph.opset;
  const names = b.graph.append(sub.graph, connect, prefix);
  b.graph.opset = opset;
  for (const k of sub.graph.initializers.keys()) b.types.set(`${prefix}${k}`, sub.types.get(k)!);
  for (const n of b.graph.nodes.slice(before)) b.inferNode(n);
  // A wanted input the primitive form reaches only through non-differentiable steps (GridSample's grid in
  // nearest mode, through Round) has a zero gradient.
  return node.inputs.map((name, i) => {
    const j = got.indexOf(`x${i}`);
    if (j >= 0) return b.sym(names[j]!);
    if (!name || !needs(i)) return null;
    const t = b.types.get(name)!;
    return b.op1('ConstantOfShape', [b.ints(staticShape({ name, ...t }))], { value: tensor(t.dtype, [1], [0]) });
  });
}

/** Sums a broadcast gradient back down to the shape of the tensor it flowed from. */
export function unbroadcast(b: GraphBuilder, g: Sym, target: Sym): Sym {
  const gs = staticShape(g);
  const ts = staticShape(target);
  if (gs.length === ts.length && gs.every((d, i) => d === ts[i])) return g;
  const lead = gs.length - ts.length;
  // Summed axes, then the same with unit axes dropped and neighbours of one kind merged: ORT reduces a
  // [1280, 320, 1, 1] tensor over axis 1 about 30x slower than the same values as [1280, 320] (measured).
  const summed = gs.map((d, i) => i < lead || (ts[i - lead] === 1 && d !== 1));
  const dims: number[] = [];
  const kinds: boolean[] = [];
  gs.forEach((d, i) => {
    if (d === 1) return;
    if (kinds.length && kinds.at(-1) === summed[i]) dims[dims.length - 1]! *= d;
    else {
      dims.push(d);
      kinds.push(summed[i]!);
    }
  });
  const axes = kinds.flatMap((k, i) => (k ? [i] : []));
  if (!axes.length) return b.reshape(g, ts);
  return b.reshape(b.reduceSum(b.reshape(g, dims), axes, false), ts);
}
