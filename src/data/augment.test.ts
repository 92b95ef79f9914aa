import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { rng } from '../rng.ts';
import {
  adjustBrightness, adjustContrast, adjustSaturation, augment, augmentSeed, colorJitter, hflip,
  randomResizedCropBox, resizedCrop, type AugImage,
} from './augment.ts';
import { decodeImage } from './images.ts';

const fx = (name: string) => fileURLToPath(new URL(`../../fixtures/images/${name}`, import.meta.url));

/** A seeded random HWC uint8 image. */
function randomHWC(w: number, h: number, seed: number): AugImage<Uint8Array> {
  const r = rng(seed);
  return { width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r() * 256)) };
}

/** HWC uint8 -> CHW float32 (values unchanged). */
function toCHW(img: AugImage<Uint8Array>): AugImage<Float32Array> {
  const n = img.width * img.height;
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = img.data[i * 3 + c]!;
  return { width: img.width, height: img.height, data: out };
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

test('hflip mirrors columns, and twice is the identity (HWC uint8 and CHW float)', () => {
  const img: AugImage<Uint8Array> = { width: 3, height: 1, data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]) };
  assert.deepEqual([...hflip(img).data], [7, 8, 9, 4, 5, 6, 1, 2, 3]);
  const chw: AugImage<Float32Array> = { width: 3, height: 1, data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]) };
  assert.deepEqual([...hflip(chw).data], [3, 2, 1, 6, 5, 4, 9, 8, 7]);
  const r = randomHWC(17, 11, 1);
  assert.deepEqual(hflip(hflip(r)).data, r.data);
  const f = toCHW(r);
  assert.deepEqual(hflip(hflip(f)).data, f.data);
  assert.ok(hflip(f).data instanceof Float32Array);
  assert.equal(hflip(f).layout, 'chw');
});

test('a crop with scale 1, ratio 1 of a square image is the identity', () => {
  const r = randomHWC(24, 24, 2);
  const f = toCHW(r);
  for (const seed of [0, 1, 99]) {
    const spec = { crop: { size: [24, 24] as [number, number], scale: [1, 1] as [number, number], ratio: [1, 1] as [number, number] } };
    const a = augment(f, spec, seed);
    assert.ok(maxAbs(a.data, f.data) <= 1e-6);
    assert.deepEqual(augment(r, spec, seed).data, r.data);
  }
  assert.deepEqual(randomResizedCropBox(24, 24, { scale: [1, 1], ratio: [1, 1] }, rng(5)), { left: 0, top: 0, width: 24, height: 24 });
});

test('resizedCrop: constant stays constant, crops pick the right region, PIL weights on a 2x shrink', () => {
  const c: AugImage<Float32Array> = { width: 10, height: 8, data: new Float32Array(3 * 80).fill(0.7) };
  assert.ok(maxAbs(resizedCrop(c, { left: 1.5, top: 2, width: 7, height: 5 }, 13, 3).data, new Float32Array(3 * 39).fill(0.7)) < 1e-6);
  // an integer crop at the same size is exact
  const r = randomHWC(9, 7, 3);
  const sub = resizedCrop(r, { left: 2, top: 3, width: 4, height: 2 }, 4, 2);
  for (let y = 0; y < 2; y++) {
    for (let x = 0; x < 4; x++) {
      for (let k = 0; k < 3; k++) assert.equal(sub.data[(y * 4 + x) * 3 + k], r.data[((y + 3) * 9 + x + 2) * 3 + k]);
    }
  }
  // 1-D ramp 0, 30, ..., 210 shrunk 8 -> 4: triangle of half-width 2 around centres 1, 3, 5, 7
  const ramp: AugImage<Float32Array> = { width: 8, height: 1, channels: 1, data: Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7].map((v) => v * 30)) };
  const got = resizedCrop(ramp, { left: 0, top: 0, width: 8, height: 1 }, 4, 1).data;
  const w = (xs: number[], ws: number[]) => xs.reduce((a, x, i) => a + x * ws[i]!, 0) / ws.reduce((a, b) => a + b, 0);
  const want = [w([0, 30, 60], [0.75, 0.75, 0.25]), w([30, 60, 90, 120, 150], [0.25, 0.75, 0.75, 0.25, 0]), w([90, 120, 150, 180, 210], [0.25, 0.75, 0.75, 0.25, 0]), w([150, 180, 210], [0.25, 0.75, 0.75])];
  assert.ok(maxAbs(got, want) < 1e-4, `${[...got]} vs ${want}`);
  assert.throws(() => resizedCrop(r, { left: 6, top: 0, width: 4, height: 2 }, 4, 2), (e: { code?: string }) => e.code === 'E_BAD_OPTION');
});

