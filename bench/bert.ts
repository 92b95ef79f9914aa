/**
 * BERT fine-tuning step, side by side in one run at equal thread counts: graft's compiled train step
 * (forward, backward and AdamW in one ORT run, through the Learner) against the same model in PyTorch
 * (bench/torch_bert.py, Debian python3-torch). A 4-layer, 256-wide encoder (4 heads, intermediate 1024,
 * vocab 30522, 512 positions), batch 16, length 128 with padding, 2 classes, dropout 0.1.
 * Usage: npm run bench:bert [-- --threads 1,2 --steps 5 --dropout 0.1 --rounds 1]
 * Each round runs the PyTorch side, then graft's; with a busy machine, more rounds and the median ratio help, and
 * the CPU time per step (all threads of the process) is printed beside the wall time.
 */
import { spawnSync } from 'node:child_process';
import { Learner } from '../src/train/learner.ts';
import { rng } from '../src/rng.ts';
import { type BertConfig, bertEncoder, encodeTokens } from '../src/text/bert.ts';

const opt = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const threadList = opt('threads', '1,2').split(',').map(Number);
const steps = Number(opt('steps', '5'));
const dropout = Number(opt('dropout', '0.1'));
const rounds = Number(opt('rounds', '1'));
const python = process.env['GRAFT_PYTHON'] ?? '/usr/bin/python3';

const B = 16;
const L = 128;
const config: BertConfig = {
  vocabSize: 30522, hidden: 256, layers: 4, heads: 4, intermediate: 1024, seqLen: L, maxPositions: 512, classes: 2,
  dropout, attentionDropout: dropout, seed: 0,
};

/** The batch: random ids, lengths 128 down to 65 (the same pattern as torch_bert.py), labels alternating. */
function batch(): { x: Float32Array; y: Int32Array } {
  const r = rng(5);
  const seqs = Array.from({ length: B }, (_, i) => Array.from({ length: L - ((i * 7) % 64) }, () => 1 + Math.floor(r() * (config.vocabSize - 1))));
  return { x: encodeTokens(seqs, L), y: Int32Array.from({ length: B }, (_, i) => i % 2) };
}

async function graftStepMs(threads: number): Promise<{ ms: number; cpuMs: number; compileMs: number }> {
  const { x, y } = batch();
  const t0 = performance.now();
  const l = new Learner({ net: bertEncoder(config), train: { x, y, n: B }, batchSize: B, threads, optimizer: { kind: 'adamw', weightDecay: 0.01 } });
  l.lrs = l.net.groups.map(() => 1e-4);
  await l.step(x, y, [0]);
  const compileMs = performance.now() - t0;
  await l.step(x, y, [1]);
  const t = performance.now();
  const cpu = process.cpuUsage();
  for (let i = 0; i < steps; i++) await l.step(x, y, [i + 2]);
  const ms = (performance.now() - t) / steps;
  const used = process.cpuUsage(cpu);
  await l.dispose();
  return { ms, cpuMs: (used.user + used.system) / 1000 / steps, compileMs };
}

console.log(`BERT fine-tuning step: 4 layers, hidden 256, 4 heads, intermediate 1024, vocab ${config.vocabSize}, batch ${B}, length ${L}, dropout ${dropout}, AdamW`);
console.log('(ratio = torch ms / graft ms; > 1 means graft is faster)');
for (const threads of threadList) {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const py = spawnSync(python, ['bench/torch_bert.py', String(threads), String(steps), String(dropout)], { encoding: 'utf8', env });
    if (py.status !== 0) {
      console.error(`PyTorch side failed (install Debian python3-torch): ${py.stderr.trim().split('\n').at(-1)}`);
      process.exit(1);
    }
    const torch = JSON.parse(py.stdout.trim().split('\n').at(-1)!) as { torch: string; step_ms: number; cpu_ms: number };
    const g = await graftStepMs(threads);
    ratios.push(torch.step_ms / g.ms);
    console.log(`threads=${threads} (torch ${torch.torch}): graft ${g.ms.toFixed(1)} ms/step (first step incl. compile ${(g.compileMs / 1000).toFixed(1)} s), `
      + `torch ${torch.step_ms.toFixed(1)} ms/step, ratio ${(torch.step_ms / g.ms).toFixed(2)}x; `
      + `CPU time per step: graft ${g.cpuMs.toFixed(0)} ms, torch ${torch.cpu_ms.toFixed(0)} ms, ratio ${(torch.cpu_ms / g.cpuMs).toFixed(2)}x`);
  }
  if (rounds > 1) {
    const r = ratios.sort((a, b) => a - b);
    const median = rounds % 2 ? r[(rounds - 1) / 2]! : (r[rounds / 2 - 1]! + r[rounds / 2]!) / 2;
    console.log(`threads=${threads}: median wall-time ratio over ${rounds} rounds ${median.toFixed(2)}x`);
  }
}
