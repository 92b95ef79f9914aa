/**
 * A reader of Qt's binary resource files (.rcc, as written by `rcc -binary`), such as the activity
 * files of Debian's gcompris-qt-data in /usr/share/gcompris-qt/rcc. Layout (all numbers big-endian):
 *
 *   header   "qres", version (u32, 1..3), tree offset, data offset, names offset (u32 each), and from
 *            version 3 the overall flags (u32: 1 = some entry is zlib-compressed, 4 = some is zstd)
 *   tree     fixed-size nodes, 14 bytes (version 1) or 22 (version 2+, an 8-byte mtime in ms appended):
 *            name offset (u32), flags (u16: 1 zlib, 2 directory, 4 zstd), then for a directory its
 *            child count and first child's node index (u32 each), for a file its territory and
 *            language (u16 each) and data offset (u32). Node 0 is the root directory.
 *   names    per name: length in UTF-16 units (u16), Qt's hash of it (u32), the UTF-16BE characters
 *   data     per file: stored length (u32), the bytes; a zlib entry's bytes are qCompress output,
 *            i.e. the uncompressed length (u32) followed by a zlib stream
 *
 * Qt does not ship zstd in Node 20's zlib, so zstd entries are refused with E_RCC_UNSUPPORTED (the
 * gcompris files use none: only stored and zlib entries). The file is untrusted: every offset is
 * bounds-checked, a loop in the tree is refused, and a zlib entry may not inflate past its declared
 * length, each as E_RCC_CORRUPT naming the file and what was wrong.
 */
import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { GraftError } from '../errors.ts';

export const RCC_ZLIB = 0x01;
export const RCC_DIRECTORY = 0x02;
export const RCC_ZSTD = 0x04;

export type RccCompression = 'none' | 'zlib' | 'zstd';

export interface RccEntry {
  /** Path inside the resource, without a leading slash: `gcompris/src/.../fish1.webp`. */
  path: string;
  compression: RccCompression;
  /** Bytes stored in the file (compressed size for zlib entries, including qCompress's length prefix). */
  storedSize: number;
  /** Last modification time in ms since the epoch (0 for version 1 files, which do not record it). */
  lastModified: number;
}

export interface RccArchive {
  /** Where it was read from (a path, or `<rcc buffer>`). */
  source: string;
  version: number;
  /** Version 3's overall flags (RCC_ZLIB | RCC_ZSTD); 0 for older versions. */
  overallFlags: number;
  /** Every file (not directory), in tree order. */
  entries: RccEntry[];
  /** True when the resource holds that file; accepts `qrc:/x`, `:/x`, `/x` and `x`. */
  has(path: string): boolean;
  /** A file's contents, decompressed. Throws E_FILE_MISSING for a path the resource does not hold. */
  read(path: string): Buffer;
}

/** `qrc:/a/b`, `:/a/b`, `/a/b` -> `a/b`. */
export function rccPath(p: string): string {
  return p.replace(/^qrc:/, '').replace(/^:/, '').replace(/^\/+/, '');
}

const SUPPORTED_VERSIONS = [1, 2, 3];

