/**
 * A client for model repositories laid out as the Hugging Face Hub lays them out (`config.json`,
 * `preprocessor_config.json`, `onnx/model.onnx`, `onnx/model.onnx_data`, `tokenizer.json`, ...), served
 * at `${endpoint}/${repo}/resolve/${revision}/${path}`.
 *
 * - Cache: `${cacheDir}/${owner}/${name}/${revision}/${path}` (cacheDir: option, env GRAFT_CACHE_DIR, or
 *   ~/.cache/graft/hub). A file that is in the cache is served from it with no request at all.
 * - Pinning: `revision` is a commit hash, tag or branch (default 'main'). The commit the server resolved it
 *   to (its `X-Repo-Commit` header) is recorded in `${revision dir}/.graft-revision.json`; a 40-hex revision
 *   that the server resolves to another commit, or a branch that moved since files were cached under it,
 *   is an E_HUB_REVISION error rather than a silently mixed snapshot.
 * - Integrity: with `sha256`, the file is hashed before it enters the cache (and again when it is served
 *   from the cache); a mismatch is E_HUB_SHA256 and the bad bytes are deleted, never cached.
 * - Resume: bytes land in `<file>.partial` first. A broken transfer is retried with `Range: bytes=N-`
 *   (and `If-Range` once a strong ETag is known); a server that ignores Range (200) restarts from zero.
 *   A download that never completes leaves only the `.partial`, which the next call resumes from.
 * - Offline: option `offline` or env GRAFT_OFFLINE=1 serves only from the cache and otherwise fails at
 *   once with E_HUB_OFFLINE, without any network attempt.
 * - Failures: connection errors, timeouts (no byte for `timeoutMs`) and 5xx/429 are retried with backoff,
 *   then reported as E_HUB_NETWORK; 404 is E_HUB_NOT_FOUND; other statuses are E_HUB_HTTP.
 * - A `<file>.lock` (holding the pid) keeps two processes from writing the same `.partial`.
 */
