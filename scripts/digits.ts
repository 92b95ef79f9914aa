/**
 * Writes sklearn's digits as a stratified, seeded train/test split: DIR/train.csv and DIR/test.csv,
 * each with the header p0,...,p63,label.
 *   npx tsx scripts/digits.ts --out DIR [--test 0.25] [--seed 0] [--data digits.csv.gz]
 */
import { parseArgs } from 'node:util';
import { GraftError, isGraftError } from '../src/errors.ts';
import { DIGITS_PATH, writeDigitsSplit } from '../src/data/digits.ts';

const usage = 'Usage: npx tsx scripts/digits.ts --out DIR [--test 0.25] [--seed 0]';

function main(): number {
  try {
    let values;
    try {
      ({ values } = parseArgs({ options: { out: { type: 'string' }, test: { type: 'string', default: '0.25' }, seed: { type: 'string', default: '0' }, data: { type: 'string', default: DIGITS_PATH } } }));
    } catch (e) {
      throw new GraftError('E_USAGE', (e as Error).message, usage);
    }
    if (!values.out) throw new GraftError('E_USAGE', 'expected --out DIR, the folder to write train.csv and test.csv into', usage);
    const test = Number(values.test);
    const seed = Number(values.seed);
    if (!Number.isInteger(seed)) throw new GraftError('E_BAD_OPTION', `--seed must be an integer, got "${values.seed}"`, usage);
    // stratifiedSplit rejects a --test fraction outside (0, 1) with E_BAD_OPTION
    const paths = writeDigitsSplit(values.out, test, seed, values.data);
    console.log(`wrote ${paths.train} and ${paths.test}`);
    return 0;
  } catch (e) {
    if (!isGraftError(e)) throw e;
    console.error(`error [${e.code}]: ${e.message}`);
    console.error(`hint: ${e.hint}`);
    return 2;
  }
}

process.exitCode = main();
