// DANN on the inter-twinning moons (Ganin et al., JMLR 2016, section 5.1): the target is the source rotated by
// 30 degrees. Over 5 seeds, DANN (through the GradientReversal op) must beat the same network trained with the
// domain loss switched off (lambda 0, source-only), and push the domain classifier toward chance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dannLogits, fitDann } from './dann.ts';
import { rng } from '../rng.ts';

/** sklearn's make_moons (noise 0.1), rotated by `rot` radians around the data's centre. */
function moons(n: number, seed: number, rot: number): { x: Float32Array; y: Int32Array } {
  const r = rng(seed);
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const [c, s] = [Math.cos(rot), Math.sin(rot)];
  for (let i = 0; i < n; i++) {
    const lab = i % 2;
    const t = Math.PI * r();
    const px = (lab === 0 ? Math.cos(t) : 1 - Math.cos(t)) + 0.1 * gauss() - 0.5;
    const py = (lab === 0 ? Math.sin(t) : 0.5 - Math.sin(t)) + 0.1 * gauss() - 0.25;
    x[i * 2] = c * px - s * py + 0.5;
    x[i * 2 + 1] = s * px + c * py + 0.25;
    y[i] = lab;
  }
  return { x, y };
}

const acc = (z: Float64Array, y: Int32Array) => { let ok = 0; for (let i = 0; i < y.length; i++) if ((z[i * 2 + 1]! > z[i * 2]! ? 1 : 0) === y[i]) ok++; return ok / y.length; };

test('DANN on two moons rotated by 30 degrees: beats source-only over 5 seeds and confuses the domain classifier more', async (t) => {
  const rot = (30 * Math.PI) / 180;
  const res = { src: [] as number[], dann: [] as number[], domSrc: [] as number[], domDann: [] as number[] };
  for (let seed = 0; seed < 5; seed++) {
    const src = moons(300, 10 * seed + 1, 0);
    const tgt = moons(300, 10 * seed + 2, rot);
    const held = moons(1000, 10 * seed + 3, rot);
    const data = { xs: src.x, ys: src.y, xt: tgt.x, d: 2, k: 2 };
    const off = await fitDann(data, { lambda: 0, seed, threads: 1 });
    const on = await fitDann(data, { seed, threads: 1 });
    res.src.push(acc(dannLogits(off, held.x, 2), held.y));
    res.dann.push(acc(dannLogits(on, held.x, 2), held.y));
    res.domSrc.push(off.domainAccuracy);
    res.domDann.push(on.domainAccuracy);
  }
  const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / a.length;
  t.diagnostic(`target accuracy: source-only ${res.src.map((v) => v.toFixed(3)).join(' ')} (mean ${mean(res.src).toFixed(3)}), DANN ${res.dann.map((v) => v.toFixed(3)).join(' ')} (mean ${mean(res.dann).toFixed(3)}); domain classifier ${mean(res.domSrc).toFixed(3)} vs ${mean(res.domDann).toFixed(3)}`);
  assert.ok(mean(res.dann) >= mean(res.src) + 0.03, `DANN ${mean(res.dann)} vs source-only ${mean(res.src)}`);
  assert.ok(mean(res.domDann) < mean(res.domSrc) - 0.1, `domain accuracy ${mean(res.domDann)} vs ${mean(res.domSrc)}`);
});