import { createHash } from 'node:crypto';
import { createReadStream, closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { type ErrorCode, GraftError } from '../errors.ts';
import { writeFileAtomic } from '../io/atomic.ts';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
const USER_AGENT = 'graft/0.1.0';
const REVISION_FILE = '.graft-revision.json';

export interface HubProgress {
  repo: string;
  path: string;
  /** Bytes of the file on disk so far (resumed bytes included). */
  done: number;
  /** The file's size, when the server said. */
  total: number | null;
}

export interface HubOptions {
  /** Commit hash, tag or branch (default 'main'). */
  revision?: string | undefined;
  /** Server root (default: env GRAFT_HUB_ENDPOINT, else https://huggingface.co). */
  endpoint?: string | undefined;
  /** Cache root (default: env GRAFT_CACHE_DIR, else ~/.cache/graft/hub). */
  cacheDir?: string | undefined;
  /** Serve only from the cache (env GRAFT_OFFLINE=1 forces this too). */
  offline?: boolean | undefined;
  /** Called as bytes arrive. Without it, a progress line goes to stderr when stderr is a terminal. */
  onProgress?: ((p: HubProgress) => void) | undefined;
  /** false: no default stderr progress line. */
  progress?: boolean | undefined;
  /** Give up on an attempt when no response or no byte arrives for this long (default 30000 ms). */
  timeoutMs?: number | undefined;
  /** Retries after a network error, timeout, 5xx or 429 (default 4). */
  retries?: number | undefined;
  /** First retry delay; it doubles each retry (default 500 ms). */
  retryDelayMs?: number | undefined;
  /** How long to wait for another process that is downloading the same file (default 10 min). */
  lockTimeoutMs?: number | undefined;
}

export interface HubFileOptions extends HubOptions {
  /** Expected sha256 (hex) of the file. */
  sha256?: string | undefined;
}

export interface HubSnapshotOptions extends HubOptions {
  /** Expected sha256 (hex) per repo path. */
  sha256?: Record<string, string> | undefined;
  /** Paths that may not exist in the repo (e.g. 'onnx/model.onnx_data'): skipped on 404 or when offline and not cached. */
  optional?: string[] | undefined;
}

export interface HubSnapshot {
  repo: string;
  revision: string;
  /** The commit the revision resolved to, when known (recorded from the server). */
  commit: string | null;
  /** The local folder of this revision: files keep their repo paths under it. */
  dir: string;
  /** Repo path -> local path, for every file fetched (optional files that do not exist are absent). */
  files: Record<string, string>;
}

interface Settings {
  repo: string;
  revision: string;
  endpoint: string;
  cacheDir: string;
  revDir: string;
  offline: boolean;
  onProgress: ((p: HubProgress) => void) | null;
  progress: boolean;
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
  lockTimeoutMs: number;
}

const hubError = (code: ErrorCode, message: string, hint: string, details?: Record<string, unknown>) =>
  new GraftError(code, message, hint, details);

const badOption = (message: string, hint: string) => new GraftError('E_BAD_OPTION', message, hint);

function envFlag(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

function checkRepo(repo: string): string[] {
  const parts = repo.split('/');
  if (parts.length !== 2 || !parts.every((p) => SEGMENT.test(p))) {
    throw badOption(`hub repo "${repo}" is not of the form owner/name`,
      'Name the repository as owner/name (letters, digits, ".", "_" and "-"), e.g. "acme/tiny-vit".');
  }
  return parts;
}

function checkRevision(rev: string): void {
  const ok = rev.length <= 255 && rev.split('/').every((p) => SEGMENT.test(p) && !p.includes('..'));
  if (!ok) {
    throw badOption(`hub revision "${rev}" is not a valid revision`,
      'Pass a commit hash, a tag or a branch name (letters, digits, ".", "_", "-" and "/").');
  }
}

function checkPath(path: string): string[] {
  const parts = path.split('/');
  const ok = path.length <= 1024 && parts.every((p) => p !== '' && p !== '.' && p !== '..' && !/[\\\0:*?"<>|\x01-\x1f]/.test(p))
    && !/\.(partial|lock)$/.test(path) && path !== REVISION_FILE;
  if (!ok) {
    throw badOption(`hub file path "${path}" is not a plain relative path`,
      `Pass a path inside the repository such as "onnx/model.onnx" (no "..", no leading "/", not ending in .partial or .lock).`);
  }
  return parts;
}

function checkSha(sha: string | undefined, path: string): string | null {
  if (sha === undefined) return null;
  if (!/^[0-9a-fA-F]{64}$/.test(sha)) throw badOption(`sha256 for ${path} is not 64 hex digits: "${sha}"`, 'Pass the sha256 of the file as hex.');
  return sha.toLowerCase();
}

function settings(repo: string, opts: HubOptions): Settings {
  const [owner, name] = checkRepo(repo) as [string, string];
  const revision = opts.revision ?? 'main';
  checkRevision(revision);
  const endpoint = (opts.endpoint ?? (process.env['GRAFT_HUB_ENDPOINT'] || DEFAULT_ENDPOINT)).replace(/\/+$/, '');
  const cacheDir = opts.cacheDir ?? (process.env['GRAFT_CACHE_DIR'] || join(homedir(), '.cache', 'graft', 'hub'));
  const num = (v: number | undefined, dflt: number, what: string) => {
    if (v === undefined) return dflt;
    if (!Number.isFinite(v) || v < 0) throw badOption(`${what} must be a number >= 0, got ${v}`, `Pass a non-negative ${what}.`);
    return v;
  };
  return {
    repo, revision, endpoint, cacheDir,
    revDir: join(cacheDir, owner, name, encodeURIComponent(revision)),
    offline: opts.offline === true || envFlag(process.env['GRAFT_OFFLINE']),
    onProgress: opts.onProgress ?? null,
    progress: opts.progress ?? true,
    timeoutMs: num(opts.timeoutMs, 30_000, 'timeoutMs'),
    retries: Math.floor(num(opts.retries, 4, 'retries')),
    retryDelayMs: num(opts.retryDelayMs, 500, 'retryDelayMs'),
    lockTimeoutMs: num(opts.lockTimeoutMs, 600_000, 'lockTimeoutMs'),
  };
}

function isFile(p: string): boolean {
  return statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
}

function sizeOf(p: string): number {
  return statSync(p, { throwIfNoEntry: false })?.size ?? 0;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The URL of one file of a repo at a revision. */
export function hubUrl(repo: string, path: string, opts: Pick<HubOptions, 'revision' | 'endpoint'> = {}): string {
  const s = settings(repo, { ...opts, cacheDir: '' });
  checkPath(path);
  return fileUrl(s, path);
}

function fileUrl(s: Settings, path: string): string {
  return `${s.endpoint}/${s.repo}/resolve/${encodeURIComponent(s.revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

function where(s: Settings, path: string): string {
  return `${s.repo}/${path} (revision ${s.revision})`;
}

// ---- the revision record --------------------------------------------------------------------------------

interface RevisionRecord {
  repo: string;
  revision: string;
  commit: string;
  endpoint: string;
  resolvedAt: string;
}

function readRevision(revDir: string): RevisionRecord | null {
  try {
    const r = JSON.parse(readFileSync(join(revDir, REVISION_FILE), 'utf8')) as RevisionRecord;
    return typeof r.commit === 'string' ? r : null;
  } catch {
    return null;
  }
}

/** Checks the commit the server resolved the revision to against the pin and the record, and records it. */
function checkCommit(s: Settings, path: string, commit: string | null): void {
  if (!commit) return;
  if (/^[0-9a-f]{40}$/.test(s.revision) && commit !== s.revision) {
    throw hubError('E_HUB_REVISION', `the server resolved commit ${s.revision} of ${s.repo} to commit ${commit} (for ${path})`,
      'The endpoint does not serve the pinned commit; check GRAFT_HUB_ENDPOINT and the revision.', { repo: s.repo, revision: s.revision, commit });
  }
  const rec = readRevision(s.revDir);
  if (rec && rec.commit !== commit) {
    throw hubError('E_HUB_REVISION',
      `revision ${s.revision} of ${s.repo} now resolves to commit ${commit}, but the files cached under it came from commit ${rec.commit}`,
      `Pin revision "${rec.commit}" to keep using the cached files, or delete ${s.revDir} to fetch revision ${s.revision} afresh.`,
      { repo: s.repo, revision: s.revision, commit, cachedCommit: rec.commit });
  }
  if (!rec) {
    const r: RevisionRecord = { repo: s.repo, revision: s.revision, commit, endpoint: s.endpoint, resolvedAt: new Date().toISOString() };
    writeFileAtomic(join(s.revDir, REVISION_FILE), JSON.stringify(r, null, 2) + '\n');
  }
}

// ---- locking ----------------------------------------------------------------------------------------------

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function lock(path: string, s: Settings, what: string): Promise<() => void> {
  const deadline = Date.now() + s.lockTimeoutMs;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      try { writeSync(fd, String(process.pid)); } finally { closeSync(fd); }
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let pid = NaN;
    let age = 0;
    try {
      pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
      age = Date.now() - statSync(path).mtimeMs;
    } catch { /* released meanwhile */ }
    // A lock whose process is gone is stale; an empty one is stale once it is old (its writer died mid-write).
    if (Number.isInteger(pid) ? !alive(pid) : age > 10_000) {
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw hubError('E_HUB_BUSY', `another process (pid ${pid}) has been downloading ${what} for too long`,
        `Wait for it to finish, or stop it and delete ${path}.`, { lock: path, pid });
    }
    await sleep(100);
  }
}

// ---- progress ----------------------------------------------------------------------------------------------

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** An error thrown by the caller's progress callback: it stops the download, it is not retried. */
class CallerError {
  constructor(readonly error: unknown) {}
}

function meter(s: Settings, path: string): { update(done: number, total: number | null): void; end(): void } {
  const cb = s.onProgress;
  const tty = !cb && s.progress && process.stderr.isTTY === true;
  let last = 0;
  let shown = false;
  return {
    update(done, total) {
      if (cb) {
        try { cb({ repo: s.repo, path, done, total }); } catch (e) { throw new CallerError(e); }
      } else if (tty) {
        const now = Date.now();
        if (now - last < 100 && done !== total) return;
        last = now;
        shown = true;
        const pct = total ? ` ${Math.floor((100 * done) / total)}%` : '';
        process.stderr.write(`\rgraft: ${s.repo}/${path}  ${mb(done)}${total !== null ? ` / ${mb(total)}` : ''}${pct}\x1b[K`);
      }
    },
    end() {
      if (shown) process.stderr.write('\n');
    },
  };
}

// ---- HTTP ------------------------------------------------------------------------------------------------

/** A failure worth another attempt (connection lost, timeout, 5xx, short body). */
class Retryable extends Error {}

async function get(url: string, headers: Record<string, string>, signal: AbortSignal, s: Settings, path: string): Promise<{ res: Response; commit: string | null }> {
  let commit: string | null = null;
  let current = url;
  for (let hop = 0; hop <= 5; hop++) {
    const res = await fetch(current, { headers, signal, redirect: 'manual' });
    commit ??= res.headers.get('x-repo-commit');
    if (res.status < 300 || res.status >= 400 || res.status === 304) return { res, commit };
    const loc = res.headers.get('location');
    await res.body?.cancel();
    const next = loc ? new URL(loc, current) : null;
    if (!next || (next.protocol !== 'http:' && next.protocol !== 'https:')) {
      throw hubError('E_HUB_HTTP', `${where(s, path)}: the server answered ${res.status} with ${loc ? `an unusable redirect to ${loc}` : 'no Location'}`,
        'Check GRAFT_HUB_ENDPOINT: it must serve files as the Hugging Face Hub does.', { url: current, status: res.status });
    }
    current = next.href;
  }
  throw hubError('E_HUB_HTTP', `${where(s, path)}: too many redirects from ${url}`, 'Check GRAFT_HUB_ENDPOINT.', { url });
}

function reasonOf(e: unknown): string {
  const err = e as { message?: string; cause?: { code?: string; message?: string } };
  const cause = err?.cause?.code ?? err?.cause?.message;
  return cause ? `${err.message} (${cause})` : String(err?.message ?? e);
}

/**
 * Fetches `url` into `partial`, resuming from what it already holds. Returns whether the bytes that
 * completed it were appended to earlier ones (a resume), so that a hash mismatch can be retried clean.
 */
async function fetchToPartial(s: Settings, path: string, url: string, partial: string): Promise<boolean> {
  const m = meter(s, path);
  let etag: string | null = null;
  let lastError: unknown = null;
  try {
    for (let attempt = 0; attempt <= s.retries; attempt++) {
      if (attempt > 0) await sleep(s.retryDelayMs * 2 ** (attempt - 1));
      const have = sizeOf(partial);
      const ac = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => { timedOut = true; ac.abort(); }, s.timeoutMs);
      try {
        const headers: Record<string, string> = { 'user-agent': USER_AGENT, 'accept-encoding': 'identity' };
        if (have > 0) {
          headers['range'] = `bytes=${have}-`;
          if (etag) headers['if-range'] = etag;
        }
        const { res, commit } = await get(url, headers, ac.signal, s, path);
        timer.refresh();
        const status = res.status;
        if (status !== 200 && status !== 206) {
          await res.body?.cancel();
          const code = res.headers.get('x-error-code');
          const detail = { repo: s.repo, path, revision: s.revision, url, status, ...(code ? { errorCode: code } : {}) };
          if (status === 404) {
            throw hubError('E_HUB_NOT_FOUND', `${where(s, path)} was not found at ${s.endpoint}${code ? ` (${code})` : ''}`,
              'Check the repository name, the file path and the revision; the file may not exist at that revision.', detail);
          }
          if (status === 416) {
            rmSync(partial, { force: true }); // what we hold is not a prefix of the file: start again
            throw new Retryable('the server refused to resume (416)');
          }
          if (status === 429 || status >= 500) throw new Retryable(`the server answered ${status}`);
          throw hubError('E_HUB_HTTP', `${where(s, path)}: the server answered ${status}${code ? ` (${code})` : ''}`,
            status === 401 || status === 403
              ? 'The repository may be private or gated; graft does not send credentials. Download it yourself into the cache folder.'
              : 'Check GRAFT_HUB_ENDPOINT, the repository and the revision.', detail);
        }
        checkCommit(s, path, commit);
        let start = 0;
        let total: number | null;
        if (status === 206) {
          const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
          if (!cr || Number(cr[1]) !== have) {
            await res.body?.cancel();
            rmSync(partial, { force: true });
            throw new Retryable(`the server resumed at the wrong place (${res.headers.get('content-range')})`);
          }
          start = have;
          total = cr[3] === '*' ? null : Number(cr[3]);
        } else {
          const len = res.headers.get('content-length');
          total = len !== null && /^\d+$/.test(len) ? Number(len) : null;
        }
        const enc = res.headers.get('content-encoding');
        if (enc && enc !== 'identity') total = null; // fetch decodes it: the header counts other bytes
        const et = res.headers.get('etag');
        if (status === 200 || etag === null) etag = et && !et.startsWith('W/') ? et : null;
        const fh = await open(partial, start > 0 ? 'a' : 'w');
        let done = start;
        try {
          m.update(done, total);
          if (res.body) {
            for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
              timer.refresh();
              await fh.write(chunk);
              done += chunk.byteLength;
              m.update(done, total);
            }
          }
          await fh.sync();
        } finally {
          await fh.close();
        }
        if (total !== null && done !== total) throw new Retryable(`the transfer ended at byte ${done} of ${total}`);
        return status === 206;
      } catch (e) {
        if (e instanceof CallerError) throw e.error;
        if (e instanceof GraftError) throw e;
        lastError = timedOut ? new Error(`no data for ${s.timeoutMs} ms`) : e;
      } finally {
        clearTimeout(timer);
      }
    }
  } finally {
    m.end();
  }
  const kept = sizeOf(partial);
  throw hubError('E_HUB_NETWORK',
    `could not download ${where(s, path)} from ${url} after ${s.retries + 1} attempt(s): ${reasonOf(lastError)}`,
    `Check the network and the endpoint (${s.endpoint}; set GRAFT_HUB_ENDPOINT to change it). ` +
    (kept > 0 ? `Running again resumes from the ${kept} bytes kept in ${partial}. ` : '') +
    'Set GRAFT_OFFLINE=1 to use only files already in the cache.',
    { repo: s.repo, path, revision: s.revision, url, partialBytes: kept });
}

async function download(s: Settings, path: string, local: string, expected: string | null): Promise<void> {
  try {
    const u = new URL(s.endpoint);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw badOption(`hub endpoint "${s.endpoint}" is not an http(s) URL`, 'Set GRAFT_HUB_ENDPOINT (or the endpoint option) to e.g. https://huggingface.co.');
  }
  const partial = `${local}.partial`;
  const url = fileUrl(s, path);
  for (let pass = 0; ; pass++) {
    const resumed = await fetchToPartial(s, path, url, partial);
    if (expected) {
      const actual = await sha256File(partial);
      if (actual !== expected) {
        rmSync(partial, { force: true });
        if (resumed && pass === 0) continue; // the kept bytes may have come from another version: once more, clean
        throw hubError('E_HUB_SHA256', `${where(s, path)} from ${url} has sha256 ${actual}, expected ${expected}`,
          'The server sent other bytes than the ones pinned: check the revision and the expected hash (the file was not cached).',
          { repo: s.repo, path, revision: s.revision, url, expected, actual });
      }
    }
    renameSync(partial, local);
    return;
  }
}

// ---- the API -------------------------------------------------------------------------------------------------

/**
 * The local path of one file of a hub repository at a revision: from the cache, or downloaded into it
 * (checked against `sha256` when given). Offline, a file that is not cached is an E_HUB_OFFLINE error.
 */
export async function hubFile(repo: string, path: string, opts: HubFileOptions = {}): Promise<string> {
  const s = settings(repo, opts);
  const parts = checkPath(path);
  const expected = checkSha(opts.sha256, path);
  const local = join(s.revDir, ...parts);
  const cachedOk = async (): Promise<boolean> => {
    if (!isFile(local)) return false;
    if (!expected) return true;
    const actual = await sha256File(local);
    if (actual === expected) return true;
    if (s.offline) {
      throw hubError('E_HUB_SHA256', `the cached ${where(s, path)} at ${local} has sha256 ${actual}, expected ${expected}`,
        `Delete ${local} and fetch it again online, or check the expected hash and the revision.`,
        { repo: s.repo, path, revision: s.revision, local, expected, actual });
    }
    rmSync(local, { force: true }); // damaged or another version: fetch it again
    return false;
  };
  if (await cachedOk()) return local;
  if (s.offline) {
    throw hubError('E_HUB_OFFLINE', `${where(s, path)} is not in the cache (${local}) and graft is offline`,
      'Run once without GRAFT_OFFLINE (and without the offline option) to download it, or copy the file into the cache folder.',
      { repo: s.repo, path, revision: s.revision, local });
  }
  mkdirSync(dirname(local), { recursive: true });
  const release = await lock(`${local}.lock`, s, where(s, path));
  try {
    if (await cachedOk()) return local; // another process fetched it while we waited
    await download(s, path, local, expected);
    return local;
  } finally {
    release();
  }
}

/**
 * Several files of one repository at one revision, in one local folder that keeps the repo's layout
 * (so `loadOnnxFolder(snapshot.dir)` finds `onnx/model.onnx` and its external data beside it).
 */
/** A hub model id: owner/name, optionally @revision. */
export const HUB_ID = /^([A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9._/-]+))?$/;

export async function hubSnapshot(repo: string, files: string[], opts: HubSnapshotOptions = {}): Promise<HubSnapshot> {
  const { sha256: hashes = {}, optional = [], ...rest } = opts;
  const s = settings(repo, rest);
  for (const p of [...files, ...optional]) checkPath(p);
  for (const p of Object.keys(hashes)) {
    if (!files.includes(p) && !optional.includes(p)) {
      throw badOption(`a sha256 is given for ${p}, which is not among the files asked for`, 'Check the file paths: every hash must name one of the files.');
    }
  }
  const out: Record<string, string> = {};
  for (const p of files) out[p] = await hubFile(repo, p, { ...rest, sha256: hashes[p] });
  for (const p of optional) {
    try {
      out[p] = await hubFile(repo, p, { ...rest, sha256: hashes[p] });
    } catch (e) {
      const code: string | undefined = (e as GraftError).code;
      if (code !== 'E_HUB_NOT_FOUND' && code !== 'E_HUB_OFFLINE') throw e;
    }
  }
  const commit = readRevision(s.revDir)?.commit ?? (/^[0-9a-f]{40}$/.test(s.revision) ? s.revision : null);
  return { repo, revision: s.revision, commit, dir: s.revDir, files: out };
}
