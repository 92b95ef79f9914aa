import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import sharp from 'sharp';
import { trainCsv } from '../tabular/csv.ts';
import { main } from '../cli/main.ts';
import { writeDigitsSplit } from '../data/digits.ts';
import { writeMnistFolder } from '../data/mnist.ts';
import { readCard, type ModelCard } from '../model/folder.ts';
import { trainImages } from '../probe/images.ts';
import { chartLibrary } from './html.ts';
import { CHROMIUM, NO_CHROMIUM, canvases, chromium } from './testkit.ts';
import { type EvalResult, reportCommand, renderReport, summarise, writeComparisonReport, writeReport } from './report.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-report-'));

/** Checks an HTML report loads nothing: no external src/href/url(), and URLs only in the inlined library's comments. */
function assertSelfContained(html: string): void {
  assert.doesNotMatch(html, /<(script|img|link|iframe|audio|video|source)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?\/\//i);
  assert.doesNotMatch(html, /url\(\s*["']?(https?:)?\/\//i);
  assert.doesNotMatch(html, /@import/i);
  assert.doesNotMatch(html, /<link\b/i);
  assert.ok(!/\bsrc\s*=\s*["'](?!data:)/i.test(html), 'every src is a data: URI');
  const lib = chartLibrary().code;
  assert.doesNotMatch(html.replace(lib, ''), /https?:\/\//, 'no http(s):// outside the inlined Chart.js');
}

// GRAFT_REPORT_KEEP=1 keeps the pages and the screenshot (their folder is printed as a diagnostic).
after(() => { if (!process.env['GRAFT_REPORT_KEEP']) rmSync(dir, { recursive: true, force: true }); });

let digits: { train: string; test: string };
let csvModel: string;

before(async () => {
  digits = writeDigitsSplit(dir);
  csvModel = join(dir, 'digits-model');
  // The validated model itself (no refit on all rows), so the report's held-out split is really held out.
  await trainCsv({ train: digits.train, out: csvModel, head: 'mlp', epochs: 6, lr: 3e-3, threads: 1, refit: false });
  // What `graft lr-find` will record (a later issue): the sweep and its suggestion.
  const card = JSON.parse(readFileSync(join(csvModel, 'graft.json'), 'utf8'));
  const lrs = Array.from({ length: 60 }, (_, i) => 1e-6 * 10 ** (i / 10));
  card.lrFind = { lrs, losses: lrs.map((lr) => 2.3 - 1.6 / (1 + (1e-3 / lr) ** 1.5) + (lr > 0.05 ? 40 * (lr - 0.05) : 0)), suggestion: 3e-4 };
  writeFileSync(join(csvModel, 'graft.json'), JSON.stringify(card, null, 2));
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (b) => (stdout += b));
  err.on('data', (b) => (stderr += b));
  const code = await main(args, out, err);
  return { code, stdout, stderr };
}

function fakeCard(): ModelCard {
  return {
    format: 'graft-model', formatVersion: 1, graftVersion: '0.1.0', createdAt: '2025-01-01T00:00:00.000Z', task: 'classification',
    labels: ['<b>cat</b>', 'dog'], input: { name: 'input', kind: 'features', columns: ['x', 'y'], shape: [2] },
    outputs: { probabilities: 'probabilities', logits: 'logits' }, backbone: null, head: { kind: 'linear' }, training: { epochs: 3, lr: 0.01, seed: 0 },
    metrics: { trainAccuracy: 0.9, valAccuracy: 0.8, nTrain: 8, nVal: 4 },
    history: [1, 2, 3].map((e) => ({ epoch: e - 1, trainLoss: 1 / e, valLoss: 1.2 / e, valAccuracy: 0.5 + e / 10, lr: [0.01], seconds: 0.1 })),
    files: {}, provenance: {},
    diagnosis: { verdict: 'good-fit', summary: 'A good fit <script>alert(1)</script>', evidence: ['e1'], advice: ['a1'] },
  };
}

test('summarise: confusion matrix, per-class scores and the most confidently wrong examples, worst first', () => {
  const y = Int32Array.from([0, 0, 1, 1]);
  const probs = Float32Array.from([0.9, 0.1, 0.3, 0.7, 0.2, 0.8, 0.95, 0.05]);
  const s = summarise(['a', 'b'], y, probs, 5);
  assert.deepEqual(s.confusion, [[1, 1], [1, 1]]);
  assert.equal(s.accuracy, 0.5);
  assert.deepEqual(s.wrong.map((w) => [w.index, w.truth, w.predicted]), [[3, 'b', 'a'], [1, 'a', 'b']]);
  assert.ok(Math.abs(s.wrong[0]!.confidence - 0.95) < 1e-6 && Math.abs(s.wrong[0]!.truthProbability - 0.05) < 1e-6);
  assert.equal(summarise(['a', 'b'], y, probs, 1).wrong.length, 1);
});

test('renderReport: every section, escaped labels and text, Chart.js inlined, nothing loaded from the network', () => {
  const card = fakeCard();
  (card as unknown as Record<string, unknown>)['lrFind'] = { lrs: [1e-4, 1e-3, 1e-2, 1e-1], losses: [1, 0.8, 0.5, 3], suggestion: 1e-3 };
  const ev: EvalResult = {
    data: 'x.csv', origin: 'option', description: 'all 4 rows of x.csv', skipped: 0, labels: card.labels,
    ...(() => { const { wrong, ...s } = summarise(card.labels, Int32Array.from([0, 0, 1, 1]), Float32Array.from([0.9, 0.1, 0.3, 0.7, 0.2, 0.8, 0.95, 0.05]), 5); return { ...s, worst: wrong.map((w) => ({ ...w, line: w.index + 2, values: [['x', 1.5], ['y', 2]] as [string, number][] })) }; })(),
  };
  const out = writeReport(card, ev, join(dir, 'fake.html'), { modelDir: 'some/model' });
  const html = readFileSync(out, 'utf8');
  assert.match(html, /^<!DOCTYPE html>/);
  for (const s of ['diagnosis', 'curves', 'lr-find', 'evaluation']) assert.match(html, new RegExp(`data-section="${s}"`));
  for (const id of ['chart-loss', 'chart-accuracy', 'chart-lrfind']) assert.match(html, new RegExp(`<canvas id="${id}"`));
  assert.match(html, /data-heatmap="confusion"/);
  assert.match(html, /data-table="per-class"/);
  assert.match(html, /data-table="worst"/);
  assert.match(html, /&lt;b&gt;cat&lt;\/b&gt;/);
  assert.doesNotMatch(html, /<b>cat<\/b>|<script>alert/);
  assert.match(html, /x=1\.5, y=2/);
  assert.match(html, /Chart\.js v4/);
  assert.match(html, /Suggested learning rate: <b>0\.00100<\/b>/);
  assertSelfContained(html);
  // Without evaluation data the report says why.
  const none = renderReport({ ...card, history: [] }, null, { noEvalReason: 'no data here' });
  assert.match(none, /data-eval="none"[^>]*>No evaluation: no data here/);
  assert.match(none, /records no per-epoch history/);
});

test('graft report on a digits model: recorded data (held-out split), --data, and the page renders in headless Chromium', async (t) => {
  const card = readCard(csvModel);
  // Without --data: the training file from graft.json, only the rows training held out.
  const a = await cli('report', csvModel, '--json');
  assert.equal(a.code, 0, a.stderr);
  const ra = JSON.parse(a.stdout.trim().split('\n').at(-1)!);
  assert.equal(ra.out, join(csvModel, 'report.html'));
  assert.equal(ra.data, digits.train);
  assert.match(ra.description, /validation rows .*held out with seed 0, as in training/);
  assert.equal(ra.n, card.metrics['nVal']);
  assert.ok(Math.abs(ra.accuracy - (card.metrics['valAccuracy'] as number)) <= 1 / ra.n + 1e-9, `${ra.accuracy} vs ${card.metrics['valAccuracy']}`);
  assert.match(readFileSync(ra.out, 'utf8'), /the training data recorded in graft\.json/);

  // With --data: the test file, all its rows.
  const page = join(dir, 'digits-report.html');
  const b = await cli('report', csvModel, '--data', digits.test, '--out', page);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /wrote .*digits-report\.html \(evaluated on all 451 rows of .*test\.csv: accuracy 0\.\d+/);
  const html = readFileSync(page, 'utf8');
  assertSelfContained(html);
  assert.match(html, /given with --data/);
  const acc = Number(/accuracy (0\.\d+)/.exec(b.stdout)![1]);
  assert.equal([...html.matchAll(/<tr data-example=/g)].length, Math.min(12, Math.round((1 - acc) * 451)), 'the worst 12, or every wrong row');
  assert.match(html, /p0=0, p1=/);
  assert.match(html, /data-verdict="/);

  const missing = await cli('report', csvModel, '--data', join(dir, 'nope.csv'));
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /E_FILE_MISSING/);

  if (!CHROMIUM) { t.skip(NO_CHROMIUM); return; }
  const url = `file://${page}`;
  const dom = chromium(url, ['--dump-dom']);
  assert.match(dom, /<html[^>]*data-charts-rendered="3"/);
  const cs = canvases(dom);
  assert.deepEqual(cs.map((c) => c['id']), ['chart-loss', 'chart-accuracy', 'chart-lrfind']);
  for (const c of cs) {
    assert.equal(c['data-rendered'], '1', `${c['id']} not drawn`);
    assert.ok(Number(c['data-ink']) > 2000, `${c['id']} painted only ${c['data-ink']} pixels`);
  }
  assert.equal([...dom.matchAll(/<tr><th title="true /g)].length, 10, 'a 10 x 10 heatmap');

  const png = join(dir, 'digits-report.png');
  chromium(url, [`--screenshot=${png}`]);
  const img = sharp(png);
  const meta = await img.metadata();
  assert.deepEqual([meta.width, meta.height], [1200, 2000]);
  const { data, info } = await img.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let ink = 0;
  let orange = 0; // the validation-loss line (#ff7f0e): only in the loss chart
  let green = 0; // the validation-accuracy line (#2ca02c): only in the accuracy chart
  const near = (i: number, r: number, g: number, b: number) => Math.abs(data[i]! - r) + Math.abs(data[i + 1]! - g) + Math.abs(data[i + 2]! - b) < 60;
  for (let i = 0; i < data.length; i += info.channels) {
    if (data[i]! < 235 || data[i + 1]! < 235 || data[i + 2]! < 235) ink++;
    if (near(i, 255, 127, 14)) orange++;
    if (near(i, 44, 160, 44)) green++;
  }
  const px = info.width * info.height;
  assert.ok(ink > px * 0.03, `the page is nearly blank: ${ink} of ${px} pixels not white`);
  assert.ok(orange > 200, `no validation-loss line in the screenshot (${orange} orange pixels)`);
  assert.ok(green > 200, `no validation-accuracy line in the screenshot (${green} green pixels)`);
  t.diagnostic(`screenshot ${png}`);
});

test('graft report on a convex probe: the penalty search drawn, and no held-out claim for a model refitted on every row', async () => {
  const model = join(dir, 'digits-convex');
  await trainCsv({ train: digits.train, out: model, head: 'linear', threads: 1 });
  const card = readCard(model);
  assert.equal(card.training['solver'], 'lbfgs');
  const r = await cli('report', model, '--json');
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.match(res.description, /^all \d+ rows of /, 'the validation rows are training data after the refit');
  const html = readFileSync(res.out, 'utf8');
  assert.match(html, /refitted on every labelled example after its validation split was scored/);
  assert.match(html, /id="chart-penalty"/);
  assert.match(html, /Cross-validated accuracy against the L2 penalty/);
  assert.match(html, /convex probe \(logistic, L-BFGS\), C [\d.e+-]+ by 5-fold CV/);
});

test('graft report on an image model: the test/ folder, thumbnails of the confidently wrong images as data: URIs', async (t) => {
  const data = join(dir, 'digits-img');
  await writeMnistFolder(join(data, 'train'), [3, 5, 8], 10, 0);
  await writeMnistFolder(join(data, 'test'), [3, 5, 8], 6, 600);
  const model = join(dir, 'img-model');
  await trainImages({ data, out: model, cut: 'block_2_add', epochs: 4, threads: 1, cacheRoot: join(dir, 'cache') });
  const r = await reportCommand({ dir: model, out: join(dir, 'img-report.html') });
  assert.equal(r.data, data);
  assert.equal(r.n, 18);
  assert.match(r.description!, /the 18 files in .*test\//);
  const html = readFileSync(r.out, 'utf8');
  assertSelfContained(html);
  const thumbs = [...html.matchAll(/<img src="data:image\/jpeg;base64,([A-Za-z0-9+/=]+)"/g)];
  const wrong = Math.round((1 - r.accuracy!) * r.n);
  assert.equal(thumbs.length, Math.min(12, wrong));
  if (thumbs.length) {
    const m = await sharp(Buffer.from(thumbs[0]![1]!, 'base64')).metadata();
    assert.equal(m.format, 'jpeg');
    assert.ok(m.width! <= 112 && m.height! <= 112);
  }
  if (!CHROMIUM) { t.skip(NO_CHROMIUM); return; }
  const dom = chromium(`file://${r.out}`, ['--dump-dom']);
  // A convex probe: one chart, its penalty search.
  assert.match(dom, /data-charts-rendered="1"/);
  assert.deepEqual(canvases(dom).map((c) => c['id']), ['chart-penalty']);
  assert.ok(canvases(dom).every((c) => c['data-rendered'] === '1' && Number(c['data-ink']) > 2000));
});

test('writeComparisonReport: a results table, label-budget curves and per-method learning curves', async (t) => {
  const rows = [1, 5, 20, 100].map((k, i) => ({ labelsPerClass: k, scratchCnn: 0.3 + 0.15 * i, transferCnn: 0.6 + 0.1 * i, pixelProbe: 0.35 + 0.12 * i, mobilenetProbe: 0.55 + 0.1 * i }));
  const curves = { scratchCnn: [0.2, 0.4, 0.5, 0.55], transferCnn: [0.6, 0.7, 0.72, 0.73] };
  const out = writeComparisonReport(join(dir, 'compare.html'), { title: 'Transfer vs scratch', notes: ['MNIST digits 5-9.'], table: rows, curves });
  const html = readFileSync(out, 'utf8');
  assertSelfContained(html);
  assert.match(html, /<th>labels per class<\/th><th>scratch cnn<\/th>/);
  assert.match(html, /<td>100<\/td><td>75\.0%<\/td>/);
  assert.match(html, /<canvas id="chart-budget"/);
  assert.match(html, /<canvas id="chart-curves"/);
  if (!CHROMIUM) { t.skip(NO_CHROMIUM); return; }
  const dom = chromium(`file://${out}`, ['--dump-dom']);
  assert.match(dom, /data-charts-rendered="2"/);
  for (const c of canvases(dom)) assert.ok(c['data-rendered'] === '1' && Number(c['data-ink']) > 2000, JSON.stringify(c));
});
