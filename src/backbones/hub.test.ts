// The hub client against a local server on 127.0.0.1 that serves a fixture repository in the Hugging Face
// layout. No other host is contacted: every call names the endpoint, or sets GRAFT_HUB_ENDPOINT to it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { hubFile, hubSnapshot, hubUrl, type HubFileOptions, type HubProgress } from './hub.ts';
import { loadOnnxFolder } from './onnxfile.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { f32, toNumbers } from '../graph/tensor.ts';
import { Session } from '../runtime/session.ts';
import { GraftError } from '../errors.ts';

const { onnx } = onnxProto;
const REPO = 'acme/tiny';
const COMMIT = 'c0ffee'.padEnd(40, '1');
const COMMIT2 = 'beef'.padEnd(40, '2');
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

// ---- the fixture repository ---------------------------------------------------------------------------------

const IN = 64;
const OUT = 1024;
const Wv = Array.from({ length: IN * OUT }, (_, i) => Math.sin(i) / 8);
const Bv = Array.from({ length: OUT }, (_, i) => (i % 7) - 3);
const Xv = Array.from({ length: IN }, (_, i) => Math.cos(i));

/** onnx/model.onnx (y = x @ W + b) with W and b in onnx/model.onnx_data, as optimum exports large models. */
function buildModel(): { model: Uint8Array; data: Uint8Array } {
  const gb = new GraphBuilder();
  const x = gb.input('x', 'float32', [1, IN]);
  const w = gb.init('W', f32([IN, OUT], Wv));
  const b = gb.init('b', f32([OUT], Bv));
  gb.output(gb.add(gb.matmul(x, w), b), 'y');
  const m = onnx.ModelProto.decode(gb.graph.toBytes());
  const chunks: Buffer[] = [];
  let off = 0;
  for (const t of m.graph!.initializer ?? []) {
    const raw = Buffer.from(t.rawData!);
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.externalData = [{ key: 'location', value: 'model.onnx_data' }, { key: 'offset', value: String(off) }, { key: 'length', value: String(raw.length) }];
    t.rawData = new Uint8Array(0);
    chunks.push(raw);
    off += raw.length;
  }
  return { model: onnx.ModelProto.encode(m).finish(), data: Buffer.concat(chunks) };
}

const fixture = (f: string) => readFileSync(new URL(`../../fixtures/hub/tiny/${f}`, import.meta.url));
const built = buildModel();
const FILES: Record<string, Uint8Array> = {
  'config.json': fixture('config.json'),
  'preprocessor_config.json': fixture('preprocessor_config.json'),
  'tokenizer.json': fixture('tokenizer.json'),
  'onnx/model.onnx': built.model,
  'onnx/model.onnx_data': built.data,
};
const SHA: Record<string, string> = Object.fromEntries(Object.entries(FILES).map(([k, v]) => [k, sha(v)]));
const DATA = 'onnx/model.onnx_data';

// ---- the server ----------------------------------------------------------------------------------------------

interface Logged { path: string; range: string | undefined }
const server = {
  log: [] as Logged[],
  revisions: {} as Record<string, string>,
  dropOnce: new Set<string>(), // repo paths whose next body breaks halfway
  ignoreRange: false,
  wrong: new Set<string>(), // repo paths served with other bytes
  hang: new Set<string>(), // repo paths never answered
  failOnce: new Set<string>(), // repo paths answered 503 once
  /** How many bytes of the file the client holds (set from onProgress): the drop waits for the first half. */
  clientHas: 0,
  reset() {
    this.log = [];
    this.revisions = { main: COMMIT, 'v1.0': COMMIT, [COMMIT]: COMMIT, ['f'.repeat(40)]: COMMIT };
    this.dropOnce.clear();
    this.ignoreRange = false;
    this.wrong.clear();
    this.hang.clear();
    this.failOnce.clear();
    this.clientHas = 0;
  },
  count(path: string) {
    return this.log.filter((l) => l.path.endsWith(`/${path}`)).length;
  },
};

