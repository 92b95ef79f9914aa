/**
 * Few-shot text classification: SetFit (contrastive fine-tuning of the encoder on pairs, then a head) against
 * plain fine-tuning (head first, then every layer with layer-wise decayed rates), at 8 and 16 labelled
 * examples per class, on real emails (SpamAssassin spam vs ham), seeded draws, one shared test set.
 * Usage: npx tsx bench/setfit.ts [--encoder DIR|use-lite] [--shots 8,16] [--seeds 3] [--test 200] [--threads 2]
 */
import { parseArgs } from 'node:util';
import { loadTextEncoder } from '../src/backbones/textenc.ts';
import { spamEmails } from '../src/data/spam.ts';
import { shuffle } from '../src/data/split.ts';
import { encoderNetwork, tokenRows } from '../src/text/encoder-net.ts';
import { setFit } from '../src/text/setfit.ts';
import { Learner } from '../src/train/learner.ts';
import { planStages, runStages } from '../src/train/policies.ts';
import { argmaxRows, accuracy } from '../src/train/metrics.ts';
import { Session } from '../src/runtime/session.ts';
import { encoderModelGraph } from '../src/text/encoder-net.ts';
import { runTokens } from '../src/backbones/textenc.ts';

const { values: v } = parseArgs({ options: { encoder: { type: 'string' }, shots: { type: 'string' }, seeds: { type: 'string' }, test: { type: 'string' }, threads: { type: 'string' } } });
let encoderId = v.encoder ?? new URL('../fixtures/textenc/tiny-bert', import.meta.url).pathname;
if (encoderId === 'use-lite') encoderId = await (await import('../src/backbones/use.ts')).useLiteEncoder();
const shots = (v.shots ?? '8,16').split(',').map(Number);
const seeds = Number(v.seeds ?? 3);
const nTest = Number(v.test ?? 200);
const threads = Number(v.threads ?? 2);
const enc = await loadTextEncoder(encoderId, { maxLength: 128 });
const all = spamEmails().map((e) => ({ text: e.text.slice(0, 1000), y: e.label === 'spam' ? 1 : 0 }));
const order = Array.from(shuffle(Int32Array.from(all.keys()), 12345), (i) => all[i]!);
const test = [...order.filter((e) => e.y === 0).slice(0, nTest / 2), ...order.filter((e) => e.y === 1).slice(0, nTest / 2)];
const pool = order.filter((e) => !test.includes(e));
const testTok = enc.tokenizer.encode(test.map((e) => e.text));
const testY = Int32Array.from(test, (e) => e.y);
const seqLen = 64;
console.log(`encoder ${encoderId} (hidden ${enc.hidden}); SpamAssassin spam vs ham, test ${test.length}, ${seqLen} tokens for training, threads ${threads}`);

async function testAccuracy(net: ReturnType<typeof encoderNetwork>, w: Map<string, Float32Array>): Promise<number> {
  const s = await Session.create(encoderModelGraph(enc, net, (n) => w.get(n)!), { threads });
  try {
    const p = (await runTokens(s, enc.inputs, enc.tokenizer.padId, testTok, ['probabilities'])).get('probabilities')!.x;
    return accuracy(testY, argmaxRows(p, 2));
  } finally {
    await s.dispose();
  }
}

const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
const sd = (a: number[]) => Math.sqrt(mean(a.map((x) => (x - mean(a)) ** 2)));
for (const k of shots) {
  const res: Record<string, number[]> = { setfit: [], finetune: [], head: [] };
  const secs: Record<string, number[]> = { setfit: [], finetune: [], head: [] };
  for (let s = 0; s < seeds; s++) {
    const draw = (label: number) => Array.from(shuffle(Int32Array.from(pool.filter((e) => e.y === label).keys()), 100 + s), (i) => pool.filter((e) => e.y === label)[i]!).slice(0, k);
    const train = [...draw(0), ...draw(1)];
    const tok = enc.tokenizer.encode(train.map((e) => e.text));
    const y = Int32Array.from(train, (e) => e.y);
    let t = performance.now();
    const sf = await setFit(enc, tok, y, 2, seqLen, { seed: s, threads, lr: 2e-5 * (enc.hidden < 64 ? 50 : 1) });
    secs['setfit']!.push((performance.now() - t) / 1000);
    res['setfit']!.push(await testAccuracy(sf.net, sf.weights));
    // Plain fine-tuning: the head alone (a probe of the frozen encoder), then every layer.
    t = performance.now();
    const net = encoderNetwork(enc, { classes: 2, seqLen, pooling: 'mean', seed: s });
    const l = new Learner({ net, train: { x: tokenRows(tok, seqLen, net.rows, enc.tokenizer.padId), y, n: y.length }, batchSize: 16, seed: s, threads, optimizer: { kind: 'adamw', weightDecay: 0.01 } });
    const stages = planStages(net.groups, 'finetune', { epochs: 10, lr: 2e-5 * (enc.hidden < 64 ? 50 : 1), lrMult: 0.9, freezeEpochs: 10, schedule: { kind: 'linear-warmup', warmup: 2, decay: 'linear' } });
    l.freezeTo(net.groups.length - 1);
    await l.fit(stages[0]!.epochs, { lr: stages[0]!.lr, schedule: stages[0]!.schedule });
    const headW = l.snapshotWeights();
    secs['head']!.push((performance.now() - t) / 1000);
    res['head']!.push(await testAccuracy(net, headW));
    await runStages(l, stages.slice(1), () => {}, { fallback: false });
    secs['finetune']!.push((performance.now() - t) / 1000);
    res['finetune']!.push(await testAccuracy(net, l.getWeights()));
    await l.dispose();
    console.log(`  ${k}/class seed ${s}: setfit ${res['setfit']!.at(-1)!.toFixed(3)} (contrastive loss ${sf.contrastiveLoss.first.toFixed(3)} -> ${sf.contrastiveLoss.last.toFixed(3)}, ${sf.pairs} pairs), head only ${res['head']!.at(-1)!.toFixed(3)}, fine-tune ${res['finetune']!.at(-1)!.toFixed(3)}`);
  }
  for (const m of ['setfit', 'finetune', 'head']) {
    console.log(`${k} per class: ${m.padEnd(8)} accuracy ${mean(res[m]!).toFixed(3)} +- ${sd(res[m]!).toFixed(3)} over ${seeds} draws, ${mean(secs[m]!).toFixed(1)} s`);
  }
}
