import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { isGraftError } from '../errors.ts';
import { RCC_DIRECTORY, RCC_ZLIB, RCC_ZSTD, rccPath, readRcc } from './rcc.ts';
import { GCOMPRIS_INSTALL, GCOMPRIS_RCC } from './gcompris.ts';

const missing = !existsSync(GCOMPRIS_RCC) && `Debian's gcompris-qt-data is not installed (${GCOMPRIS_INSTALL})`;

/**
 * A minimal `rcc -binary` writer, for the format's own cases: files are [path, bytes, flags]; directories
 * come from the paths. Qt sorts siblings by name hash; the reader does not care, so these are sorted by name.
 */
function buildRcc(files: [string, Uint8Array, number][], version = 3): Buffer {
  interface Dir { kind: 'dir'; children: Map<string, Dir | File> }
  interface File { kind: 'file'; data: Uint8Array; flags: number }
  const root: Dir = { kind: 'dir', children: new Map() };
  for (const [p, data, flags] of files) {
    const parts = p.split('/');
    let d = root;
    for (const part of parts.slice(0, -1)) {
      if (!d.children.has(part)) d.children.set(part, { kind: 'dir', children: new Map() });
      d = d.children.get(part) as Dir;
    }
    d.children.set(parts.at(-1)!, { kind: 'file', data, flags });
  }
  const names: Buffer[] = [];
  let namesLen = 0;
  const nameAt = new Map<string, number>();
  const addName = (s: string) => {
    if (nameAt.has(s)) return nameAt.get(s)!;
    const b = Buffer.alloc(6 + 2 * s.length);
    b.writeUInt16BE(s.length, 0);
    b.writeUInt32BE(0, 2); // hash: unused by the reader
    Buffer.from(s, 'utf16le').swap16().copy(b, 6);
    nameAt.set(s, namesLen);
    names.push(b);
    namesLen += b.length;
    return nameAt.get(s)!;
  };
  const datas: Buffer[] = [];
  let dataLen = 0;
  // nodes in breadth-first order, so that each directory's children are contiguous
  const nodes: { name: number; node: Dir | File; first?: number; dataAt?: number }[] = [{ name: 0, node: root }];
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!;
    if (n.node.kind === 'dir') {
      n.first = nodes.length;
      for (const [k, c] of [...n.node.children].sort(([a], [b]) => (a < b ? -1 : 1))) nodes.push({ name: addName(k), node: c });
    } else {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(n.node.data.length);
      n.dataAt = dataLen;
      datas.push(len, Buffer.from(n.node.data));
      dataLen += 4 + n.node.data.length;
    }
  }
  const nodeSize = version >= 2 ? 22 : 14;
  const tree = Buffer.alloc(nodes.length * nodeSize);
  nodes.forEach((n, i) => {
    const o = i * nodeSize;
    tree.writeUInt32BE(n.name, o);
    if (n.node.kind === 'dir') {
      tree.writeUInt16BE(RCC_DIRECTORY, o + 4);
      tree.writeUInt32BE(n.node.children.size, o + 6);
      tree.writeUInt32BE(n.first!, o + 10);
    } else {
      tree.writeUInt16BE(n.node.flags, o + 4);
      tree.writeUInt32BE(n.dataAt!, o + 10);
      if (version >= 2) tree.writeBigUInt64BE(1_700_000_000_000n, o + 14);
    }
  });
  const headLen = version >= 3 ? 24 : 20;
  const head = Buffer.alloc(headLen);
  head.write('qres', 0, 'latin1');
  head.writeUInt32BE(version, 4);
  const treeOff = headLen;
  const dataOff = treeOff + tree.length;
  const namesOff = dataOff + dataLen;
  head.writeUInt32BE(treeOff, 8);
  head.writeUInt32BE(dataOff, 12);
  head.writeUInt32BE(namesOff, 16);
  if (version >= 3) head.writeUInt32BE(files.reduce((f, [, , fl]) => f | (fl & (RCC_ZLIB | RCC_ZSTD)), 0), 20);
  return Buffer.concat([head, tree, ...datas, ...names]);
}

/** qCompress: the uncompressed length (u32 BE), then a zlib stream. */
function qCompress(b: Uint8Array): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, deflateSync(b)]);
}

const code = (f: () => unknown, c: string, re: RegExp) => assert.throws(f, (e: unknown) => {
  assert.ok(isGraftError(e), String(e));
  assert.equal(e.code, c);
  assert.match(e.message, re);
  assert.ok(e.hint.length > 0);
  return true;
});

