import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraftError } from '../errors.ts';
import { decodeWav, encodeWav, loadAudio16k, resample } from './audio.ts';

// ---- WAV bytes built by hand, chunk by chunk -------------------------------------------------------

function chunk(id: string, body: Uint8Array, declared = body.length): Uint8Array {
  const out = new Uint8Array(8 + body.length + (body.length & 1));
  for (let i = 0; i < 4; i++) out[i] = id.charCodeAt(i);
  new DataView(out.buffer).setUint32(4, declared, true);
  out.set(body, 8);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

function riff(chunks: Uint8Array[]): Uint8Array {
  const body = concat(chunks);
  const head = new Uint8Array(12);
  head.set([0x52, 0x49, 0x46, 0x46], 0); // RIFF
  new DataView(head.buffer).setUint32(4, body.length + 4, true);
  head.set([0x57, 0x41, 0x56, 0x45], 8); // WAVE
  return concat([head, body]);
}

function fmtChunk(tag: number, channels: number, rate: number, bits: number, blockAlign = channels * Math.ceil(bits / 8)): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint16(0, tag, true); v.setUint16(2, channels, true); v.setUint32(4, rate, true);
  v.setUint32(8, rate * blockAlign, true); v.setUint16(12, blockAlign, true); v.setUint16(14, bits, true);
  return chunk('fmt ', b);
}

const KSDATAFORMAT_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

function extensibleFmt(subTag: number, channels: number, rate: number, containerBits: number, validBits: number, guidTail = KSDATAFORMAT_TAIL): Uint8Array {
  const b = new Uint8Array(40);
  const v = new DataView(b.buffer);
  const blockAlign = channels * containerBits / 8;
  v.setUint16(0, 0xfffe, true); v.setUint16(2, channels, true); v.setUint32(4, rate, true);
  v.setUint32(8, rate * blockAlign, true); v.setUint16(12, blockAlign, true); v.setUint16(14, containerBits, true);
  v.setUint16(16, 22, true); v.setUint16(18, validBits, true); v.setUint32(20, channels === 2 ? 3 : 4, true);
  v.setUint16(24, subTag, true); b.set(guidTail, 26);
  return chunk('fmt ', b);
}

const bytesOf = (xs: number[]) => Uint8Array.from(xs);
function le(values: number[], width: number, float = false): Uint8Array {
  const b = new Uint8Array(values.length * width);
  const v = new DataView(b.buffer);
  values.forEach((x, i) => {
    const o = i * width;
    if (float) width === 4 ? v.setFloat32(o, x, true) : v.setFloat64(o, x, true);
    else if (width === 2) v.setInt16(o, x, true);
    else if (width === 3) { b[o] = x & 0xff; b[o + 1] = (x >> 8) & 0xff; b[o + 2] = (x >> 16) & 0xff; }
    else v.setInt32(o, x, true);
  });
  return b;
}

const pcm16 = (values: number[], rate = 16000, channels = 1) => riff([fmtChunk(1, channels, rate, 16), chunk('data', le(values, 2))]);

function assertCode(fn: () => unknown, code: string, includes: (string | RegExp)[] = []): GraftError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof GraftError, `expected GraftError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const s of includes) {
      if (typeof s === 'string') assert.ok(e.message.includes(s), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(s)}`);
      else assert.match(e.message, s);
    }
    assert.ok(e.hint.length > 0);
    return e;
  }
  assert.fail(`expected ${code}`);
}

const close = (a: ArrayLike<number>, b: number[], tol = 0) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `sample ${i}: ${a[i]} vs ${b[i]}`);
};

// ---- decoder ---------------------------------------------------------------------------------------

test('decodeWav: 16-bit PCM mono, exact values', () => {
  const a = decodeWav(pcm16([0, 16384, -32768, 32767, -1], 22050));
  assert.equal(a.sampleRate, 22050);
  assert.equal(a.channels, 1);
  assert.equal(a.encoding, 'pcm16');
  close(a.samples, [0, 0.5, -1, 32767 / 32768, -1 / 32768]);
});

test('decodeWav: 8-bit unsigned PCM', () => {
  const a = decodeWav(riff([fmtChunk(1, 1, 8000, 8), chunk('data', bytesOf([0, 128, 255, 64, 192]))]));
  assert.equal(a.encoding, 'pcm8');
  close(a.samples, [-1, 0, 127 / 128, -0.5, 0.5]);
});