function serveBody(req: http.IncomingMessage, res: http.ServerResponse, path: string, body: Uint8Array) {
  const len = body.length;
  const headers: http.OutgoingHttpHeaders = { etag: `"${sha(body)}"`, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  let start = 0;
  if (m && !server.ignoreRange) {
    start = Number(m[1]);
    if (start >= len) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${len}` });
      res.end();
      return;
    }
    res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${len - 1}/${len}`, 'content-length': len - start });
  } else {
    res.writeHead(200, { ...headers, 'content-length': len });
  }
  if (server.dropOnce.delete(path)) {
    const half = start + ((len - start) >> 1);
    for (let o = start; o < half; o += 8192) res.write(body.subarray(o, Math.min(o + 8192, half)));
    const t0 = Date.now();
    const drop = () => {
      if (server.clientHas >= half || Date.now() - t0 > 3000) res.socket?.destroy();
      else setTimeout(drop, 5);
    };
    drop();
    return;
  }
  res.end(body.subarray(start));
}

const httpServer = http.createServer((req, res) => {
  const u = new URL(req.url ?? '/', 'http://127.0.0.1');
  const hub = /^\/acme\/tiny\/resolve\/([^/]+)\/(.+)$/.exec(u.pathname);
  const cdn = /^\/cdn\/(.+)$/.exec(u.pathname);
  const path = decodeURIComponent((hub ? hub[2] : cdn?.[1]) ?? '');
  server.log.push({ path: u.pathname, range: req.headers.range });
  if (cdn && path in FILES) return serveBody(req, res, path, FILES[path]!);
  if (!hub) return res.writeHead(404).end();
  const commit = server.revisions[decodeURIComponent(hub[1]!)];
  if (!commit) return res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end();
  if (!(path in FILES)) return res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': commit }).end();
  if (server.hang.has(path)) return; // never answered
  if (server.failOnce.delete(path)) return res.writeHead(503).end('busy');
  if (server.wrong.has(path)) {
    res.setHeader('x-repo-commit', commit);
    return serveBody(req, res, path, Buffer.from('{"not": "the file you pinned"}\n'));
  }
  if (path.endsWith('.onnx_data')) {
    // Large files live elsewhere (LFS): the hub redirects, and only this first hop names the commit.
    return res.writeHead(302, { location: `/cdn/${path}`, 'x-repo-commit': commit }).end();
  }
  res.setHeader('x-repo-commit', commit);
  serveBody(req, res, path, FILES[path]!);
});

let endpoint = '';
const ENV = ['GRAFT_OFFLINE', 'GRAFT_HUB_ENDPOINT', 'GRAFT_CACHE_DIR'] as const;
const savedEnv = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));
const tmp = mkdtempSync(join(tmpdir(), 'graft-hub-'));
let caches = 0;
const freshCache = () => join(tmp, `cache${caches++}`);

before(async () => {
  for (const k of ENV) delete process.env[k];
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(httpServer.address() as { port: number }).port}`;
});

after(async () => {
  for (const k of ENV) if (savedEnv[k] === undefined) delete process.env[k]; else process.env[k] = savedEnv[k];
  httpServer.closeAllConnections();
  await new Promise<void>((r) => httpServer.close(() => r()));
  rmSync(tmp, { recursive: true, force: true });
});

function opts(cacheDir: string, extra: HubFileOptions = {}): HubFileOptions {
  return { endpoint, cacheDir, retryDelayMs: 5, progress: false, ...extra };
}

async function rejects(p: Promise<unknown>, code: string): Promise<GraftError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof GraftError, `not a GraftError: ${e}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.hint.length > 0);
    return e;
  }
  assert.fail(`expected ${code}`);
}

/** Runs the snapshot's model in ORT and checks y = x @ W + b. */
async function checkRuns(dir: string) {
  const { graph } = loadOnnxFolder(dir);
  const s = await Session.create(graph, { threads: 1 });
  const y = toNumbers((await s.run({ x: f32([1, IN], Xv) })).y!);
  await s.dispose();
  for (const j of [0, 1, 513, OUT - 1]) {
    let want = Bv[j]!;
    for (let k = 0; k < IN; k++) want += Xv[k]! * Wv[k * OUT + j]!;
    assert.ok(Math.abs(y[j]! - want) < 1e-4, `y[${j}] ${y[j]} vs ${want}`);
  }
}

