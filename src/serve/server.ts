/**
 * `graft serve`: model folders behind an HTTP API (fastify), with micro-batching, a bearer token,
 * Prometheus metrics and graceful shutdown. It calls only the public API (src/index.ts): each folder
 * is opened with `loadModel()` (which checks graft.json and model.onnx against its sha256 and runs
 * no code from the folder) and predicted with `predict()`.
 *
 * Endpoints: `POST /v1/models/:name/predict` with `{"rows": [...]}` (numeric-CSV models),
 * `{"texts": [...]}` (text models; `pairs` too for pair models), `{"images": [base64, ...]}` or
 * multipart files (image models), answered as `graft predict --json` prints; `GET /healthz`,
 * `GET /v1/models`, `GET /metrics` (Prometheus). Every refused request gets a 4xx with JSON
 * `{code, message}`; the server keeps serving.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { basename, resolve } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { GraftError, isGraftError, loadModel, type PredictInput, type PredictResult, type Predictor } from '../index.ts';

/** Options of `serve()`. */
export interface ServeOptions {
  /** TCP port (default 8080; 0 picks a free one). */
  port?: number;
  /** Interface to bind (default 127.0.0.1). */
  host?: string;
  /** When set, every endpoint but /healthz needs `Authorization: Bearer <token>`. */
  token?: string;
  /** The most inputs (rows, texts, images) one predict call takes (default 64). */
  maxBatch?: number;
  /** How long the first queued request waits for others to join its batch, in ms (default 5). */
  maxWaitMs?: number;
  /** The largest request body, in bytes (default 10 MB). */
  bodyLimit?: number;
  /** The longest a request may take to arrive, and to be answered, in ms (default 30000). */
  requestTimeoutMs?: number;
  /** ONNX Runtime threads per model. */
  threads?: number;
  /** Where the server's lines go (default none). */
  log?: (line: string) => void;
}

/** A running server. */
export interface ServeHandle {
  /** The bound address, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The served models' names. */
  readonly models: readonly string[];
  /** Stops accepting, finishes in-flight requests, then frees the models. */
  close(): Promise<void>;
}

/** An HTTP error answered as `{code, message}`. */
class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** The HTTP status of a GraftError raised by a request's data. */
function statusOf(e: GraftError): number {
  switch (e.code) {
    case 'E_IMAGE_TOO_LARGE': return 413;
    case 'E_IMAGE_CORRUPT': case 'E_CSV_COLUMNS': case 'E_CSV_NOT_FINITE': case 'E_CSV_NOT_NUMERIC': case 'E_BAD_OPTION': case 'E_AUDIO_CORRUPT': return 400;
    default: return 500;
  }
}

type Kind = 'rows' | 'texts' | 'images';

/** One request's inputs in the queue. */
interface Job {
  input: PredictInput;
  n: number;
  resolve: (r: unknown[]) => void;
  reject: (e: unknown) => void;
}

/** Per-model queue: concurrent requests run as one predict call of at most maxBatch inputs. */
class Batcher {
  private queue: Job[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly model: Predictor,
    private readonly kind: Kind,
    private readonly maxBatch: number,
    private readonly maxWaitMs: number,
    private readonly onBatch: (size: number) => void,
  ) {}

  submit(input: PredictInput, n: number): Promise<unknown[]> {
    return new Promise((res, rej) => {
      this.queue.push({ input, n, resolve: res, reject: rej });
      this.schedule();
    });
  }

  private queued(): number {
    return this.queue.reduce((s, j) => s + j.n, 0);
  }

  private schedule(): void {
    if (this.running) return;
    if (this.queued() >= this.maxBatch) { this.flush(); return; }
    if (!this.timer && this.queue.length) this.timer = setTimeout(() => this.flush(), this.maxWaitMs);
  }

  private flush(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (this.running || !this.queue.length) return;
    const jobs: Job[] = [this.queue.shift()!];
    let n = jobs[0]!.n;
    while (this.queue.length && n + this.queue[0]!.n <= this.maxBatch) { n += this.queue[0]!.n; jobs.push(this.queue.shift()!); }
    this.running = true;
    void this.run(jobs).finally(() => {
      this.running = false;
      // Requests that queued during the run have waited already: they go now, or when the batch fills.
      if (this.queue.length) this.flush();
    });
  }

  private async predict(jobs: Job[]): Promise<unknown[][]> {
    const input = merge(this.kind, jobs.map((j) => j.input));
    const total = jobs.reduce((s, j) => s + j.n, 0);
    this.onBatch(total);
    const r = await this.model.predict(input);
    const out = outputOf(r);
    const parts: unknown[][] = [];
    let off = 0;
    for (const j of jobs) { parts.push(out.slice(off, off + j.n)); off += j.n; }
    return parts;
  }

