// graft serve: a CSV model (sklearn digits) and an image probe (MNIST PNGs on MobileNetV2) behind
// the HTTP API; good requests, micro-batching, every kind of bad request, and SIGTERM under load.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { writeDigitsSplit } from '../data/digits.ts';
import { readNumericCsv } from '../data/csv.ts';
import { writeMnistFolder } from '../data/mnist.ts';
import { BIN } from '../cli/testkit.ts';
import { type Predictor, loadModel, train } from '../index.ts';
import { type ServeHandle, serve } from './server.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-serve-'));
const csvModel = join(dir, 'digits');
const imgModel = join(dir, 'mnist');
const TOKEN = 'sesame';
let rows: Record<string, number>[];
let pngs: string[];
let server: ServeHandle;
let digits: Predictor;
let mnist: Predictor;

before(async () => {
  const split = writeDigitsSplit(dir, 0.25, 0);
  await train(split.train, { out: csvModel, head: 'linear', threads: 2 });
  const t = readNumericCsv(split.test, { requireLabel: false });
  rows = Array.from({ length: 40 }, (_, i) => Object.fromEntries(t.columns.map((c, j) => [c, t.x[i * t.d + j]!])));
  const imgs = join(dir, 'imgs');
  await writeMnistFolder(imgs, [0, 1, 2], 6, 0);
  await train(imgs, { out: imgModel, cut: 'features', head: 'linear', threads: 2 });
  pngs = ['0', '1', '2'].map((c) => join(imgs, c, readdirSync(join(imgs, c))[0]!));
  digits = await loadModel(csvModel);
  mnist = await loadModel(imgModel);
  server = await serve([csvModel, imgModel], { port: 0, token: TOKEN, maxBatch: 64, maxWaitMs: 200, bodyLimit: 1024 * 1024, threads: 2 });
});

