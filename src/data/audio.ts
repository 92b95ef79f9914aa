/**
 * Audio input: a WAV (RIFF/WAVE) decoder written in TypeScript and a band-limited resampler, so speech
 * backbones get mono float samples at 16 kHz whatever the file held.
 *
 * decodeWav reads:
 *  - integer PCM in 8-bit (unsigned), 16-, 24- and 32-bit (signed) containers, format tag 1;
 *  - IEEE float, 32- and 64-bit, format tag 3;
 *  - G.711 A-law (6) and mu-law (7), 8-bit;
 *  - the same encodings inside WAVE_FORMAT_EXTENSIBLE (0xFFFE): the sub-format GUID picks the encoding,
 *    and samples narrower than their container (e.g. 20 valid bits in 24) are read left-justified, as
 *    the format stores them.
 * Any channel count is mixed down to mono by averaging the channels. Chunks other than `fmt ` and `data`
 * (LIST, fact, cue, bext, JUNK...) are skipped, with the RIFF pad byte after odd-sized chunks honoured.
 * Integer encodings come out in -1..1 (int / 2^(bits-1), 8-bit as (b - 128) / 128); float files come
 * out as stored (not clipped), but a NaN or infinite sample is refused.
 *
 * Errors name the file: a truncated or malformed file is E_AUDIO_CORRUPT (a data chunk that claims more
 * bytes than the file holds, a missing fmt or data chunk, an impossible header), an encoding graft does
 * not decode (ADPCM, MP3-in-WAV, ...) is E_AUDIO_UNSUPPORTED and says which encoding arrived. A data
 * chunk whose size is the streaming placeholder 0xFFFFFFFF runs to the end of the file.
 *
 * resample() is a polyphase windowed-sinc (Kaiser) FIR resampler for any ratio of integer rates: the
 * lowpass cuts at `rolloff` x the lower Nyquist frequency (default 0.9, i.e. 7.2 kHz when going to
 * 16 kHz) and reaches about -80 dB by that Nyquist frequency, so tones above it are removed instead
 * of aliasing down, and the passband is flat to well under 1%.
 */
import { readFileSync } from 'node:fs';
import { GraftError, type ErrorCode } from '../errors.ts';

/** The rate speech backbones take. */
export const SPEECH_RATE = 16000;

export interface DecodedAudio {
  sampleRate: number;
  /** Channels in the file (the samples are already mixed down to mono). */
  channels: number;
  /** Mono samples, nominally -1..1. */
  samples: Float32Array;
  /** What the file held, e.g. 'pcm16', 'float32', 'mulaw'. */
  encoding: string;
}

export interface DecodeWavOptions {
  /** Name used in error messages when decoding a buffer (default 'WAV buffer'). */
  name?: string;
}

const E_AUDIO_CORRUPT: ErrorCode = 'E_AUDIO_CORRUPT';
const E_AUDIO_UNSUPPORTED: ErrorCode = 'E_AUDIO_UNSUPPORTED';

function corrupt(file: string, what: string): GraftError {
  return new GraftError(E_AUDIO_CORRUPT, `${file}: not a readable WAV file: ${what}`,
    'The file is truncated or not a RIFF/WAVE file; re-export it as WAV (PCM or float).', { file });
}

function unsupported(file: string, what: string): GraftError {
  return new GraftError(E_AUDIO_UNSUPPORTED, `${file}: unsupported WAV encoding: ${what}`,
    'graft reads PCM (8/16/24/32-bit), float (32/64-bit), A-law and mu-law WAV; convert the file, e.g. `ffmpeg -i in.wav -c:a pcm_s16le out.wav`.', { file });
}

/** Names of common WAVE format tags, for the message when one is not supported. */
const FORMAT_NAMES: Record<number, string> = {
  0x0001: 'PCM', 0x0002: 'Microsoft ADPCM', 0x0003: 'IEEE float', 0x0006: 'A-law', 0x0007: 'mu-law',
  0x0011: 'IMA ADPCM', 0x0016: 'ITU G.723 ADPCM', 0x0031: 'GSM 6.10', 0x0040: 'ITU G.721 ADPCM',
  0x0050: 'MPEG', 0x0055: 'MPEG Layer 3 (MP3)', 0x0092: 'Dolby AC-3 SPDIF', 0x00ff: 'AAC',
  0x0160: 'WMA v1', 0x0161: 'WMA v2', 0x0162: 'WMA Pro', 0x0163: 'WMA Lossless', 0x1610: 'MPEG-4 AAC (HE)',
  0x2000: 'Dolby AC-3', 0xf1ac: 'FLAC',
};

