// The compiled package as a user gets it: `npm pack` (prepack builds dist/), the tarball installed into an
// empty project, a TypeScript consumer compiled with tsc --strict against the shipped types and run, and
// `npx graft` from that install. Dependencies come from the npm registry, preferring npm's cache.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDigitsSplit } from './data/digits.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const FIXTURE = join(ROOT, 'fixtures', 'package-consumer');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const dir = mkdtempSync(join(tmpdir(), 'graft-pack-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const run = (cmd: string, args: string[], cwd: string) => execFileSync(cmd, args, {
  cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20,
  env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', ONNXRUNTIME_NODE_INSTALL_CUDA: 'skip', npm_config_audit: 'false', npm_config_fund: 'false' },
});

test('the packed tarball installs into an empty project, its types compile a strict consumer, and it runs without tsx', async () => {
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', dir], ROOT)) as { filename: string; files: { path: string }[] }[];
  const files = packed[0]!.files.map((f) => f.path);
  assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts') && files.includes('dist/engine.d.ts') && files.includes('bin/graft.mjs'), files.join('\n'));
  const stray = files.filter((f) => !/^(dist\/|bin\/|README\.md$|package\.json$|LICENSE)/.test(f) || /\.test\.|testkit/.test(f));
  assert.deepEqual(stray, [], 'only the build, the bin and the README ship');

  const app = join(dir, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, packed[0]!.filename), '@types/node@20'], app);
  const pkg = join(app, 'node_modules', 'graft');
  assert.ok(!existsSync(join(pkg, 'src')), 'no TypeScript sources in the install');
  assert.ok(!existsSync(join(app, 'node_modules', 'tsx')), 'tsx is a dev dependency only');

  for (const f of readdirSync(FIXTURE)) copyFileSync(join(FIXTURE, f), join(app, f));
  // The consumer holds two @ts-expect-error lines (a misspelt option, a wrong value): tsc fails if either compiles.
  run(process.execPath, [TSC, '-p', app], app);
  const digits = writeDigitsSplit(join(dir, 'digits'), 0.25, 0);
  const out = JSON.parse(run(process.execPath, [join(app, 'consumer.js'), digits.train, digits.test, join(dir, 'model')], app).trim().split('\n').at(-1)!);
  assert.deepEqual(out.labels, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  assert.ok(out.accuracy > 0.9 && out.n === 451, JSON.stringify(out));
  assert.equal(out.predicted, true);
  assert.equal(out.missingModel, 'E_MODEL_MISSING');
  assert.ok(out.backbones >= 5 && out.graftError && out.builder === 'function', JSON.stringify(out));

  const help = run('npx', ['--no-install', 'graft', '--help'], app);
  assert.match(help, /graft: transfer learning for TypeScript/);
  const bb = run('npx', ['--no-install', 'graft', 'backbones'], app);
  assert.match(bb, /mobilenet_v2/);
});