after(async () => {
  await server?.close();
  await digits?.dispose();
  await mnist?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const auth = { authorization: `Bearer ${TOKEN}` };

async function post(path: string, body: unknown, headers: Record<string, string> = { ...auth, 'content-type': 'application/json' }) {
  const r = await fetch(server.url + path, { method: 'POST', headers, body: typeof body === 'string' || body instanceof FormData || body instanceof Uint8Array ? body : JSON.stringify(body) });
  return { status: r.status, body: await r.json() as any };
}

async function metric(name: string, model: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`, { headers: auth })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{model="${model}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** A PNG whose header claims width x height, with the first two rows of (black) pixels behind it. */
function pngHeader(width: number, height: number): Uint8Array {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
  return new Uint8Array(Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(2 * (1 + 3 * width)))), chunk('IEND', Buffer.alloc(0))]));
}

test('health, the model list, and good requests answered as predict() answers', async () => {
  const h = await fetch(`${server.url}/healthz`); // no token needed
  assert.equal(h.status, 200);
  const models = await (await fetch(`${server.url}/v1/models`, { headers: auth })).json() as any;
  assert.deepEqual(models.models.map((m: any) => [m.name, m.task]), [['digits', 'csv'], ['mnist', 'images']]);
  assert.equal(models.models[0].labels.length, 10);
  assert.equal(models.models[0].input.columns.length, 64);
  assert.ok(models.models[0].metrics && typeof models.models[0].metrics === 'object');

  const r = await post('/v1/models/digits/predict', { rows: rows.slice(0, 3) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const direct = await digits.predict({ rows: rows.slice(0, 3) });
  assert.deepEqual(r.body, { predictions: JSON.parse(JSON.stringify(direct.predictions)) });

  const bytes = pngs.map((p) => readFileSync(p));
  const viaJson = await post('/v1/models/mnist/predict', { images: bytes.map((b) => b.toString('base64')) });
  assert.equal(viaJson.status, 200, JSON.stringify(viaJson.body));
  const form = new FormData();
  bytes.forEach((b, i) => form.append('image', new Blob([b], { type: 'image/png' }), `${i}.png`));
  const viaForm = await post('/v1/models/mnist/predict', form, auth);
  assert.equal(viaForm.status, 200, JSON.stringify(viaForm.body));
  assert.deepEqual(viaForm.body, viaJson.body);
  // In-memory bytes predict as the files do (the public API's { images }), and strictly.
  const byPath = await mnist.predict(pngs);
  const byBytes = await mnist.predict({ images: bytes.map((b) => new Uint8Array(b)) });
  assert.deepEqual(byBytes.predictions.map((p: any) => p.label), byPath.predictions.map((p: any) => p.label));
  await assert.rejects(mnist.predict({ images: [bytes[0]!.subarray(0, 40)] }), (e: any) => e.code === 'E_IMAGE_CORRUPT' && /image 1/.test(e.message));
  await assert.rejects(mnist.predict({ images: [pngHeader(100_000, 100_000)] }), (e: any) => e.code === 'E_IMAGE_TOO_LARGE');
  await assert.rejects(digits.predict({ images: [bytes[0]!] }), (e: any) => e.code === 'E_BAD_OPTION');
  assert.equal(viaJson.body.predictions.length, 3);
  viaJson.body.predictions.forEach((p: any, i: number) => {
    assert.equal(p.label, (byPath.predictions[i] as any).label);
    for (const l of mnist.labels) assert.ok(Math.abs(p.probabilities[l] - (byPath.predictions[i] as any).probabilities[l]) < 1e-6);
  });
});

test('concurrent requests are micro-batched into fewer predict calls, each answered with its own rows', async () => {
  const n = 24;
  await Promise.all(Array.from({ length: n }, () => fetch(`${server.url}/healthz`).then((r) => r.text()))); // open the connections first
  const calls0 = await metric('graft_predict_calls_total', 'digits');
  const parts = Array.from({ length: n }, (_, i) => rows.slice(i % 20, (i % 20) + 1 + (i % 3)));
  const answers = await Promise.all(parts.map((p) => post('/v1/models/digits/predict', { rows: p })));
  const calls = (await metric('graft_predict_calls_total', 'digits')) - calls0;
  assert.ok(calls >= 1 && calls < n, `${calls} predict calls for ${n} requests`);
  for (let i = 0; i < n; i++) {
    assert.equal(answers[i]!.status, 200);
    const direct = await digits.predict({ rows: parts[i]! });
    assert.equal(answers[i]!.body.predictions.length, parts[i]!.length);
    answers[i]!.body.predictions.forEach((p: any, j: number) => {
      assert.equal(p.label, (direct.predictions[j] as any).label);
      for (const l of digits.labels) assert.ok(Math.abs(p.probabilities[l] - (direct.predictions[j] as any).probabilities[l]) < 1e-5);
    });
  }
  const text = await (await fetch(`${server.url}/metrics`, { headers: auth })).text();
  assert.match(text, /graft_batch_size_bucket\{le="64",model="digits"\}/);
  assert.match(text, /graft_http_requests_total\{route="\/v1\/models\/:name\/predict",status="200"\}/);
  assert.match(text, /graft_http_request_duration_seconds_bucket/);
});

test('every bad request gets a 4xx with {code, message}, and the server keeps serving', async () => {
  const json = { ...auth, 'content-type': 'application/json' };
  const cases: [string, Promise<{ status: number; body: any }>, number, string][] = [
    ['wrong content type', post('/v1/models/digits/predict', 'rows=1', { ...auth, 'content-type': 'text/plain' }), 415, 'E_UNSUPPORTED_MEDIA_TYPE'],
    ['oversized body', post('/v1/models/digits/predict', JSON.stringify({ rows: [{ pad: 'x'.repeat(2 * 1024 * 1024) }] }), json), 413, 'E_BODY_TOO_LARGE'],
    ['100000x100000 PNG header', post('/v1/models/mnist/predict', { images: [Buffer.from(pngHeader(100_000, 100_000)).toString('base64')] }), 413, 'E_IMAGE_TOO_LARGE'],
    ['corrupt image', post('/v1/models/mnist/predict', { images: [readFileSync(pngs[0]!).subarray(0, 60).toString('base64')] }), 400, 'E_IMAGE_CORRUPT'],
    ['not base64', post('/v1/models/mnist/predict', { images: ['%%%'] }), 400, 'E_IMAGE_CORRUPT'],
    ['wrong columns', post('/v1/models/digits/predict', { rows: [{ nope: 1 }] }), 400, 'E_CSV_COLUMNS'],
    ['texts for a CSV model', post('/v1/models/digits/predict', { texts: ['hello'] }), 400, 'E_BAD_REQUEST'],
    ['malformed JSON', post('/v1/models/digits/predict', '{"rows": [', json), 400, 'E_BAD_REQUEST'],
    ['missing token', post('/v1/models/digits/predict', { rows: rows.slice(0, 1) }, { 'content-type': 'application/json' }), 401, 'E_UNAUTHORIZED'],
    ['wrong token', post('/v1/models/digits/predict', { rows: rows.slice(0, 1) }, { authorization: 'Bearer sesamf', 'content-type': 'application/json' }), 401, 'E_UNAUTHORIZED'],
    ['unknown model', post('/v1/models/nope/predict', { rows: rows.slice(0, 1) }), 404, 'E_MODEL_NOT_FOUND'],
    ['multipart files over the body limit together', post('/v1/models/mnist/predict', (() => { const f = new FormData(); for (let i = 0; i < 2; i++) f.append('image', new Blob([new Uint8Array(600 * 1024)]), `${i}.png`); return f; })(), auth), 413, 'E_BODY_TOO_LARGE'],
    ['multipart for a CSV model', post('/v1/models/digits/predict', (() => { const f = new FormData(); f.append('x', new Blob([new Uint8Array(3)]), 'x'); return f; })(), auth), 415, 'E_UNSUPPORTED_MEDIA_TYPE'],
  ];
  for (const [what, p, status, code] of cases) {
    const r = await p;
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, code, what);
    assert.equal(typeof r.body.message, 'string', what);
  }
  // A corrupt image batched with good ones fails alone.
  const good = readFileSync(pngs[1]!).toString('base64');
  const mixed = await Promise.all([
    post('/v1/models/mnist/predict', { images: [good] }),
    post('/v1/models/mnist/predict', { images: [Buffer.from(pngHeader(100_000, 100_000)).toString('base64')] }),
    post('/v1/models/mnist/predict', { images: [good, good] }),
  ]);
  assert.deepEqual(mixed.map((r) => r.status), [200, 413, 200]);
  const ok = await post('/v1/models/digits/predict', { rows: rows.slice(0, 2) });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.predictions.length, 2);
});

test('graft serve --help, and SIGTERM during load answers every accepted request, then exits 0', async () => {
  const help = spawn(process.execPath, [BIN, 'serve', '--help']);
  let helpOut = '';
  help.stdout.on('data', (d) => { helpOut += d; });
  assert.equal(await new Promise((res) => help.on('close', res)), 0);
  assert.match(helpOut, /--max-wait-ms/);

  const child = spawn(process.execPath, [BIN, 'serve', `d=${csvModel}`, '--port', '0', '--max-wait-ms', '1000', '--threads', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const url = await new Promise<string>((res, rej) => {
    let out = '';
    child.stdout.on('data', (d) => { out += d; const m = /listening on (\S+)/.exec(out); if (m) res(m[1]!); });
    child.on('exit', (c) => rej(new Error(`graft serve exited ${c}: ${stderr}`)));
  });
  const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  const send = () => fetch(`${url}/v1/models/d/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ rows: rows.slice(0, 2) }) })
    .then(async (r) => ({ status: r.status, body: await r.json() as any }));
  // 30 requests wait in the batch queue (1 s) when SIGTERM arrives.
  const inflight = Array.from({ length: 30 }, send);
  await new Promise((r) => setTimeout(r, 400));
  child.kill('SIGTERM');
  const answers = await Promise.all(inflight);
  assert.deepEqual(answers.map((a) => a.status), answers.map(() => 200), stderr);
  for (const a of answers) assert.equal(a.body.predictions.length, 2);
  assert.equal(await exited, 0, stderr);
  assert.match(stderr, /SIGTERM: finishing in-flight requests/);
  // After shutdown nothing listens.
  await assert.rejects(fetch(`${url}/healthz`));
});
