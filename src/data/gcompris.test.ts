import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { isGraftError } from '../errors.ts';
import { decodeAll, readImageFolder } from './folders.ts';
import { GCOMPRIS_CLASSES, GCOMPRIS_COUNTS, GCOMPRIS_IMAGES, GCOMPRIS_INSTALL, GCOMPRIS_RCC, gcomprisBoardMembers, listGcomprisPhotos, openGcompris, writeGcomprisFolders } from './gcompris.ts';

const missing = !existsSync(GCOMPRIS_RCC) && `Debian's gcompris-qt-data is not installed (${GCOMPRIS_INSTALL})`;
const LABELS = ['fish', 'monument', 'renewable', 'tool'];
const files = (d: string) => readdirSync(d, { recursive: true }).map(String).filter((f) => f.endsWith('.webp')).sort();

test('listGcomprisPhotos: four classes, 123 photos, others/ and the icons left out', { skip: missing }, () => {
  const photos = listGcomprisPhotos();
  const counts = Object.fromEntries(LABELS.map((l) => [l, photos.filter((p) => p.label === l).length]));
  assert.deepEqual(counts, GCOMPRIS_COUNTS);
  assert.deepEqual(counts, { fish: 28, monument: 27, renewable: 29, tool: 39 });
  assert.equal(new Set(photos.map((p) => p.path)).size, 123);
  assert.ok(photos.every((p) => p.path.startsWith(`${GCOMPRIS_IMAGES}/${GCOMPRIS_CLASSES[p.label]}/`) && p.path.endsWith('.webp')));
  assert.ok(!photos.some((p) => /\/(others|alphabets|numbers)\//.test(p.path)));
});

test('the game\'s boards agree: each category lists as "good" only photos of its own folder', { skip: missing }, () => {
  const a = openGcompris();
  const photos = new Set(listGcomprisPhotos(a).map((p) => p.path));
  for (const [label, folder] of Object.entries(GCOMPRIS_CLASSES)) {
    const good = gcomprisBoardMembers(a, folder);
    assert.ok(good.length >= 20, `${folder}: ${good.length} good photos`);
    assert.ok(good.every((p) => p.startsWith(`${GCOMPRIS_IMAGES}/${folder}/`)), `${folder}: ${good.filter((p) => !p.includes(`/${folder}/`))}`);
    // and every one of them is a photo of the set
    assert.ok(good.every((p) => photos.has(p)), `${label}: ${good.filter((p) => !photos.has(p))}`);
  }
});

test('writeGcomprisFolders: seeded stratified 70/30 split of decodable WebP photos', { skip: missing }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'graft-gcompris-'));
  const f = await writeGcomprisFolders(root, { seed: 0 });
  assert.deepEqual(f.labels, LABELS);
  assert.deepEqual(f.counts.test, { fish: 8, monument: 8, renewable: 9, tool: 12 });
  assert.deepEqual(f.counts.train, { fish: 20, monument: 19, renewable: 20, tool: 27 });
  const tr = readImageFolder(f.train, { valFraction: 0 });
  const te = readImageFolder(f.test, { valFraction: 0 });
  assert.deepEqual(tr.classes, LABELS);
  assert.deepEqual(te.classes, LABELS);
  assert.equal(tr.train.paths.length + te.train.paths.length, 123);
  const trainFiles = new Set(files(f.train));
  assert.ok(files(f.test).every((p) => !trainFiles.has(p)), 'a photo on both sides');
  // graft's decoder takes every file: 123 decoded, none skipped
  const all = [...tr.train.paths, ...te.train.paths];
  const dec = await decodeAll(all, { size: [64, 64], resize: 'squash', scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] });
  assert.equal(dec.skipped.count, 0);
  assert.equal(dec.kept.length, 123);
  for (const p of [all[0]!, all[60]!, all.at(-1)!]) {
    const m = await sharp(p).metadata();
    assert.equal(m.format, 'webp');
    assert.equal(m.channels, 3);
    assert.equal(Math.max(m.width!, m.height!), 320);
  }
  // the written files are the resource's bytes, unchanged
  const a = openGcompris();
  const first = readdirSync(join(f.train, 'tool'))[0]!;
  assert.deepEqual(readFileSync(join(f.train, 'tool', first)), a.read(`${GCOMPRIS_IMAGES}/tools/${first}`));
  // same seed, same files; another seed, another split of the same photos
  const again = await writeGcomprisFolders(mkdtempSync(join(tmpdir(), 'graft-gcompris-')), { seed: 0 });
  assert.deepEqual(files(again.test), files(f.test));
  const other = await writeGcomprisFolders(mkdtempSync(join(tmpdir(), 'graft-gcompris-')), { seed: 1 });
  assert.deepEqual(other.counts, f.counts);
  assert.notDeepEqual(files(other.test), files(f.test));
});

test('writeGcomprisFolders without the package: E_FILE_MISSING with the apt-get line', async () => {
  await assert.rejects(writeGcomprisFolders(mkdtempSync(join(tmpdir(), 'graft-gcompris-')), { rcc: join(tmpdir(), 'no-such.rcc') }), (e: unknown) => {
    assert.ok(isGraftError(e));
    assert.equal(e.code, 'E_FILE_MISSING');
    assert.match(e.message, /no-such\.rcc not found/);
    assert.match(e.hint, /apt-get install -y --no-install-recommends gcompris-qt-data/);
    return true;
  });
});
