// The CLI's option tables: per-command help generated from them, parsing by them, and "did you mean" hints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { main } from './main.ts';
import { COMMANDS } from './commands.ts';
import { apiOptions, didYouMean, editDistance, parseCommand } from './options.ts';

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (b) => (stdout += b));
  err.on('data', (b) => (stderr += b));
  const code = await main(args, out, err);
  return { code, stdout, stderr };
}

test('graft <command> --help for every command: usage lines and every option of its table, exit 0', async () => {
  assert.deepEqual(COMMANDS.map((c) => c.name), ['train', 'lr-find', 'eval', 'predict', 'rank', 'adapt', 'embed', 'report', 'serve', 'backbones', 'demo']);
  for (const spec of COMMANDS) {
    for (const args of [[spec.name, '--help'], [spec.name, '-h'], ['help', spec.name]]) {
      const r = await cli(...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, new RegExp(`^usage:\\n  graft ${spec.name}`));
      for (const o of spec.options) assert.match(r.stdout, new RegExp(`\\n  --${o.name}\\b`), `${spec.name} --help lists --${o.name}`);
    }
  }
  // --help wins over anything else on the line, even arguments that would not parse.
  assert.equal((await cli('train', 'x.csv', '--epochs', 'many', '--help')).code, 0);
  // The top-level help lists every command's usage lines.
  const top = await cli('--help');
  assert.equal(top.code, 0);
  for (const spec of COMMANDS) for (const s of spec.synopsis) assert.ok(top.stdout.includes(`  ${s}\n`), s);
});

test('an option outside the command\'s table is a usage error: a typo gets "did you mean", another command\'s option names that command', async () => {
  const typo = await cli('train', 'x.csv', '--epoch', '3');
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /error \[E_USAGE\]: graft train has no option --epoch\n/);
  assert.match(typo.stderr, /hint: did you mean --epochs\?/);
  assert.match((await cli('train', 'x.csv', '--lerning-rate', '3')).stderr, /hint: graft train --help lists its options/);
  assert.match((await cli('rank', 'photos/', '--backbone', 'x')).stderr, /hint: did you mean --backbones\?/);
  assert.match((await cli('eval', 'model', 'x.csv', '--backbones', 'a')).stderr, /error \[E_USAGE\]: graft eval has no option --backbones[\s\S]*--backbones is an option of graft rank/);
  assert.match((await cli('embed', 'photos/', '--out', 'f', '--epochs=3')).stderr, /graft embed has no option --epochs/);
  assert.match((await cli('trian', 'x.csv')).stderr, /error \[E_USAGE\]: unknown command "trian"\nhint: did you mean graft train\?/);
  const num = await cli('train', 'x.csv', '--epochs', 'many');
  assert.match(num.stderr, /error \[E_USAGE\]: --epochs expects an integer, got "many"/);
  assert.match((await cli('train', 'x.csv', '--hidden', '256,x')).stderr, /--hidden expects an integer, got "x"/);
});

test('the table converts values and maps them to API options', () => {
  const train = COMMANDS.find((c) => c.name === 'train')!;
  const { values, positionals } = parseCommand(train, ['d.csv', '--epochs', '3', '--lr', '1e-3', '--hidden', '64,32', '--no-cache', '--no-augment', '--augment', '--class-weight', 'balanced', '--json'], COMMANDS);
  assert.deepEqual(positionals, ['d.csv']);
  assert.deepEqual(apiOptions(train, values), { epochs: 3, lr: 1e-3, hidden: [64, 32], cache: false, augment: true, classWeight: 'balanced' });
  const lr = COMMANDS.find((c) => c.name === 'lr-find')!;
  assert.deepEqual(apiOptions(lr, parseCommand(lr, ['p/', '--out', 'x.html', '--no-probe-fallback'], COMMANDS).values), { report: 'x.html', probeFallback: false });
  const rank = COMMANDS.find((c) => c.name === 'rank')!;
  assert.deepEqual(parseCommand(rank, ['p/', '--backbones', 'a, b,', '--all'], COMMANDS).values, { backbones: ['a', 'b'], all: true });
});

test('edit distance and the nearest name', () => {
  assert.equal(editDistance('epoch', 'epochs'), 1);
  assert.equal(editDistance('epcohs', 'epochs'), 1); // a swap of neighbours
  assert.equal(editDistance('kitten', 'sitting'), 3);
  const names = COMMANDS.find((c) => c.name === 'train')!.options.map((o) => o.name);
  assert.equal(didYouMean('epoch', names), 'epochs');
  assert.equal(didYouMean('bacbone', names), 'backbone');
  assert.equal(didYouMean('lr-mul', names), 'lr-mult');
  assert.equal(didYouMean('freeze-epoch', names), 'freeze-epochs');
  assert.equal(didYouMean('pair-col', names), 'pair-column'); // the start of one name
  assert.equal(didYouMean('colour', names), null);
});
