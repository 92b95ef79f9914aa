/**
 * Sequence backbones: an ONNX model whose one input is a float sequence [N, T, F] (an LSTM, GRU or RNN
 * encoder, or a Conv1d one, exported from PyTorch or downloaded), checked as untrusted like any other file.
 * Its cut points are its outputs, and any tensor named as the extra cut; a [N, T, H] tensor is pooled by
 * its mean over time. Layer groups come from groups.ts (each recurrent layer is one), so backboneNetwork
 * and the Learner fine-tune it as they do an image backbone.
 */
import { readFileSync, statSync } from 'node:fs';
import { GraftError } from '../errors.ts';
import { GraphBuilder } from '../graph/builder.ts';
import type { Graph } from '../graph/ir.ts';
import { sha256 } from '../model/folder.ts';
import { inferGroups } from './groups.ts';
import { checkOnnxFile, loadOnnxFolder } from './onnxfile.ts';
import type { CutPoint, LayerGroup } from './types.ts';

export interface SequenceBackbone {
  kind: 'sequence';
  id: string;
  sha256: string;
  graph: Graph;
  inputName: string;
  /** Per-example input shape [T, F]. */
  inputShape: [number, number];
  cuts: CutPoint[];
  groups: LayerGroup[];
  entry: null;
}

export interface SequenceBackboneOptions {
  /** Sequence length T, where the model's input leaves it symbolic (the recurrent layers unroll over it). */
  length?: number;
  /** A tensor of the graph to offer as a cut besides the outputs. */
  cut?: string;
}

export function loadSequenceBackbone(path: string, o: SequenceBackboneOptions = {}): SequenceBackbone {
  const folder = statSync(path).isDirectory();
  const { graph, modelPath } = folder ? loadOnnxFolder(path) : { graph: checkOnnxFile(path), modelPath: path };
  const inp = graph.inputs.filter((i) => !graph.initializers.has(i.name));
  const shape = inp[0]?.shape;
  if (inp.length !== 1 || !shape || shape.length !== 3 || inp[0]!.dtype !== 'float32' || typeof shape[2] !== 'number') {
    throw new GraftError('E_GRAPH_SHAPE', `${modelPath}: expected a sequence model with one float input of shape [N, T, F], got ${inp.map((i) => `${i.name} ${i.dtype} [${i.shape}]`).join(', ') || 'no input'}`,
      'Export the model with one batch-first float32 input (torch.onnx.export with batch_first layers), F fixed.');
  }
  const t = typeof shape[1] === 'number' ? shape[1] : o.length;
  if (!(Number.isInteger(t) && t! > 0) || (typeof shape[1] === 'number' && o.length !== undefined && o.length !== shape[1])) {
    throw new GraftError('E_BAD_OPTION', `${modelPath}: its input's sequence length is ${JSON.stringify(shape[1])}, ${o.length === undefined ? 'so graft needs one' : `not ${o.length}`}`,
      typeof shape[1] === 'number' ? `The model takes sequences of ${shape[1]} steps; pad or crop to that.` : 'Pass the length the data has (length: T).');
  }
  const inputShape: [number, number] = [t!, shape[2]];
  const b = new GraphBuilder(graph, { [inp[0]!.name]: [1, ...inputShape] });
  const names = [...graph.outputs.map((v) => v.name), ...(o.cut && !graph.outputs.some((v) => v.name === o.cut) ? [o.cut] : [])];
  const cuts = names.map((n) => sequenceCut(b, modelPath, n));
  return { kind: 'sequence', id: modelPath, sha256: sha256(readFileSync(modelPath)), graph, inputName: inp[0]!.name, inputShape, cuts, groups: inferGroups(graph), entry: null };
}

/** A tensor as a cut: [N, H] as it is, [N, T, H] by its mean over time (a node added to the graph). */
function sequenceCut(b: GraphBuilder, source: string, tensor: string): CutPoint {
  if (!b.has(tensor) || b.sym(tensor).dtype !== 'float32') {
    throw new GraftError('E_BAD_OPTION', `${source} has no float tensor named "${tensor}"`, 'Name one of the graph\'s float tensors, or leave the cut out to use its outputs.');
  }
  const s = b.sym(tensor);
  if (s.shape.length === 2) return { name: tensor, tensor, shape: [Number(s.shape[1])] };
  if (s.shape.length === 3) {
    const out = `${tensor}/time-mean`;
    if (!b.has(out)) {
      const axes = b.graph.opset >= 18 ? [s, b.ints([1])] : [s];
      b.op1('ReduceMean', axes, b.graph.opset >= 18 ? { keepdims: 0 } : { axes: [1], keepdims: 0 }, { outputs: [out] });
    }
    return { name: tensor, tensor: `${tensor}/time-mean`, shape: [Number(s.shape[2])], description: 'mean over time' };
  }
  throw new GraftError('E_GRAPH_SHAPE', `${source}: tensor "${tensor}" has shape [${s.shape}]; a sequence cut is [N, H] or [N, T, H]`, 'Cut at the encoder\'s pooled output or its per-step output.');
}

/** A cut of a sequence backbone by name (its outputs, or the extra cut it was loaded with). */
export function findSequenceCut(bb: SequenceBackbone, name: string): CutPoint {
  const c = bb.cuts.find((k) => k.name === name);
  if (c) return c;
  throw new GraftError('E_BAD_OPTION', `sequence backbone ${bb.id} has no cut "${name}". Cut points: [${bb.cuts.map((k) => k.name).join(', ')}]`,
    'Load it with the tensor as its cut (loadSequenceBackbone(path, { cut })).');
}
