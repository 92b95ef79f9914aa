/**
 * `graft serve` under load (issue 12's check): an image probe on MobileNetV2 (MNIST PNGs, cut
 * `features`) served by the CLI in a child process; autocannon on loopback with 64 connections for
 * 30 s, each request one PNG as {"images": [base64]}. Reports errors, p50/p99 latency, throughput,
 * the server's mean batch size and RSS (after warm-up and at the end, from its /metrics), and the
 * ratio to calling predict({ images }) in-process with batches of the same mean size.
 * Usage: node --import tsx bench/serve.ts [--connections 64] [--duration 30] [--warmup 5] [--threads N]
 *        [--max-batch 64] [--max-wait-ms 5] [--model DIR] [--out bench/results/serve.md]
 * (--out - prints the table only.) Run it on a quiet machine: the server and autocannon share it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { writeMnistFolder } from '../src/data/mnist.ts';
import { loadModel, train } from '../src/index.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const connections = Number(arg('connections', '64'));
const duration = Number(arg('duration', '30'));
const warmup = Number(arg('warmup', '5'));
const threads = arg('threads', String(cpus().length));
const maxBatch = arg('max-batch', '64');
const maxWaitMs = arg('max-wait-ms', '5');
const outFile = arg('out', new URL('./results/serve.md', import.meta.url).pathname);
const BIN = new URL('../bin/graft.mjs', import.meta.url).pathname;

// The model: an image probe on MobileNetV2 features (trained here unless --model is given).
const dir = mkdtempSync(join(tmpdir(), 'graft-bench-serve-'));
const imgs = join(dir, 'imgs');
await writeMnistFolder(imgs, [0, 1, 2, 3, 4], 20, 0);
let model = arg('model', '');
if (!model) {
  model = join(dir, 'mnist');
  await train(imgs, { out: model, cut: 'features', head: 'linear', threads: Number(threads) });
}
const pngs = readdirSync(join(imgs, '3')).slice(0, 16).map((f) => readFileSync(join(imgs, '3', f)));
const bodies = pngs.map((b) => JSON.stringify({ images: [b.toString('base64')] }));

// The server: the CLI, as a user runs it.
const child = spawn(process.execPath, [BIN, 'serve', `m=${model}`, '--port', '0', '--threads', threads, '--max-batch', maxBatch, '--max-wait-ms', maxWaitMs], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise<string>((res, rej) => {
  let out = '';
  child.stdout.on('data', (d) => { out += d; const m = /listening on (\S+)/.exec(out); if (m) res(m[1]!); });
  child.on('exit', (c) => rej(new Error(`graft serve exited ${c}`)));
});

async function metrics(): Promise<{ rss: number; batches: number; inputs: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return { rss: get(/^graft_process_resident_memory_bytes (\S+)/m), batches: get(/^graft_batch_size_count\{model="m"\} (\S+)/m), inputs: get(/^graft_batch_size_sum\{model="m"\} (\S+)/m) };
}

function load(seconds: number): Promise<autocannon.Result> {
  let i = 0;
  return autocannon({
    url: `${url}/v1/models/m/predict`, method: 'POST', connections, duration: seconds, headers: { 'content-type': 'application/json' },
    requests: [{ setupRequest: (req) => ({ ...req, body: bodies[i++ % bodies.length]! }) }],
  });
}

console.log(`serve benchmark: ${connections} connections, ${warmup} s warm-up + ${duration} s, threads ${threads}, max batch ${maxBatch}, max wait ${maxWaitMs} ms`);
await load(warmup);
const m0 = await metrics();
const r = await load(duration);
const m1 = await metrics();
child.kill('SIGTERM');
const code = await new Promise((res) => child.on('exit', res));
const errors = r.errors + r.timeouts + r.non2xx;
const meanBatch = (m1.inputs - m0.inputs) / (m1.batches - m0.batches);
const served = r.requests.average; // requests (= images) per second

// In-process: predict({ images }) with batches of the server's mean size, for as long.
const b = Math.max(1, Math.round(meanBatch));
const predictor = await loadModel(model, { threads: Number(threads) });
const batch = Array.from({ length: b }, (_, k) => new Uint8Array(pngs[k % pngs.length]!));
await predictor.predict({ images: batch });
let n = 0;
const t0 = performance.now();
while (performance.now() - t0 < Math.min(duration, 15) * 1000) { await predictor.predict({ images: batch }); n += b; }
const direct = n / ((performance.now() - t0) / 1000);
await predictor.dispose();

const rssGrowth = (m1.rss - m0.rss) / m0.rss;
const rows = [
  ['requests', String(r.requests.total)],
  ['errors (errors + timeouts + non-2xx)', String(errors)],
  ['latency p50 / p99 (ms)', `${r.latency.p50} / ${r.latency.p99}`],
  ['throughput (images/s)', served.toFixed(1)],
  ['mean batch size', meanBatch.toFixed(1)],
  [`in-process predict({ images }), batch ${b} (images/s)`, direct.toFixed(1)],
  ['ratio served / in-process', (served / direct).toFixed(2)],
  ['RSS after warm-up / at end (MB)', `${(m0.rss / 1e6).toFixed(0)} / ${(m1.rss / 1e6).toFixed(0)} (${rssGrowth >= 0 ? '+' : ''}${(100 * rssGrowth).toFixed(1)}%)`],
  ['SIGTERM exit code', String(code)],
];
const table = ['| measure | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
console.log(table);
if (outFile !== '-') {
  writeFileSync(outFile, [
    '# graft serve under load',
    '',
    `\`node --import tsx bench/serve.ts ${process.argv.slice(2).join(' ')}\` on ${cpus().length} x ${cpus()[0]?.model ?? 'CPU'}, ${new Date().toISOString().slice(0, 10)}.`,
    `Image probe on MobileNetV2 features (MNIST PNGs resized to 224), one PNG per request as {"images": [base64]};`,
    `autocannon ${connections} connections, ${warmup} s warm-up then ${duration} s; server: graft serve --threads ${threads} --max-batch ${maxBatch} --max-wait-ms ${maxWaitMs}.`,
    'Decoding and resizing are inside both figures (the in-process loop calls predict({ images }) with the same bytes).',
    '',
    table,
    '',
  ].join('\n'));
  console.log(`wrote ${outFile}`);
}
process.exit(errors === 0 && code === 0 ? 0 : 1);
