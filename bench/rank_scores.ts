/**
 * Time per score of `graft rank` on one cut: n = 1000 examples of d = 1280 and 2048 features (k = 10
 * classes, post-ReLU-like synthetic features with a decaying spectrum), each stage separately and
 * transferScores end to end. --exact also runs the exact (unreduced) LogME and H-score in float64 to
 * show what the rank-256 reduction changes (slow: a 1000 x 1000 eigendecomposition in JavaScript).
 * Usage: node --import tsx bench/rank_scores.ts [--n 1000] [--dims 1280,2048] [--repeat 3] [--exact]
 */
import { loadavg } from 'node:os';
import { rng } from '../src/rng.ts';
import { defaultThreads } from '../src/runtime/session.ts';
import { argmaxRows, hScoreFromSpectrum, knnFromGram, leep, logmeFromSpectrum, nce, transferScores } from '../src/rank/scores.ts';
import { gramOf, spectrumOf } from '../src/rank/spectrum.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const n = Number(arg('n', '1000'));
const dims = arg('dims', '1280,2048').split(',').map(Number);
const repeat = Number(arg('repeat', '3'));
const k = 10;

function features(d: number, seed: number): { x: Float32Array; y: Int32Array; probs: Float32Array } {
  const r = rng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
  const y = Int32Array.from({ length: n }, (_, i) => i % k);
  const means = Float64Array.from({ length: k * d }, (_, i) => ((i % d) % 8 === 0 ? 0.15 * gauss() : 0)); // class signal in 1 of 8 features
  const scale = Float64Array.from({ length: d }, (_, j) => 0.05 + Math.exp(-j / 60));
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) x[i * d + j] = Math.max(0, 0.3 + means[y[i]! * d + j]! + scale[j]! * gauss());
  const kSource = 1000;
  const probs = new Float32Array(n * kSource);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let z = 0; z < kSource; z++) { const v = Math.exp(gauss() + (z % k === y[i] ? 2 : 0)); probs[i * kSource + z] = v; s += v; }
    for (let z = 0; z < kSource; z++) probs[i * kSource + z]! /= s;
  }
  return { x, y, probs };
}

/** Wall and CPU (all threads: JavaScript, ORT, GC) milliseconds since a mark. */
const mark = () => ({ t: performance.now(), c: process.cpuUsage() });
const since = (m: ReturnType<typeof mark>): [number, number] => { const c = process.cpuUsage(m.c); return [performance.now() - m.t, (c.user + c.system) / 1000]; };
const ms = (t0: number) => performance.now() - t0;
console.log(`n = ${n}, k = ${k}, ${defaultThreads()} threads, best of ${repeat} after a warm-up run (cpu: all threads); load average ${loadavg().map((v) => v.toFixed(1)).join(' ')}`);
for (const d of dims) {
  const { x, y, probs } = features(d, d);
  const best: Record<string, [number, number]> = {};
  const keep = (key: string, v: [number, number]) => {
    if (rep < 0) return;
    const b = best[key] ?? [Infinity, Infinity];
    best[key] = [Math.min(b[0], v[0]), Math.min(b[1], v[1])];
  };
  let rep = -1;
  let scores;
  for (rep = -1; rep < repeat; rep++) { // rep -1 warms up the JIT and makes the ORT sessions
    let t0 = mark();
    const gram = await gramOf(x, n, d);
    keep('gram (ORT float32)', since(t0));
    t0 = mark();
    const spec = await spectrumOf(x, y, d, k, {}, gram);
    keep(`reduction to 256 (${spec.reduction})`, since(t0));
    t0 = mark();
    logmeFromSpectrum(spec);
    keep('LogME (on the reduction)', since(t0));
    t0 = mark();
    hScoreFromSpectrum(spec);
    keep('H-score (on the reduction)', since(t0));
    t0 = mark();
    knnFromGram(gram.g, y, k);
    keep('kNN leave-one-out (from the Gram)', since(t0));
    t0 = mark();
    nce(argmaxRows(probs, 1000), y, 1000, k);
    leep(probs, y, 1000, k);
    keep('NCE + LEEP (1000 source classes)', since(t0));
    t0 = mark();
    scores = await transferScores(x, y, d, k, { sourceProbs: probs, kSource: 1000 });
    keep('transferScores, all of the above', since(t0));
  }
  console.log(`\nd = ${d}`);
  console.log(`  ${''.padEnd(40)} ${'wall ms'.padStart(8)} ${'cpu ms'.padStart(8)}`);
  for (const [key, [w, c]] of Object.entries(best)) console.log(`  ${key.padEnd(40)} ${w.toFixed(0).padStart(8)} ${c.toFixed(0).padStart(8)}`);
  console.log('  scores', JSON.stringify(scores, (_, v) => (typeof v === 'number' ? +v.toFixed(5) : v)));
  if (process.argv.includes('--exact')) {
    const t0 = performance.now();
    const exact = await spectrumOf(x, y, d, k, { maxDim: n });
    const reduced = await spectrumOf(x, y, d, k);
    const exact256 = await spectrumOf(x, y, d, k, { svd: 'exact' });
    console.log(`  exact, unreduced (${ms(t0).toFixed(0)} ms for the three): LogME ${logmeFromSpectrum(exact).toFixed(5)}, H-score (in ${exact.dims} dims) ${hScoreFromSpectrum(exact).toFixed(5)}`);
    console.log(`  exact rank-256 SVD: LogME ${logmeFromSpectrum(exact256).toFixed(5)}, H-score ${hScoreFromSpectrum(exact256).toFixed(5)}`);
    console.log(`  randomized rank-256 SVD: LogME ${logmeFromSpectrum(reduced).toFixed(5)}, H-score ${hScoreFromSpectrum(reduced).toFixed(5)}`);
  }
}
