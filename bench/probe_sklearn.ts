/**
 * The default convex probe against scikit-learn on the same features, side by side in one run.
 * For each real set (bench/datasets.ts) the features are written once as safetensors (images: the
 * default backbone at its default cut, as `graft embed` writes them; spam: GloVe mean-pooled; digits:
 * the 64 pixel columns), then graft's fitConvexProbe and the shared peer
 * (../shared/peers/sklearn_probe_cv.py: LogisticRegression(C=1) and LogisticRegressionCV, standardised)
 * fit the same train rows and score the same test rows. Fit seconds are wall time of the fit alone.
 * Usage: node --import tsx bench/probe_sklearn.ts [--sets a,b] [--threads 2] [--out bench/results/probe_sklearn.md]
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareSets, SET_NAMES, type SetDescriptor } from './datasets.ts';
import { embedCommand } from '../src/probe/embed.ts';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.ts';
import { loadWordVectors, meanPool } from '../src/backbones/wordvec.ts';
import { readTextTable } from '../src/data/text.ts';
import { readNumericCsv, encodeLabels } from '../src/data/csv.ts';
import { fitConvexProbe, convexLogits } from '../src/probe/convex.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const sets = arg('sets', SET_NAMES.join(',')).split(',');
const threads = Number(arg('threads', '2'));
const out = arg('out', '');
const peer = new URL('../../shared/peers/sklearn_probe_cv.py', import.meta.url).pathname;

async function features(s: SetDescriptor, dir: string): Promise<[string, string, string]> {
  const tr = join(dir, `${s.name}-train.safetensors`);
  const te = join(dir, `${s.name}-test.safetensors`);
  if (s.kind === 'image') {
    const a = await embedCommand({ data: s.train, out: tr });
    await embedCommand({ data: s.test, out: te });
    return [tr, te, `mobilenet_v2 features (${a.dim}-d)`];
  }
  const write = (path: string, x: Float32Array, d: number, y: Int32Array) => writeSafetensors(path, { features: { shape: [y.length, d], data: x }, labels: { shape: [y.length], data: y } });
  if (s.kind === 'text') {
    const wv = loadWordVectors('glove-100d');
    for (const [src, dst] of [[s.train, tr], [s.test, te]] as const) {
      const t = readTextTable(src);
      write(dst, meanPool(wv, t.texts).vectors, wv.dim, encodeLabels(t.labels!, s.classes).y);
    }
    return [tr, te, `glove-100d mean (${wv.dim}-d)`];
  }
  let d = 0;
  for (const [src, dst] of [[s.train, tr], [s.test, te]] as const) {
    const t = readNumericCsv(src);
    d = t.d;
    write(dst, t.x, t.d, encodeLabels(t.labels!, s.classes).y);
  }
  return [tr, te, `raw columns (${d}-d)`];
}

function load(path: string): { x: Float32Array; y: Int32Array; d: number } {
  const { arrays } = readSafetensors(path);
  const f = arrays['features']!;
  return { x: f.data as Float32Array, y: arrays['labels']!.data as Int32Array, d: f.shape[1]! };
}

const root = mkdtempSync(join(tmpdir(), 'graft-probe-sklearn-'));
const descs = await prepareSets(root, sets);
const rows: string[] = [];
const header = '| set | held out | train | test | features | graft convex probe | fit s | sklearn LogisticRegressionCV | fit s | sklearn LogisticRegression(C=1) | fit s | graft C (CV acc +- sd) |';
rows.push(header, '|' + header.split('|').slice(1, -1).map(() => '---').join('|') + '|');
console.log(header);
for (const s of descs) {
  const [tr, te, what] = await features(s, root);
  const a = load(tr);
  const b = load(te);
  const k = s.classes.length;
  const t0 = performance.now();
  const fit = await fitConvexProbe(a.x, a.y, a.d, k, { threads });
  const fitS = (performance.now() - t0) / 1000;
  const z = convexLogits(fit, b.x, b.d);
  let correct = 0;
  for (let i = 0; i < b.y.length; i++) { let best = 0; for (let c = 1; c < k; c++) if (z[i * k + c]! > z[i * k + best]!) best = c; if (best === b.y[i]) correct++; }
  const acc = correct / b.y.length;
  const py = execFileSync('/usr/bin/python3', [peer, tr, te], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) } });
  const peerFig = (name: string) => { const m = py.split('\n').find((l) => l.includes(name))!.match(/accuracy ([\d.]+), fit ([\d.]+) s/)!; return [Number(m[1]), Number(m[2])] as const; };
  const [cvAcc, cvS] = peerFig('LogisticRegressionCV');
  const [c1Acc, c1S] = peerFig('LogisticRegression(C=1)');
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const row = `| ${s.name} | ${s.tuned ? 'no' : 'yes'} | ${s.nTrain} | ${s.nTest} | ${what} | ${pct(acc)} | ${fitS.toFixed(2)} | ${pct(cvAcc)} | ${cvS.toFixed(2)} | ${pct(c1Acc)} | ${c1S.toFixed(2)} | ${fit.C.toPrecision(2)} (${pct(fit.cvAccuracy ?? NaN)} +- ${pct(fit.cvStd ?? NaN)}) |`;
  rows.push(row);
  console.log(row);
}
if (out) appendFileSync(out, `\n## ${new Date().toISOString().slice(0, 10)}: \`node --import tsx bench/probe_sklearn.ts --threads ${threads}\`\n\n${rows.join('\n')}\n`);
