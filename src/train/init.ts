/** Seeded weight initialisation (He, Glorot) so that one seed gives the same network twice. */
import { rng } from '../rng.ts';

export type InitKind = 'he' | 'glorot' | 'zeros';

/** Standard normal samples (Box-Muller over the seeded uniform generator). */
export function normal(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-12);
    const v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** Weights of a layer with the given fan-in and fan-out. He: N(0, 2/fanIn). Glorot: U(±sqrt(6/(fanIn+fanOut))). */
export function initWeights(kind: InitKind, n: number, fanIn: number, fanOut: number, seed: number): Float32Array {
  if (kind === 'zeros') return new Float32Array(n);
  if (kind === 'he') {
    const w = normal(n, seed);
    const s = Math.sqrt(2 / fanIn);
    for (let i = 0; i < n; i++) w[i]! *= s;
    return w;
  }
  const r = rng(seed);
  const lim = Math.sqrt(6 / (fanIn + fanOut));
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = (r() * 2 - 1) * lim;
  return w;
}

/** A stable 32-bit hash of strings and numbers, to derive independent seeds (per layer, epoch, batch). */
export function mixSeed(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    const s = String(p);
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0x2f;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
