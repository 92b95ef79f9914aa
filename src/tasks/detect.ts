/**
 * What kind of data a path holds, from the path and a peek at its first bytes: the only place graft
 * guesses data kinds (moved here from the CLI). The task table's entries build their `detect` on these.
 */
import { closeSync, existsSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { IMAGE_EXTENSIONS } from '../data/images.ts';
import { AUDIO_EXTENSIONS } from '../probe/audio.ts';

/** Whether the path is an existing folder. */
export const isDir = (p: string): boolean => existsSync(p) && statSync(p).isDirectory();

/** A JSONL or CoNLL file, or a CSV whose header has a "text" column, holds texts (not numeric features). */
export function isTextFile(path: string): boolean {
  if (/\.(jsonl(\.gz)?|conll|conllu|iob|bio)$/i.test(path)) return true;
  if (!existsSync(path) || isDir(path) || /\.gz$/i.test(path)) return false;
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(4096);
  const n = readSync(fd, buf, 0, 4096, 0);
  closeSync(fd);
  const header = buf.subarray(0, n).toString('utf8').split(/\r?\n/)[0]!.replace(/^\ufeff/, '');
  return header.split(',').map((h) => h.trim().replace(/^"|"$/g, '')).includes('text');
}

/** Whether a file name has an image extension (png, jpg, jpeg, webp, gif). */
export const isImageFile = (p: string): boolean => (IMAGE_EXTENSIONS as readonly string[]).includes(extname(p).toLowerCase());

/** Whether a file name has an audio extension (wav). */
export const isAudioFile = (p: string): boolean => (AUDIO_EXTENSIONS as readonly string[]).includes(extname(p).toLowerCase());

/** Whether a data folder holds WAV clips (audio) rather than images: the first file found decides. */
export function isAudioFolder(root: string, depth = 0): boolean {
  for (const e of readdirSync(root, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    if (e.isFile() && isImageFile(e.name)) return false;
    if (e.isFile() && isAudioFile(e.name)) return true;
    if (e.isDirectory() && depth < 3 && isAudioFolder(join(root, e.name), depth + 1)) return true;
  }
  return false;
}
