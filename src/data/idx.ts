/**
 * IDX files (the MNIST family's format: big-endian header, then uint8 data), such as Debian's
 * dataset-fashion-mnist in /usr/share/datasets/fashion-mnist, read and written as PNG folders.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { GraftError } from '../errors.ts';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_LABELS = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle-boot'];

export function readIdx(path: string): { dims: number[]; data: Uint8Array } {
  if (!existsSync(path)) throw new GraftError('E_FILE_MISSING', `${path} is missing`, 'Install it: apt-get install -y dataset-fashion-mnist');
  let b: Buffer = readFileSync(path);
  if (b[0] === 0x1f && b[1] === 0x8b) b = gunzipSync(b);
  if (b.length < 4 || b[0] !== 0 || b[1] !== 0 || b[2] !== 0x08) {
    throw new GraftError('E_MODEL_CORRUPT', `${path} is not an IDX file of unsigned bytes`, 'Reinstall the data set.');
  }
  const rank = b[3]!;
  const dims = [...Array(rank).keys()].map((i) => b.readUInt32BE(4 + 4 * i));
  const n = dims.reduce((a, x) => a * x, 1);
  const off = 4 + 4 * rank;
  if (b.length < off + n) throw new GraftError('E_MODEL_CORRUPT', `${path} is truncated`, 'Reinstall the data set.');
  return { dims, data: new Uint8Array(b.buffer, b.byteOffset + off, n) };
}

/** Writes the first `perClass` images of each class (from `offset`) of a Fashion-MNIST split as PNG folders. */
export async function writeFashionFolder(root: string, split: 'train' | 't10k', perClass: number, offset = 0): Promise<string> {
  const images = readIdx(join(FASHION_MNIST_DIR, `${split}-images-idx3-ubyte.gz`));
  const labels = readIdx(join(FASHION_MNIST_DIR, `${split}-labels-idx1-ubyte.gz`));
  const seen = new Array<number>(10).fill(0);
  for (let i = 0; i < labels.data.length && seen.some((s) => s < offset + perClass); i++) {
    const c = labels.data[i]!;
    if (seen[c]!++ < offset || seen[c]! > offset + perClass) continue;
    const dir = join(root, FASHION_LABELS[c]!);
    mkdirSync(dir, { recursive: true });
    await sharp(Buffer.from(images.data.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(join(dir, `${i}.png`));
  }
  return root;
}
