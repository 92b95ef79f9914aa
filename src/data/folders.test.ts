import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ImagePreprocess } from '../backbones/types.ts';
import { decodeAll, readImageFolder, type SkippedImage } from './folders.ts';
import { prepareImage } from './images.ts';

const fx = (name: string) => fileURLToPath(new URL(`../../fixtures/images/${name}`, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'graft-folders-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** Makes a folder tree; `files` maps relative paths to a fixture name (or '' for an empty file). */
function tree(files: Record<string, string>, dirs: string[] = []): string {
  const root = join(tmp, `t${n++}`);
  mkdirSync(root);
  for (const d of dirs) mkdirSync(join(root, d), { recursive: true });
  for (const [rel, src] of Object.entries(files)) {
    const p = join(root, rel);
    mkdirSync(join(p, '..'), { recursive: true });
    if (src) copyFileSync(fx(src), p);
    else writeFileSync(p, '');
  }
  return root;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

const many = (label: string, k: number, ext = 'jpg') => Object.fromEntries(Array.from({ length: k }, (_, i) => [`${label}/img${String(i).padStart(2, '0')}.${ext}`, '']));

test('root/<label>/*: sorted classes, extensions case-insensitive, hidden and other files skipped', () => {
  const root = tree({
    'dog/a.JPG': '', 'dog/b.png': '', 'dog/sub/c.jpeg': '', 'dog/.hidden.jpg': '', 'dog/notes.txt': '',
    'cat/x.webp': '', 'cat/y.GIF': '', 'cat/z.Jpeg': '',
    'loose.jpg': '', '.git/objects/q.jpg': '',
  });
  const f = readImageFolder(root, { valFraction: 0 });
  assert.deepEqual(f.classes, ['cat', 'dog']);
  assert.equal(f.layout, 'flat');
  assert.equal(f.val, undefined);
  assert.equal(f.test, undefined);
  assert.deepEqual(f.train.paths.map((p) => p.slice(root.length + 1)), ['cat/x.webp', 'cat/y.GIF', 'cat/z.Jpeg', 'dog/a.JPG', 'dog/b.png', 'dog/sub/c.jpeg']);
  assert.deepEqual([...f.train.y], [0, 0, 0, 1, 1, 1]);
  assert.deepEqual(f.ignored.map((p) => p.slice(root.length + 1)), ['dog/notes.txt']);
});

test('without val/, a seeded stratified split; test fraction too; all images used once', () => {
  const root = tree({ ...many('a', 20), ...many('b', 10), ...many('c', 5) });
  const f = readImageFolder(root, { valFraction: 0.2, testFraction: 0.2, seed: 3 });
  assert.deepEqual(f.classes, ['a', 'b', 'c']);
  const count = (s: { y: Int32Array } | undefined, c: number) => (s ? [...s.y].filter((v) => v === c).length : -1);
  assert.deepEqual([0, 1, 2].map((c) => count(f.test, c)), [4, 2, 1]);
  assert.deepEqual([0, 1, 2].map((c) => count(f.val, c)), [4, 2, 1]);
  assert.deepEqual([0, 1, 2].map((c) => count(f.train, c)), [12, 6, 3]);
  const all = [...f.train.paths, ...f.val!.paths, ...f.test!.paths].sort();
  assert.equal(new Set(all).size, 35);
  assert.deepEqual(readImageFolder(root, { valFraction: 0.2, testFraction: 0.2, seed: 3 }), f);
  assert.notDeepEqual(readImageFolder(root, { valFraction: 0.2, testFraction: 0.2, seed: 4 }).val!.paths, f.val!.paths);
  // default: 20% validation, no test
  const d = readImageFolder(root);
  assert.equal(d.val!.paths.length, 7);
  assert.equal(d.test, undefined);
});

test('train/ val/ test/ folders are used as given; a missing val/ is split off train/', () => {
  const root = tree({ ...many('train/cat', 4), ...many('train/dog', 4), 'val/dog/v.png': '', 'test/cat/t.jpg': '', 'test/dog/u.jpg': '' });
  const f = readImageFolder(root, { seed: 1 });
  assert.equal(f.layout, 'split');
  assert.deepEqual(f.classes, ['cat', 'dog']);
  assert.equal(f.train.paths.length, 8);
  assert.deepEqual(f.val!.paths, [join(root, 'val/dog/v.png')]);
  assert.deepEqual([...f.val!.y], [1]); // class indices follow train/'s classes
  assert.deepEqual([...f.test!.y], [0, 1]);
  const g = readImageFolder(tree({ ...many('train/cat', 5), ...many('train/dog', 5), ...many('test/cat', 1) }), { valFraction: 0.2 });
  assert.deepEqual([g.train.paths.length, g.val!.paths.length, g.test!.paths.length], [8, 2, 1]);
});

test('errors: missing root, no images, an empty class, one class, unknown val label, mixed layouts, bad fractions', () => {
  assert.equal(codeOf(() => readImageFolder(join(tmp, 'nope'))), 'E_FILE_MISSING');
  assert.equal(codeOf(() => readImageFolder(fx('china.jpg'))), 'E_FILE_MISSING'); // a file, not a folder
  assert.equal(codeOf(() => readImageFolder(tree({}))), 'E_CSV_EMPTY');
  assert.equal(codeOf(() => readImageFolder(tree({ 'a.jpg': '', 'b.png': '' }))), 'E_CSV_EMPTY'); // loose, no label folders
  assert.equal(codeOf(() => readImageFolder(tree({ 'cat/readme.txt': '' }, ['dog']))), 'E_CSV_EMPTY');
  const empty = tree({ 'cat/a.jpg': '', 'dog/b.jpg': '' }, ['bird']);
  try {
    readImageFolder(empty);
    assert.fail('expected E_EMPTY_CLASS');
  } catch (e) {
    assert.equal((e as { code: string }).code, 'E_EMPTY_CLASS');
    assert.match((e as Error).message, /bird/);
  }
  assert.equal(codeOf(() => readImageFolder(tree({ 'cat/a.jpg': '', 'cat/b.jpg': '' }))), 'E_ONE_CLASS');
  assert.equal(codeOf(() => readImageFolder(tree({ 'train/cat/a.jpg': '', 'train/dog/b.jpg': '', 'val/cow/c.jpg': '' }))), 'E_UNKNOWN_LABEL');
  assert.equal(codeOf(() => readImageFolder(tree({ 'train/cat/a.jpg': '', 'train/dog/b.jpg': '' }, ['val/cat']))), 'E_CSV_EMPTY');
  assert.equal(codeOf(() => readImageFolder(tree({ 'train/cat/a.jpg': '', 'train/dog/b.jpg': '', 'bird/c.jpg': '' }))), 'E_BAD_OPTION');
  assert.equal(codeOf(() => readImageFolder(tree({ 'val/cat/a.jpg': '', 'val/dog/b.jpg': '' }))), 'E_FILE_MISSING');
  const ok = tree({ 'cat/a.jpg': '', 'dog/b.jpg': '' });
  assert.equal(codeOf(() => readImageFolder(ok, { valFraction: 1 })), 'E_BAD_OPTION');
  assert.equal(codeOf(() => readImageFolder(ok, { valFraction: 0.5, testFraction: 0.5 })), 'E_BAD_OPTION');
  assert.equal(codeOf(() => readImageFolder(ok, { testFraction: -0.1 })), 'E_BAD_OPTION');
});

test('decodeAll keeps order, skips unreadable files with a named warning, and summarises', async () => {
  const pre: ImagePreprocess = { size: [8, 8], resize: 'center-crop', scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  const paths = [
    fx('china.jpg'), fx('truncated.jpg'), fx('flower.webp'), fx('garbage.jpg'), fx('anim-2frames.gif'),
    fx('bomb-100000x100000.png'), join(tmp, 'gone.png'), fx('flower-alpha.png'), fx('china-orient6.jpg'),
  ];
  const warned: string[] = [];
  const skippedSeen: SkippedImage[] = [];
  let progress = 0;
  const r = await decodeAll(paths, pre, {
    concurrency: 3,
    onSkip: (s, msg) => { warned.push(msg); skippedSeen.push(s); },
    onProgress: (done, total) => { progress = done; assert.equal(total, paths.length); },
  });
  assert.equal(progress, paths.length);
  assert.deepEqual([...r.kept], [0, 2, 4, 7, 8]);
  assert.equal(r.x.length, 5 * 3 * 8 * 8);
  assert.equal(r.skipped.count, 4);
  assert.deepEqual(r.skipped.reasons, { E_IMAGE_CORRUPT: 2, E_IMAGE_TOO_LARGE: 1, E_FILE_MISSING: 1 });
  assert.deepEqual(r.skipped.files.map((f) => f.index), [1, 3, 5, 6]);
  for (const name of ['truncated.jpg', 'garbage.jpg', 'bomb-100000x100000.png', 'gone.png']) {
    assert.ok(warned.some((w) => w.includes(name)), `a warning names ${name}`);
  }
  assert.equal(skippedSeen.length, 4);
  // each kept slot holds that image, in input order
  const d = 3 * 8 * 8;
  for (let k = 0; k < r.kept.length; k++) {
    const want = await prepareImage(paths[r.kept[k]!]!, pre);
    assert.deepEqual(r.x.subarray(k * d, (k + 1) * d), want);
  }
  // the GIF's first frame is red: R = 1, G = B = -1
  const gif = r.x.subarray(2 * d, 3 * d);
  assert.ok(gif.subarray(0, 64).every((v) => v === 1) && gif.subarray(64).every((v) => v === -1));
  // empty list; bad options throw at once
  const e = await decodeAll([], pre);
  assert.deepEqual([e.x.length, e.kept.length, e.skipped.count], [0, 0, 0]);
  await assert.rejects(decodeAll(paths, { ...pre, std: [0, 1, 1] }), (err: { code?: string }) => err.code === 'E_BAD_OPTION');
  await assert.rejects(decodeAll(paths, pre, { concurrency: 0 }), (err: { code?: string }) => err.code === 'E_BAD_OPTION');
});
