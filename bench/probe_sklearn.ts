/**
 * The default convex probe against scikit-learn on the same features, side by side in one run.
 * For each real set (bench/datasets.ts) the features are written once as safetensors (images: the
 * default backbone at its default cut, as `graft embed` writes them; spam: GloVe mean-pooled; digits:
 * the 64 pixel columns), then graft's fitConvexProbe and the shared peer
 * (../shared/peers/sklearn_probe_cv.py: LogisticRegression(C=1) and LogisticRegressionCV, standardised)
 * fit the same train rows and score the same test rows. Fit seconds are wall time of the fit alone.
 * With --draws N each set is drawn N times (fashion/mnist: disjoint training images; the others: resplit
 * by seed), and a summary per set gives the mean of each probe and the paired difference, because on
 * 10 images per class a single draw's gap is mostly which C a 20-image fold happened to favour.
 * Usage: node --import tsx bench/probe_sklearn.ts [--sets a,b] [--draws 1] [--threads 2] [--out bench/results/probe_sklearn.md]
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
const draws = Number(arg('draws', '1'));
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
const rows: string[] = [];
const header = '| set | held out | draw | train | test | features | graft convex probe | fit s | sklearn LogisticRegressionCV | fit s | sklearn LogisticRegression(C=1) | fit s | graft C (CV acc +- sd) |';
rows.push(header, '|' + header.split('|').slice(1, -1).map(() => '---').join('|') + '|');
console.log(header);
const summary: string[] = [];
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
const sd = (a: number[]) => { const m = mean(a); return Math.sqrt(a.reduce((x, y) => x + (y - m) ** 2, 0) / Math.max(1, a.length - 1)); };
for (const name of sets) {
  const per: { graft: number[]; cv: number[]; c1: number[]; gS: number[]; cvS: number[] } = { graft: [], cv: [], c1: [], gS: [], cvS: [] };
  let held = '';
  for (let draw = 0; draw < draws; draw++) {
    const [s] = await prepareSets(join(root, `draw${draw}`), [name], { seed: draw, draw });
    held = s!.tuned ? 'no' : 'yes';
    const [tr, te, what] = await features(s!, join(root, `draw${draw}`));
    const a = load(tr);
    const b = load(te);
    const k = s!.classes.length;
    const t0 = performance.now();
    const fit = await fitConvexProbe(a.x, a.y, a.d, k, { threads });
    const fitS = (performance.now() - t0) / 1000;
    const z = convexLogits(fit, b.x, b.d);
    let correct = 0;
    for (let i = 0; i < b.y.length; i++) { let best = 0; for (let c = 1; c < k; c++) if (z[i * k + c]! > z[i * k + best]!) best = c; if (best === b.y[i]) correct++; }
    const acc = correct / b.y.length;
    const py = execFileSync('/usr/bin/python3', [peer, tr, te], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) } });
    const peerFig = (label: string) => { const m = py.split('\n').find((l) => l.includes(label))!.match(/accuracy ([\d.]+), fit ([\d.]+) s/)!; return [Number(m[1]), Number(m[2])] as const; };
    const [cvAcc, cvS] = peerFig('LogisticRegressionCV');
    const [c1Acc, c1S] = peerFig('LogisticRegression(C=1)');
    per.graft.push(acc); per.cv.push(cvAcc); per.c1.push(c1Acc); per.gS.push(fitS); per.cvS.push(cvS);
    const row = `| ${name} | ${held} | ${draw} | ${s!.nTrain} | ${s!.nTest} | ${what} | ${pct(acc)} | ${fitS.toFixed(2)} | ${pct(cvAcc)} | ${cvS.toFixed(2)} | ${pct(c1Acc)} | ${c1S.toFixed(2)} | ${fit.C.toPrecision(2)} (${pct(fit.cvAccuracy ?? NaN)} +- ${pct(fit.cvStd ?? NaN)}) |`;
    rows.push(row);
    console.log(row);
  }
  if (draws > 1) {
    const diff = per.graft.map((g, i) => g - per.cv[i]!);
    const line = `- ${name} (held out: ${held}), ${draws} draws: graft ${pct(mean(per.graft))} +- ${pct(sd(per.graft))}, LogisticRegressionCV ${pct(mean(per.cv))} +- ${pct(sd(per.cv))}, LogisticRegression(C=1) ${pct(mean(per.c1))}; ` +
      `graft - LRCV ${(100 * mean(diff)).toFixed(2)} points (se ${(100 * sd(diff) / Math.sqrt(draws)).toFixed(2)}, sd ${(100 * sd(diff)).toFixed(2)}, worst draw ${(100 * Math.min(...diff)).toFixed(1)}); fit s ${mean(per.gS).toFixed(2)} vs ${mean(per.cvS).toFixed(2)}`;
    summary.push(line);
    console.log(line);
  }
}
if (out) appendFileSync(out, `\n## ${new Date().toISOString().slice(0, 10)}: \`node --import tsx bench/probe_sklearn.ts --threads ${threads}${draws > 1 ? ` --draws ${draws}` : ''}\`\n\n${rows.join('\n')}\n${summary.length ? `\n${summary.join('\n')}\n` : ''}`);