const formatName = (tag: number) => `${FORMAT_NAMES[tag] ?? 'unknown format'} (format tag 0x${tag.toString(16).padStart(4, '0')})`;

/** The 14 bytes after the format code in a KSDATAFORMAT_SUBTYPE_* GUID (00000000-0010-8000-00AA00389B71). */
const GUID_TAIL = [0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

interface Fmt {
  tag: number;
  channels: number;
  sampleRate: number;
  blockAlign: number;
  bits: number;
}

/** Decodes a WAV file (path) or WAV bytes to mono float samples. */
export function decodeWav(src: string | Uint8Array, opts: DecodeWavOptions = {}): DecodedAudio {
  let bytes: Uint8Array;
  let file: string;
  if (typeof src === 'string') {
    file = src;
    try {
      bytes = readFileSync(src);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new GraftError('E_FILE_MISSING', `cannot read audio file ${src}${code ? ` (${code})` : ''}`,
        'Check the path; it must be a readable file, not a folder.', { file: src });
    }
  } else if (src instanceof Uint8Array) {
    file = opts.name ?? 'WAV buffer';
    bytes = src;
  } else {
    throw new GraftError('E_BAD_OPTION', 'decodeWav takes a file path or a Uint8Array/Buffer', 'Pass the path of a .wav file or its bytes.');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag4 = (at: number) => String.fromCharCode(bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!);

  if (bytes.length < 12) throw corrupt(file, `${bytes.length} bytes, too short for a RIFF header`);
  const riff = tag4(0);
  if (riff === 'RIFX' || riff === 'RF64' || riff === 'BW64') {
    throw unsupported(file, `${riff} container (graft reads little-endian RIFF WAV up to 4 GB)`);
  }
  if (riff !== 'RIFF') throw corrupt(file, `starts with ${JSON.stringify(printable(bytes.subarray(0, 4)))}, not "RIFF"`);
  if (tag4(8) !== 'WAVE') throw corrupt(file, `RIFF form type is ${JSON.stringify(printable(bytes.subarray(8, 12)))}, not "WAVE"`);
  // The RIFF size is only trusted as an upper bound: streaming writers leave it 0 or 0xFFFFFFFF.
  const riffSize = view.getUint32(4, true);
  const end = riffSize >= 4 && riffSize + 8 <= bytes.length ? riffSize + 8 : bytes.length;

  let fmt: Fmt | null = null;
  let fmtExtra: Uint8Array | null = null;
  let data: Uint8Array | null = null;
  let pos = 12;
  while (pos + 8 <= end) {
    const id = tag4(pos);
    const size = view.getUint32(pos + 4, true);
    const body = pos + 8;
    if (id === 'data') {
      if (data) throw corrupt(file, 'two data chunks');
      let n = size;
      if (size === 0xffffffff) n = end - body; // streaming placeholder: the data runs to the end
      else if (body + size > bytes.length) {
        throw corrupt(file, `truncated: the data chunk declares ${size} bytes but only ${bytes.length - body} follow`);
      }
      data = bytes.subarray(body, body + n);
      pos = body + n + (n & 1);
      continue;
    }
    if (body + size > end) {
      if (id === 'fmt ' || !fmt || !data) throw corrupt(file, `truncated: the "${printable(bytes.subarray(pos, pos + 4))}" chunk declares ${size} bytes but only ${end - body} follow`);
      break; // a cut-off trailing chunk after fmt and data (e.g. metadata) loses nothing we read
    }
    if (id === 'fmt ') {
      if (fmt) throw corrupt(file, 'two fmt chunks');
      if (size < 16) throw corrupt(file, `fmt chunk is ${size} bytes, needs at least 16`);
      fmt = {
        tag: view.getUint16(body, true),
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        blockAlign: view.getUint16(body + 12, true),
        bits: view.getUint16(body + 14, true),
      };
      fmtExtra = bytes.subarray(body + 16, body + size);
    }
    pos = body + size + (size & 1); // chunks are padded to an even length
  }
  if (!fmt) throw corrupt(file, 'no fmt chunk');
  if (!data) throw corrupt(file, 'no data chunk');

  let tag = fmt.tag;
  let validBits = fmt.bits;
  if (tag === 0xfffe) {
    // WAVE_FORMAT_EXTENSIBLE: cbSize(2) validBits(2) channelMask(4) subFormat GUID(16)
    if (!fmtExtra || fmtExtra.length < 24) throw corrupt(file, 'WAVE_FORMAT_EXTENSIBLE fmt chunk is shorter than 40 bytes');
    const ev = new DataView(fmtExtra.buffer, fmtExtra.byteOffset, fmtExtra.byteLength);
    const vb = ev.getUint16(2, true);
    if (vb) validBits = vb;
    const guid = fmtExtra.subarray(8, 24);
    const sub = ev.getUint16(8, true);
    if (ev.getUint16(10, true) !== 0 || !GUID_TAIL.every((b, i) => guid[4 + i] === b)) {
      throw unsupported(file, `WAVE_FORMAT_EXTENSIBLE with sub-format GUID ${guidString(guid)}`);
    }
    tag = sub;
  }
  const { channels, sampleRate, blockAlign } = fmt;
  if (channels < 1) throw corrupt(file, 'fmt chunk says 0 channels');
  if (sampleRate < 1) throw corrupt(file, 'fmt chunk says a sample rate of 0');

  let kind: 'int' | 'uint8' | 'float' | 'alaw' | 'mulaw';
  if (tag === 1) kind = 'int';
  else if (tag === 3) kind = 'float';
  else if (tag === 6) kind = 'alaw';
  else if (tag === 7) kind = 'mulaw';
  else throw unsupported(file, formatName(tag));

  if (blockAlign < channels || blockAlign % channels !== 0) {
    throw corrupt(file, `block align ${blockAlign} does not fit ${channels} channel(s) of whole bytes`);
  }
  const width = blockAlign / channels; // container bytes per sample
  if (kind === 'int') {
    if (width > 4) throw unsupported(file, `${width * 8}-bit integer PCM`);
    if (validBits < 1 || validBits > width * 8) throw corrupt(file, `${validBits} bits per sample in a ${width}-byte container`);
    if (width === 1) kind = 'uint8';
  } else if (kind === 'float') {
    if (width !== 4 && width !== 8) throw unsupported(file, `${width * 8}-bit IEEE float`);
  } else if (width !== 1) {
    throw unsupported(file, `${width * 8}-bit ${kind === 'alaw' ? 'A-law' : 'mu-law'}`);
  }

  // A partial last frame (a writer bug, or data cut on a frame boundary's side) is dropped.
  const frames = Math.floor(data.length / blockAlign);
  const out = new Float32Array(frames);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const read = sampleReader(kind, width, dv, data);
  const inv = 1 / channels;
  for (let f = 0, o = 0; f < frames; f++) {
    let s = 0;
    for (let c = 0; c < channels; c++, o += width) s += read(o);
    out[f] = channels === 1 ? s : s * inv;
  }
  if (kind === 'float') {
    for (let i = 0; i < frames; i++) {
      if (!Number.isFinite(out[i]!)) throw corrupt(file, `sample ${i} is ${out[i]} (float data must be finite)`);
    }
  }
  const encoding = kind === 'uint8' ? 'pcm8' : kind === 'int' ? `pcm${width * 8}` : kind === 'float' ? `float${width * 8}` : kind;
  return { sampleRate, channels, samples: out, encoding };
}

function sampleReader(kind: 'int' | 'uint8' | 'float' | 'alaw' | 'mulaw', width: number, dv: DataView, data: Uint8Array): (at: number) => number {
  switch (kind) {
    case 'uint8': return (o) => (data[o]! - 128) / 128;
    case 'alaw': return (o) => ALAW[data[o]!]!;
    case 'mulaw': return (o) => MULAW[data[o]!]!;
    case 'float': return width === 4 ? (o) => dv.getFloat32(o, true) : (o) => dv.getFloat64(o, true);
    case 'int':
      if (width === 2) return (o) => dv.getInt16(o, true) / 32768;
      if (width === 3) return (o) => ((data[o]! | (data[o + 1]! << 8) | (data[o + 2]! << 16)) << 8 >> 8) / 8388608;
      return (o) => dv.getInt32(o, true) / 2147483648;
  }
}

/** G.711 decode tables, scaled to -1..1 (A-law: 13-bit range, mu-law: 14-bit range). */
const ALAW = new Float32Array(256);
const MULAW = new Float32Array(256);
for (let i = 0; i < 256; i++) {
  const a = i ^ 0x55;
  const seg = (a & 0x70) >> 4;
  let t = (a & 0x0f) << 4;
  t = seg === 0 ? t + 8 : seg === 1 ? t + 0x108 : (t + 0x108) << (seg - 1);
  ALAW[i] = ((a & 0x80) ? t : -t) / 32768;
  const u = ~i & 0xff;
  const m = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  MULAW[i] = ((u & 0x80) ? 0x84 - m : m - 0x84) / 32768;
}

function printable(b: Uint8Array): string {
  return Array.from(b, (c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`)).join('');
}

function guidString(g: Uint8Array): string {
  const h = (i: number, n: number, le: boolean) => {
    const s = Array.from(g.subarray(i, i + n), (x) => x.toString(16).padStart(2, '0'));
    return (le ? s.reverse() : s).join('');
  };
  return `${h(0, 4, true)}-${h(4, 2, true)}-${h(6, 2, true)}-${h(8, 2, false)}-${h(10, 6, false)}`;
}

// ---- resampling ----------------------------------------------------------------------------------

export interface ResampleOptions {
  /** Lowpass cutoff as a fraction of the lower rate's Nyquist frequency (default 0.9). */
  rolloff?: number;
  /** Zero crossings of the sinc kept on each side (default 24): longer is sharper and slower. */
  zeroCrossings?: number;
  /** Kaiser window beta (default 8.6, about 80 dB stopband). */
  beta?: number;
}

const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);

/** Zeroth-order modified Bessel function of the first kind (power series). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 200; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/** The most filter phases tabulated; rate pairs with more round the position to one of these. */
const MAX_TABLE_PHASES = 4096;

/**
 * Resamples `x` from rate `from` to rate `to` (both positive integers, Hz) with a windowed-sinc
 * lowpass at `rolloff` x min(from, to) / 2. Output length is ceil(x.length * to / from); the signal
 * is taken as zero outside x.
 */
export function resample(x: Float32Array, from: number, to: number, opts: ResampleOptions = {}): Float32Array {
  for (const [k, v] of [['from', from], ['to', to]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new GraftError('E_BAD_OPTION', `resample: ${k} rate must be a positive integer (Hz), got ${v}`, 'Pass sample rates in Hz, e.g. 44100 and 16000.');
  }
  const rolloff = opts.rolloff ?? 0.9;
  const zc = opts.zeroCrossings ?? 24;
  const beta = opts.beta ?? 8.6;
  if (!(rolloff > 0 && rolloff <= 1)) throw new GraftError('E_BAD_OPTION', `resample: rolloff must be in (0, 1], got ${rolloff}`, 'Use e.g. 0.9.');
  if (!(zc >= 1)) throw new GraftError('E_BAD_OPTION', `resample: zeroCrossings must be >= 1, got ${zc}`, 'Use e.g. 24.');
  if (from === to) return Float32Array.from(x);
  const g = gcd(from, to);
  const up = to / g; // output n sits at input position n * down / up
  const down = from / g;
  const outLen = Math.ceil((x.length * up) / down);
  const out = new Float32Array(outLen);
  if (x.length === 0) return out;

  // Cutoff in cycles per input sample; the kernel is 2fc sinc(2fc t) windowed over |t| <= half.
  const fc = (rolloff * Math.min(from, to)) / 2 / from;
  const half = zc / (2 * fc);
  const K = Math.ceil(half);
  const taps = 2 * K; // input offsets j = -K+1 .. K around floor(position)
  const i0b = besselI0(beta);
  const kernel = (t: number): number => {
    if (t <= -half || t >= half) return 0;
    const r = t / half;
    const w = besselI0(beta * Math.sqrt(1 - r * r)) / i0b;
    const a = 2 * Math.PI * fc * t;
    return 2 * fc * (a === 0 ? 1 : Math.sin(a) / a) * w;
  };
  // Taps for P phases (P = up, or for odd rate pairs 4096 phases with the position rounded to the
  // nearest, a timing error under 1/8192 input sample), each normalised to sum to 1 so DC passes
  // exactly at every phase.
  const P = Math.min(up, MAX_TABLE_PHASES);
  const table = new Float64Array(P * taps);
  for (let p = 0; p < P; p++) {
    const row = table.subarray(p * taps, (p + 1) * taps);
    let s = 0;
    for (let j = 0; j < taps; j++) s += row[j] = kernel(j - K + 1 - p / P);
    for (let j = 0; j < taps; j++) row[j]! /= s;
  }

  const n = x.length;
  for (let o = 0; o < outLen; o++) {
    const num = o * down;
    let base = Math.floor(num / up);
    let phase = num - base * up;
    if (P !== up) {
      phase = Math.round((phase * P) / up);
      if (phase === P) { base++; phase = 0; }
    }
    const hOff = phase * taps;
    const start = base - K + 1;
    const jLo = Math.max(0, -start);
    const jHi = Math.min(taps, n - start);
    let acc = 0;
    for (let j = jLo; j < jHi; j++) acc += table[hOff + j]! * x[start + j]!;
    out[o] = acc;
  }
  return out;
}

/** Decodes a WAV file, mixes it to mono and resamples it to 16 kHz. */
export function loadAudio16k(path: string): Float32Array {
  const a = decodeWav(path);
  return a.sampleRate === SPEECH_RATE ? a.samples : resample(a.samples, a.sampleRate, SPEECH_RATE);
}

export interface EncodeWavOptions {
  /** 16 or 24 (integer PCM) or 32 (IEEE float); default 16. */
  bits?: 16 | 24 | 32;
  /** Interleaved channels in `samples` (default 1). */
  channels?: number;
}

/**
 * Encodes samples (interleaved when channels > 1, nominally -1..1) as a WAV file: 16- or 24-bit PCM
 * (clipped to the integer range) or 32-bit float.
 */
export function encodeWav(samples: Float32Array, sampleRate: number, opts: EncodeWavOptions = {}): Uint8Array {
  const bits = opts.bits ?? 16;
  const channels = opts.channels ?? 1;
  if (![16, 24, 32].includes(bits)) throw new GraftError('E_BAD_OPTION', `encodeWav: bits must be 16, 24 or 32, got ${bits}`, 'Use 16 (PCM), 24 (PCM) or 32 (float).');
  if (!Number.isInteger(channels) || channels < 1 || samples.length % channels !== 0) {
    throw new GraftError('E_BAD_OPTION', `encodeWav: ${samples.length} samples do not split into ${channels} channel(s)`, 'Pass interleaved samples, a whole number of frames.');
  }
  if (!Number.isInteger(sampleRate) || sampleRate < 1) throw new GraftError('E_BAD_OPTION', `encodeWav: sample rate must be a positive integer, got ${sampleRate}`, 'Use e.g. 16000.');
  const width = bits / 8;
  const dataBytes = samples.length * width;
  const out = new Uint8Array(44 + dataBytes + (dataBytes & 1));
  const v = new DataView(out.buffer);
  const str = (at: number, s: string) => { for (let i = 0; i < 4; i++) out[at + i] = s.charCodeAt(i); };
  str(0, 'RIFF'); v.setUint32(4, out.length - 8, true); str(8, 'WAVE');
  str(12, 'fmt '); v.setUint32(16, 16, true);
  v.setUint16(20, bits === 32 ? 3 : 1, true); v.setUint16(22, channels, true);
  v.setUint32(24, sampleRate, true); v.setUint32(28, sampleRate * channels * width, true);
  v.setUint16(32, channels * width, true); v.setUint16(34, bits, true);
  str(36, 'data'); v.setUint32(40, dataBytes, true);
  for (let i = 0, o = 44; i < samples.length; i++, o += width) {
    const s = samples[i]!;
    if (bits === 32) { v.setFloat32(o, s, true); continue; }
    const max = bits === 16 ? 32767 : 8388607;
    const q = Math.max(-max - 1, Math.min(max, Math.round(s * (max + 1))));
    if (bits === 16) v.setInt16(o, q, true);
    else { out[o] = q & 0xff; out[o + 1] = (q >> 8) & 0xff; out[o + 2] = (q >> 16) & 0xff; }
  }
  return out;
}
