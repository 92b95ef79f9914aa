/**
 * A small set of real photographs in five classes, from Debian's tuxpaint-stamps-default (GPL-2): Tux
 * Paint's stamps are photos of single animals, fruit, vegetables and flowers cut out on a transparent
 * background, filed by kind under /usr/share/tuxpaint/stamps. The stamps of five kinds are written
 * here as JPEG image folders (root/<label>/*.jpg, flattened on white), split train/test with a seeded
 * stratified split, so they go through graft's image pipeline like a user's own photos.
 *
 * Classes (165 photos): bird 35, mammal 62, fruit 26, vegetable 18, flower 24. The cartoon sub-folders,
 * the teddy bear (mammals/bears/toys) and the two drawn mammals (hedgehog, echidna) are left out.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { basename, extname, join, relative } from 'node:path';
import sharp from 'sharp';
import { GraftError } from '../errors.ts';
import { fitStandardize, linearHead } from '../heads/heads.ts';
import { Learner } from '../train/learner.ts';
import { decodeAll, readImageFolder } from './folders.ts';
import { stratifiedSplit } from './split.ts';

export const STAMPS_DIR = '/usr/share/tuxpaint/stamps';
export const STAMPS_PACKAGE = 'tuxpaint-stamps-default';
export const STAMPS_INSTALL = `apt-get install -y --no-install-recommends ${STAMPS_PACKAGE}`;

/** Label -> stamp folders (relative to STAMPS_DIR) whose photos it takes, and whether sub-folders count. */
export const PHOTO_CLASSES: Record<string, { dirs: string[]; recursive: boolean }> = {
  bird: { dirs: ['animals/birds'], recursive: false },
  flower: { dirs: ['plants/flowers'], recursive: false },
  fruit: { dirs: ['food/fruit'], recursive: false },
  mammal: { dirs: ['animals/mammals'], recursive: true },
  vegetable: { dirs: ['food/vegetables'], recursive: false },
};

/** Photos per class in tuxpaint-stamps-default 2022.06.04. */
export const PHOTO_COUNTS: Record<string, number> = { bird: 35, flower: 24, fruit: 26, mammal: 62, vegetable: 18 };

/** Stamps in those folders that are drawings or toys, not photographs. */
const NOT_PHOTOS = new Set(['cartoon', 'toys', 'plastic', 'hedgehog.png', 'echidna.png']);

export interface StampPhoto { label: string; path: string }

function collect(dir: string, recursive: boolean, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (NOT_PHOTOS.has(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) { if (recursive) collect(p, recursive, out); } else if (extname(e.name).toLowerCase() === '.png') out.push(p);
  }
}

/** Every photo of the five classes, sorted by label then path. Throws E_FILE_MISSING without the package. */
export function listStampPhotos(dir = STAMPS_DIR): StampPhoto[] {
  const missing = Object.values(PHOTO_CLASSES).flatMap((c) => c.dirs).filter((d) => !existsSync(join(dir, d)));
  if (missing.length) {
    throw new GraftError('E_FILE_MISSING', `the photo set is missing: ${missing.map((d) => join(dir, d)).join(', ')} not found`,
      `Install Debian's ${STAMPS_PACKAGE}: ${STAMPS_INSTALL}`, { folder: dir });
  }
  const out: StampPhoto[] = [];
  for (const label of Object.keys(PHOTO_CLASSES).sort()) {
    const c = PHOTO_CLASSES[label]!;
    const paths: string[] = [];
    for (const d of c.dirs) collect(join(dir, d), c.recursive, paths);
    for (const path of paths) out.push({ label, path });
  }
  return out;
}

export interface PhotoFolderOptions {
  /** Fraction of each class held out for testing (default 0.3). */
  testFraction?: number;
  /** Seed of the stratified split (default 0). */
  seed?: number;
  /** Longest side of the written JPEGs; larger stamps are shrunk (default 320). */
  maxSide?: number;
  /** Where the stamps are (default STAMPS_DIR). */
  dir?: string;
}

export interface PhotoFolders {
  train: string;
  test: string;
  labels: string[];
  /** Images written per label, on each side. */
  counts: { train: Record<string, number>; test: Record<string, number> };
}

/**
 * Writes root/train/<label>/*.jpg and root/test/<label>/*.jpg: each stamp flattened on white, as a
 * JPEG (quality 90). The split is stratified and seeded: the same seed writes the same files.
 */
