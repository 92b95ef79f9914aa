/**
 * The CSV MLP head with its defaults (`graft train data.csv --backbone none --head mlp`) against
 * scikit-learn's MLPClassifier with its defaults, on the same seeded 70/30 splits of sklearn's digits.
 * Usage: node --import tsx bench/mlp_csv.ts [--seeds 5] [--out FILE]
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDigitsSplit } from '../src/data/digits.ts';
import { evalCsv, trainCsv } from '../src/tabular/csv.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const seeds = Number(arg('seeds', '5'));
const out = arg('out', '');
const rows = ['| split seed | graft --head mlp | s | graft --head linear | s | sklearn MLPClassifier() | s | sklearn LogisticRegressionCV | s |', '|---|---|---|---|---|---|---|---|---|'];
console.log(rows[0]);
const acc: number[][] = [[], [], [], []];
for (let seed = 0; seed < seeds; seed++) {
  const dir = mkdtempSync(join(tmpdir(), 'graft-mlp-csv-'));
  const { train, test } = writeDigitsSplit(dir, 0.3, seed);
  const figs: string[] = [];
  for (const head of ['mlp', 'linear'] as const) {
    const t = performance.now();
    await trainCsv({ train, out: join(dir, head), head, threads: 2 });
    const a = (await evalCsv(join(dir, head), test)).accuracy;
    acc[head === 'mlp' ? 0 : 1]!.push(a);
    figs.push(`${(100 * a).toFixed(2)}%`, ((performance.now() - t) / 1000).toFixed(1));
  }
  const py = execFileSync('/usr/bin/python3', [new URL('./sklearn_csv.py', import.meta.url).pathname, train, test], { encoding: 'utf8' });
  for (const [i, name] of [[2, 'MLPClassifier'], [3, 'LogisticRegressionCV']] as const) {
    const m = py.split('\n').find((l) => l.includes(name))!.match(/accuracy ([\d.]+), fit ([\d.]+) s/)!;
    acc[i]!.push(Number(m[1]));
    figs.push(`${(100 * Number(m[1])).toFixed(2)}%`, Number(m[2]).toFixed(1));
  }
  const row = `| ${seed} | ${figs.join(' | ')} |`;
  rows.push(row);
  console.log(row);
}
const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / a.length;
const last = `| mean | ${acc.map((a) => `${(100 * mean(a)).toFixed(2)}%`).join(' | | ')} | |`;
rows.push(last);
console.log(last);
if (out) appendFileSync(out, `\n## ${new Date().toISOString().slice(0, 10)}: \`node --import tsx bench/mlp_csv.ts --seeds ${seeds}\`\n\n${rows.join('\n')}\n`);