  private async run(jobs: Job[]): Promise<void> {
    try {
      const parts = await this.predict(jobs);
      jobs.forEach((j, i) => j.resolve(parts[i]!));
    } catch (e) {
      if (jobs.length === 1 || !isGraftError(e) || statusOf(e) >= 500) { for (const j of jobs) j.reject(e); return; }
      // One request's bad data (a corrupt image) fails the batch: each request alone finds whose.
      for (const j of jobs) {
        try {
          j.resolve((await this.predict([j]))[0]!);
        } catch (e2) {
          j.reject(e2);
        }
      }
    }
  }
}

/** The inputs of several requests as one. */
function merge(kind: Kind, inputs: PredictInput[]): PredictInput {
  if (inputs.length === 1) return inputs[0]!;
  if (kind === 'rows') return { rows: inputs.flatMap((i) => (i as { rows: Record<string, number>[] }).rows) };
  if (kind === 'images') return { images: inputs.flatMap((i) => (i as { images: Uint8Array[] }).images) };
  const t = inputs as { texts: string[]; pairs?: string[] }[];
  return t[0]!.pairs ? { texts: t.flatMap((i) => i.texts), pairs: t.flatMap((i) => i.pairs!) } : { texts: t.flatMap((i) => i.texts) };
}

/** A result's predictions as `graft predict --json` prints them (file paths left out: uploads have none). */
function outputOf(r: PredictResult): unknown[] {
  if (r.task === 'ner') return r.predictions.map((x) => ({ text: x.text, entities: x.entities }));
  if (r.task === 'images' || r.task === 'audio') return r.predictions.map((p) => ({ label: p.label, probabilities: p.probabilities }));
  return r.predictions;
}

interface Served {
  name: string;
  dir: string;
  model: Predictor;
  kind: Kind;
  batcher: Batcher;
}

/** `name=DIR` or DIR (named by its folder). */
function parseSpec(spec: string): { name: string; dir: string } {
  const eq = spec.indexOf('=');
  const named = eq > 0 && /^[A-Za-z0-9._-]+$/.test(spec.slice(0, eq));
  const dir = named ? spec.slice(eq + 1) : spec;
  const name = named ? spec.slice(0, eq) : basename(resolve(dir));
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new GraftError('E_BAD_OPTION', `model name "${name}" (of ${dir}) has characters a URL path cannot carry plainly`, 'Name it on the command line: NAME=DIR, with letters, digits, . _ -.');
  return { name, dir };
}

function kindOf(model: Predictor): Kind | null {
  switch (model.task) {
    case 'csv': return 'rows';
    case 'images': return 'images';
    case 'text': case 'pair': case 'ner': return 'texts';
    default: return null;
  }
}

const sha = (s: string) => createHash('sha256').update(s).digest();
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A request body's inputs for a model, checked before they queue. */
function inputOf(s: Served, body: unknown): { input: PredictInput; n: number } {
  const bad = (m: string) => new HttpError(400, 'E_BAD_REQUEST', m);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  const key = s.kind;
  const list = b[key];
  const takes = key === 'rows' ? '{"rows": [{"column": value, ...}]}' : key === 'texts' ? '{"texts": ["...", ...]}' : '{"images": [base64, ...]} or multipart image files';
  if (!Array.isArray(list)) throw bad(`model ${s.name} (${s.model.task}) takes ${takes}`);
  if (list.length === 0) throw bad(`"${key}" is empty`);
  if (key === 'rows') {
    const cols = s.model.card.input.columns;
    list.forEach((row, i) => {
      if (typeof row !== 'object' || row === null || Array.isArray(row)) throw bad(`rows[${i}] is not an object of column: value`);
      for (const c of cols) {
        const v = (row as Record<string, unknown>)[c];
        if (typeof v !== 'number' || !Number.isFinite(v)) {
          throw new HttpError(400, 'E_CSV_COLUMNS', `rows[${i}]: column "${c}" is ${v === undefined ? 'missing' : 'not a finite number'}; the model takes ${cols.length} columns: ${cols.slice(0, 8).join(', ')}${cols.length > 8 ? ', ...' : ''}`);
        }
      }
    });
    return { input: { rows: list as Record<string, number>[] }, n: list.length };
  }
  if (key === 'texts') {
    if (!list.every((t) => typeof t === 'string')) throw bad('"texts" must be strings');
    if (s.model.task === 'pair') {
      const pairs = b['pairs'];
      if (!Array.isArray(pairs) || pairs.length !== list.length || !pairs.every((t) => typeof t === 'string')) throw bad('a pair model takes "pairs": one second text per text');
      return { input: { texts: list as string[], pairs: pairs as string[] }, n: list.length };
    }
    return { input: { texts: list as string[] }, n: list.length };
  }
  const images = list.map((v, i) => {
    if (typeof v !== 'string') throw bad(`images[${i}] is not a base64 string`);
    const clean = v.replace(/\s+/g, '');
    if (!BASE64.test(clean)) throw new HttpError(400, 'E_IMAGE_CORRUPT', `images[${i}] is not base64`);
    return new Uint8Array(Buffer.from(clean, 'base64'));
  });
  return { input: { images }, n: images.length };
}