test('decodeWav: 24-bit and 32-bit integer PCM', () => {
  const a = decodeWav(riff([fmtChunk(1, 1, 48000, 24), chunk('data', le([-8388608, 0, 8388607, 4194304, -1], 3))]));
  assert.equal(a.encoding, 'pcm24');
  close(a.samples, [-1, 0, 8388607 / 8388608, 0.5, -1 / 8388608], 1e-9);
  const b = decodeWav(riff([fmtChunk(1, 1, 48000, 32), chunk('data', le([-2147483648, 1073741824, 2147483647], 4))]));
  assert.equal(b.encoding, 'pcm32');
  close(b.samples, [-1, 0.5, 1], 1e-7);
});

test('decodeWav: 32- and 64-bit float, values kept as stored', () => {
  const a = decodeWav(riff([fmtChunk(3, 1, 44100, 32), chunk('data', le([0.25, -0.75, 1.5], 4, true))]));
  assert.equal(a.encoding, 'float32');
  close(a.samples, [0.25, -0.75, 1.5]);
  const b = decodeWav(riff([fmtChunk(3, 1, 44100, 64), chunk('data', le([0.1, -0.2], 8, true))]));
  assert.equal(b.encoding, 'float64');
  close(b.samples, [Math.fround(0.1), Math.fround(-0.2)]);
  assertCode(() => decodeWav(riff([fmtChunk(3, 1, 44100, 32), chunk('data', le([0, NaN], 4, true))]), { name: 'nan.wav' }),
    'E_AUDIO_CORRUPT', ['nan.wav', 'sample 1 is NaN']);
});

test('decodeWav: stereo and 3-channel mix down to mono by averaging', () => {
  // frames: (16384, -16384), (16384, 16384), (-32768, 0)
  const a = decodeWav(pcm16([16384, -16384, 16384, 16384, -32768, 0], 16000, 2));
  assert.equal(a.channels, 2);
  close(a.samples, [0, 0.5, -0.5]);
  const b = decodeWav(riff([fmtChunk(3, 3, 16000, 32), chunk('data', le([0.3, 0.6, 0.9, -0.3, 0, 0], 4, true))]));
  assert.equal(b.channels, 3);
  close(b.samples, [0.6, -0.1], 1e-7);
});

test('decodeWav: WAVE_FORMAT_EXTENSIBLE PCM (24 valid bits in 32) and float, stereo', () => {
  // 24-bit samples left-justified in 32-bit containers
  const ints = [0x400000 << 8, 0x400000 << 8, -(0x800000 << 8), 0];
  const a = decodeWav(riff([extensibleFmt(1, 2, 96000, 32, 24), chunk('data', le(ints, 4))]));
  assert.equal(a.sampleRate, 96000);
  assert.equal(a.encoding, 'pcm32');
  close(a.samples, [0.5, -0.5]);
  const b = decodeWav(riff([extensibleFmt(3, 2, 48000, 32, 32), chunk('data', le([0.5, 0.25, -1, -0.5], 4, true))]));
  assert.equal(b.encoding, 'float32');
  close(b.samples, [0.375, -0.75]);
  // 24-bit extensible (3-byte containers)
  const c = decodeWav(riff([extensibleFmt(1, 1, 48000, 24, 20), chunk('data', le([4194304, -4194304], 3))]));
  close(c.samples, [0.5, -0.5]);
  // an ambisonic / vendor sub-format GUID is named, not guessed
  const other = [...KSDATAFORMAT_TAIL]; other[13] = 0x00;
  assertCode(() => decodeWav(riff([extensibleFmt(1, 1, 48000, 16, 16, other), chunk('data', le([0], 2))])), 'E_AUDIO_UNSUPPORTED', ['sub-format GUID 00000001-0000-0010-8000-00aa00389b00']);
});

test('decodeWav: G.711 mu-law and A-law', () => {
  const mu = decodeWav(riff([fmtChunk(7, 1, 8000, 8), chunk('data', bytesOf([0xff, 0x80, 0x00, 0x7f]))]));
  assert.equal(mu.encoding, 'mulaw');
  close(mu.samples, [0, 32124 / 32768, -32124 / 32768, 0]);
  const al = decodeWav(riff([fmtChunk(6, 1, 8000, 8), chunk('data', bytesOf([0xd5, 0x55, 0xaa, 0x2a]))]));
  assert.equal(al.encoding, 'alaw');
  close(al.samples, [8 / 32768, -8 / 32768, 32256 / 32768, -32256 / 32768]);
});

