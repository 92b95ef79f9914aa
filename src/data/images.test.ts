import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { ImagePreprocess } from '../backbones/types.ts';
import { checkPreprocess, decodeImage, normalizeHWC, prepareImage, resizeImage, resizePlan, roundHalfEven } from './images.ts';

const fx = (name: string) => fileURLToPath(new URL(`../../fixtures/images/${name}`, import.meta.url));

/** Asserts that fn rejects with a GraftError of this code whose message names `file`. */
async function rejectsWith(p: Promise<unknown>, code: string, file?: string): Promise<Error & { code: string; details?: Record<string, unknown> }> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  const e = err as Error & { code: string; hint: string; details?: Record<string, unknown> };
  assert.ok(e, `expected a rejection with ${code}`);
  assert.equal(e.name, 'GraftError', String(e));
  assert.equal(e.code, code, e.message);
  assert.ok(e.hint.length > 0);
  if (file) assert.ok(e.message.includes(file), `message names the file: ${e.message}`);
  return e;
}

const solidPng = (w: number, h: number, rgb: [number, number, number]) =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();

test('EXIF orientation 6 is applied: a 64x48 stored JPEG decodes as 48x64, rotated clockwise', async () => {
  const img = await decodeImage(fx('china-orient6.jpg'));
  assert.equal(img.width, 48);
  assert.equal(img.height, 64);
  assert.equal(img.data.length, 48 * 64 * 3);
  assert.ok(img.data instanceof Uint8Array);
  // the stored pixels, without orientation
  const raw = await sharp(fx('china-orient6.jpg')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([raw.info.width, raw.info.height], [64, 48]);
  let maxDiff = 0;
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 48; x++) {
      // 90° clockwise: displayed (x, y) is stored (y, H - 1 - x)
      const s = ((47 - x) * 64 + y) * 3;
      const d = (y * 48 + x) * 3;
      for (let c = 0; c < 3; c++) maxDiff = Math.max(maxDiff, Math.abs(img.data[d + c]! - raw.data[s + c]!));
    }
  }
  assert.ok(maxDiff <= 2, `rotated pixels match the stored ones (max diff ${maxDiff})`);
});

test('alpha is composited onto white: transparent -> 255, half -> blend, opaque unchanged', async () => {
  const img = await decodeImage(fx('flower-alpha.png'));
  assert.deepEqual([img.width, img.height], [32, 24]);
  const rgba = await sharp(fx('flower-alpha.png')).raw().toBuffer({ resolveWithObject: true });
  assert.equal(rgba.info.channels, 4);
  for (let y = 0; y < 24; y++) {
    for (let x = 0; x < 32; x++) {
      const p = y * 32 + x;
      for (let c = 0; c < 3; c++) {
        const got = img.data[p * 3 + c]!;
        const src = rgba.data[p * 4 + c]!;
        const a = rgba.data[p * 4 + 3]! / 255;
        if (x < 16) assert.equal(got, 255, `transparent pixel ${x},${y}`);
        else if (x >= 24) assert.equal(got, src, `opaque pixel ${x},${y}`);
        else assert.ok(Math.abs(got - (src * a + 255 * (1 - a))) <= 1.5, `half pixel ${x},${y}: ${got}`);
      }
    }
  }
});

test('WebP and the first frame of an animated GIF decode to RGB', async () => {
  const w = await decodeImage(fx('flower.webp'));
  assert.deepEqual([w.width, w.height, w.data.length], [40, 30, 40 * 30 * 3]);
  assert.ok(new Set(w.data).size > 20, 'a photo, not a flat colour');
  const g = await decodeImage(fx('anim-2frames.gif'));
  assert.deepEqual([g.width, g.height, g.data.length], [16, 16, 16 * 16 * 3]);
  for (let i = 0; i < 16 * 16; i++) assert.deepEqual([...g.data.subarray(i * 3, i * 3 + 3)], [255, 0, 0]); // frame 1 is red, frame 2 blue
});

test('greyscale 16-bit PNG and CMYK JPEG come out as 8-bit RGB; buffers decode too', async () => {
  const g16 = await sharp(Buffer.alloc(6 * 5 * 3, 200), { raw: { width: 6, height: 5, channels: 3 } }).toColourspace('grey16').png().toBuffer();
  const a = await decodeImage(g16);
  assert.deepEqual([a.width, a.height, a.data.length], [6, 5, 90]);
  assert.ok(a.data.every((v) => Math.abs(v - 200) <= 1));
  const cmyk = await sharp(fx('china.jpg')).toColourspace('cmyk').jpeg().toBuffer();
  assert.equal((await sharp(cmyk).metadata()).space, 'cmyk');
  const b = await decodeImage(new Uint8Array(cmyk));
  assert.deepEqual([b.width, b.height, b.data.length], [64, 48, 64 * 48 * 3]);
});