test('crop and flip commute with the layout: HWC uint8 and CHW float give the same pixels', () => {
  const r = randomHWC(31, 20, 4);
  const f = toCHW(r);
  const spec = { crop: { size: [12, 16] as [number, number] }, flip: 1 };
  const a = augment(r, spec, 7);
  const b = augment(f, spec, 7);
  assert.deepEqual([a.width, a.height, b.width, b.height], [16, 12, 16, 12]);
  assert.ok(maxAbs(toCHW(a as AugImage<Uint8Array>).data, b.data) <= 0.5 + 1e-4); // uint8 rounds
});

test('colour jitter: factor 1 is the identity; brightness scales; saturation 0 is grey; contrast 0 is the mean', () => {
  const r = randomHWC(8, 6, 5);
  const f = toCHW(r);
  for (const fn of [adjustBrightness, adjustContrast, adjustSaturation]) {
    assert.deepEqual(fn(r, 1).data, r.data);
    assert.ok(maxAbs(fn(f, 1).data, f.data) <= 1e-4);
  }
  const half = adjustBrightness(r, 0.5);
  for (let i = 0; i < r.data.length; i++) assert.equal(half.data[i], Math.round(r.data[i]! * 0.5));
  assert.ok(adjustBrightness(r, 3).data.every((v) => v <= 255));
  assert.ok(adjustBrightness(f, 3).data.some((v) => v > 255)); // floats are not clamped by default
  assert.ok(adjustBrightness(f, 3, { range: [0, 255] }).data.every((v) => v <= 255));
  const g = adjustSaturation(f, 0);
  const n = 48;
  for (let i = 0; i < n; i++) {
    const y = 0.299 * f.data[i]! + 0.587 * f.data[n + i]! + 0.114 * f.data[2 * n + i]!;
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(g.data[c * n + i]! - y) < 1e-3);
  }
  const flat = adjustContrast(f, 0).data;
  assert.ok(maxAbs(flat, new Float32Array(flat.length).fill(flat[0]!)) < 1e-3);
  // jitter with 0 strength is the identity; ranges are checked
  assert.deepEqual(colorJitter(r, { brightness: 0, contrast: 0, saturation: 0 }, rng(1)).data, r.data);
  assert.throws(() => colorJitter(r, { brightness: -1 }, rng(1)), (e: { code?: string }) => e.code === 'E_BAD_OPTION');
});

test('augment is deterministic for a seed and differs across seeds, on a real photo', async () => {
  const img = await decodeImage(fx('china.jpg'));
  const spec = { crop: { size: [32, 32] as [number, number], scale: [0.2, 1] as [number, number] }, flip: true, jitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4 } };
  const a = augment(img, spec, augmentSeed(1, 0, 5));
  const b = augment(img, spec, augmentSeed(1, 0, 5));
  assert.deepEqual(a.data, b.data);
  assert.deepEqual([a.width, a.height, a.data.length], [32, 32, 32 * 32 * 3]);
  const outs = [1, 2, 3, 4].map((s) => augment(img, spec, augmentSeed(1, s, 5)).data);
  for (let i = 1; i < outs.length; i++) assert.notDeepEqual(outs[i], outs[0]);
  assert.notEqual(augmentSeed(1, 0, 5), augmentSeed(1, 0, 6));
  // streams are independent: adding jitter does not move the crop or the flip
  const noJitter = augment(img, { crop: spec.crop, flip: true }, 11);
  const jitterOff = augment(img, { ...spec, jitter: {} }, 11);
  assert.deepEqual(noJitter.data, jitterOff.data);
  assert.equal(img.data.length, 64 * 48 * 3); // the input is untouched
  assert.throws(() => augment(img, { flip: 2 }, 1), (e: { code?: string }) => e.code === 'E_BAD_OPTION');
  assert.throws(() => augment(img, { crop: { size: [8, 8], scale: [0, 1] } }, 1), (e: { code?: string }) => e.code === 'E_BAD_OPTION');
});

test('random crop boxes stay inside the image with area and aspect in range', () => {
  for (let s = 0; s < 300; s++) {
    const W = 20 + (s % 37);
    const H = 15 + (s % 23);
    const b = randomResizedCropBox(W, H, { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] }, rng(s));
    assert.ok(b.left >= 0 && b.top >= 0 && b.width >= 1 && b.height >= 1 && b.left + b.width <= W && b.top + b.height <= H, JSON.stringify(b));
  }
  const areas: number[] = [];
  for (let s = 0; s < 300; s++) {
    const b = randomResizedCropBox(200, 150, { scale: [0.25, 0.5], ratio: [0.5, 2] }, rng(s));
    const a = (b.width * b.height) / (200 * 150);
    areas.push(a);
    assert.ok(a > 0.24 && a < 0.51 && b.width / b.height > 0.48 && b.width / b.height < 2.05, JSON.stringify(b));
  }
  assert.ok(Math.min(...areas) < 0.3 && Math.max(...areas) > 0.45, 'the area range is covered');
  // an impossible ratio falls back to a centre crop clamped to the ratio range
  assert.deepEqual(randomResizedCropBox(100, 10, { scale: [0.9, 1], ratio: [1, 1] }, rng(1)), { left: 45, top: 0, width: 10, height: 10 });
});
