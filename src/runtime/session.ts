/**
 * ONNX Runtime sessions for graft graphs. Tensors cross the boundary as graft TensorData (typed arrays
 * that graft owns); ORT only ever sees them for the length of one run().
 */
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { GraftError } from '../errors.ts';
import type { Graph } from '../graph/ir.ts';
import type { DType, TensorData } from '../graph/tensor.ts';

export interface SessionOptions {
  /** Intra-op threads (default: all cores). */
  threads?: number;
  /** ORT graph optimisation level (default 'all'). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** ORT's per-run memory pattern (default off: the CPU arena reuses memory across runs instead). */
  memPattern?: boolean;
}

export function defaultThreads(): number {
  const env = Number(process.env['GRAFT_THREADS']);
  return Number.isInteger(env) && env > 0 ? env : availableParallelism();
}

const ORT_TYPE: Record<Exclude<DType, 'bfloat16'>, ort.Tensor.Type> = {
  float32: 'float32', float64: 'float64', int64: 'int64', int32: 'int32', bool: 'bool', uint8: 'uint8', int8: 'int8', float16: 'float16',
  int16: 'int16', uint16: 'uint16', uint32: 'uint32', uint64: 'uint64',
};

export function toOrt(t: TensorData): ort.Tensor {
  if (t.dtype === 'bfloat16') {
    throw new GraftError('E_GRAPH_INVALID', 'ONNX Runtime\'s JavaScript API has no bfloat16 tensors, so one cannot be fed or fetched',
      'Cast to float32 inside the graph (graft loads, saves and types bfloat16 tensors as data).');
  }
  return new ort.Tensor(ORT_TYPE[t.dtype], t.data as never, t.dims);
}

export function fromOrt(t: ort.Tensor): TensorData {
  return { dtype: t.type as DType, dims: [...t.dims], data: t.data as TensorData['data'] };
}

export class Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  private constructor(private readonly s: ort.InferenceSession) {
    this.inputNames = s.inputNames;
    this.outputNames = s.outputNames;
  }

  static async create(model: Graph | Uint8Array, opts: SessionOptions = {}): Promise<Session> {
    const bytes = model instanceof Uint8Array ? model : model.toBytes();
    const threads = opts.threads ?? defaultThreads();
    try {
      const s = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: opts.optimization ?? 'all',
        executionMode: 'sequential',
        // ORT's memory pattern reserves one block per run outside its arena and frees it afterwards, so a
        // large graph page-faults its whole activation memory on every run: a MobileNetV2 train step at
        // batch 32 took 2.7x longer with it than with the arena's reused chunks (measured, 1 thread).
        enableMemPattern: opts.memPattern ?? false,
        // GRAFT_ORT_PROFILE=prefix writes ORT's per-node timing (chrome trace JSON) for every session.
        ...(process.env['GRAFT_ORT_PROFILE'] ? { enableProfiling: true, profileFilePrefix: process.env['GRAFT_ORT_PROFILE'] } : {}),
      });
      return new Session(s);
    } catch (e) {
      throw new GraftError('E_RUNTIME', `ONNX Runtime could not load the graph: ${(e as Error).message}`,
        'This is a bug in graft if graft built the graph; otherwise check that the model uses standard ONNX ops.');
    }
  }

  /**
   * Runs the graph. `into` names outputs to write into caller-owned arrays (no copy, no allocation);
   * the rest come back as new arrays.
   */
  async run(feeds: Record<string, TensorData>, outputs?: string[], into?: Record<string, TensorData>): Promise<Record<string, TensorData>> {
    const f: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) f[k] = toOrt(v);
    const names = outputs ?? [...this.outputNames];
    let fetches: string[] | Record<string, ort.Tensor | null> = names;
    if (into && Object.keys(into).length) {
      const rec: Record<string, ort.Tensor | null> = {};
      for (const n of names) rec[n] = into[n] ? toOrt(into[n]!) : null;
      fetches = rec;
    }
    let r: ort.InferenceSession.ReturnType;
    try {
      r = await this.s.run(f, fetches as never);
    } catch (e) {
      throw new GraftError('E_RUNTIME', `ONNX Runtime failed to run the graph: ${(e as Error).message}`,
        'Check the shapes and dtypes of the inputs against the model.');
    }
    const out: Record<string, TensorData> = {};
    for (const n of names) out[n] = into?.[n] ?? fromOrt(r[n] as ort.Tensor);
    return out;
  }

  async dispose(): Promise<void> {
    await this.s.release();
  }
}
