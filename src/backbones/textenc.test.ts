// BERT-family ONNX text encoders against fixtures/textenc (scripts/gen_textenc_fixture.py): a tiny BERT exported
// by PyTorch, its WordPiece tokenizer.json, and token ids and pooled embeddings computed by PyTorch in float64.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { GraftError } from '../errors.ts';
import { embedTexts, isTextEncoder, loadTextEncoder, pooledGraph, POOLINGS, runTokens, TextTokenizer } from './textenc.ts';
import { Session } from '../runtime/session.ts';

const FIXTURE = new URL('../../fixtures/textenc/tiny-bert', import.meta.url).pathname;
interface Case { text: string; ids: number[]; cls: number[]; mean: number[] }
const REF = JSON.parse(readFileSync(new URL('../../fixtures/textenc/reference.json', import.meta.url), 'utf8')) as { vocabSize: number; hidden: number; maxLength: number; cases: Case[] };
const H = REF.hidden;
const tmp = mkdtempSync(join(tmpdir(), 'graft-textenc-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

async function rejects(p: Promise<unknown> | (() => unknown), code: string): Promise<GraftError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(e instanceof GraftError, `expected a GraftError, got ${(e as Error).stack}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.hint.length > 0);
    return e;
  }
  assert.fail(`expected ${code}`);
}

/** A copy of the fixture folder, changed by `edit`. */
function variant(name: string, edit: (dir: string) => void): string {
  const dir = join(tmp, name);
  cpSync(FIXTURE, dir, { recursive: true });
  edit(dir);
  return dir;
}

test('token ids from tokenizer.json (@huggingface/tokenizers) equal the reference tokenizer, empty text included', () => {
  const tok = TextTokenizer.fromFolder(FIXTURE, REF.maxLength);
  assert.equal(tok.vocabSize, REF.vocabSize);
  assert.equal(tok.specialCount, 2);
  assert.equal(tok.padId, 0);
  const t = tok.encode(REF.cases.map((c) => c.text));
  assert.equal(t.truncated, 0);
  REF.cases.forEach((c, i) => assert.deepEqual(Array.from(t.ids[i]!), c.ids, JSON.stringify(c.text)));
  assert.deepEqual(Array.from(t.ids[REF.cases.findIndex((c) => c.text === '')]!), [2, 3]); // [CLS] [SEP]
  assert.ok(t.typeIds.every((row) => row.every((v) => v === 0)));
});

test('CLS and mean pooling, built in the graph, match PyTorch to 1e-4', async () => {
  const enc = await loadTextEncoder(FIXTURE);
  assert.equal(enc.hidden, H);
  assert.equal(enc.vocabRows, REF.vocabSize);
  assert.equal(enc.tokenizer.maxLength, REF.maxLength);
  assert.deepEqual([enc.inputs.ids, enc.inputs.mask, enc.inputs.types], ['input_ids', 'attention_mask', 'token_type_ids']);
  const e = await embedTexts(enc, REF.cases.map((c) => c.text), POOLINGS, { cache: false, threads: 1 });
  let worst = 0;
  for (const p of POOLINGS) {
    const got = e.features.get(p)!;
    REF.cases.forEach((c, i) => {
      const d = maxDiff(got.subarray(i * H, (i + 1) * H), c[p]);
      worst = Math.max(worst, d);
      assert.ok(d < 1e-4, `${p} of ${JSON.stringify(c.text)}: max diff ${d}`);
    });
  }
  console.log(`pooled embeddings vs PyTorch float64: max diff ${worst.toExponential(2)}`);
});

test('batches padded to different lengths give each text the embedding it gets alone', async () => {
  const enc = await loadTextEncoder(FIXTURE);
  const texts = [...REF.cases.map((c) => c.text), 'short', 'a somewhat longer sentence about the free offer in your mailbox today'];
  const together = await embedTexts(enc, texts, POOLINGS, { cache: false, threads: 1, batch: texts.length });
  const pairs = await embedTexts(enc, texts, POOLINGS, { cache: false, threads: 1, batch: 2 });
  let worst = 0;
  for (const [i, text] of texts.entries()) {
    const alone = await embedTexts(enc, [text], POOLINGS, { cache: false, threads: 1 });
    for (const p of POOLINGS) {
      const a = alone.features.get(p)!;
      worst = Math.max(worst, maxDiff(together.features.get(p)!.subarray(i * H, (i + 1) * H), a), maxDiff(pairs.features.get(p)!.subarray(i * H, (i + 1) * H), a));
    }
  }
  assert.ok(worst < 1e-5, `padded vs alone: max diff ${worst}`);
  console.log(`padded batches vs one text at a time: max diff ${worst.toExponential(2)}`);
});

test('long texts are truncated to the limit with one warning that counts them; the mask is what the pooling reads', async () => {
  const enc = await loadTextEncoder(FIXTURE);
  const long = 'please click here to receive the free offer '.repeat(60);
  const huge = 'x'.repeat(3_000_000); // cut before tokenizing: no crash, no minutes spent
  const texts = [long, 'hello', huge, ''];
  const lines: string[] = [];
  const t0 = performance.now();
  const e = await embedTexts(enc, texts, POOLINGS, { cache: false, threads: 1, log: (s) => lines.push(s) });
  assert.ok(performance.now() - t0 < 20_000);
  assert.equal(e.truncated, 2);
  const warnings = lines.filter((l) => l.startsWith('warning:'));
  assert.equal(warnings.length, 1, lines.join('\n'));
  assert.match(warnings[0]!, /2 of 4 text\(s\) had more than 128 tokens and were truncated to 128/);
  for (const p of POOLINGS) assert.ok(e.features.get(p)!.every(Number.isFinite));

  const t = enc.tokenizer.encode(texts);
  assert.equal(t.ids[0]!.length, 128);
  assert.equal(t.ids[0]![0], 2);
  assert.equal(t.ids[0]![127], 3); // [SEP] stays at the end
  const head = enc.tokenizer.encode([long.slice(0, 100)]).ids[0]!; // the first words, then [SEP]
  assert.deepEqual(Array.from(t.ids[0]!.subarray(0, head.length - 1)), Array.from(head.subarray(0, -1)));
  assert.deepEqual(Array.from(t.ids[2]!), [2, 1, 3]); // one word longer than 100 characters is [UNK]

  // The empty text, padded in a batch with 128-token texts, pools as it does alone.
  const empty = REF.cases.find((c) => c.text === '')!;
  assert.ok(maxDiff(e.features.get('cls')!.subarray(3 * H, 4 * H), empty.cls) < 1e-4);
  assert.ok(maxDiff(e.features.get('mean')!.subarray(3 * H, 4 * H), empty.mean) < 1e-4);
});

test('a tokenizer with more tokens than the model has embedding rows is E_TOKENIZER; a broken tokenizer.json too', async () => {
  const dir = variant('big-vocab', (d) => {
    const j = JSON.parse(readFileSync(join(d, 'tokenizer.json'), 'utf8'));
    for (let i = 0; i < 50; i++) j.model.vocab[`extra${i}`] = REF.vocabSize + i;
    writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(j));
  });
  const e = await rejects(loadTextEncoder(dir), 'E_TOKENIZER');
  assert.match(e.message, /token ids up to 956, but the encoder's word embeddings have 907 rows/);
  assert.deepEqual(e.details, { tokenizerVocab: 957, modelRows: 907 });

  await rejects(loadTextEncoder(variant('bad-json', (d) => writeFileSync(join(d, 'tokenizer.json'), '{"model": '))), 'E_TOKENIZER');
  await rejects(loadTextEncoder(variant('bad-model', (d) => writeFileSync(join(d, 'tokenizer.json'), JSON.stringify({ model: { type: 'NoSuchModel' } })))), 'E_TOKENIZER');
  await rejects(loadTextEncoder(variant('no-tokenizer', (d) => rmSync(join(d, 'tokenizer.json')))), 'E_TOKENIZER');
});

test('an untrusted ONNX file is checked before ORT sees it; a model that is no text encoder is E_ENCODER', async () => {
  await rejects(loadTextEncoder(variant('garbage', (d) => writeFileSync(join(d, 'onnx', 'model.onnx'), Buffer.from('not an onnx model at all')))), 'E_ONNX_PARSE');
  const cnn = new URL('../../fixtures/torch/tiny_cnn.onnx', import.meta.url).pathname;
  const e = await rejects(loadTextEncoder(variant('cnn', (d) => cpSync(cnn, join(d, 'onnx', 'model.onnx')))), 'E_ENCODER');
  assert.match(e.message, /no input named input_ids \(its inputs: pixels\)/);
  // An .onnx file path finds the tokenizer one folder up (hub layout onnx/model.onnx).
  const enc = await loadTextEncoder(join(FIXTURE, 'onnx', 'model.onnx'));
  assert.equal(enc.tokenizer.vocabSize, REF.vocabSize);
  assert.ok(isTextEncoder(FIXTURE) && isTextEncoder(join(FIXTURE, 'onnx', 'model.onnx')) && isTextEncoder('acme/tiny-bert@main'));
  assert.ok(!isTextEncoder('glove-100d') && !isTextEncoder('vectors/glove.6B.100d.txt'));
});

test('features are cached per pooling under the encoder sha256 and the text content', async () => {
  const enc = await loadTextEncoder(FIXTURE);
  const cacheRoot = join(tmp, 'feature-cache');
  const texts = ['one text', 'another text', 'one text'];
  const a = await embedTexts(enc, texts, POOLINGS, { cacheRoot, threads: 1 });
  assert.equal(a.cacheHits, 0);
  assert.equal(a.computed, 2); // the repeated text is run once
  const b = await embedTexts(enc, [...texts, 'new'], POOLINGS, { cacheRoot, threads: 1 });
  assert.equal(b.cacheHits, 3);
  assert.equal(b.computed, 1);
  for (const p of POOLINGS) assert.equal(maxDiff(a.features.get(p)!, b.features.get(p)!.subarray(0, 3 * H)), 0);
});

test('the pooled graph runs in plain ORT with int64 token ids and a mask', async () => {
  const enc = await loadTextEncoder(FIXTURE);
  const { graph, inputs } = pooledGraph(enc, ['mean']);
  const s = await Session.create(graph, { threads: 1 });
  try {
    const c = REF.cases[0]!;
    const r = await runTokens(s, inputs, 0, { ids: [Int32Array.from(c.ids)], typeIds: [new Int32Array(c.ids.length)], truncated: 0, cut: new Uint8Array(1) }, [graph.outputs[0]!.name]);
    assert.ok(maxDiff(r.get(graph.outputs[0]!.name)!.x, c.mean) < 1e-4);
  } finally {
    await s.dispose();
  }
});

// ---- the hub layout over a loopback server ---------------------------------------------------------------------

function serveFixture(): Promise<{ endpoint: string; requests: string[]; close: () => Promise<void> }> {
  const files = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files.set(relative(FIXTURE, p), readFileSync(p));
    }
  };
  walk(FIXTURE);
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const m = /^\/acme\/tiny-bert\/resolve\/main\/(.+)$/.exec(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    const body = m ? files.get(decodeURIComponent(m[1]!)) : undefined;
    requests.push(req.url ?? '');
    if (!body) return res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
    res.writeHead(200, { 'content-length': body.length, 'x-repo-commit': 'a'.repeat(40) }).end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const port = (server.address() as { port: number }).port;
    resolve({ endpoint: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(() => r())) });
  }));
}

test('a hub id loads through the hub client (hub layout), then offline from the cache with GRAFT_OFFLINE=1', async () => {
  const srv = await serveFixture();
  const cacheDir = join(tmp, 'hub-cache');
  let local;
  try {
    local = await loadTextEncoder('acme/tiny-bert', { endpoint: srv.endpoint, cacheDir, progress: false });
    assert.ok(srv.requests.length >= 4, srv.requests.join('\n'));
    assert.ok(srv.requests.some((r) => r.endsWith('/onnx/model.onnx')) && srv.requests.some((r) => r.endsWith('/tokenizer.json')));
  } finally {
    await srv.close();
  }
  const direct = await loadTextEncoder(FIXTURE);
  assert.equal(local.sha256, direct.sha256);
  assert.deepEqual(local.hub, { repo: 'acme/tiny-bert', revision: 'main', commit: 'a'.repeat(40) });
  process.env['GRAFT_OFFLINE'] = '1';
  try {
    const off = await loadTextEncoder('acme/tiny-bert', { endpoint: srv.endpoint, cacheDir });
    assert.equal(off.sha256, direct.sha256);
    const e = await embedTexts(off, [REF.cases[1]!.text], ['cls'], { cache: false, threads: 1 });
    assert.ok(maxDiff(e.features.get('cls')!, REF.cases[1]!.cls) < 1e-4);
    await rejects(loadTextEncoder('acme/other-bert', { endpoint: srv.endpoint, cacheDir }), 'E_HUB_OFFLINE');
  } finally {
    delete process.env['GRAFT_OFFLINE'];
  }
});
