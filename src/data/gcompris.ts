/**
 * A second small set of real photographs, from Debian's gcompris-qt-data (GCompris 3.1, GPL-3; the
 * photos are public domain or CC0 from Wikimedia Commons and similar, credited in each folder's README):
 * the "categorization" activity's own pictures, packed in a Qt resource file (see rcc.ts) under
 * gcompris/src/activities/categorization/resource/images/<folder>/*.webp. They are written here as
 * image folders (root/<label>/*.webp, the original bytes) split train/test with a seeded stratified
 * split, in the same shape as writePhotoFolders (photos.ts).
 *
 * The category of a photo is its folder: each embedded board, resource/board/category_<folder>.qml,
 * lists as "good" (belongs to the category) only photos of its own folder, and draws its "bad"
 * distractors from the other folders. Classes (123 photos, all 320 px on the long side, RGB):
 * fish 28, monument 27, renewable (windmills, dams, solar panels and cookers, a geothermal plant) 29,
 * tool 39. Left out: others/ (17 mixed objects, a chair, a cup, a baseball, an igloo ...), which no
 * board has as a category and which is only ever a distractor, and the single webp icons of
 * alphabets/ and numbers/ (their items are SVG drawings). The other boards' photos (animals, birds,
 * fruit ...) come from GCompris's downloadable words-webp set, which the Debian package does not ship.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraftError } from '../errors.ts';
import { type PhotoFolders, writeSplitFolders } from './photos.ts';
import { type RccArchive, readRcc } from './rcc.ts';

export const GCOMPRIS_RCC = '/usr/share/gcompris-qt/rcc/categorization.rcc';
export const GCOMPRIS_PACKAGE = 'gcompris-qt-data';
export const GCOMPRIS_INSTALL = `apt-get install -y --no-install-recommends ${GCOMPRIS_PACKAGE}`;
const ACTIVITY = 'gcompris/src/activities/categorization/resource';
export const GCOMPRIS_IMAGES = `${ACTIVITY}/images`;

/** Label -> image folder inside the resource (its board is category_<folder>.qml). */
export const GCOMPRIS_CLASSES: Record<string, string> = { fish: 'fishes', monument: 'monuments', renewable: 'renewable', tool: 'tools' };

/** Photos per class in gcompris-qt-data 3.1. */
export const GCOMPRIS_COUNTS: Record<string, number> = { fish: 28, monument: 27, renewable: 29, tool: 39 };

export interface GcomprisPhoto {
  label: string;
  /** Path inside the resource file. */
  path: string;
}

/** Opens the categorization resource; E_FILE_MISSING with the apt-get line when the package is absent. */
export function openGcompris(rcc = GCOMPRIS_RCC): RccArchive {
  if (!existsSync(rcc)) {
    throw new GraftError('E_FILE_MISSING', `the GCompris photo set is missing: ${rcc} not found`,
      `Install Debian's ${GCOMPRIS_PACKAGE}: ${GCOMPRIS_INSTALL}`, { file: rcc });
  }
  return readRcc(rcc);
}

/** Every photo of the four classes, sorted by label then path. */
export function listGcomprisPhotos(rcc: string | RccArchive = GCOMPRIS_RCC): GcomprisPhoto[] {
  const a = typeof rcc === 'string' ? openGcompris(rcc) : rcc;
  const out: GcomprisPhoto[] = [];
  for (const label of Object.keys(GCOMPRIS_CLASSES).sort()) {
    const prefix = `${GCOMPRIS_IMAGES}/${GCOMPRIS_CLASSES[label]}/`;
    const paths = a.entries.map((e) => e.path).filter((p) => p.startsWith(prefix) && p.endsWith('.webp') && !p.slice(prefix.length).includes('/'));
    if (paths.length === 0) {
      throw new GraftError('E_EMPTY_CLASS', `${a.source} has no photos under ${prefix}`,
        `The resource is not GCompris's categorization.rcc, or its layout changed; reinstall ${GCOMPRIS_PACKAGE}.`, { file: a.source, label });
    }
    for (const path of paths.sort()) out.push({ label, path });
  }
  return out;
}

/**
 * The photos a board lists as belonging to its category ("good"), as resource paths: what the game
 * itself says about which photo is which. `folder` is the board's name, e.g. 'tools'.
 */
export function gcomprisBoardMembers(a: RccArchive, folder: string): string[] {
  const qml = a.read(`${ACTIVITY}/board/category_${folder}.qml`).toString('utf8');
  const prefix = /"prefix":\s*"qrc:\/([^"]*)"/.exec(qml)?.[1] ?? '';
  const out = new Set<string>();
  for (const m of qml.matchAll(/"good":\s*\[([^\]]*)\]/g)) {
    for (const item of m[1]!.matchAll(/"([^"]+)"/g)) out.add(prefix + item[1]!);
  }
  return [...out].sort();
}

export interface GcomprisFolderOptions {
  /** Fraction of each class held out for testing (default 0.3). */
  testFraction?: number;
  /** Seed of the stratified split (default 0). */
  seed?: number;
  /** The resource file (default GCOMPRIS_RCC). */
  rcc?: string;
}

/**
 * Writes root/train/<label>/*.webp and root/test/<label>/*.webp, the photos' original WebP bytes.
 * The split is stratified and seeded: the same seed writes the same files.
 */
export async function writeGcomprisFolders(root: string, o: GcomprisFolderOptions = {}): Promise<PhotoFolders> {
  const a = openGcompris(o.rcc ?? GCOMPRIS_RCC);
  return writeSplitFolders(root, listGcomprisPhotos(a), o, ({ path }, dir) => writeFileSync(join(dir, path.slice(path.lastIndexOf('/') + 1)), a.read(path)));
}
