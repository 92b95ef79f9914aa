/**
 * How well each transferability score ranks backbone x cut pairs: for every candidate cut of every image
 * backbone, the score on the training images against the test accuracy a convex probe (fitted on the
 * training images, C by cross-validation) actually reaches, summarised by the weighted Kendall tau
 * (scipy's weightedtau semantics). The published bar (tllib, LogME paper): mean weighted tau about 0.67
 * for LogME over 8 data sets (H-score 0.67, NCE 0.50, LEEP 0.29).
 * Usage: node --import tsx bench/rank_tau.ts [--sets tuxpaint,gcompris,fashion10,mnist10] [--backbones a,b] [--threads 2] [--out FILE]
 */
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareSets } from './datasets.ts';
import { loadImageBackbone } from '../src/backbones/image.ts';
import { REGISTRY } from '../src/backbones/registry.ts';
import { readImageFolder } from '../src/data/folders.ts';
import { embedImages } from '../src/features/embed.ts';
import { convexLogits, fitConvexProbe } from '../src/probe/convex.ts';
import { candidateCuts, sourceHead } from '../src/rank/rank.ts';
import { transferScores, weightedTau } from '../src/rank/scores.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const sets = arg('sets', 'tuxpaint,gcompris,fashion10,mnist10').split(',');
const backbones = arg('backbones', REGISTRY.filter((r) => r.modality === 'image').map((r) => r.id).join(',')).split(',');
const threads = Number(arg('threads', '2'));
const out = arg('out', '');
const SCORES = ['logme', 'hScore', 'knn', 'nce', 'leep', 'cv'] as const;

const lines: string[] = [`| set | held out | candidates | test images | ${SCORES.map((s) => `tau ${s}`).join(' | ')} | oracle ceiling | best by test accuracy | top by LogME | top by CV |`, `|${'---|'.repeat(8 + SCORES.length)}`];
console.log(lines[0]);
const oracles: number[] = [];
const taus = new Map<string, number[]>(SCORES.map((s) => [s, []]));
for (const name of sets) {
  const root = mkdtempSync(join(tmpdir(), `graft-tau-${name}-`));
  const [s] = await prepareSets(root, [name]);
  const tr = readImageFolder(s!.train, { valFraction: 0 });
  const te = readImageFolder(s!.test, { valFraction: 0 });
  const k = tr.classes.length;
  const rows: { id: string; acc: number; correct: Uint8Array; scores: Partial<Record<string, number>> }[] = [];
  for (const id of backbones) {
    const bb = await loadImageBackbone(id);
    const cuts = candidateCuts(bb);
    // NCE and LEEP need the backbone's source classifier (the CenterNet MobileNetV3 has none).
    const src = sourceHead(bb);
    const a = await embedImages(bb, tr.train.paths, src ? [...cuts, src] : cuts, { threads });
    const b = await embedImages(bb, te.train.paths, cuts, { threads });
    const ya = Int32Array.from(a.kept, (i) => tr.train.y[i]!);
    const yb = Int32Array.from(b.kept, (i) => te.train.y[i]!);
    for (const c of cuts) {
      const d = a.dims.get(c.name)!;
      const sc = await transferScores(a.features.get(c.name)!, ya, d, k, { ...(src ? { sourceProbs: a.features.get(src.name)!, kSource: src.shape[0]! } : {}), threads });
      const fit = await fitConvexProbe(a.features.get(c.name)!, ya, d, k, { threads });
      const z = convexLogits(fit, b.features.get(c.name)!, d);
      const correct = new Uint8Array(yb.length);
      for (let i = 0; i < yb.length; i++) { let best = 0; for (let q = 1; q < k; q++) if (z[i * k + q]! > z[i * k + best]!) best = q; correct[i] = best === yb[i] ? 1 : 0; }
      rows.push({ id: `${id}/${c.name}`, acc: correct.reduce((a, v) => a + v, 0) / yb.length, correct, scores: { logme: sc.logme, hScore: sc.hScore, knn: sc.knn, ...(sc.nce !== undefined ? { nce: sc.nce } : {}), ...(sc.leep !== undefined ? { leep: sc.leep } : {}), cv: fit.cvAccuracy ?? 0 } });
    }
  }
  const acc = rows.map((r) => r.acc);
  // A score a backbone cannot give (NCE, LEEP without a source head) is ranked over the candidates that have it.
  const t = SCORES.map((s) => { const has = rows.filter((r) => r.scores[s] !== undefined); return weightedTau(has.map((r) => r.scores[s]!), has.map((r) => r.acc)); });
  t.forEach((v, i) => taus.get(SCORES[i]!)!.push(v));
  // The oracle ceiling: the tau that a perfect score (each candidate's true accuracy) can expect against a test
  // set of this size, estimated by the bootstrap (tau between the measured accuracies and those on resampled
  // test sets, mean over 200 resamples). No score can be expected to beat it on this set.
  const nTest = rows[0]!.correct.length;
  let oracle = 0;
  let state = 12345;
  const rand = () => { state = (Math.imul(state, 1664525) + 1013904223) >>> 0; return state / 2 ** 32; };
  for (let b = 0; b < 200; b++) {
    const pick = Int32Array.from({ length: nTest }, () => Math.floor(rand() * nTest));
    oracle += weightedTau(rows.map((r) => pick.reduce((a, i) => a + r.correct[i]!, 0) / nTest + 1e-9 * r.acc), acc) / 200;
  }
  oracles.push(oracle);
  const top = (key: (r: (typeof rows)[number]) => number) => { const r = [...rows].sort((p, q) => key(q) - key(p))[0]!; return `${r.id} (${(100 * r.acc).toFixed(1)}%)`; };
  const line = `| ${name} | ${s!.tuned ? 'no' : 'yes'} | ${rows.length} | ${nTest} | ${t.map((v) => v.toFixed(3)).join(' | ')} | ${oracle.toFixed(3)} | ${top((r) => r.acc)} | ${top((r) => r.scores['logme']!)} | ${top((r) => r.scores['cv']!)} |`;
  lines.push(line);
  console.log(line);
}
const mean = SCORES.map((s) => { const a = taus.get(s)!; return a.reduce((p, q) => p + q, 0) / a.length; });
const last = `| mean | | | | ${mean.map((v) => v.toFixed(3)).join(' | ')} | ${(oracles.reduce((a, b) => a + b, 0) / oracles.length).toFixed(3)} | | | |`;
lines.push(last);
console.log(last);
if (out) appendFileSync(out, `\n## ${new Date().toISOString().slice(0, 10)}: \`node --import tsx bench/rank_tau.ts --sets ${sets.join(',')} --backbones ${backbones.join(',')}\`\n\nWeighted Kendall tau between each score (on the training images) and the test accuracy of the convex probe, over every backbone x candidate cut. "cv" is the probe's own k-fold accuracy on the training images. "oracle ceiling": the mean tau of the measured test accuracies against bootstrap resamples of the test set, what a perfect score can expect against a test set of this size.\n\n${lines.join('\n')}\n`);