test('readRcc: stored and zlib entries, nested directories, versions 1 to 3', () => {
  const text = Buffer.from('import QtQuick 2.12\n'.repeat(50));
  const bin = Uint8Array.from({ length: 300 }, (_, i) => (i * 37) & 255);
  for (const version of [1, 2, 3]) {
    const a = readRcc(buildRcc([['a/board/x.qml', qCompress(text), RCC_ZLIB], ['a/images/é.webp', bin, 0], ['top.txt', Buffer.from('hi'), 0]], version));
    assert.equal(a.version, version);
    assert.equal(a.overallFlags, version >= 3 ? RCC_ZLIB : 0);
    assert.deepEqual(a.entries.map((e) => [e.path, e.compression]).sort(), [['a/board/x.qml', 'zlib'], ['a/images/é.webp', 'none'], ['top.txt', 'none']]);
    assert.equal(a.entries.find((e) => e.path === 'top.txt')!.lastModified, version >= 2 ? 1_700_000_000_000 : 0);
    assert.deepEqual(a.read('qrc:/a/board/x.qml'), text);
    assert.deepEqual(a.read(':/a/images/é.webp'), Buffer.from(bin));
    assert.deepEqual(a.read('/top.txt').toString(), 'hi');
    assert.ok(a.has('a/board/x.qml') && !a.has('a/board'));
  }
  assert.equal(rccPath('qrc:/gcompris/x'), 'gcompris/x');
});

test('readRcc: zstd entries, other versions and damaged files are typed errors', () => {
  const z = readRcc(buildRcc([['z.bin', Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0]), RCC_ZSTD], ['ok.txt', Buffer.from('fine'), 0]]));
  assert.equal(z.overallFlags, RCC_ZSTD);
  assert.equal(z.entries.find((e) => e.path === 'z.bin')!.compression, 'zstd');
  assert.equal(z.read('ok.txt').toString(), 'fine'); // the rest of the file stays readable
  code(() => z.read('z.bin'), 'E_RCC_UNSUPPORTED', /"z\.bin" is zstd-compressed/);
  code(() => z.read('nope.txt'), 'E_FILE_MISSING', /holds no file "nope\.txt"/);

  const good = buildRcc([['d/f.txt', qCompress(Buffer.from('x'.repeat(1000))), RCC_ZLIB]]);
  const v4 = Buffer.from(good);
  v4.writeUInt32BE(4, 4);
  code(() => readRcc(v4), 'E_RCC_UNSUPPORTED', /format version 4/);
  code(() => readRcc(Buffer.from('PK\u0003\u0004 not a resource file at all')), 'E_RCC_CORRUPT', /expected the magic "qres"/);
  code(() => readRcc(good.subarray(0, 30)), 'E_RCC_CORRUPT', /past the end/);
  const liar = Buffer.from(good); // the declared uncompressed length disagrees with the stream
  const dataOff = liar.readUInt32BE(12);
  liar.writeUInt32BE(10, dataOff + 4);
  code(() => readRcc(liar).read('d/f.txt'), 'E_RCC_CORRUPT', /declared 10 bytes/);
  const loop = Buffer.from(good); // directory "d" (node 1) claims the root as its child
  loop.writeUInt32BE(0, 24 + 22 + 10);
  code(() => readRcc(loop), 'E_RCC_CORRUPT', /loop/);
  code(() => readRcc('/no/such/file.rcc'), 'E_FILE_MISSING', /file\.rcc/);
});

test('readRcc on gcompris-qt-data\'s categorization.rcc: format 3, stored and zlib entries', { skip: missing }, () => {
  const a = readRcc(GCOMPRIS_RCC);
  assert.equal(a.version, 3);
  assert.equal(a.overallFlags, RCC_ZLIB);
  assert.equal(a.entries.length, 254);
  const by = (c: string) => a.entries.filter((e) => e.compression === c).length;
  assert.deepEqual([by('none'), by('zlib'), by('zstd')], [222, 32, 0]);
  // rcc stores what compresses well (QML, READMEs) with zlib, and the WebP photos as they are
  assert.ok(a.entries.filter((e) => e.path.endsWith('.webp')).every((e) => e.compression === 'none'));
  const data = a.read('qrc:/gcompris/src/activities/categorization/resource/1/Data.qml').toString('utf8');
  assert.match(data, /category_animals\.qml/);
  const tools = a.read('gcompris/src/activities/categorization/resource/board/category_tools.qml').toString('utf8');
  assert.equal(a.entries.find((e) => e.path.endsWith('category_tools.qml'))!.compression, 'zlib');
  assert.match(tools, /Place the TOOLS to the right/);
  const webp = a.read('gcompris/src/activities/categorization/resource/images/fishes/fish1.webp');
  assert.equal(webp.toString('latin1', 0, 4), 'RIFF');
  assert.equal(webp.toString('latin1', 8, 12), 'WEBP');
});
