/**
 * ONNX's backend test suite (Debian's libonnx-testdata) against graft: round trip through graft's IR on ORT (a),
 * graft's shape and type inference (b), gradients against finite differences (c); see backend.ts. The cases that
 * pass each check are a committed ratchet (fixtures/onnx-backend/expected.json): a case that passed and no longer
 * does fails CI; new passes are reported, to be recorded with GRAFT_UPDATE_BACKEND=1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type CaseResult, type Check, CHECKS, compareTensors, listBackendCases, passing, quietOrt, runBackendCase, summarize,
} from './backend.ts';
import { isGraftError } from '../errors.ts';
import { f32, i64 } from '../graph/tensor.ts';

const FIXTURE = 'fixtures/onnx-backend/expected.json';
const UPDATE = 'GRAFT_UPDATE_BACKEND=1 node scripts/test.mjs src/runtime/backend.test.ts';
const NAMES: Record<Check, string> = { a: 'round trip on ORT', b: 'shape/type inference', c: 'gradients' };

test('compareTensors: allclose for floats (NaN equals NaN), exact for ints, dtype and shape first', () => {
  assert.equal(compareTensors(f32([3], [1, NaN, Infinity]), f32([3], [1 + 5e-4, NaN, Infinity])), null);
  assert.match(compareTensors(f32([1], [1.01]), f32([1], [1]))!, /element 0/);
  assert.match(compareTensors(f32([1], [NaN]), f32([1], [0]))!, /element 0/);
  assert.equal(compareTensors(f32([1], [1e-5]), f32([1], [0])), null); // atol 1e-5
  assert.match(compareTensors(i64([2], [1, 2]), i64([2], [1, 3]))!, /element 1/);
  assert.match(compareTensors(f32([2], [1, 2]), f32([1, 2], [1, 2]))!, /float32\[2\], reference float32\[1,2\]/);
});

test('ONNX backend test cases: no case that passed a check stops passing it', async (t) => {
  let cases: string[];
  try {
    cases = listBackendCases();
  } catch (e) {
    if (isGraftError(e)) assert.fail(`${e.message}. ${e.hint}`);
    throw e;
  }
  quietOrt();
  const t0 = performance.now();
  const results: CaseResult[] = [];
  for (const c of cases) results.push(await runBackendCase(c));
  const s = summarize(results);
  t.diagnostic(`${s.total} cases, ${s.supported} supported (${((performance.now() - t0) / 1000).toFixed(1)} s); passing: ` +
    CHECKS.map((k) => `(${k}) ${NAMES[k]} ${s.pass[k]}/${s.applicable[k]}`).join(', '));
  t.diagnostic(`not supported: ${s.blockedBy.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  for (const k of CHECKS) if (s.skipped[k].length) t.diagnostic(`(${k}) not applicable: ${s.skipped[k].map(([why, n]) => `${why} (${n})`).join('; ')}`);
  t.diagnostic(`top missing ops (cases blocked): ${s.missingOps.slice(0, 20).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  for (const r of results) {
    for (const k of CHECKS) {
      const o = r[k];
      if (o?.status === 'fail') t.diagnostic(`(${k}) fails ${r.name}: ${o.reason}`);
    }
  }

  const now = passing(results);
  if (process.env['GRAFT_UPDATE_BACKEND'] === '1') {
    mkdirSync(dirname(FIXTURE), { recursive: true });
    const note = `Cases of ONNX's backend test data (Debian libonnx-testdata) that pass each check of src/runtime/backend.test.ts: ` +
      `(a) ${NAMES.a}, (b) ${NAMES.b}, (c) ${NAMES.c}. Written by: ${UPDATE}`;
    writeFileSync(FIXTURE, `${JSON.stringify({ note, ...now }, null, 1)}\n`);
    t.diagnostic(`wrote ${FIXTURE}`);
    return;
  }
  const expected = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Record<Check, string[]>;
  const byName = new Map(results.map((r) => [r.name, r]));
  const regressions: string[] = [];
  for (const k of CHECKS) {
    const pass = new Set(now[k]);
    for (const name of expected[k]) {
      if (pass.has(name)) continue;
      const r = byName.get(name);
      const o = r?.[k];
      const why = !r ? 'the case is not in the test data'
        : r.blocked.length ? `not supported: ${r.blocked.join(', ')}`
        : o?.status === 'fail' || o?.status === 'skip' ? `${o.status}: ${o.reason}` : 'not run';
      regressions.push(`(${k}) ${name}: ${why}`);
    }
    const fresh = now[k].filter((name) => !expected[k].includes(name));
    if (fresh.length) t.diagnostic(`(${k}) ${fresh.length} new passes (${fresh.slice(0, 10).join(', ')}${fresh.length > 10 ? ', ...' : ''}); record them: ${UPDATE}`);
  }
  assert.deepEqual(regressions, [], `ONNX backend cases that passed (${FIXTURE}) no longer do. Fix them; ` +
    `if a loss is intended, record it with ${UPDATE}`);
});