test('a snapshot downloads into the cache, records the commit, runs in ORT, and comes from the cache the second time', async () => {
  server.reset();
  const cacheDir = freshCache();
  const events: HubProgress[] = [];
  const files = ['config.json', 'preprocessor_config.json', 'tokenizer.json', 'onnx/model.onnx'];
  const snap = await hubSnapshot(REPO, files, {
    ...opts(cacheDir, { revision: 'v1.0', onProgress: (p) => events.push(p) }),
    optional: [DATA, 'onnx/model_fp16.onnx_data'],
    sha256: { 'onnx/model.onnx': SHA['onnx/model.onnx']!, [DATA]: SHA[DATA]! },
  });
  assert.equal(snap.commit, COMMIT);
  assert.equal(snap.dir, join(cacheDir, 'acme', 'tiny', 'v1.0'));
  assert.deepEqual(Object.keys(snap.files).sort(), [...files, DATA].sort());
  for (const [p, local] of Object.entries(snap.files)) assert.ok(readFileSync(local).equals(Buffer.from(FILES[p]!)), p);
  assert.equal(JSON.parse(readFileSync(join(snap.dir, '.graft-revision.json'), 'utf8')).commit, COMMIT);
  assert.ok(!readdirSync(join(snap.dir, 'onnx')).some((f) => /\.(partial|lock)$/.test(f)));
  // 4 files, the data file through a redirect (2 requests), and one 404 for the optional fp16 data.
  assert.equal(server.log.length, 7);
  const data = events.filter((e) => e.path === DATA);
  assert.deepEqual(data.at(-1), { repo: REPO, path: DATA, done: FILES[DATA]!.length, total: FILES[DATA]!.length });
  for (let i = 1; i < data.length; i++) assert.ok(data[i]!.done >= data[i - 1]!.done);
  await checkRuns(snap.dir);

  const again = await hubSnapshot(REPO, files, { ...opts(cacheDir, { revision: 'v1.0' }), optional: [DATA], sha256: { [DATA]: SHA[DATA]! } });
  assert.deepEqual(again, { ...snap, files: again.files });
  assert.equal(await hubFile(REPO, 'config.json', opts(cacheDir, { revision: 'v1.0' })), snap.files['config.json']);
  assert.equal(server.log.length, 7, 'no request for cached files');
});

test('a connection dropped halfway is resumed with a Range request and the sha256 matches', async () => {
  server.reset();
  const cacheDir = freshCache();
  server.dropOnce.add(DATA);
  const local = await hubFile(REPO, DATA, opts(cacheDir, { sha256: SHA[DATA], onProgress: (p) => { server.clientHas = p.done; } }));
  assert.equal(sha(readFileSync(local)), SHA[DATA]);
  assert.ok(!existsSync(`${local}.partial`) && !existsSync(`${local}.lock`));
  const cdn = server.log.filter((l) => l.path.startsWith('/cdn/'));
  assert.equal(cdn.length, 2);
  assert.equal(cdn[0]!.range, undefined);
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(cdn[1]!.range ?? '')?.[1]);
  assert.ok(resumedAt >= FILES[DATA]!.length >> 1 && resumedAt < FILES[DATA]!.length, `resumed at ${cdn[1]!.range}`);
  assert.ok(server.log.every((l) => l.path.endsWith(DATA)));
});

test('a break with no retries left keeps only the .partial, and the next call resumes from it', async () => {
  server.reset();
  const cacheDir = freshCache();
  server.dropOnce.add(DATA);
  const track = { onProgress: (p: HubProgress) => { server.clientHas = p.done; } };
  const e = await rejects(hubFile(REPO, DATA, opts(cacheDir, { retries: 0, ...track })), 'E_HUB_NETWORK');
  assert.match(e.message, /acme\/tiny\/onnx\/model\.onnx_data/);
  const local = join(cacheDir, 'acme', 'tiny', 'main', 'onnx', 'model.onnx_data');
  assert.ok(!existsSync(local), 'no file in the cache');
  const kept = statSync(`${local}.partial`).size;
  assert.ok(kept > 0 && kept < FILES[DATA]!.length);
  assert.match(e.hint, /resumes/);

  assert.equal(await hubFile(REPO, DATA, opts(cacheDir, { sha256: SHA[DATA], ...track })), local);
  assert.equal(sha(readFileSync(local)), SHA[DATA]);
  assert.equal(server.log.at(-1)!.range, `bytes=${kept}-`);
  assert.ok(!existsSync(`${local}.partial`));
});

test('a server that ignores Range makes the download restart from zero', async () => {
  server.reset();
  const cacheDir = freshCache();
  server.dropOnce.add(DATA);
  server.ignoreRange = true;
  const local = await hubFile(REPO, DATA, opts(cacheDir, { onProgress: (p) => { server.clientHas = p.done; } }));
  assert.equal(sha(readFileSync(local)), SHA[DATA]);
  const cdn = server.log.filter((l) => l.path.startsWith('/cdn/'));
  assert.equal(cdn.length, 2);
  assert.match(cdn[1]!.range ?? '', /^bytes=\d+-$/); // asked to resume, got the whole file (200)
});

