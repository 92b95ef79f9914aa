/**
 * Engine benchmark, side by side in one run at equal thread counts: graft's train step against
 * PyTorch's (bench/torch_engine.py, Debian python3-torch) for
 *   (a) an MLP 1024-256-10, batch 64, AdamW;
 *   (b) a small CNN (two 3x3 conv + BatchNorm (frozen stats) + max-pool, 32x32x3, batch 32), AdamW;
 * and the engine's matmul throughput against ORT's own MatMul on the same shapes (the attainable peak).
 * Usage: npm run bench [-- --threads 1,2]
 */
import { spawnSync } from 'node:child_process';
import { Learner } from '../src/train/learner.ts';
import { mlpHead } from '../src/heads/heads.ts';
import { smallCnn } from '../src/heads/cnn.ts';
import type { Network } from '../src/train/network.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import { Session } from '../src/runtime/session.ts';
import { rng } from '../src/rng.ts';
import { tensor } from '../src/graph/tensor.ts';

const arg = process.argv.indexOf('--threads');
const threadList = (arg > 0 ? process.argv[arg + 1]! : '1,2').split(',').map(Number);
const python = process.env['GRAFT_PYTHON'] ?? '/usr/bin/python3';

function randn(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() + r() + r() - 1.5);
}

async function graftStepMs(net: Network, batch: number, steps: number, threads: number, optimization: 'all' | 'basic' | 'extended' | 'disabled' = 'all'): Promise<number> {
  const per = net.inputShape.reduce((a, b) => a * b, 1);
  const x = randn(batch * per, 1);
  const y = Int32Array.from({ length: batch }, (_, i) => i % net.outputs);
  const l = new Learner({ net, train: { x, y, n: batch }, batchSize: batch, threads, optimization, optimizer: { kind: 'adamw' } });
  l.lrs = net.groups.map(() => 1e-3);
  for (let i = 0; i < 3; i++) await l.step(x, y, [i]);
  const t = performance.now();
  for (let i = 0; i < steps; i++) await l.step(x, y, [i]);
  const ms = (performance.now() - t) / steps;
  await l.dispose();
  return ms;
}

/** ORT's own MatMul on the MLP's forward and backward shapes: the peak the engine can reach. */
async function ortMatmulMs(threads: number): Promise<number> {
  const b = new GraphBuilder();
  const shapes: [number, number, number][] = [[64, 1024, 256], [64, 256, 10], [1024, 64, 256], [256, 64, 10], [64, 10, 256], [64, 256, 1024]];
  const feeds: Record<string, ReturnType<typeof tensor>> = {};
  shapes.forEach(([m, k, n], i) => {
    const a = b.input(`a${i}`, 'float32', [m, k]);
    const w = b.input(`w${i}`, 'float32', [k, n]);
    b.output(b.matmul(a, w), `y${i}`);
    feeds[`a${i}`] = tensor('float32', [m, k], randn(m * k, i));
    feeds[`w${i}`] = tensor('float32', [k, n], randn(k * n, i + 9));
  });
  const s = await Session.create(b.graph, { threads });
  for (let i = 0; i < 5; i++) await s.run(feeds);
  const t = performance.now();
  const n = 300;
  for (let i = 0; i < n; i++) await s.run(feeds);
  await s.dispose();
  return (performance.now() - t) / n;
}

const mlpFlops = 3 * 2 * 64 * (1024 * 256 + 256 * 10); // forward + two backward matmuls per layer
console.log('graft engine benchmark (ratios > 1 mean graft is faster)');
for (const threads of threadList) {
  const py = spawnSync(python, ['bench/torch_engine.py', String(threads)], { encoding: 'utf8' });
  if (py.status !== 0) {
    console.error(`PyTorch side failed (install Debian python3-torch): ${py.stderr.trim().split('\n').at(-1)}`);
    process.exit(1);
  }
  const torch = JSON.parse(py.stdout.trim().split('\n').at(-1)!);
  const mlp = await graftStepMs(mlpHead({ inputDim: 1024, classes: 10, hidden: [256], dropout: 0 }), 64, 200, threads);
  const cnn = await graftStepMs(smallCnn({ inputShape: [3, 32, 32], classes: 10 }), 32, 30, threads);
  const mm = await ortMatmulMs(threads);
  console.log(`threads=${threads} (torch ${torch.torch})`);
  console.log(`  (a) MLP 1024-256-10 bs64 AdamW step: graft ${mlp.toFixed(2)} ms, torch ${torch.mlp_ms.toFixed(2)} ms, ratio ${(torch.mlp_ms / mlp).toFixed(2)}x`);
  console.log(`  (b) CNN 2x(conv3x3+BN+pool) 32x32x3 bs32 AdamW step: graft ${cnn.toFixed(2)} ms, torch ${torch.cnn_ms.toFixed(2)} ms, ratio ${(torch.cnn_ms / cnn).toFixed(2)}x`);
  const levels = [];
  for (const level of ['basic', 'extended'] as const) levels.push(`${level} ${(await graftStepMs(smallCnn({ inputShape: [3, 32, 32], classes: 10 }), 32, 20, threads, level)).toFixed(2)} ms`);
  console.log(`  ORT graph optimisation level, CNN step: all ${cnn.toFixed(2)} ms, ${levels.join(', ')}`);
  console.log(`  matmul: engine ${(mlpFlops / mlp / 1e6).toFixed(1)} GFLOP/s in the whole MLP step vs ORT MatMul alone ${(mlpFlops / mm / 1e6).toFixed(1)} GFLOP/s on the same shapes (${((mm / mlp) * 100).toFixed(0)}% of peak)`);
}
