/**
 * Layer groups for an ONNX backbone that comes with none (a local file, a hub model): from the weights'
 * names where they have module structure (PyTorch exports keep state_dict names such as layer2.1.conv1.weight
 * or features.3.block.0.0.weight), else from the residual-block structure of the graph.
 *
 * By names: the float initializers in the order the graph first uses them, keyed by their first d name
 * segments (the module path, without the tensor's own name); consecutive weights with the same key form a
 * group. d is the smallest depth that gives at least 4 groups none of which holds more than half of the
 * weights (ResNet-18: d = 2, the stem and each of the eight blocks; a ViT: d = 3, one group per encoder
 * layer). Consecutive groups that are single modules under one parent (conv1 and bn1; a stem's conv and BN) are merged.
 *
 * By structure (names without module paths, e.g. onnx::Conv_123, or onnx::LSTM_117 as PyTorch names a recurrent
 * layer's packed weights): a group ends at each residual Add (an Add of two computed tensors), each RNN, GRU or
 * LSTM layer is a group of its own (lstm0, lstm1, ...), and consecutive blocks are merged so that there are at
 * most 12 groups.
 */
import type { Graph } from '../graph/ir.ts';
import type { LayerGroup } from './types.ts';

const MAX_GROUPS = 24;

/** Float initializers in the order nodes first read them. */
function weightOrder(graph: Graph): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const n of graph.nodes) {
    for (const i of n.inputs) {
      const t = i ? graph.initializers.get(i) : undefined;
      if (!t || seen.has(i) || t.dtype !== 'float32') continue;
      seen.add(i);
      out.push(i);
    }
  }
  return out;
}

const segments = (name: string) => name.split(/[./]/).filter((s) => s);

function runsAt(names: string[], d: number): { key: string; leaf: boolean; params: string[] }[] {
  const runs: { key: string; leaf: boolean; params: string[] }[] = [];
  for (const p of names) {
    const s = segments(p).slice(0, -1);
    const key = s.slice(0, d).join('.');
    const leaf = s.length <= d;
    const last = runs.at(-1);
    if (last && last.key === key) last.params.push(p);
    else runs.push({ key, leaf, params: [p] });
  }
  return runs;
}

export function inferGroups(graph: Graph): LayerGroup[] {
  const names = weightOrder(graph);
  if (!names.length) return [];
  const size = (ps: string[]) => ps.reduce((s, p) => s + graph.initializers.get(p)!.data.length, 0);
  const total = size(names);
  const structured = names.filter((p) => segments(p).length >= 2 && !/^onnx::/.test(p)).length >= names.length / 2;
  if (structured) {
    let pick: ReturnType<typeof runsAt> | null = null;
    let best: ReturnType<typeof runsAt> = runsAt(names, 1);
    for (let d = 1; d <= 6; d++) {
      const runs = runsAt(names, d);
      if (runs.length <= MAX_GROUPS && runs.length > best.length) best = runs;
      if (runs.length >= 4 && runs.length <= MAX_GROUPS && Math.max(...runs.map((r) => size(r.params))) <= total / 2) {
        pick = runs;
        break;
      }
    }
    const runs = pick ?? best;
    if (runs.length >= 2) {
      // Consecutive single modules under one parent (conv1 and bn1 at the root; a stem's Conv and its BatchNorm,
      // features.0.0 and features.0.1) form one group, named by the parent where there is one.
      const merged: LayerGroup[] = [];
      const parent = (k: string) => k.split('.').slice(0, -1).join('.');
      let prev: { key: string; leaf: boolean } | null = null;
      for (const r of runs) {
        const last = merged.at(-1);
        if (last && prev && r.leaf && prev.leaf && parent(r.key) === parent(prev.key)) {
          last.name = parent(r.key) || `${last.name.split('+')[0]}+${r.key || 'root'}`;
          last.params.push(...r.params);
        } else merged.push({ name: r.key || 'root', params: [...r.params] });
        prev = r;
      }
      // Names must be unique (a module path can recur when the graph interleaves two modules).
      const seen = new Map<string, number>();
      for (const g of merged) {
        const k = seen.get(g.name) ?? 0;
        seen.set(g.name, k + 1);
        if (k) g.name = `${g.name}#${k + 1}`;
      }
      return merged;
    }
  }
  return structuralGroups(graph, names);
}

const RECURRENT = new Set(['RNN', 'GRU', 'LSTM']);

/** Groups that end at residual Adds, merged into at most 12 runs; each recurrent layer is a group of its own. */
function structuralGroups(graph: Graph, names: string[]): LayerGroup[] {
  const want = new Set(names);
  const blocks: { label: string | null; params: string[] }[] = [{ label: null, params: [] }];
  const seen = new Set<string>();
  let recurrent = 0;
  const open = (label: string | null) => {
    if (blocks.at(-1)!.params.length) blocks.push({ label, params: [] });
    else blocks.at(-1)!.label = label;
  };
  for (const n of graph.nodes) {
    const rec = RECURRENT.has(n.op);
    if (rec) open(`${n.op.toLowerCase()}${recurrent++}`);
    for (const i of n.inputs) {
      if (i && want.has(i) && !seen.has(i)) {
        seen.add(i);
        blocks.at(-1)!.params.push(i);
      }
    }
    const residual = n.op === 'Add' && n.inputs.length === 2 && n.inputs.every((i) => i && !graph.initializers.has(i));
    if (rec || (residual && blocks.at(-1)!.params.length)) open(null);
  }
  const nonEmpty = blocks.filter((b) => b.params.length);
  // At most 12 groups: consecutive blocks merged in equal numbers (weights grow with depth, so merging by
  // weight would lump the whole early network into one group).
  const per = Math.ceil(nonEmpty.length / 12);
  const out: LayerGroup[] = [];
  for (let i = 0; i < nonEmpty.length; i += per) {
    const run = nonEmpty.slice(i, i + per);
    out.push({ name: per === 1 && run[0]!.label ? run[0]!.label : `block${out.length}`, params: run.flatMap((b) => b.params) });
  }
  return out;
}
