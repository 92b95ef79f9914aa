/**
 * The run context of one public-API call (src/index.ts): its AbortSignal, its progress callback, and
 * whether a progress bar may draw on a terminal. It is carried by AsyncLocalStorage, so the long loops
 * far below the API (the Learner's batches, feature extraction, cross-validation folds) can stop or
 * report without every layer passing the options down. Outside such a call (the lower layers used
 * directly) nothing is checked and nothing is reported, unless a Learner is given its own signal.
 *
 * This module sits with errors.ts at the bottom of the layers: it imports nothing else from graft.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { GraftError } from './errors.ts';

/** What a run reports through `onProgress`. */
export type ProgressEvent =
  /** A long phase begins (reading data, training, evaluating, writing the model). */
  | { type: 'phase'; phase: string; message: string }
  /** A training epoch ended (any Learner inside the run: a fold, the refit, a fine-tuning stage). */
  | { type: 'epoch'; epoch: number; epochs: number; trainLoss: number; valLoss?: number; valAccuracy?: number; seconds: number }
  /** A progress line, as `log` receives it. */
  | { type: 'log'; message: string };

export interface RunContext {
  /** Aborting it stops the run at the next check with GraftError E_ABORTED. */
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** false keeps the terminal progress bar off (the library default); true or unset lets it draw. */
  progressBar?: boolean;
}

const store = new AsyncLocalStorage<RunContext>();

/** Runs `fn` with `ctx` as the run context of everything it awaits. */
export function withRun<T>(ctx: RunContext, fn: () => Promise<T>): Promise<T> {
  return store.run(ctx, fn);
}

/** The run context in effect, if any. */
export function currentRun(): RunContext | undefined {
  return store.getStore();
}

/** The error an aborted run stops with. */
export function abortedError(signal: AbortSignal): GraftError {
  const r: unknown = signal.reason;
  const why = r instanceof Error ? r.message : typeof r === 'string' ? r : 'the AbortSignal was aborted';
  return new GraftError('E_ABORTED', `stopped: ${why}`,
    'The run was aborted by its AbortSignal; no model folder was written. Run it again (a run that checkpoints can continue with resume: true, or --resume).');
}

/** Throws E_ABORTED when the given signal, or the run context's, has been aborted. */
export function checkAborted(signal: AbortSignal | undefined = store.getStore()?.signal): void {
  if (signal?.aborted) throw abortedError(signal);
}

/** Sends an event to the run context's progress callback (if any). */
export function reportProgress(event: ProgressEvent): void {
  store.getStore()?.onProgress?.(event);
}
