/**
 * Default text fine-tuning (`graft train texts.csv --backbone use-lite --mode finetune`, LP-FT) against
 * the default text probe (`graft train texts.csv`: use-lite, convex probe), same train/test texts.
 * Usage: GRAFT_WEKA_DIR=... node --import tsx bench/finetune_text_default.ts [--sets spam,reuters-corn,reuters-grain]
 *   [--seeds 1] [--threads 2] [--out bench/results/finetune_text_default.md]
 */
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareSets } from './datasets.ts';
import { evalText, trainText } from '../src/probe/text.ts';
import { fineTuneText } from '../src/finetune/text.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const sets = arg('sets', 'spam,reuters-corn,reuters-grain').split(',');
const seeds = Number(arg('seeds', '1'));
const threads = Number(arg('threads', '2'));
const out = arg('out', '');
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

const rows = ['| set | held out | seed | train | test | default probe (use-lite) | s | fine-tune (LP-FT, use-lite) | s | kept | epochs | lr |', '|---|---|---|---|---|---|---|---|---|---|---|---|'];
console.log(rows[0]);
for (const name of sets) {
  for (let seed = 0; seed < seeds; seed++) {
    const root = mkdtempSync(join(tmpdir(), `graft-ftt-${name}-`));
    const [s] = await prepareSets(root, [name], { seed });
    let t = performance.now();
    await trainText({ data: s!.train, out: join(root, 'probe'), seed, threads });
    const pa = (await evalText(join(root, 'probe'), s!.test)).accuracy;
    const ps = (performance.now() - t) / 1000;
    t = performance.now();
    const r = await fineTuneText({ data: s!.train, out: join(root, 'ft'), backbone: 'use-lite', mode: 'finetune', seed, threads });
    const fa = (await evalText(join(root, 'ft'), s!.test)).accuracy;
    const fs = (performance.now() - t) / 1000;
    const st = r.stages.at(-1)!;
    const row = `| ${name} | ${s!.tuned ? 'no' : 'yes'} | ${seed} | ${s!.nTrain} | ${s!.nTest} | ${pct(pa)} | ${ps.toFixed(0)} | ${pct(fa)} | ${fs.toFixed(0)} | ${r.kept} | ${st.epochsRun}/${st.epochs} | ${st.lr.at(-1)!.toExponential(1)} |`;
    rows.push(row);
    console.log(row);
  }
}
if (out) appendFileSync(out, `\n## ${new Date().toISOString().slice(0, 10)}: \`node --import tsx bench/finetune_text_default.ts --sets ${sets.join(',')} --seeds ${seeds} --threads ${threads}\`\n\n${rows.join('\n')}\n`);
