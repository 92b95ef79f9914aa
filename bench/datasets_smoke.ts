/**
 * Prepares every probe-benchmark set (bench/datasets.ts) into a temporary folder and prints each one's
 * counts. Usage: node --import tsx bench/datasets_smoke.ts [--sets a,b] [--seed 0] [--keep]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isGraftError } from '../src/errors.ts';
import { SET_NAMES, prepareSets } from './datasets.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const names = arg('sets', SET_NAMES.join(',')).split(',');
const seed = Number(arg('seed', '0'));
const root = mkdtempSync(join(tmpdir(), 'graft-sets-'));
let failed = 0;
for (const name of names) {
  const t0 = performance.now();
  try {
    const [d] = await prepareSets(root, [name], { seed });
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`${d!.name.padEnd(10)} ${d!.kind.padEnd(5)} ${d!.tuned ? 'tuned   ' : 'held-out'} train ${String(d!.nTrain).padStart(4)}  test ${String(d!.nTest).padStart(4)}  ${d!.classes.length} classes [${d!.classes.join(', ')}]  (${s} s)`);
  } catch (e) {
    failed++;
    console.log(`${name.padEnd(10)} FAILED: ${isGraftError(e) ? `${e.code} ${e.message} (${e.hint})` : String(e)}`);
  }
}
if (process.argv.includes('--keep')) console.log(`sets kept in ${root}`);
else rmSync(root, { recursive: true, force: true });
process.exitCode = failed ? 1 : 0;