/**
 * Serves model folders (paths, or `NAME=DIR`) over HTTP (fastify): `POST /v1/models/NAME/predict`
 * with micro-batching of concurrent requests, `GET /healthz`, `GET /v1/models`, Prometheus
 * `/metrics`, a bearer token, body/pixel/time limits, and graceful shutdown (`close()` stops
 * accepting and answers the requests in flight). Each folder is loaded with `loadModel()`, checked
 * as untrusted input. Exported as `graft/serve`, above the public API, so `graft` never loads the HTTP stack.
 * @returns the running server: its bound `url`, `host`, `port`, model names, and `close()`.
 * @throws GraftError for a folder that is not a valid model, or two models of one name.
 */
export async function serve(dirs: readonly string[], options: ServeOptions = {}): Promise<ServeHandle> {
  const maxBatch = options.maxBatch ?? 64;
  const maxWaitMs = options.maxWaitMs ?? 5;
  const bodyLimit = options.bodyLimit ?? 10 * 1024 * 1024;
  const timeout = options.requestTimeoutMs ?? 30_000;
  const log = options.log ?? (() => {});
  const int = (v: number, what: string, min: number) => {
    if (!(Number.isInteger(v) && v >= min)) throw new GraftError('E_BAD_OPTION', `--${what} must be an integer >= ${min}, got ${v}`, `Pass --${what} a whole number of at least ${min}.`);
  };
  int(maxBatch, 'max-batch', 1); int(maxWaitMs, 'max-wait-ms', 0); int(bodyLimit, 'body-limit', 1); int(timeout, 'request-timeout-ms', 1);
  if (options.port !== undefined) int(options.port, 'port', 0);
  if (!dirs.length) throw new GraftError('E_BAD_OPTION', 'graft serve needs at least one model folder', 'Pass model folders, or NAME=DIR.');

  // metrics
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'graft_' });
  const requests = new Counter({ name: 'graft_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'status'], registers: [registry] });
  const latency = new Histogram({
    name: 'graft_http_request_duration_seconds', help: 'HTTP request latency by route', labelNames: ['route'], registers: [registry],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const batchSize = new Histogram({ name: 'graft_batch_size', help: 'inputs per predict call', labelNames: ['model'], registers: [registry], buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256] });
  const predictCalls = new Counter({ name: 'graft_predict_calls_total', help: 'predict calls (batches)', labelNames: ['model'], registers: [registry] });
  const predictedInputs = new Counter({ name: 'graft_predicted_inputs_total', help: 'inputs predicted', labelNames: ['model'], registers: [registry] });

  // models: loaded and checked up front; a bad folder stops the start
  const served = new Map<string, Served>();
  try {
    for (const spec of dirs) {
      const { name, dir } = parseSpec(spec);
      if (served.has(name)) throw new GraftError('E_BAD_OPTION', `two models are named "${name}"`, 'Name them on the command line: NAME=DIR.');
      const model = await loadModel(dir, options.threads ? { threads: options.threads } : {});
      const kind = kindOf(model);
      if (!kind) {
        await model.dispose();
        throw new GraftError('E_BAD_OPTION', `${dir} is a ${model.task} model, which graft serve does not serve`, 'Serve numeric-CSV, image or text models.');
      }
      const batcher = new Batcher(model, kind, maxBatch, maxWaitMs, (n) => { batchSize.observe({ model: name }, n); predictCalls.inc({ model: name }); predictedInputs.inc({ model: name }, n); });
      served.set(name, { name, dir, model, kind, batcher });
      log(`serving ${name} (${model.task}, ${model.labels.length} labels) from ${dir}`);
    }
  } catch (e) {
    for (const s of served.values()) await s.model.dispose();
    throw e;
  }

  const app: FastifyInstance = Fastify({ bodyLimit, requestTimeout: timeout, connectionTimeout: timeout, logger: false, return503OnClosing: true, forceCloseConnections: 'idle' });
  app.removeContentTypeParser('text/plain');
  await app.register(multipart, { limits: { fileSize: bodyLimit, files: maxBatch * 4, fields: 16, fieldSize: 1024, parts: maxBatch * 4 + 16 } });
  let closing = false;

  const send = (reply: FastifyReply, status: number, code: string, message: string) => reply.status(status).send({ code, message });
  app.setErrorHandler((err: unknown, _req, reply) => {
    if (err instanceof HttpError) return send(reply, err.status, err.code, err.message);
    if (isGraftError(err)) return send(reply, statusOf(err), err.code, err.message);
    const e = err as { statusCode?: number; code?: string; message?: string };
    const status = typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 600 ? e.statusCode : 500;
    const code = status === 415 ? 'E_UNSUPPORTED_MEDIA_TYPE' : status === 413 ? 'E_BODY_TOO_LARGE' : status === 408 ? 'E_TIMEOUT' : status < 500 ? 'E_BAD_REQUEST' : 'E_INTERNAL';
    if (status >= 500) log(`internal error: ${e.message}`);
    return send(reply, status, code, status >= 500 ? 'internal error' : String(e.message ?? 'bad request'));
  });
  app.setNotFoundHandler((req, reply) => send(reply, 404, 'E_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));

  const tokenHash = options.token !== undefined ? sha(options.token) : null;
  app.addHook('onRequest', async (req) => {
    (req as FastifyRequest & { t0?: bigint }).t0 = process.hrtime.bigint();
    if (!tokenHash || req.url.split('?')[0] === '/healthz') return;
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/i.exec(h);
    // Hashes make the comparison constant-time whatever the lengths.
    if (!m || !timingSafeEqual(sha(m[1]!.trim()), tokenHash)) throw new HttpError(401, 'E_UNAUTHORIZED', m ? 'wrong bearer token' : 'missing bearer token (Authorization: Bearer <token>)');
  });
  app.addHook('onSend', async (_req, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ route, status: String(reply.statusCode) });
    const t0 = (req as FastifyRequest & { t0?: bigint }).t0;
    if (t0 !== undefined) latency.observe({ route }, Number(process.hrtime.bigint() - t0) / 1e9);
  });

  app.get('/healthz', async () => ({ status: closing ? 'closing' : 'ok', models: [...served.keys()] }));
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  app.get('/v1/models', async () => ({
    models: [...served.values()].map((s) => ({
      name: s.name, task: s.model.task, labels: s.model.labels,
      input: { kind: s.model.card.input.kind, name: s.model.card.input.name, columns: s.model.card.input.columns, shape: s.model.card.input.shape, body: s.kind },
      metrics: s.model.card.metrics,
    })),
  }));
  app.post<{ Params: { name: string } }>('/v1/models/:name/predict', async (req) => {
    const s = served.get(req.params.name);
    if (!s) throw new HttpError(404, 'E_MODEL_NOT_FOUND', `no model named "${req.params.name}"; served: ${[...served.keys()].join(', ')}`);
    let job: { input: PredictInput; n: number };
    if (req.isMultipart()) {
      if (s.kind !== 'images') throw new HttpError(415, 'E_UNSUPPORTED_MEDIA_TYPE', `model ${s.name} takes JSON; multipart is for image models`);
      const images: Uint8Array[] = [];
      let bytes = 0;
      for await (const part of req.parts()) {
        if (part.type !== 'file') continue;
        const b = await part.toBuffer();
        bytes += b.length;
        // Each file is held to the body limit by the parser; all of them together are held here.
        if (bytes > bodyLimit) throw new HttpError(413, 'E_BODY_TOO_LARGE', `the files are over the body limit of ${bodyLimit} bytes`);
        images.push(new Uint8Array(b));
      }
      if (!images.length) throw new HttpError(400, 'E_BAD_REQUEST', 'the multipart body has no file');
      job = { input: { images }, n: images.length };
    } else {
      job = inputOf(s, req.body);
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_r, rej) => { timer = setTimeout(() => rej(new HttpError(503, 'E_TIMEOUT', `no answer within ${timeout} ms`)), timeout); });
    try {
      return { predictions: await Promise.race([s.batcher.submit(job.input, job.n), timedOut]) };
    } finally {
      clearTimeout(timer);
    }
  });

  await app.listen({ port: options.port ?? 8080, host: options.host ?? '127.0.0.1' });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : options.port ?? 8080;
  const host = options.host ?? '127.0.0.1';
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closed: Promise<void> | null = null;
  return {
    url, host, port, models: [...served.keys()],
    close() {
      closed ??= (async () => {
        closing = true;
        await app.close(); // stops accepting; resolves once in-flight requests are answered
        for (const s of served.values()) await s.model.dispose();
      })();
      return closed;
    },
  };
}
