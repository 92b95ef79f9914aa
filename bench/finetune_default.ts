/**
 * Default fine-tuning (`graft train --mode finetune`, no other option) against the default convex probe
 * (`graft train`), same train/test images, several seeds, on real image sets (bench/datasets.ts).
 * The seed changes the split (tuxpaint, gcompris) and every random choice of training.
 * Usage: node --import tsx bench/finetune_default.ts [--sets tuxpaint,gcompris,fashion10,mnist10] [--seeds 3]
 *   [--threads 2] [--out bench/results/finetune_default.md]
 */
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareSets } from './datasets.ts';
import { evalImages, trainImages } from '../src/probe/images.ts';
import { fineTuneImages } from '../src/finetune/images.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const sets = arg('sets', 'tuxpaint,gcompris,fashion10,mnist10').split(',');
const seeds = Number(arg('seeds', '3'));
const threads = Number(arg('threads', '2'));
const out = arg('out', '');
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const stats = (a: number[]) => { const m = a.reduce((s, v) => s + v, 0) / a.length; return { m, sd: Math.sqrt(a.reduce((s, v) => s + (v - m) ** 2, 0) / a.length) }; };

const rows: string[] = ['| set | held out | seed | train | test | convex probe | s | fine-tune (LP-FT) | s | kept | epochs | lr |', '|---|---|---|---|---|---|---|---|---|---|---|---|'];
console.log(rows[0]);
// Rows are appended as they finish, so a run stopped part way still leaves its measurements.
if (out) appendFileSync(out, `\n## ${new Date().toISOString().slice(0, 10)}: \`node --import tsx bench/finetune_default.ts --sets ${sets.join(',')} --seeds ${seeds} --threads ${threads}\`\n\n${rows.join('\n')}\n`);
const summary: string[] = [];
for (const name of sets) {
  const probe: number[] = [];
  const ft: number[] = [];
  for (let seed = 0; seed < seeds; seed++) {
    const root = mkdtempSync(join(tmpdir(), `graft-ft-${name}-`));
    const [s] = await prepareSets(root, [name], { seed });
    let t = performance.now();
    await trainImages({ data: s!.train, out: join(root, 'probe'), seed, threads });
    const pa = (await evalImages(join(root, 'probe'), s!.test)).accuracy;
    const ps = (performance.now() - t) / 1000;
    t = performance.now();
    const r = await fineTuneImages({ data: s!.train, out: join(root, 'ft'), seed, threads });
    const fa = (await evalImages(join(root, 'ft'), s!.test)).accuracy;
    const fs = (performance.now() - t) / 1000;
    probe.push(pa);
    ft.push(fa);
    const ftStage = r.stages.at(-1)!;
    const row = `| ${name} | ${s!.tuned ? 'no' : 'yes'} | ${seed} | ${s!.nTrain} | ${s!.nTest} | ${pct(pa)} | ${ps.toFixed(0)} | ${pct(fa)} | ${fs.toFixed(0)} | ${r.kept} | ${ftStage.epochsRun}/${ftStage.epochs} | ${ftStage.lr.at(-1)!.toExponential(1)} |`;
    rows.push(row);
    console.log(row);
    if (out) appendFileSync(out, `${row}\n`);
  }
  const a = stats(probe);
  const b = stats(ft);
  const line = `${name}: probe ${pct(a.m)} +- ${pct(a.sd)}, fine-tune ${pct(b.m)} +- ${pct(b.sd)}, difference ${((b.m - a.m) * 100).toFixed(1)} points (min over seeds ${(Math.min(...ft.map((v, i) => v - probe[i]!)) * 100).toFixed(1)})`;
  summary.push(line);
  console.log(line);
}
if (out) appendFileSync(out, `\n${summary.map((l) => `- ${l}`).join('\n')}\n`);
