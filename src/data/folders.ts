/**
 * Image folder datasets: `root/<label>/*` (any depth below the label folder), or `root/train/<label>/`
 * with optional `root/val/<label>/` and `root/test/<label>/`. Without a val (or test) folder, a
 * seeded stratified split takes it from the training images. Also decodeAll, which decodes a list of
 * images with bounded concurrency and skips (and reports) the unreadable ones.
 */
import { readdirSync, statSync, type Dirent } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { GraftError, isGraftError } from '../errors.ts';
import type { ImagePreprocess } from '../backbones/types.ts';
import { IMAGE_EXTENSIONS, checkPreprocess, prepareImage, type DecodeOptions } from './images.ts';
import { stratifiedSplit } from './split.ts';
import { mixSeed } from '../train/init.ts';

export interface ImageSplit {
  paths: string[];
  /** Class index of each path into `classes`. */
  y: Int32Array;
}

export interface ImageFolder {
  /** Label folder names, sorted (by UTF-16 code units, locale-independent). */
  classes: string[];
  train: ImageSplit;
  val?: ImageSplit;
  test?: ImageSplit;
  /** 'split' when the root held train/ (and maybe val/, test/); 'flat' for root/<label>/. */
  layout: 'flat' | 'split';
  /** Files below label folders that were not picked up (not an image extension). */
  ignored: string[];
}

export interface FolderOptions {
  /** Fraction of the training images held out for validation when there is no val/ folder (default 0.2; 0 = no val). */
  valFraction?: number;
  /** Fraction held out for testing when there is no test/ folder (default 0). Only for the flat layout. */
  testFraction?: number;
  /** Seed of the stratified split (default 0). */
  seed?: number;
  /** File extensions that count as examples (default: the image ones; e.g. ['.wav'] for audio). */
  extensions?: readonly string[];
  /** Fewest class folders accepted (default 2, what a classifier needs; 1 for embedding). */
  minClasses?: number;
}

const SPLIT_DIRS = new Set(['train', 'val', 'test']);
const MAX_DEPTH = 16;

function isImageName(name: string, exts: readonly string[]): boolean {
  return exts.includes(extname(name).toLowerCase());
}