test('corrupt, truncated, unsupported and missing files throw typed errors naming the file', async () => {
  await rejectsWith(decodeImage(fx('truncated.jpg')), 'E_IMAGE_CORRUPT', 'truncated.jpg');
  await rejectsWith(decodeImage(fx('garbage.jpg')), 'E_IMAGE_CORRUPT', 'garbage.jpg');
  await rejectsWith(decodeImage(fx('no-such-file.png')), 'E_FILE_MISSING', 'no-such-file.png');
  await rejectsWith(decodeImage(fx('')), 'E_FILE_MISSING'); // a folder
  await rejectsWith(decodeImage(readFileSync(fx('truncated.jpg')), { name: 'upload-7' }), 'E_IMAGE_CORRUPT', 'upload-7');
  await rejectsWith(decodeImage(new Uint8Array(0)), 'E_IMAGE_CORRUPT');
  const tiff = await solidPng(4, 4, [1, 2, 3]).then((b) => sharp(b).tiff().toBuffer());
  const e = await rejectsWith(decodeImage(tiff, { name: 'scan.tif' }), 'E_IMAGE_CORRUPT', 'scan.tif');
  assert.match(e.message, /tiff/);
  await rejectsWith(prepareImage(fx('truncated.jpg'), { size: [8, 8], resize: 'squash', scale: 1, mean: [0, 0, 0], std: [1, 1, 1] }), 'E_IMAGE_CORRUPT', 'truncated.jpg');
});

test('a decompression bomb (header 100000x100000) is refused from its header, without allocating', async () => {
  const before = process.memoryUsage().rss;
  const t0 = Date.now();
  const e = await rejectsWith(decodeImage(fx('bomb-100000x100000.png')), 'E_IMAGE_TOO_LARGE', 'bomb-100000x100000.png');
  assert.equal(e.details?.['width'], 100000);
  assert.equal(e.details?.['height'], 100000);
  await rejectsWith(prepareImage(fx('bomb-100000x100000.png'), { size: [8, 8], resize: 'center-crop', scale: 1, mean: [0, 0, 0], std: [1, 1, 1] }), 'E_IMAGE_TOO_LARGE');
  // the file's pixel data is cut after 16 rows: a decode attempt would have failed as E_IMAGE_CORRUPT
  const grown = (process.memoryUsage().rss - before) / 2 ** 20;
  assert.ok(grown < 64, `RSS grew by ${grown.toFixed(1)} MiB`);
  assert.ok(Date.now() - t0 < 5000);
  // the limit is an option
  await rejectsWith(decodeImage(fx('china.jpg'), { maxPixels: 64 * 48 - 1 }), 'E_IMAGE_TOO_LARGE', 'china.jpg');
  assert.equal((await decodeImage(fx('china.jpg'), { maxPixels: 64 * 48 })).width, 64);
  await rejectsWith(decodeImage(fx('china.jpg'), { maxPixels: 0 }), 'E_BAD_OPTION');
});

