/** Helpers for tests that open graft's HTML reports in headless Chromium (Debian package "chromium"). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Headless Chromium (Debian package "chromium"); GRAFT_CHROMIUM names another binary (a missing one skips the browser checks). */
export const CHROMIUM = (process.env['GRAFT_CHROMIUM'] ? [process.env['GRAFT_CHROMIUM']] : ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'])
  .find((p) => existsSync(p)) ?? null;
export const NO_CHROMIUM = 'chromium is not installed: apt-get update && apt-get install -y chromium (or set GRAFT_CHROMIUM)';

export function chromium(url: string, mode: string[]): string {
  const profile = mkdtempSync(join(tmpdir(), 'graft-chromium-'));
  try {
    const r = spawnSync(CHROMIUM!, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--hide-scrollbars', `--user-data-dir=${profile}`,
      // Any network access fails: the page must render from the file alone.
      '--host-resolver-rules=MAP * ~NOTFOUND', '--window-size=1200,2000', ...mode, url,
    ], { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 << 20 });
    assert.equal(r.status, 0, `chromium failed: ${r.error ?? ''} ${r.stderr?.slice(-2000)}`);
    return r.stdout;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

/** The canvases of a DOM dump, with their attributes. */
export function canvases(dom: string): Record<string, string>[] {
  return [...dom.matchAll(/<canvas\b[^>]*>/g)].map((m) => Object.fromEntries([...m[0].matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!])));
}