export function readRcc(input: string | Uint8Array): RccArchive {
  const source = typeof input === 'string' ? input : '<rcc buffer>';
  let b: Buffer;
  if (typeof input === 'string') {
    try {
      b = readFileSync(input);
    } catch (e) {
      throw new GraftError('E_FILE_MISSING', `cannot read the Qt resource file ${input}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
        'Check the path; for GCompris data install Debian\'s gcompris-qt-data.', { file: input });
    }
  } else {
    b = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  }
  const corrupt = (why: string) => new GraftError('E_RCC_CORRUPT', `${source} is not a readable Qt resource file: ${why}`,
    'The file is truncated or not an .rcc; reinstall the package that ships it.', { file: source });
  const u16 = (o: number, what: string) => { if (o < 0 || o + 2 > b.length) throw corrupt(`${what} at byte ${o} is past the end (${b.length} bytes)`); return b.readUInt16BE(o); };
  const u32 = (o: number, what: string) => { if (o < 0 || o + 4 > b.length) throw corrupt(`${what} at byte ${o} is past the end (${b.length} bytes)`); return b.readUInt32BE(o); };

  if (b.length < 20 || b.toString('latin1', 0, 4) !== 'qres') {
    throw corrupt(`expected the magic "qres" in its first 4 bytes, got ${JSON.stringify(b.toString('latin1', 0, Math.min(4, b.length)))}`);
  }
  const version = u32(4, 'the version');
  if (!SUPPORTED_VERSIONS.includes(version)) {
    throw new GraftError('E_RCC_UNSUPPORTED', `${source} is a Qt resource file of format version ${version}; graft reads versions ${SUPPORTED_VERSIONS.join(', ')}`,
      'Rebuild it with `rcc -binary --format-version 3`.', { file: source, version });
  }
  const treeOff = u32(8, 'the tree offset');
  const dataOff = u32(12, 'the data offset');
  const namesOff = u32(16, 'the names offset');
  const overallFlags = version >= 3 ? u32(20, 'the overall flags') : 0;
  const nodeSize = version >= 2 ? 22 : 14;
  for (const [what, off] of [['tree', treeOff], ['data', dataOff], ['names', namesOff]] as const) {
    if (off >= b.length) throw corrupt(`the ${what} offset ${off} is past the end (${b.length} bytes)`);
  }

  const name = (off: number): string => {
    const at = namesOff + off;
    const len = u16(at, 'a name length');
    const start = at + 6;
    if (start + 2 * len > b.length) throw corrupt(`a name of ${len} characters at byte ${at} runs past the end`);
    return Buffer.from(b.subarray(start, start + 2 * len)).swap16().toString('utf16le'); // a copy: swap16 works in place
  };

  interface FileNode { path: string; flags: number; dataAt: number; lastModified: number }
  const files = new Map<string, FileNode>();
  const entries: RccEntry[] = [];
  const seen = new Set<number>();
  const walk = (index: number, prefix: string) => {
    if (seen.has(index)) throw corrupt(`tree node ${index} is reached twice (a loop in the directory tree)`);
    seen.add(index);
    const at = treeOff + index * nodeSize;
    if (at + nodeSize > b.length) throw corrupt(`tree node ${index} at byte ${at} is past the end`);
    const flags = u16(at + 4, 'node flags');
    const path = index === 0 ? '' : prefix + name(u32(at, 'a name offset'));
    if (index === 0 && !(flags & RCC_DIRECTORY)) throw corrupt('the root node is not a directory');
    if (flags & RCC_DIRECTORY) {
      const count = u32(at + 6, 'a child count');
      const first = u32(at + 10, 'a first child');
      if (treeOff + (first + count) * nodeSize > b.length) throw corrupt(`directory "${path || '/'}" claims ${count} children from node ${first}, past the end`);
      for (let c = 0; c < count; c++) walk(first + c, path === '' ? '' : `${path}/`);
      return;
    }
    const dataAt = dataOff + u32(at + 10, 'a data offset');
    const storedSize = u32(dataAt, `the data length of "${path}"`);
    if (dataAt + 4 + storedSize > b.length) throw corrupt(`"${path}" claims ${storedSize} bytes at byte ${dataAt + 4}, past the end`);
    const lastModified = version >= 2 ? Number(b.readBigUInt64BE(at + 14)) : 0;
    const compression: RccCompression = flags & RCC_ZSTD ? 'zstd' : flags & RCC_ZLIB ? 'zlib' : 'none';
    files.set(path, { path, flags, dataAt, lastModified });
    entries.push({ path, compression, storedSize, lastModified });
  };
  walk(0, '');

  const read = (p: string): Buffer => {
    const key = rccPath(p);
    const f = files.get(key);
    if (!f) {
      throw new GraftError('E_FILE_MISSING', `${source} holds no file "${key}"`,
        'List the resource\'s files with readRcc(path).entries; paths have no leading slash.', { file: source, path: key });
    }
    const size = b.readUInt32BE(f.dataAt);
    const stored = b.subarray(f.dataAt + 4, f.dataAt + 4 + size);
    if (f.flags & RCC_ZSTD) {
      throw new GraftError('E_RCC_UNSUPPORTED', `${source}: "${key}" is zstd-compressed, which graft does not decompress (Node's zlib has no zstd before Node 22)`,
        'Rebuild the resource with `rcc -binary --compress-algo zlib`, or extract it with Qt\'s own tools.', { file: source, path: key, compression: 'zstd' });
    }
    if (!(f.flags & RCC_ZLIB)) return Buffer.from(stored);
    if (stored.length < 4) throw corrupt(`"${key}" is marked zlib-compressed but holds ${stored.length} bytes, too few for qCompress's length prefix`);
    const expected = stored.readUInt32BE(0);
    let out: Buffer;
    try {
      out = inflateSync(stored.subarray(4), { maxOutputLength: Math.max(expected, 1) });
    } catch (e) {
      throw corrupt(`"${key}" does not inflate to its declared ${expected} bytes (${(e as Error).message})`);
    }
    if (out.length !== expected) throw corrupt(`"${key}" inflates to ${out.length} bytes, not its declared ${expected}`);
    return out;
  };
  return { source, version, overallFlags, entries, has: (p) => files.has(rccPath(p)), read };
}