test('prepareImage normalises: 255 with scale 1/255, mean 0.5, std 0.5 -> 1; CHW order', async () => {
  const pre: ImagePreprocess = { size: [4, 5], resize: 'squash', scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  const white = await prepareImage(await solidPng(10, 7, [255, 255, 255]), pre);
  assert.ok(white instanceof Float32Array);
  assert.equal(white.length, 3 * 4 * 5);
  assert.ok(white.every((v) => v === 1));
  const rgb = await prepareImage(await solidPng(9, 9, [0, 51, 255]), { ...pre, resize: 'center-crop', mean: [0, 0.2, 0.5], std: [1, 0.1, 0.25] });
  const n = 20;
  for (let i = 0; i < n; i++) {
    assert.equal(rgb[i], 0); // R: 0
    assert.ok(Math.abs(rgb[n + i]! - 0) < 1e-6); // G: (51/255 - 0.2) / 0.1
    assert.ok(Math.abs(rgb[2 * n + i]! - 2) < 1e-6); // B: (1 - 0.5) / 0.25
  }
  // normalizeHWC on its own
  const x = normalizeHWC(Uint8Array.from([10, 20, 30, 40, 50, 60]), 2, 1, { scale: 1, mean: [0, 10, 20], std: [1, 2, 4] });
  assert.deepEqual([...x], [10, 40, 5, 20, 2.5, 10]);
});

test('center-crop keeps the aspect and crops the middle; squash stretches', async () => {
  // 40x20: columns 0..9 black, 10..39 white
  const px = new Uint8Array(40 * 20 * 3).fill(255);
  for (let y = 0; y < 20; y++) for (let x = 0; x < 10; x++) px.fill(0, (y * 40 + x) * 3, (y * 40 + x) * 3 + 3);
  const png = await sharp(px, { raw: { width: 40, height: 20, channels: 3 } }).png().toBuffer();
  const base = { scale: 1, mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] };
  const cc = await resizeImage(png, { ...base, size: [20, 20], resize: 'center-crop', resizeTo: 20 });
  assert.deepEqual([cc.width, cc.height], [20, 20]);
  assert.ok(cc.data.every((v) => v === 255), 'the centre crop (columns 10..29) is white');
  const sq = await resizeImage(png, { ...base, size: [20, 20], resize: 'squash' });
  assert.deepEqual([sq.width, sq.height], [20, 20]);
  assert.equal(sq.data[(10 * 20 + 1) * 3], 0, 'squashed: the left quarter is black');
  assert.equal(sq.data[(10 * 20 + 15) * 3], 255);
  // sizes on a photo, the orientation counted before the crop (stored 64x48, shown 48x64)
  const pre: ImagePreprocess = { size: [24, 32], resize: 'center-crop', resizeTo: 40, scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] };
  assert.equal((await prepareImage(fx('china-orient6.jpg'), pre)).length, 3 * 24 * 32);
  assert.equal((await prepareImage(fx('china.jpg'), { ...pre, resize: 'squash' })).length, 3 * 24 * 32);
  assert.deepEqual(resizePlan(48, 64, pre), { width: 40, height: 53, crop: { left: 4, top: 14, width: 32, height: 24 } });
  assert.deepEqual(resizePlan(64, 48, { ...pre, size: [32, 32] }), { width: 53, height: 40, crop: { left: 10, top: 4, width: 32, height: 32 } }); // round(10.5) = 10
  assert.deepEqual(resizePlan(300, 200, { size: [224, 224], resize: 'center-crop', scale: 1, mean: [0, 0, 0], std: [1, 1, 1] }).crop, { left: 56, top: 0, width: 224, height: 224 }); // 336x224
});

test('bad preprocessing options are E_BAD_OPTION; roundHalfEven matches Python', async () => {
  const ok: ImagePreprocess = { size: [8, 8], resize: 'center-crop', resizeTo: 10, scale: 1, mean: [0, 0, 0], std: [1, 1, 1] };
  checkPreprocess(ok);
  for (const bad of [
    { ...ok, size: [0, 8] },
    { ...ok, resize: 'stretch' },
    { ...ok, resizeTo: 6 },
    { ...ok, std: [1, 0, 1] },
    { ...ok, mean: [0, Number.NaN, 0] },
    { ...ok, scale: Infinity },
  ]) {
    assert.throws(() => checkPreprocess(bad as ImagePreprocess), (e: Error & { code?: string }) => e.code === 'E_BAD_OPTION');
  }
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, 2.4, 2.6, 3].map(roundHalfEven), [0, 2, 2, 0, 2, 3, 3]);
});

test('upscaling follows PIL bilinear (half-pixel centres); centre-crop of an upscale = upscale then crop', async () => {
  const ramp = Buffer.from([0, 100, 200, 250].flatMap((v) => [v, v, v]));
  const png = await sharp(ramp, { raw: { width: 4, height: 1, channels: 3 } }).png().toBuffer();
  const up = await resizeImage(png, { size: [1, 8], resize: 'squash', scale: 1, mean: [0, 0, 0], std: [1, 1, 1] });
  assert.deepEqual([...up.data].filter((_, i) => i % 3 === 0), [0, 25, 75, 125, 175, 213, 238, 250]); // PIL: 212.5, 237.5 round up
  const pre: ImagePreprocess = { size: [64, 64], resize: 'center-crop', resizeTo: 80, scale: 1, mean: [0, 0, 0], std: [1, 1, 1] };
  const plan = resizePlan(64, 48, pre);
  assert.deepEqual(plan, { width: 106, height: 80, crop: { left: 21, top: 8, width: 64, height: 64 } });
  const cc = await resizeImage(fx('china.jpg'), pre);
  const full = await resizeImage(fx('china.jpg'), { ...pre, size: [80, 106], resize: 'squash' });
  let maxDiff = 0;
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 64; x++) {
      for (let c = 0; c < 3; c++) maxDiff = Math.max(maxDiff, Math.abs(cc.data[(y * 64 + x) * 3 + c]! - full.data[((y + 8) * 106 + x + 21) * 3 + c]!));
    }
  }
  assert.ok(maxDiff <= 1, `max diff ${maxDiff}`);
});