test('decodeWav: skips unknown chunks, honours the pad byte after odd-sized chunks', () => {
  const list = chunk('LIST', new TextEncoder().encode('INFOabc')); // 7 bytes + pad
  const fact = chunk('fact', le([3], 4));
  const junk = chunk('JUNK', new Uint8Array(5));
  const bytes = riff([junk, fmtChunk(1, 1, 16000, 16), list, fact, chunk('data', le([100, -200, 300], 2)), chunk('id3 ', bytesOf([1, 2, 3]))]);
  close(decodeWav(bytes).samples, [100 / 32768, -200 / 32768, 300 / 32768]);
  // odd-sized 8-bit data followed by another chunk: the pad byte is not a sample
  const odd = riff([fmtChunk(1, 1, 8000, 8), chunk('data', bytesOf([128, 255, 0])), chunk('cue ', new Uint8Array(4))]);
  close(decodeWav(odd).samples, [0, 127 / 128, -1]);
});

test('decodeWav: streaming placeholder sizes (0xFFFFFFFF data, 0 RIFF size) read to the end', () => {
  const bytes = riff([fmtChunk(1, 1, 16000, 16), chunk('data', le([1000, 2000], 2), 0xffffffff)]);
  new DataView(bytes.buffer).setUint32(4, 0, true);
  close(decodeWav(bytes).samples, [1000 / 32768, 2000 / 32768]);
});

