/**
 * Seeded image augmentation (torchvision semantics): horizontal flip, RandomResizedCrop with an
 * antialiased bilinear resample, and colour jitter (brightness, contrast, saturation).
 *
 * Images are HWC uint8 (as decodeImage returns) or CHW float32 (as prepareImage returns); every
 * function returns a new image of the same type and layout. A seed gives the same output twice;
 * derive one per example and epoch with augmentSeed(seed, epoch, index).
 *
 * Flips and crops are linear, so they can run before or after normalisation. Colour jitter assumes
 * intensities (uint8 0..255, or un-normalised floats such as 0..1): run it before normalising.
 * (augment and colorJitter hand back the input's data unchanged when no step applies.)
 */
import { GraftError } from '../errors.ts';
import { rng } from '../rng.ts';
import { mixSeed } from '../train/init.ts';

export type Pixels = Uint8Array | Float32Array;

export interface AugImage<T extends Pixels = Pixels> {
  width: number;
  height: number;
  data: T;
  /** Default: data.length / (width * height). */
  channels?: number;
  /** Default: 'hwc' for Uint8Array, 'chw' for Float32Array. */
  layout?: 'hwc' | 'chw';
}

/** A resolved image: channels, layout and strides known. */
interface View<T extends Pixels> {
  w: number;
  h: number;
  c: number;
  layout: 'hwc' | 'chw';
  data: T;
  /** offset of channel k: k * chanStride; pixel (x, y): y * rowStride + x * pixStride. */
  chanStride: number;
  rowStride: number;
  pixStride: number;
}

function view<T extends Pixels>(img: AugImage<T>): View<T> {
  const { width: w, height: h, data } = img;
  if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0)) {
    throw new GraftError('E_BAD_OPTION', `image size must be positive integers, got ${w}x${h}`, 'Pass { width, height, data }.');
  }
  const c = img.channels ?? data.length / (w * h);
  if (!(Number.isInteger(c) && c > 0 && data.length === w * h * c)) {
    throw new GraftError('E_BAD_OPTION', `image data holds ${data.length} values, not ${w}x${h} x channels`, 'Check width, height and channels.');
  }
  const layout = img.layout ?? (data instanceof Float32Array ? 'chw' : 'hwc');
  return layout === 'hwc'
    ? { w, h, c, layout, data, chanStride: 1, rowStride: w * c, pixStride: c }
    : { w, h, c, layout, data, chanStride: w * h, rowStride: w, pixStride: 1 };
}

function alloc<T extends Pixels>(like: T, n: number): T {
  return (like instanceof Float32Array ? new Float32Array(n) : new Uint8Array(n)) as T;
}

function make<T extends Pixels>(v: View<T>, w: number, h: number, data: T): View<T> {
  return view({ width: w, height: h, data, channels: v.c, layout: v.layout });
}

function out<T extends Pixels>(v: View<T>): AugImage<T> & { channels: number; layout: 'hwc' | 'chw' } {
  return { width: v.w, height: v.h, data: v.data, channels: v.c, layout: v.layout };
}

