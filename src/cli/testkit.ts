/** Helpers for tests that run the graft CLI as a user would: a child process, exit code, stdout, stderr. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

export const BIN = new URL('../../bin/graft.mjs', import.meta.url).pathname;

export interface CliResult { code: number | null; stdout: string; stderr: string; json: () => any }

/** A `graft(...args)` runner with 2 threads and the given feature/backbone cache folder. */
export function cliRunner(cacheDir: string): (...args: string[]) => CliResult {
  return (...args) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, GRAFT_THREADS: '2', GRAFT_CACHE_DIR: cacheDir } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout.trim().split('\n').at(-1)!) };
  };
}

/** Exit code 2, `error [CODE]`, a hint, and no stack trace. */
export function expectError(r: CliResult, code: string): void {
  assert.equal(r.code, 2, `exit code for ${code}: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`error \\[${code}\\]`));
  assert.match(r.stderr, /hint: /);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}
