// The layering rules (.dependency-cruiser.cjs), enforced by dependency-cruiser over src/: no layer imports
// one above it, cli/serve/web reach the rest only through the public API, no import cycles (type-only
// ones aside), no test code and no devDependency in the library, every import resolves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const CRUISE = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

const cruise = (...args: string[]) => spawnSync(process.execPath, [CRUISE, '--config', '.dependency-cruiser.cjs', '--output-type', 'json', ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });

test('dependency-cruiser: src/ keeps its layers', () => {
  const r = cruise('src');
  const out = JSON.parse(r.stdout) as { summary: { violations: { rule: { name: string }; from: string; to: string }[]; totalCruised: number } };
  const v = out.summary.violations.map((x) => `${x.rule.name}: ${x.from} -> ${x.to}`);
  assert.deepEqual(v, [], v.join('\n'));
  assert.ok(out.summary.totalCruised > 150, `only ${out.summary.totalCruised} modules cruised`);
});

test('dependency-cruiser: an upward import, an app past the public API and a cycle are caught', () => {
  // A throwaway tree that breaks the rules, cruised with the same config.
  const dir = mkdtempSync(join(tmpdir(), 'graft-layers-'));
  try {
    const put = (path: string, text: string) => { mkdirSync(dirname(join(dir, path)), { recursive: true }); writeFileSync(join(dir, path), text); };
    copyFileSync(join(ROOT, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
    put('tsconfig.json', JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', allowImportingTsExtensions: true, noEmit: true } }));
    put('package.json', JSON.stringify({ name: 'x', type: 'module' }));
    put('src/graph/ir.ts', "import { fit } from '../train/learner.ts';\nexport const ir = fit;\n");
    put('src/train/learner.ts', 'export const fit = 1;\n');
    put('src/cli/main.ts', "import { probe } from '../probe/fit.ts';\nexport const main = probe;\n");
    put('src/probe/fit.ts', "import { b } from './b.ts';\nexport const probe = b;\nexport const a = 1;\n");
    put('src/probe/b.ts', "import { a } from './fit.ts';\nexport const b = () => a;\n");
    const r = spawnSync(process.execPath, [CRUISE, '--config', '.dependency-cruiser.cjs', '--output-type', 'json', 'src'], { cwd: dir, encoding: 'utf8' });
    const out = JSON.parse(r.stdout) as { summary: { violations: { rule: { name: string }; from: string }[] } };
    const names = new Set(out.summary.violations.map((x) => x.rule.name));
    for (const rule of ['no-upward-from-graph', 'apps-use-the-public-api', 'no-circular']) assert.ok(names.has(rule), `${rule} not reported: ${[...names].join(', ')}`);
    // What `npm run lint:layers` runs (the text output) exits non-zero on them.
    const plain = spawnSync(process.execPath, [CRUISE, '--config', '.dependency-cruiser.cjs', 'src'], { cwd: dir, encoding: 'utf8' });
    assert.notEqual(plain.status, 0, `violations fail the run: ${plain.stdout}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