test('decodeWav: truncated files are E_AUDIO_CORRUPT and name the file', () => {
  const full = pcm16(Array.from({ length: 100 }, (_, i) => i * 100));
  const dir = mkdtempSync(join(tmpdir(), 'graft-audio-'));
  try {
    const p = join(dir, 'cut.wav');
    writeFileSync(p, full.subarray(0, full.length - 51));
    assertCode(() => decodeWav(p), 'E_AUDIO_CORRUPT', [p, 'truncated', 'declares 200 bytes but only 149 follow']);
    writeFileSync(p, full.subarray(0, 30)); // cut inside the fmt chunk
    assertCode(() => decodeWav(p), 'E_AUDIO_CORRUPT', [p, 'truncated']);
    writeFileSync(p, full.subarray(0, 36)); // fmt complete, no data chunk
    assertCode(() => decodeWav(p), 'E_AUDIO_CORRUPT', [p, 'no data chunk']);
    writeFileSync(p, full.subarray(0, 8));
    assertCode(() => decodeWav(p), 'E_AUDIO_CORRUPT', [p, 'too short']);
    assertCode(() => decodeWav(join(dir, 'absent.wav')), 'E_FILE_MISSING', ['absent.wav']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('decodeWav: garbage and non-WAV RIFF are E_AUDIO_CORRUPT', () => {
  let seed = 12345;
  const garbage = Uint8Array.from({ length: 4096 }, () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
  assertCode(() => decodeWav(garbage, { name: 'noise.bin' }), 'E_AUDIO_CORRUPT', ['noise.bin', 'not "RIFF"']);
  assertCode(() => decodeWav(new TextEncoder().encode('ID3\x04 this is an mp3, honest')), 'E_AUDIO_CORRUPT', ['WAV buffer']);
  const avi = riff([chunk('data', new Uint8Array(4))]);
  avi.set([0x41, 0x56, 0x49, 0x20], 8); // "AVI "
  assertCode(() => decodeWav(avi), 'E_AUDIO_CORRUPT', ['"AVI "']);
  assertCode(() => decodeWav(riff([chunk('data', le([1], 2))])), 'E_AUDIO_CORRUPT', ['no fmt chunk']);
  assertCode(() => decodeWav(riff([fmtChunk(1, 2, 16000, 16, 3), chunk('data', new Uint8Array(6))])), 'E_AUDIO_CORRUPT', ['block align 3']);
  assertCode(() => decodeWav(riff([fmtChunk(1, 0, 16000, 16, 2), chunk('data', new Uint8Array(6))])), 'E_AUDIO_CORRUPT', ['0 channels']);
});

test('decodeWav: unsupported encodings say what arrived', () => {
  assertCode(() => decodeWav(riff([fmtChunk(2, 1, 8000, 4, 256), chunk('data', new Uint8Array(256))]), { name: 'adpcm.wav' }),
    'E_AUDIO_UNSUPPORTED', ['adpcm.wav', 'Microsoft ADPCM (format tag 0x0002)']);
  assertCode(() => decodeWav(riff([fmtChunk(0x11, 1, 8000, 4, 256), chunk('data', new Uint8Array(256))])), 'E_AUDIO_UNSUPPORTED', ['IMA ADPCM']);
  assertCode(() => decodeWav(riff([fmtChunk(0x55, 2, 44100, 0, 1), chunk('data', new Uint8Array(4))])), 'E_AUDIO_UNSUPPORTED', ['MP3']);
  assertCode(() => decodeWav(riff([fmtChunk(3, 1, 8000, 16), chunk('data', new Uint8Array(4))])), 'E_AUDIO_UNSUPPORTED', ['16-bit IEEE float']);
  const rifx = pcm16([0]);
  rifx.set([0x52, 0x49, 0x46, 0x58], 0);
  assertCode(() => decodeWav(rifx), 'E_AUDIO_UNSUPPORTED', ['RIFX']);
});

test('encodeWav round-trips through decodeWav (16/24-bit PCM, float, stereo)', () => {
  const x = Float32Array.from([0, 0.5, -0.5, 0.999, -1, 0.123]);
  close(decodeWav(encodeWav(x, 16000)).samples, Array.from(x), 1 / 32768);
  close(decodeWav(encodeWav(x, 16000, { bits: 24 })).samples, Array.from(x), 1 / 8388608);
  close(decodeWav(encodeWav(x, 16000, { bits: 32 })).samples, Array.from(x));
  const st = decodeWav(encodeWav(x, 44100, { channels: 2 }));
  assert.equal(st.channels, 2);
  close(st.samples, [0.25, 0.2495, -0.4385], 1 / 32768);
});

// ---- resampler -------------------------------------------------------------------------------------

const sine = (f: number, rate: number, n: number, amp = 0.5) => Float32Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * f * i) / rate));

/** Amplitude of the f-Hz component of x[start, start+n) (n a whole number of periods). */
function toneAmplitude(x: Float32Array, f: number, rate: number, start: number, n: number): number {
  let re = 0, im = 0;
  for (let i = 0; i < n; i++) {
    const ph = (2 * Math.PI * f * (start + i)) / rate;
    re += x[start + i]! * Math.cos(ph);
    im += x[start + i]! * Math.sin(ph);
  }
  return (2 * Math.hypot(re, im)) / n;
}

/** Frequency from the first and last upward zero crossings (linearly interpolated) in x[start, end). */
function zeroCrossingFrequency(x: Float32Array, rate: number, start: number, end: number): number {
  const ups: number[] = [];
  for (let i = start; i < end - 1; i++) {
    if (x[i]! < 0 && x[i + 1]! >= 0) ups.push(i + x[i]! / (x[i]! - x[i + 1]!));
  }
  return ((ups.length - 1) * rate) / (ups[ups.length - 1]! - ups[0]!);
}

const rms = (x: Float32Array, start: number, end: number) => {
  let s = 0;
  for (let i = start; i < end; i++) s += x[i]! ** 2;
  return Math.sqrt(s / (end - start));
};

test('resample: a 1 kHz sine at 44.1 kHz keeps its frequency and amplitude at 16 kHz', () => {
  const x = sine(1000, 44100, 44100);
  const y = resample(x, 44100, 16000);
  assert.equal(y.length, 16000);
  const f = zeroCrossingFrequency(y, 16000, 800, 15200);
  assert.ok(Math.abs(f - 1000) < 0.5, `frequency ${f}`);
  const amp = toneAmplitude(y, 1000, 16000, 1600, 12800);
  assert.ok(Math.abs(amp / 0.5 - 1) < 0.01, `amplitude ${amp}`);
  // the energy is at 1 kHz, not spread to neighbouring frequencies
  assert.ok(toneAmplitude(y, 1250, 16000, 1600, 12800) < 1e-3);
  // sample by sample, the middle matches the ideal 16 kHz sine
  const ideal = sine(1000, 16000, 16000);
  let err = 0;
  for (let i = 400; i < 15600; i++) err = Math.max(err, Math.abs(y[i]! - ideal[i]!));
  assert.ok(err < 0.005, `max error ${err}`);
});

test('resample: a 12 kHz tone at 48 kHz is suppressed below -40 dB at 16 kHz (no aliasing to 4 kHz)', () => {
  const x = sine(12000, 48000, 48000);
  const y = resample(x, 48000, 16000);
  assert.equal(y.length, 16000);
  const ratio = (rms(y, 800, 15200) * Math.SQRT2) / 0.5;
  const db = 20 * Math.log10(ratio);
  assert.ok(db < -40, `12 kHz leaked at ${db.toFixed(1)} dB`);
  assert.ok(toneAmplitude(y, 4000, 16000, 800, 14400) / 0.5 < 0.01);
  // naive decimation/linear interpolation folds it to 4 kHz at full level: the test can tell
  const naive = Float32Array.from({ length: 16000 }, (_, i) => x[i * 3]!);
  assert.ok(toneAmplitude(naive, 4000, 16000, 800, 14400) > 0.4);
});

test('resample: flat passband (100 Hz - 6 kHz within 1%) and exact DC', () => {
  for (const f of [100, 440, 2000, 4000, 6000]) {
    const y = resample(sine(f, 44100, 22050), 44100, 16000);
    const n = Math.round((16000 / f) * Math.floor((f * 6000) / 16000)); // whole periods within 6000 samples
    const amp = toneAmplitude(y, f, 16000, 1000, n);
    assert.ok(Math.abs(amp / 0.5 - 1) < 0.01, `${f} Hz: amplitude ${amp}`);
  }
  const dc = resample(new Float32Array(4800).fill(0.25), 48000, 16000);
  for (let i = 100; i < 1500; i++) assert.ok(Math.abs(dc[i]! - 0.25) < 1e-6);
});

test('resample: upsampling and odd rate pairs', () => {
  const up = resample(sine(1000, 16000, 16000), 16000, 44100);
  assert.equal(up.length, 44100);
  assert.ok(Math.abs(toneAmplitude(up, 1000, 44100, 4410, 35280) / 0.5 - 1) < 0.01);
  assert.ok(Math.abs(zeroCrossingFrequency(up, 44100, 2000, 42000) - 1000) < 0.5);
  // 44099 -> 16000 has 16000 phases: positions are rounded to 4096 of them
  const odd = resample(sine(1000, 44099, 44099), 44099, 16000);
  assert.equal(odd.length, 16000);
  assert.ok(Math.abs(toneAmplitude(odd, 1000, 16000, 1600, 12800) / 0.5 - 1) < 0.01);
  assert.ok(Math.abs(zeroCrossingFrequency(odd, 16000, 800, 15200) - 1000) < 0.5);
  assert.equal(resample(new Float32Array(0), 8000, 16000).length, 0);
  const same = Float32Array.from([1, 2, 3]);
  assert.deepEqual(resample(same, 16000, 16000), same);
  assertCode(() => resample(same, 44100.5, 16000), 'E_BAD_OPTION');
  assertCode(() => resample(same, 16000, 0), 'E_BAD_OPTION');
});

test('loadAudio16k: 44.1 kHz stereo 24-bit file comes back mono at 16 kHz', () => {
  const n = 44100;
  const inter = new Float32Array(2 * n);
  const s = sine(1000, 44100, n, 0.4);
  for (let i = 0; i < n; i++) { inter[2 * i] = s[i]!; inter[2 * i + 1] = s[i]! * 0.5; }
  const dir = mkdtempSync(join(tmpdir(), 'graft-audio-'));
  try {
    const p = join(dir, 'tone.wav');
    writeFileSync(p, encodeWav(inter, 44100, { bits: 24, channels: 2 }));
    const y = loadAudio16k(p);
    assert.equal(y.length, 16000);
    assert.ok(Math.abs(toneAmplitude(y, 1000, 16000, 1600, 12800) / 0.3 - 1) < 0.01);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const CARDS = '/usr/share/pocketsphinx/test/data/cards/001.wav';
test('decodeWav: real speech (Debian pocketsphinx-testdata)', { skip: existsSync(CARDS) ? false : `${CARDS} is absent: apt-get install pocketsphinx-testdata` }, () => {
  const a = decodeWav(CARDS);
  assert.equal(a.sampleRate, 16000);
  assert.equal(a.channels, 1);
  assert.equal(a.samples.length, (35096 - 44) / 2);
  assert.ok(rms(a.samples, 0, a.samples.length) > 0.005);
  assert.deepEqual(loadAudio16k(CARDS), a.samples);
});
