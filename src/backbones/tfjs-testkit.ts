/** Tests only: TF.js (pure JS CPU backend), loaded once and quiet, as the reference converted models are checked against. */
import type * as TF from '@tensorflow/tfjs';

let tfCache: typeof TF | undefined;
/** Prod mode turns off TF.js's "install tfjs-node" banner. */
export async function tfjs(): Promise<typeof TF> {
  if (!tfCache) {
    tfCache = await import('@tensorflow/tfjs');
    tfCache.enableProdMode();
    await tfCache.setBackend('cpu');
  }
  return tfCache;
}