test('a wrong file fails the sha256 check and nothing enters the cache', async () => {
  server.reset();
  const cacheDir = freshCache();
  server.wrong.add('config.json');
  const e = await rejects(hubFile(REPO, 'config.json', opts(cacheDir, { sha256: SHA['config.json'] })), 'E_HUB_SHA256');
  assert.equal(e.details?.['expected'], SHA['config.json']);
  assert.equal(e.details?.['actual'], sha(Buffer.from('{"not": "the file you pinned"}\n')));
  assert.match(e.message, /acme\/tiny\/config\.json \(revision main\)/);
  const dir = join(cacheDir, 'acme', 'tiny', 'main');
  assert.deepEqual(readdirSync(dir).filter((f) => f !== '.graft-revision.json'), []);
  // The same file unpinned is taken as served; pinned again later, the cached copy is checked and replaced.
  server.wrong.clear();
  const local = await hubFile(REPO, 'config.json', opts(cacheDir, { sha256: SHA['config.json'] }));
  assert.ok(readFileSync(local).equals(Buffer.from(FILES['config.json']!)));
  await rejects(hubFile(REPO, 'config.json', opts(cacheDir, { sha256: 'ab'.repeat(32), retries: 0 })), 'E_HUB_SHA256');
  assert.ok(!existsSync(local));
  await rejects(hubFile(REPO, 'config.json', opts(cacheDir, { sha256: 'nothex' })), 'E_BAD_OPTION');
});

test('a 404 is E_HUB_NOT_FOUND naming repo, path and revision, without retries', async () => {
  server.reset();
  const cacheDir = freshCache();
  const e = await rejects(hubFile(REPO, 'onnx/nope.onnx', opts(cacheDir, { revision: 'v1.0' })), 'E_HUB_NOT_FOUND');
  assert.match(e.message, /acme\/tiny\/onnx\/nope\.onnx \(revision v1\.0\)/);
  assert.equal(e.details?.['errorCode'], 'EntryNotFound');
  assert.equal(server.log.length, 1);
  const r = await rejects(hubFile(REPO, 'config.json', opts(cacheDir, { revision: 'no-such-tag' })), 'E_HUB_NOT_FOUND');
  assert.match(r.message, /revision no-such-tag.*RevisionNotFound/);
  assert.ok(!existsSync(join(cacheDir, 'acme', 'tiny', 'v1.0', 'onnx', 'nope.onnx.partial')));
});

test('offline: cached files are served, anything else fails at once with no request', async () => {
  server.reset();
  const cacheDir = freshCache();
  const local = await hubFile(REPO, 'config.json', opts(cacheDir));
  server.log = [];
  process.env['GRAFT_OFFLINE'] = '1';
  process.env['GRAFT_HUB_ENDPOINT'] = endpoint;
  try {
    assert.equal(await hubFile(REPO, 'config.json', { cacheDir, sha256: SHA['config.json'] }), local);
    const t0 = Date.now();
    const e = await rejects(hubFile(REPO, 'tokenizer.json', { cacheDir }), 'E_HUB_OFFLINE');
    assert.match(e.message, /acme\/tiny\/tokenizer\.json/);
    assert.match(e.hint, /GRAFT_OFFLINE/);
    await rejects(hubFile(REPO, 'config.json', { cacheDir, sha256: 'ab'.repeat(32) }), 'E_HUB_SHA256'); // kept: offline cannot replace it
    assert.ok(existsSync(local));
    const snap = await hubSnapshot(REPO, ['config.json'], { cacheDir, optional: [DATA] });
    assert.deepEqual(Object.keys(snap.files), ['config.json']);
    assert.equal(snap.commit, COMMIT);
    await rejects(hubSnapshot(REPO, ['config.json', 'onnx/model.onnx'], { cacheDir }), 'E_HUB_OFFLINE');
    // Offline without any endpoint or cache entry: still immediate.
    delete process.env['GRAFT_HUB_ENDPOINT'];
    await rejects(hubFile('someone/else', 'model.onnx', { cacheDir: freshCache() }), 'E_HUB_OFFLINE');
    assert.ok(Date.now() - t0 < 1000);
  } finally {
    delete process.env['GRAFT_OFFLINE'];
    delete process.env['GRAFT_HUB_ENDPOINT'];
  }
  await rejects(hubFile(REPO, 'tokenizer.json', { cacheDir, offline: true, endpoint }), 'E_HUB_OFFLINE');
  assert.equal(server.log.length, 0);
});