export async function writePhotoFolders(root: string, o: PhotoFolderOptions = {}): Promise<PhotoFolders> {
  const stampsDir = o.dir ?? STAMPS_DIR;
  const maxSide = o.maxSide ?? 320;
  return writeSplitFolders(root, listStampPhotos(stampsDir), o, async ({ path }, dir) => {
    // the stamp's path below the stamps folder keeps same-named stamps of different folders apart
    const name = relative(stampsDir, path).replace(/[\\/]/g, '_');
    await sharp(path).flatten({ background: '#ffffff' }).resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true })
      .jpeg({ quality: 90 }).toFile(join(dir, `${basename(name, '.png')}.jpg`));
  });
}

/**
 * Writes labelled photos as root/train/<label>/ and root/test/<label>/, the split stratified and seeded;
 * `write` puts one photo into its folder (which exists by then).
 */
export async function writeSplitFolders<P extends { label: string }>(root: string, photos: P[], o: { seed?: number; testFraction?: number },
  write: (photo: P, dir: string) => Promise<void> | void): Promise<PhotoFolders> {
  const labels = [...new Set(photos.map((p) => p.label))].sort();
  const y = Int32Array.from(photos, (p) => labels.indexOf(p.label));
  const { val: test } = stratifiedSplit(y, o.testFraction ?? 0.3, o.seed ?? 0);
  const isTest = new Set(test);
  const counts = { train: Object.fromEntries(labels.map((l) => [l, 0])), test: Object.fromEntries(labels.map((l) => [l, 0])) };
  for (let i = 0; i < photos.length; i++) {
    const side = isTest.has(i) ? 'test' : 'train';
    const dir = join(root, side, photos[i]!.label);
    mkdirSync(dir, { recursive: true });
    await write(photos[i]!, dir);
    counts[side][photos[i]!.label]!++;
  }
  return { train: join(root, 'train'), test: join(root, 'test'), labels, counts };
}

/** Raw pixels of every image under an image folder: side x side, squashed, in [0, 1]; RGB, or the first channel only. */
export async function pixelRows(root: string, side: number, channels: 1 | 3 = 3, paths?: string[]): Promise<{ x: Float32Array; y: Int32Array; n: number; dim: number; classes: string[]; kept: Int32Array }> {
  const f = readImageFolder(root, { valFraction: 0 });
  if (paths) f.train = { paths, y: new Int32Array(paths.length) };
  const d = await decodeAll(f.train.paths, { size: [side, side], resize: 'squash', scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] }, { onSkip: () => {} });
  const plane = side * side;
  const dim = channels * plane;
  const x = new Float32Array(d.kept.length * dim);
  for (let i = 0; i < d.kept.length; i++) x.set(d.x.subarray(3 * plane * i, 3 * plane * i + dim), i * dim); // CHW: the first plane is one channel
  return { x, y: Int32Array.from(d.kept, (i) => f.train.y[i]!), n: d.kept.length, dim, classes: f.classes, kept: d.kept };
}

/**
 * The baseline that a backbone's probe is measured against: a standardised linear probe (softmax
 * regression, 40 epochs, one-cycle lr 3e-3) on raw pixels; returns its accuracy on the test folder.
 */
export async function pixelProbeAccuracy(trainDir: string, testDir: string, o: { side?: number; channels?: 1 | 3; seed?: number; threads?: number } = {}): Promise<number> {
  const side = o.side ?? 32;
  const tr = await pixelRows(trainDir, side, o.channels ?? 3);
  const te = await pixelRows(testDir, side, o.channels ?? 3);
  if (te.classes.join('\u0000') !== tr.classes.join('\u0000')) {
    throw new GraftError('E_UNKNOWN_LABEL', `test labels [${te.classes.join(', ')}] differ from training labels [${tr.classes.join(', ')}]`, 'Give both folders the same label sub-folders.');
  }
  const l = new Learner({
    net: linearHead({ inputDim: tr.dim, classes: tr.classes.length, seed: o.seed ?? 0, standardize: fitStandardize(tr.x, tr.n, tr.dim) }),
    train: tr, batchSize: 32, seed: o.seed ?? 0, ...(o.threads ? { threads: o.threads } : {}),
  });
  try {
    await l.fit(40, { lr: 3e-3, schedule: { kind: 'one-cycle' } });
    return (await l.evaluate(te)).accuracy;
  } finally {
    await l.dispose();
  }
}
