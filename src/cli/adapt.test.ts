// graft adapt as a user runs it: sklearn's digits as the labelled source CSV, MNIST made 8x8 as the target CSV
// (with its labels, which adapt must use only to report), then graft eval on the written model folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDigits } from '../data/digits.ts';
import { mnistAsDigits } from '../data/mnist.ts';
import { cliRunner, expectError } from './testkit.ts';
import { CHROMIUM, canvases, chromium } from '../report/testkit.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-adapt-cli-'));
const graft = cliRunner(join(dir, 'cache'));
const header = [...Array(64).keys()].map((i) => `p${i}`).join(',');
const csv = (path: string, x: ArrayLike<number>, y: ArrayLike<number> | null, n: number) => {
  const rows = Array.from({ length: n }, (_, i) => [...Array.from({ length: 64 }, (_, j) => x[i * 64 + j]), ...(y ? [y[i]] : [])].join(','));
  writeFileSync(path, `${header}${y ? ',label' : ''}\n${rows.join('\n')}\n`);
  return path;
};
const dg = loadDigits();
const source = csv(join(dir, 'digits.csv'), dg.rows.flat(), dg.y, dg.y.length);
const m = mnistAsDigits(100, 3000);
const target = csv(join(dir, 'mnist.csv'), m.x, m.y, m.y.length);
const unlabelled = csv(join(dir, 'mnist-unlabelled.csv'), m.x, null, m.y.length);

test('graft adapt: digits -> MNIST, the shift in words, self-training beats source-only by 8+ points, and graft eval agrees with the model it wrote', () => {
  const out = join(dir, 'model');
  const r = graft('adapt', source, '--target', target, '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = r.json();
  assert.equal(j.method, 'self-train');
  assert.match(j.shift.words, /far apart/);
  assert.match(r.stderr, /used only to report target accuracy/);
  assert.ok(j.targetAccuracy >= j.sourceOnlyTargetAccuracy + 0.08, `adapted ${j.targetAccuracy} vs source-only ${j.sourceOnlyTargetAccuracy}`);
  const e = graft('eval', out, target, '--json');
  assert.equal(e.code, 0, e.stderr);
  assert.ok(Math.abs(e.json().accuracy - j.targetAccuracy) < 1e-9, `eval ${e.json().accuracy} vs adapt ${j.targetAccuracy}`);
  const card = JSON.parse(readFileSync(join(out, 'graft.json'), 'utf8'));
  assert.equal(card.training.adapt.method, 'self-train');
  assert.equal(card.training.adapt.nTarget, 1000);
  // The report shows the shift as a picture: both domains on their first two principal axes.
  const page = join(dir, 'report.html');
  const rep = graft('report', out, '--out', page);
  assert.equal(rep.code, 0, rep.stderr);
  const html = readFileSync(page, 'utf8');
  assert.match(html, /data-section="shift"/);
  assert.match(html, /The domains are far apart/);
  const specs = JSON.parse(html.match(/<script type="application\/json" id="graft-charts">([\s\S]*?)<\/script>/)![1]!) as { id: string; series: { name: string; points: unknown[] }[] }[];
  const shift = specs.find((c) => c.id === 'chart-shift')!;
  assert.deepEqual(shift.series.map((q) => q.points.length), [300, 300]);
  assert.equal(card.training.adapt.shift.projection.explained.length, 2);
  if (CHROMIUM) {
    // Drawn in the browser from the file alone: the shift picture paints.
    const c = canvases(chromium(`file://${page}`, ['--dump-dom'])).find((q) => q['id'] === 'chart-shift')!;
    assert.equal(c['data-rendered'], '1');
    assert.ok(Number(c['data-ink']) > 2000, `chart-shift painted only ${c['data-ink']} pixels`);
  }
  // An unlabelled target works too; the text output says what was done.
  const u = graft('adapt', source, '--target', unlabelled, '--out', join(dir, 'model2'));
  assert.equal(u.code, 0, u.stderr);
  assert.match(u.stdout, /shift: the domains are far apart/);
  assert.match(u.stdout, /adapted with self-train \(\d+ pseudo-labelled target rows\)/);
  assert.doesNotMatch(u.stdout, /target accuracy/);
});

test('graft adapt --method dann: the adversarial network saved as an MLP model folder, and graft eval agrees with it', () => {
  const out = join(dir, 'model-dann');
  const r = graft('adapt', source, '--target', target, '--method', 'dann', '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = r.json();
  assert.equal(j.method, 'dann');
  assert.match(r.stderr, /domain classifier accuracy/);
  const e = graft('eval', out, target, '--json');
  assert.equal(e.code, 0, e.stderr);
  assert.ok(Math.abs(e.json().accuracy - j.targetAccuracy) < 1e-9, `eval ${e.json().accuracy} vs adapt ${j.targetAccuracy}`);
  const card = JSON.parse(readFileSync(join(out, 'graft.json'), 'utf8'));
  assert.equal(card.head.kind, 'mlp');
  assert.equal(card.training.adapt.method, 'dann');
});

test('graft adapt: bad input is a typed error with a hint', () => {
  const narrow = join(dir, 'narrow.csv');
  writeFileSync(narrow, 'a,b\n1,2\n3,4\n');
  expectError(graft('adapt', source, '--target', narrow), 'E_CSV_COLUMNS');
  const other = join(dir, 'other-classes.csv');
  writeFileSync(other, readFileSync(target, 'utf8').replace(/,0\n/g, ',zero\n'));
  expectError(graft('adapt', source, '--target', other), 'E_UNKNOWN_LABEL');
  const tiny = join(dir, 'tiny.csv');
  writeFileSync(tiny, readFileSync(unlabelled, 'utf8').split('\n').slice(0, 4).join('\n') + '\n');
  expectError(graft('adapt', source, '--target', tiny), 'E_TARGET_TOO_SMALL');
  expectError(graft('adapt', source, '--target', unlabelled, '--method', 'mmd'), 'E_BAD_OPTION');
  expectError(graft('adapt', source), 'E_USAGE');
});