test('refused connections, timeouts and 5xx become E_HUB_NETWORK (or succeed on retry), quickly', async () => {
  server.reset();
  const cacheDir = freshCache();
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const t0 = Date.now();
  const e = await rejects(hubFile(REPO, 'config.json', { ...opts(cacheDir), endpoint: `http://127.0.0.1:${deadPort}`, retries: 1 }), 'E_HUB_NETWORK');
  assert.match(e.message, /after 2 attempt\(s\).*ECONNREFUSED/);
  assert.match(e.hint, /GRAFT_OFFLINE=1/);

  server.hang.add('tokenizer.json');
  const h = await rejects(hubFile(REPO, 'tokenizer.json', opts(cacheDir, { timeoutMs: 100, retries: 1 })), 'E_HUB_NETWORK');
  assert.match(h.message, /no data for 100 ms/);
  assert.equal(server.count('tokenizer.json'), 2);
  assert.ok(Date.now() - t0 < 3000, 'no hang');
  assert.ok(!existsSync(join(cacheDir, 'acme', 'tiny', 'main', 'tokenizer.json')));

  server.failOnce.add('preprocessor_config.json');
  await hubFile(REPO, 'preprocessor_config.json', opts(cacheDir));
  assert.equal(server.count('preprocessor_config.json'), 2);
});

test('pinning: a commit the server resolves elsewhere, or a branch that moved since caching, is E_HUB_REVISION', async () => {
  server.reset();
  const cacheDir = freshCache();
  const e = await rejects(hubFile(REPO, 'config.json', opts(cacheDir, { revision: 'f'.repeat(40) })), 'E_HUB_REVISION');
  assert.equal(e.details?.['commit'], COMMIT);
  const pinned = await hubSnapshot(REPO, ['config.json'], { ...opts(cacheDir, { revision: COMMIT }), sha256: { 'config.json': SHA['config.json']! } });
  assert.equal(pinned.commit, COMMIT);

  await hubFile(REPO, 'config.json', opts(cacheDir));
  server.revisions['main'] = COMMIT2;
  const moved = await rejects(hubFile(REPO, 'tokenizer.json', opts(cacheDir)), 'E_HUB_REVISION');
  assert.match(moved.hint, new RegExp(COMMIT));
  assert.ok(!existsSync(join(cacheDir, 'acme', 'tiny', 'main', 'tokenizer.json')));
  // The cached file of the old commit is still served (no request), as pinned by the branch name.
  const n = server.log.length;
  await hubFile(REPO, 'config.json', opts(cacheDir));
  assert.equal(server.log.length, n);
});

test('env GRAFT_HUB_ENDPOINT and GRAFT_CACHE_DIR apply when no option is given; bad names are refused', async () => {
  server.reset();
  const cacheDir = freshCache();
  process.env['GRAFT_HUB_ENDPOINT'] = endpoint + '/';
  process.env['GRAFT_CACHE_DIR'] = cacheDir;
  try {
    const local = await hubFile(REPO, 'tokenizer.json', { progress: false });
    assert.equal(local, join(cacheDir, 'acme', 'tiny', 'main', 'tokenizer.json'));
    assert.equal(hubUrl(REPO, 'onnx/model.onnx', { revision: 'refs/pr/1' }), `${endpoint}/acme/tiny/resolve/refs%2Fpr%2F1/onnx/model.onnx`);
  } finally {
    delete process.env['GRAFT_HUB_ENDPOINT'];
    delete process.env['GRAFT_CACHE_DIR'];
  }
  const n = server.log.length;
  for (const [repo, path, revision] of [
    ['acme/../x', 'config.json', 'main'], ['acme', 'config.json', 'main'], [REPO, '../config.json', 'main'],
    [REPO, '/etc/passwd', 'main'], [REPO, 'a//b', 'main'], [REPO, 'config.json', '../main'], [REPO, 'x.partial', 'main'],
  ] as const) {
    await rejects(hubFile(repo, path, opts(cacheDir, { revision })), 'E_BAD_OPTION');
  }
  assert.equal(server.log.length, n);
});
