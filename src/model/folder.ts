/**
 * A trained model is a folder: graft.json (labels, columns, head, training settings, metrics,
 * provenance) and model.onnx (one self-contained inference graph). Folders are written atomically and
 * checked on load: a missing or corrupt file is a typed error, never a crash inside ORT.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraftError } from '../errors.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import { Graph } from '../graph/ir.ts';
import { Session, type SessionOptions } from '../runtime/session.ts';

export const FORMAT_VERSION = 1;
export const GRAFT_VERSION = '0.1.0';

export interface ModelCard {
  format: 'graft-model';
  formatVersion: number;
  graftVersion: string;
  createdAt: string;
  task: 'classification' | 'token-classification';
  labels: string[];
  input: { name: string; kind: 'features' | 'image' | 'speech-embedding' | 'pooled-word-vectors' | 'token-ids'; columns: string[]; shape: number[]; preprocess?: unknown };
  outputs: { probabilities: string; logits: string };
  backbone: null | { id: string; sha256: string; cut: string };
  head: Record<string, unknown>;
  training: Record<string, unknown>;
  metrics: Record<string, unknown>;
  history: unknown[];
  files: Record<string, { sha256: string; bytes: number }>;
  provenance: Record<string, unknown>;
  diagnosis?: unknown;
}

export const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** Writes graft.json, model.onnx and any extra files (e.g. a tokenizer) as one atomic folder. */
export function saveModel(dir: string, card: Omit<ModelCard, 'files' | 'format' | 'formatVersion' | 'graftVersion'>, onnx: Uint8Array, extra: Record<string, Uint8Array> = {}): ModelCard {
  const full: ModelCard = {
    format: 'graft-model', formatVersion: FORMAT_VERSION, graftVersion: GRAFT_VERSION, ...card,
    files: { 'model.onnx': { sha256: sha256(onnx), bytes: onnx.byteLength } },
  };
  writeDirAtomic(dir, { ...extra, 'model.onnx': onnx, 'graft.json': JSON.stringify(full, null, 2) + '\n' });
  return full;
}

function corrupt(dir: string, what: string): GraftError {
  return new GraftError('E_MODEL_CORRUPT', `model folder ${dir} is damaged: ${what}`,
    'Train the model again (graft train ... --out DIR), or restore the folder from a backup.');
}

export function readCard(dir: string): ModelCard {
  const path = join(dir, 'graft.json');
  if (!existsSync(dir)) {
    throw new GraftError('E_MODEL_MISSING', `model folder ${dir} does not exist`, 'Pass the folder that graft train wrote with --out.');
  }
  if (!existsSync(path)) throw new GraftError('E_MODEL_MISSING', `${path} is missing`, 'A model folder holds graft.json and model.onnx; pass the folder that graft train wrote.');
  let card: ModelCard;
  try {
    card = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw corrupt(dir, 'graft.json is not valid JSON');
  }
  if (card?.format !== 'graft-model') throw corrupt(dir, 'graft.json is not a graft model card');
  if (typeof card.formatVersion !== 'number' || card.formatVersion > FORMAT_VERSION) {
    throw new GraftError('E_MODEL_VERSION', `model folder ${dir} has format version ${card.formatVersion}; this graft reads up to ${FORMAT_VERSION}`, 'Upgrade graft to read this model.');
  }
  if (!Array.isArray(card.labels) || card.labels.length < 1 || !card.input || !Array.isArray(card.input.shape) || (card.input.kind === 'features' && !Array.isArray(card.input.columns))) {
    throw corrupt(dir, 'graft.json lacks labels, the input shape or the input columns');
  }
  return card;
}

export interface LoadedModel {
  card: ModelCard;
  session: Session;
  /** Class probabilities, row-major [n, labels]. */
  predict(x: Float32Array, n: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export async function loadModel(dir: string, opts: SessionOptions = {}): Promise<LoadedModel> {
  const card = readCard(dir);
  const path = join(dir, 'model.onnx');
  if (!existsSync(path)) throw new GraftError('E_MODEL_MISSING', `${path} is missing`, 'Train the model again, or restore model.onnx from a backup.');
  const bytes = readFileSync(path);
  const want = card.files?.['model.onnx']?.sha256;
  if (want && sha256(bytes) !== want) throw corrupt(dir, 'model.onnx does not match the sha256 recorded in graft.json');
  try {
    Graph.fromBytes(bytes, path); // a structural check before ORT sees the bytes
  } catch {
    throw corrupt(dir, 'model.onnx is not a readable ONNX model');
  }
  const session = await Session.create(bytes, opts);
  const k = card.labels.length;
  const d = card.input.shape.reduce((a, b) => a * b, 1);
  return {
    card,
    session,
    async predict(x, n) {
      if (x.length !== n * d) {
        throw new GraftError('E_GRAPH_SHAPE', `the model expects ${d} values per example ([${card.input.shape}]), got ${x.length / Math.max(n, 1)}`, 'Pass examples shaped as the model was trained on.');
      }
      const out = new Float32Array(n * k);
      const step = card.input.kind === 'image' ? 32 : 1024;
      for (let from = 0; from < n; from += step) {
        const m = Math.min(step, n - from);
        const r = await session.run({ [card.input.name]: { dtype: 'float32', dims: [m, ...card.input.shape], data: x.subarray(from * d, (from + m) * d) } }, [card.outputs.probabilities]);
        out.set(r[card.outputs.probabilities]!.data as Float32Array, from * k);
      }
      return out;
    },
    dispose: () => session.dispose(),
  };
}