/** Entries of a folder, hidden ones left out, symlinks resolved; sorted by name. */
function entries(dir: string): { name: string; path: string; dir: boolean; file: boolean }[] {
  let list: Dirent[];
  try {
    list = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    throw new GraftError('E_FILE_MISSING', `cannot read the folder ${dir}: ${(e as Error).message}`, 'Check the path and its permissions.', { folder: dir });
  }
  const out: { name: string; path: string; dir: boolean; file: boolean }[] = [];
  for (const d of list) {
    if (d.name.startsWith('.')) continue;
    const p = join(dir, d.name);
    let isDir = d.isDirectory();
    let isFile = d.isFile();
    if (d.isSymbolicLink()) {
      try {
        const s = statSync(p);
        isDir = s.isDirectory();
        isFile = s.isFile();
      } catch {
        continue; // dangling link
      }
    }
    out.push({ name: d.name, path: p, dir: isDir, file: isFile });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function collect(dir: string, depth: number, images: string[], ignored: string[], exts: readonly string[]): void {
  for (const e of entries(dir)) {
    if (e.dir) {
      if (depth < MAX_DEPTH) collect(e.path, depth + 1, images, ignored, exts);
    } else if (e.file) {
      (isImageName(e.name, exts) ? images : ignored).push(e.path);
    }
  }
}

interface Scan {
  /** label -> image paths (sorted); the folder's own order of labels is sorted too. */
  byLabel: Map<string, string[]>;
  /** Images lying directly in the scanned folder (not in a label folder). */
  loose: number;
}

function scan(dir: string, ignored: string[], exts: readonly string[]): Scan {
  const byLabel = new Map<string, string[]>();
  let loose = 0;
  for (const e of entries(dir)) {
    if (e.dir) {
      const imgs: string[] = [];
      collect(e.path, 1, imgs, ignored, exts);
      byLabel.set(e.name, imgs);
    } else if (e.file && isImageName(e.name, exts)) {
      loose++;
    }
  }
  return { byLabel, loose };
}

/** Throws on a folder with no images, an empty label folder; (for training) on fewer than `minClasses` classes. */
function checkScan(dir: string, s: Scan, training: boolean, minClasses = 2): void {
  const total = [...s.byLabel.values()].reduce((a, l) => a + l.length, 0);
  if (total === 0) {
    const why = s.byLabel.size === 0
      ? s.loose > 0 ? `it holds ${s.loose} image(s) but no label folders` : 'it holds no label folders'
      : `its ${s.byLabel.size} label folder(s) hold no images`;
    throw new GraftError(
      'E_CSV_EMPTY',
      `no images found in ${dir}: ${why}`,
      `Put the images in one folder per class, ${join(dir, '<label>', '*.jpg')} (png, jpg, jpeg, webp, gif).`,
      { folder: dir },
    );
  }
  for (const [label, list] of s.byLabel) {
    if (list.length === 0) {
      throw new GraftError(
        'E_EMPTY_CLASS',
        `the class folder ${join(dir, label)} holds no images`,
        'Add images (png, jpg, jpeg, webp, gif) to it, or remove the folder.',
        { folder: join(dir, label), label },
      );
    }
  }
  if (training && s.byLabel.size < minClasses) {
    const [only] = s.byLabel.keys();
    throw new GraftError(
      'E_ONE_CLASS',
      `${dir} has only one class folder (${only}); a classifier needs at least two`,
      `Add a second folder of images next to ${join(dir, only ?? '')}.`,
      { folder: dir },
    );
  }
}

function toSplit(s: Scan, classes: string[], dir: string): ImageSplit {
  const paths: string[] = [];
  const y: number[] = [];
  for (const [label, list] of s.byLabel) {
    const c = classes.indexOf(label);
    if (c < 0) {
      throw new GraftError(
        'E_UNKNOWN_LABEL',
        `${join(dir, label)} is a class that the training folder does not have`,
        `The training classes are: ${classes.join(', ')}. Rename or remove the folder.`,
        { folder: join(dir, label), label },
      );
    }
    for (const p of list) {
      paths.push(p);
      y.push(c);
    }
  }
  return { paths, y: Int32Array.from(y) };
}

function pick(s: ImageSplit, idx: Int32Array): ImageSplit {
  return { paths: Array.from(idx, (i) => s.paths[i]!), y: Int32Array.from(idx, (i) => s.y[i]!) };
}

function fraction(name: string, v: number | undefined, dflt: number): number {
  const f = v ?? dflt;
  if (!(Number.isFinite(f) && f >= 0 && f < 1)) {
    throw new GraftError('E_BAD_OPTION', `${name} must be in [0, 1), got ${f}`, `Use e.g. ${name === 'valFraction' ? 0.2 : 0.1}, or 0 for none.`);
  }
  return f;
}

/**
 * Lists an image folder dataset. Classes are the label folder names, sorted; paths within a class
 * are sorted, so the result is the same on every machine. Throws E_FILE_MISSING (no root),
 * E_CSV_EMPTY (no images at all), E_EMPTY_CLASS (a label folder without images), E_ONE_CLASS,
 * E_UNKNOWN_LABEL (a val/test label not among the training ones), E_BAD_OPTION.
 */
export function readImageFolder(root: string, opts: FolderOptions = {}): ImageFolder {
  const valFraction = fraction('valFraction', opts.valFraction, 0.2);
  const testFraction = fraction('testFraction', opts.testFraction, 0);
  if (valFraction + testFraction >= 1) {
    throw new GraftError('E_BAD_OPTION', `valFraction + testFraction must be below 1, got ${valFraction + testFraction}`, 'Leave most images for training, e.g. 0.2 and 0.1.');
  }
  const seed = opts.seed ?? 0;
  const exts = opts.extensions ?? IMAGE_EXTENSIONS;
  let isDir = false;
  try {
    isDir = statSync(root).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) {
    throw new GraftError('E_FILE_MISSING', `image folder not found: ${root}`, 'Give a folder that holds one sub-folder of images per class (root/<label>/*.jpg).', { folder: root });
  }
  const ignored: string[] = [];
  const top = entries(root).filter((e) => e.dir);
  const hasTrain = top.some((e) => e.name === 'train');
  const splitNames = top.filter((e) => SPLIT_DIRS.has(e.name)).map((e) => e.name);
  if (!hasTrain && splitNames.length > 0) {
    throw new GraftError(
      'E_FILE_MISSING',
      `${root} has ${splitNames.map((n) => n + '/').join(' and ')} but no train/ folder`,
      `Add ${join(root, 'train', '<label>')}/ folders, or rename ${splitNames[0]}/ if it is a class.`,
      { folder: root },
    );
  }

  let classes: string[];
  let train: ImageSplit;
  let val: ImageSplit | undefined;
  let test: ImageSplit | undefined;
  if (hasTrain) {
    const others = top.filter((e) => !SPLIT_DIRS.has(e.name)).map((e) => e.name);
    if (others.length > 0) {
      throw new GraftError(
        'E_BAD_OPTION',
        `${root} mixes the two layouts: it has train/ and also ${others.map((n) => n + '/').join(', ')}`,
        `Use either ${join(root, '<label>')}/ or ${join(root, 'train', '<label>')}/ (with optional val/ and test/), not both.`,
        { folder: root },
      );
    }
    const dir = join(root, 'train');
    const s = scan(dir, ignored, exts);
    checkScan(dir, s, true, opts.minClasses);
    classes = [...s.byLabel.keys()].sort();
    train = toSplit(s, classes, dir);
    for (const name of ['val', 'test'] as const) {
      if (!splitNames.includes(name)) continue;
      const d = join(root, name);
      const sv = scan(d, ignored, exts);
      checkScan(d, sv, false);
      const part = toSplit(sv, classes, d);
      if (name === 'val') val = part; else test = part;
    }
    if (!val && valFraction > 0) {
      const sp = stratifiedSplit(train.y, valFraction, seed);
      val = pick(train, sp.val);
      train = pick(train, sp.train);
    }
  } else {
    const s = scan(root, ignored, exts);
    checkScan(root, s, true, opts.minClasses);
    classes = [...s.byLabel.keys()].sort();
    train = toSplit(s, classes, root);
    if (testFraction > 0) {
      const sp = stratifiedSplit(train.y, testFraction, seed);
      test = pick(train, sp.val);
      train = pick(train, sp.train);
    }
    if (valFraction > 0) {
      // of what is left, keep valFraction of the whole
      const sp = stratifiedSplit(train.y, valFraction / (1 - testFraction), mixSeed(seed, 'val'));
      val = pick(train, sp.val);
      train = pick(train, sp.train);
    }
  }
  const out: ImageFolder = { classes, train, layout: hasTrain ? 'split' : 'flat', ignored };
  if (val) out.val = val;
  if (test) out.test = test;
  return out;
}

/**
 * An unlabelled folder's examples: every file with one of the extensions at any depth (hidden entries
 * left out), sorted by path; `loose` counts those lying directly in `root` (not in a class folder).
 */
export function listExamples(root: string, extensions: readonly string[] = IMAGE_EXTENSIONS): { paths: string[]; loose: number } {
  let isDir = false;
  try { isDir = statSync(root).isDirectory(); } catch { isDir = false; }
  if (!isDir) throw new GraftError('E_FILE_MISSING', `folder not found: ${root}`, 'Give a folder of images (or image files).', { folder: root });
  const paths: string[] = [];
  collect(root, 0, paths, [], extensions);
  const loose = entries(root).filter((e) => e.file && isImageName(e.name, extensions)).length;
  return { paths: paths.sort(), loose };
}

export interface SkippedImage {
  path: string;
  index: number;
  code: string;
  reason: string;
}

export interface SkipSummary {
  count: number;
  /** Count per error code, e.g. { E_IMAGE_CORRUPT: 2, E_IMAGE_TOO_LARGE: 1 }. */
  reasons: Record<string, number>;
  files: SkippedImage[];
}

export interface DecodeAllOptions extends DecodeOptions {
  /** How many images are decoded at once (default 4). */
  concurrency?: number;
  /** Called for each skipped file, with a message that names it. */
  onSkip?: (s: SkippedImage, message: string) => void;
  /** Called after each image, decoded or skipped. */
  onProgress?: (done: number, total: number) => void;
}

export interface DecodedBatch {
  /** The kept images, CHW float32 each, one after another: kept.length x 3 x size[0] x size[1]. */
  x: Float32Array;
  /** Indices into the input list of the kept images, ascending. */
  kept: Int32Array;
  skipped: SkipSummary;
}

/** Error codes of an unreadable file, which decodeAll skips; any other error stops it. */
const SKIPPABLE = new Set(['E_IMAGE_CORRUPT', 'E_IMAGE_TOO_LARGE', 'E_FILE_MISSING']);

/**
 * Decodes and prepares a list of images (prepareImage each), at most `concurrency` at a time.
 * Unreadable files (missing, corrupt, truncated, over the pixel limit) are skipped, reported to
 * onSkip and summarised; the result keeps the input order. Peak memory is the output (N x 3 x H x W
 * floats, allocated once) plus `concurrency` decodes.
 */
export async function decodeAll(paths: readonly string[], pre: ImagePreprocess, opts: DecodeAllOptions = {}): Promise<DecodedBatch> {
  checkPreprocess(pre);
  const conc = opts.concurrency ?? 4;
  if (!(Number.isInteger(conc) && conc >= 1)) {
    throw new GraftError('E_BAD_OPTION', `concurrency must be a positive integer, got ${conc}`, 'Use e.g. 4.');
  }
  const d = 3 * pre.size[0] * pre.size[1];
  const n = paths.length;
  const x = new Float32Array(n * d);
  const ok = new Uint8Array(n);
  const files: SkippedImage[] = [];
  const dec: DecodeOptions = {};
  if (opts.maxPixels !== undefined) dec.maxPixels = opts.maxPixels;
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const path = paths[i]!;
      try {
        const v = await prepareImage(path, pre, dec);
        x.set(v, i * d);
        ok[i] = 1;
      } catch (e) {
        if (!(isGraftError(e) && SKIPPABLE.has(e.code))) {
          next = n; // stop the other workers
          throw e;
        }
        const s: SkippedImage = { path, index: i, code: e.code, reason: e.message };
        files.push(s);
        opts.onSkip?.(s, `skipping ${basename(path)} (${path}): ${e.message}`);
      }
      done++;
      opts.onProgress?.(done, n);
    }
  };
  await Promise.all(Array.from({ length: Math.min(conc, Math.max(n, 1)) }, worker));
  // compact in place, keeping the order
  const kept: number[] = [];
  for (let i = 0; i < n; i++) {
    if (!ok[i]) continue;
    if (kept.length !== i) x.copyWithin(kept.length * d, i * d, (i + 1) * d);
    kept.push(i);
  }
  files.sort((a, b) => a.index - b.index);
  const reasons: Record<string, number> = {};
  for (const f of files) reasons[f.code] = (reasons[f.code] ?? 0) + 1;
  return { x: x.subarray(0, kept.length * d), kept: Int32Array.from(kept), skipped: { count: files.length, reasons, files } };
}
