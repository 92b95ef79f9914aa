/**
 * Text transfer with word vectors against the classic baseline, side by side on the same split of
 * real emails (SpamAssassin): graft's GloVe probe (linear) and MLP over pooled vectors, against TF-IDF +
 * logistic regression in scikit-learn (bench/sklearn_tfidf.py, Debian python3-sklearn).
 * Usage: npx tsx bench/text_probe.ts [perClassTrain=800] [perClassTest=400] [threads=1]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSpamSplit } from '../src/data/spam.ts';
import { evalText, trainText } from '../src/probe/text.ts';
import { loadWordVectors } from '../src/backbones/wordvec.ts';

const [perTrain = 800, perTest = 400, threads = 1] = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), 'graft-textbench-'));
const { train, test } = writeSpamSplit(dir, perTrain, perTest, 0);
console.log(`SpamAssassin emails: ${2 * perTrain} train, ${2 * perTest} test (bodies cut to 2,000 chars); threads ${threads}`);
let t = performance.now();
const wv = loadWordVectors('glove-100d');
console.log(`glove-100d: ${wv.size} words x ${wv.dim}, loaded in ${((performance.now() - t) / 1000).toFixed(1)} s (${wv.loadedFrom})`);
for (const head of ['linear', 'mlp'] as const) {
  t = performance.now();
  const r = await trainText({ data: train, out: join(dir, head), head, threads, seed: 0, val: 0.2 });
  const fit = (performance.now() - t) / 1000;
  t = performance.now();
  const e = await evalText(join(dir, head), test);
  const pred = (performance.now() - t) / 1000;
  console.log(`graft glove-100d ${r.cut} pooling + ${head} head: accuracy ${e.accuracy.toFixed(4)}, macro-F1 ${e.macroF1.toFixed(4)}, train ${fit.toFixed(1)} s (pooling, CV choice of pooling, head), eval ${pred.toFixed(1)} s`);
}
const py = spawnSync('/usr/bin/python3', [new URL('./sklearn_tfidf.py', import.meta.url).pathname, train, test], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) } });
process.stdout.write(py.stdout || py.stderr);