/** Mirrors left and right. */
export function hflip<T extends Pixels>(img: AugImage<T>): AugImage<T> & { channels: number; layout: 'hwc' | 'chw' } {
  const s = view(img);
  const d = make(s, s.w, s.h, alloc(s.data, s.data.length));
  for (let k = 0; k < s.c; k++) {
    for (let y = 0; y < s.h; y++) {
      const row = k * s.chanStride + y * s.rowStride;
      for (let x = 0; x < s.w; x++) d.data[row + x * s.pixStride] = s.data[row + (s.w - 1 - x) * s.pixStride]!;
    }
  }
  return out(d);
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Weights of a 1-D antialiased bilinear (triangle) resample of [start, start + len) of an axis of
 * `size` samples onto `n` samples; PIL's BILINEAR (the filter widens by the scale when shrinking).
 */
function axisWeights(size: number, start: number, len: number, n: number): { first: Int32Array; count: Int32Array; w: Float64Array; k: number } {
  const scale = len / n;
  const fs = Math.max(scale, 1);
  const support = fs; // triangle support 1, widened
  const k = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(n);
  const count = new Int32Array(n);
  const w = new Float64Array(n * k);
  for (let o = 0; o < n; o++) {
    const center = start + (o + 0.5) * scale;
    const lo = Math.max(Math.floor(center - support + 0.5), 0);
    const hi = Math.min(Math.floor(center + support + 0.5), size);
    let sum = 0;
    let m = 0;
    for (let i = lo; i < hi && m < k; i++, m++) {
      const t = 1 - Math.abs((i - center + 0.5) / fs);
      const v = t > 0 ? t : 0;
      w[o * k + m] = v;
      sum += v;
    }
    if (sum > 0) for (let j = 0; j < m; j++) w[o * k + j]! /= sum;
    else {
      // degenerate (cannot happen for a box inside the image): nearest sample
      const i = Math.min(Math.max(Math.floor(center), 0), size - 1);
      w[o * k] = 1;
      first[o] = i;
      count[o] = 1;
      continue;
    }
    first[o] = lo;
    count[o] = m;
  }
  return { first, count, w, k };
}

/**
 * Crops `box` (pixels; may be fractional) out of the image and resamples it to outW x outH with
 * antialiased bilinear weights (torchvision's resized_crop with antialias, PIL's BILINEAR). A box
 * covering the whole image at the same size is the identity.
 */
export function resizedCrop<T extends Pixels>(img: AugImage<T>, box: Box, outW: number, outH: number): AugImage<T> & { channels: number; layout: 'hwc' | 'chw' } {
  const s = view(img);
  if (!(Number.isInteger(outW) && Number.isInteger(outH) && outW > 0 && outH > 0)) {
    throw new GraftError('E_BAD_OPTION', `crop output size must be positive integers, got ${outW}x${outH}`, 'Use e.g. 224x224.');
  }
  if (!(box.width > 0 && box.height > 0 && box.left >= 0 && box.top >= 0 && box.left + box.width <= s.w + 1e-9 && box.top + box.height <= s.h + 1e-9)) {
    throw new GraftError('E_BAD_OPTION', `crop box ${JSON.stringify(box)} is not inside the ${s.w}x${s.h} image`, 'Sample boxes with randomResizedCropBox.');
  }
  const wx = axisWeights(s.w, box.left, box.width, outW);
  const wy = axisWeights(s.h, box.top, box.height, outH);
  const y0 = wy.first[0]!;
  const y1 = wy.first[outH - 1]! + wy.count[outH - 1]!;
  const rows = y1 - y0;
  const tmp = new Float64Array(rows * outW);
  const d = make(s, outW, outH, alloc(s.data, outW * outH * s.c));
  const isByte = d.data instanceof Uint8Array;
  for (let c = 0; c < s.c; c++) {
    const base = c * s.chanStride;
    // horizontal pass over the rows the vertical pass needs
    for (let r = 0; r < rows; r++) {
      const row = base + (y0 + r) * s.rowStride;
      for (let o = 0; o < outW; o++) {
        let acc = 0;
        const f = wx.first[o]!;
        const wo = o * wx.k;
        for (let j = 0, m = wx.count[o]!; j < m; j++) acc += wx.w[wo + j]! * s.data[row + (f + j) * s.pixStride]!;
        tmp[r * outW + o] = acc;
      }
    }
    const dbase = c * d.chanStride;
    for (let o = 0; o < outH; o++) {
      const f = wy.first[o]! - y0;
      const wo = o * wy.k;
      const m = wy.count[o]!;
      for (let x = 0; x < outW; x++) {
        let acc = 0;
        for (let j = 0; j < m; j++) acc += wy.w[wo + j]! * tmp[(f + j) * outW + x]!;
        d.data[dbase + o * d.rowStride + x * d.pixStride] = isByte ? Math.min(255, Math.max(0, Math.round(acc))) : acc;
      }
    }
  }
  return out(d);
}

export interface ResizedCropOptions {
  /** Range of the crop's area as a fraction of the image's (default [0.08, 1]). */
  scale?: [number, number];
  /** Range of the crop's aspect ratio, width / height (default [3/4, 4/3]); sampled log-uniformly. */
  ratio?: [number, number];
}

function range(name: string, r: [number, number] | undefined, dflt: [number, number], max: number): [number, number] {
  const v = r ?? dflt;
  if (!(Array.isArray(v) && v.length === 2 && v[0] > 0 && v[0] <= v[1] && v[1] <= max && Number.isFinite(v[1]))) {
    throw new GraftError('E_BAD_OPTION', `${name} must be [lo, hi] with 0 < lo <= hi${Number.isFinite(max) ? ` <= ${max}` : ''}, got ${JSON.stringify(v)}`, `Use e.g. ${JSON.stringify(dflt)}.`);
  }
  return v;
}

/**
 * The crop box of torchvision's RandomResizedCrop.get_params: up to 10 tries of an area in
 * scale x image area and a log-uniform aspect ratio; then a centre crop clamped to the ratio range.
 */
export function randomResizedCropBox(width: number, height: number, opts: ResizedCropOptions, rand: () => number): Box {
  const scale = range('scale', opts.scale, [0.08, 1], 1);
  const ratio = range('ratio', opts.ratio, [3 / 4, 4 / 3], Infinity);
  const area = width * height;
  const lr0 = Math.log(ratio[0]);
  const lr1 = Math.log(ratio[1]);
  for (let t = 0; t < 10; t++) {
    const target = area * (scale[0] + (scale[1] - scale[0]) * rand());
    const aspect = Math.exp(lr0 + (lr1 - lr0) * rand());
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = Math.floor(rand() * (height - h + 1));
      const left = Math.floor(rand() * (width - w + 1));
      return { left, top, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/** RandomResizedCrop: a random box (randomResizedCropBox) resampled to size = [height, width]. */
export function randomResizedCrop<T extends Pixels>(img: AugImage<T>, size: [number, number], opts: ResizedCropOptions, rand: () => number): AugImage<T> & { channels: number; layout: 'hwc' | 'chw' } {
  const s = view(img);
  const box = randomResizedCropBox(s.w, s.h, opts, rand);
  return resizedCrop(img, box, size[1], size[0]);
}

export interface JitterRange {
  /** Clamp results to this range. Default [0, 255] for uint8; none for float32. */
  range?: [number, number] | null;
}

function clampOf(v: View<Pixels>, r: [number, number] | null | undefined): [number, number] {
  if (v.data instanceof Uint8Array) return r ?? [0, 255];
  return r ?? [-Infinity, Infinity];
}

function need3(v: View<Pixels>, what: string): void {
  if (v.c !== 3) throw new GraftError('E_BAD_OPTION', `${what} needs an RGB image, got ${v.c} channels`, 'Decode images to RGB first.');
}

function blend<T extends Pixels>(img: AugImage<T>, f: number, other: (v: View<T>) => (c: number, p: number) => number, r?: [number, number] | null): AugImage<T> & { channels: number; layout: 'hwc' | 'chw' } {
  const s = view(img);
  const d = make(s, s.w, s.h, alloc(s.data, s.data.length));
  const [lo, hi] = clampOf(s, r);
  const isByte = d.data instanceof Uint8Array;
  const g = other(s);
  for (let c = 0; c < s.c; c++) {
    for (let y = 0; y < s.h; y++) {
      for (let x = 0; x < s.w; x++) {
        const p = y * s.w + x;
        const i = c * s.chanStride + y * s.rowStride + x * s.pixStride;
        let v = f * s.data[i]! + (1 - f) * g(c, p);
        v = v < lo ? lo : v > hi ? hi : v;
        d.data[i] = isByte ? Math.round(v) : v;
      }
    }
  }
  return out(d);
}

/** ITU-R 601-2 luma per pixel (torchvision's rgb_to_grayscale). */
function grey(v: View<Pixels>): Float64Array {
  need3(v, 'colour jitter');
  const g = new Float64Array(v.w * v.h);
  for (let y = 0; y < v.h; y++) {
    for (let x = 0; x < v.w; x++) {
      const i = y * v.rowStride + x * v.pixStride;
      g[y * v.w + x] = 0.299 * v.data[i]! + 0.587 * v.data[i + v.chanStride]! + 0.114 * v.data[i + 2 * v.chanStride]!;
    }
  }
  return g;
}

/** x * f (blend with black), clamped. f = 1 is the identity. */
export function adjustBrightness<T extends Pixels>(img: AugImage<T>, f: number, opts: JitterRange = {}): AugImage<T> & { channels: number; layout: 'hwc' | 'chw' } {
  return blend(img, f, () => () => 0, opts.range);
}

/** Blend with the image's mean grey level: f * x + (1 - f) * mean(grey). */
export function adjustContrast<T extends Pixels>(img: AugImage<T>, f: number, opts: JitterRange = {}): AugImage<T> & { channels: number; layout: 'hwc' | 'chw' } {
  return blend(img, f, (v) => {
    const g = grey(v);
    let m = 0;
    for (let i = 0; i < g.length; i++) m += g[i]!;
    m /= g.length;
    return () => m;
  }, opts.range);
}

/** Blend each pixel with its own grey level: f * x + (1 - f) * grey. f = 0 gives greyscale. */
export function adjustSaturation<T extends Pixels>(img: AugImage<T>, f: number, opts: JitterRange = {}): AugImage<T> & { channels: number; layout: 'hwc' | 'chw' } {
  return blend(img, f, (v) => {
    const g = grey(v);
    return (_c, p) => g[p]!;
  }, opts.range);
}

export interface JitterOptions extends JitterRange {
  /** b: factor uniform in [max(0, 1 - b), 1 + b]; or an explicit [lo, hi]. */
  brightness?: number | [number, number];
  contrast?: number | [number, number];
  saturation?: number | [number, number];
}

function factorRange(name: string, v: number | [number, number] | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number') {
    if (!(Number.isFinite(v) && v >= 0)) throw new GraftError('E_BAD_OPTION', `${name} jitter must be >= 0, got ${v}`, 'Use e.g. 0.2.');
    return v === 0 ? undefined : [Math.max(0, 1 - v), 1 + v];
  }
  if (!(Array.isArray(v) && v.length === 2 && v[0] >= 0 && v[0] <= v[1] && Number.isFinite(v[1]))) {
    throw new GraftError('E_BAD_OPTION', `${name} jitter range must be [lo, hi] with 0 <= lo <= hi, got ${JSON.stringify(v)}`, 'Use e.g. [0.8, 1.2].');
  }
  return v;
}

/**
 * torchvision's ColorJitter without hue: the enabled adjustments in a random order, each with a
 * factor drawn uniformly from its range.
 */
export function colorJitter<T extends Pixels>(img: AugImage<T>, opts: JitterOptions, rand: () => number): AugImage<T> & { channels: number; layout: 'hwc' | 'chw' } {
  const fns = [
    [factorRange('brightness', opts.brightness), adjustBrightness],
    [factorRange('contrast', opts.contrast), adjustContrast],
    [factorRange('saturation', opts.saturation), adjustSaturation],
  ] as const;
  const order = [0, 1, 2];
  for (let i = 2; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  let cur: AugImage<T> & { channels: number; layout: 'hwc' | 'chw' } = out(view(img));
  const r: JitterRange = opts.range === undefined ? {} : { range: opts.range };
  for (const k of order) {
    const [fr, fn] = fns[k]!;
    if (!fr) continue;
    const f = fr[0] + (fr[1] - fr[0]) * rand();
    cur = fn(cur, f, r);
  }
  return cur;
}

export interface AugmentSpec {
  /** RandomResizedCrop to size = [height, width]. */
  crop?: ResizedCropOptions & { size: [number, number] };
  /** Probability of a horizontal flip (true = 0.5). */
  flip?: boolean | number;
  jitter?: JitterOptions;
}

/** A seed for one example in one epoch. */
export function augmentSeed(seed: number, epoch: number, index: number): number {
  return mixSeed('augment', seed, epoch, index);
}

/**
 * Crop, then flip, then colour jitter, each from its own stream derived from `seed`, so turning
 * one on or off does not change what the others draw. Deterministic for a seed.
 */
export function augment<T extends Pixels>(img: AugImage<T>, spec: AugmentSpec, seed: number): AugImage<T> & { channels: number; layout: 'hwc' | 'chw' } {
  let cur = out(view(img));
  if (spec.crop) cur = randomResizedCrop(cur, spec.crop.size, spec.crop, rng(mixSeed(seed, 'crop')));
  const p = spec.flip === true ? 0.5 : spec.flip === false || spec.flip === undefined ? 0 : spec.flip;
  if (!(p >= 0 && p <= 1)) throw new GraftError('E_BAD_OPTION', `flip must be a probability in [0, 1], got ${spec.flip}`, 'Use 0.5, or true.');
  if (p > 0 && rng(mixSeed(seed, 'flip'))() < p) cur = hflip(cur);
  if (spec.jitter) cur = colorJitter(cur, spec.jitter, rng(mixSeed(seed, 'jitter')));
  return cur;
}
