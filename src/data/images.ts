/**
 * Image decoding with sharp (libvips): PNG, JPEG, WebP and the first frame of a GIF (or of an
 * animated WebP). Every image comes out as 8-bit sRGB, HWC, 3 channels: the EXIF orientation is
 * applied, alpha is composited onto white, greyscale / 16-bit / CMYK inputs are converted.
 *
 * Untrusted input: the header's width x height is checked against a pixel limit (default 50
 * megapixels) before any pixel is decoded, so a decompression bomb (a tiny file that claims a huge
 * canvas) is refused without allocating; libvips gets the same limit as a second guard. Truncated
 * or corrupt data fails (sharp's failOn: 'warning') instead of decoding to grey.
 */
import { statSync } from 'node:fs';
import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { GraftError, type ErrorCode } from '../errors.ts';
import type { ImagePreprocess } from '../backbones/types.ts';
import { resizedCrop } from './augment.ts';

/** Refuse images whose header claims more pixels than this (50 megapixels, ~150 MB as RGB). */
export const DEFAULT_MAX_PIXELS = 50_000_000;

/** The formats graft decodes, as sharp's metadata().format names them. */
export const IMAGE_FORMATS = ['png', 'jpeg', 'webp', 'gif'] as const;

/** File extensions (lower case, with the dot) that image folders pick up. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif'] as const;

/**
 * The libvips kernel used for downscaling: 'linear' (a triangle filter that widens when
 * downscaling, i.e. antialiased bilinear, like PIL's BILINEAR that torchvision uses).
 */
export const RESIZE_KERNEL = 'linear';

export type ImageErrorCode = Extract<ErrorCode, 'E_IMAGE_CORRUPT' | 'E_IMAGE_TOO_LARGE'>;

export function imageError(code: ImageErrorCode, message: string, hint: string, details?: Record<string, unknown>): GraftError {
  return new GraftError(code, message, hint, details);
}

export interface DecodeOptions {
  /** Refuse images with more pixels than this (width x height from the header). Default 50e6. */
  maxPixels?: number;
  /** A name for error messages when the input is a buffer. */
  name?: string;
}

/** A decoded image: 8-bit RGB, row-major HWC (data.length = height * width * 3). */
export interface DecodedImage {
  width: number;
  height: number;
  channels: 3;
  data: Uint8Array;
}

interface Header {
  input: string | Buffer;
  name: string;
  format: string;
  width: number;
  height: number;
  /** EXIF orientation, 1..8 (1 when absent). */
  orientation: number;
  maxPixels: number;
}

function maxPixelsOf(opts: DecodeOptions): number {
  const m = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(Number.isInteger(m) && m > 0)) {
    throw new GraftError('E_BAD_OPTION', `maxPixels must be a positive integer, got ${m}`, `Use e.g. ${DEFAULT_MAX_PIXELS}.`);
  }
  return m;
}

function sharpMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function corrupt(name: string, why: string): GraftError {
  return imageError(
    'E_IMAGE_CORRUPT',
    `${name} is not a readable image: ${why}`,
    'Re-save or re-download the file, or remove it; graft reads PNG, JPEG, WebP and GIF.',
    { file: name, reason: why },
  );
}

/** Reads only the header (format and size) and enforces the pixel limit. */
async function readHeader(input: string | Uint8Array, opts: DecodeOptions): Promise<Header> {
  const maxPixels = maxPixelsOf(opts);
  let src: string | Buffer;
  let name: string;
  if (typeof input === 'string') {
    name = input;
    let isFile = false;
    try {
      isFile = statSync(input).isFile();
    } catch {
      isFile = false;
    }
    if (!isFile) {
      throw new GraftError('E_FILE_MISSING', `image file not found: ${input}`, 'Check the path; it must be a file, not a folder.', { file: input });
    }
    src = input;
  } else {
    name = opts.name ?? '<image buffer>';
    src = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    if (src.length === 0) throw corrupt(name, 'the buffer is empty');
  }
  let meta: Metadata;
  try {
    // limitInputPixels: false, so that we see the claimed size and say it; metadata() parses the
    // header only and allocates no pixels.
    meta = await sharp(src, { limitInputPixels: false, failOn: 'warning' }).metadata();
  } catch (e) {
    throw corrupt(name, sharpMessage(e));
  }
  const format = String(meta.format ?? 'unknown');
  if (!(IMAGE_FORMATS as readonly string[]).includes(format)) {
    throw corrupt(name, `its content is ${format === 'unknown' ? 'of an unknown format' : `a ${format} image`}, which graft does not read`);
  }
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0; // for animated input, one frame
  if (!(width > 0 && height > 0)) throw corrupt(name, `its header gives no size (${width}x${height})`);
  if (width * height > maxPixels) {
    throw imageError(
      'E_IMAGE_TOO_LARGE',
      `${name} is ${width}x${height} (${(width * height / 1e6).toFixed(1)} megapixels), over the limit of ${(maxPixels / 1e6).toFixed(1)} megapixels`,
      'Downscale the image first, or raise maxPixels if it is trusted and memory allows (3 bytes per pixel).',
      { file: name, width, height, limit: maxPixels },
    );
  }
  const orientation = meta.orientation !== undefined && meta.orientation >= 1 && meta.orientation <= 8 ? meta.orientation : 1;
  return { input: src, name, format, width, height, orientation, maxPixels };
}

function pipeline(h: Header): Sharp {
  return sharp(h.input, { limitInputPixels: h.maxPixels, failOn: 'warning', pages: 1, page: 0 })
    .rotate() // EXIF orientation
    .flatten({ background: '#ffffff' });
}

async function run(h: Header, p: Sharp): Promise<{ data: Buffer; info: OutputInfo }> {
  try {
    const r = await p.toColourspace('srgb').removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (r.info.channels !== 3) throw new Error(`decoded to ${r.info.channels} channels, expected 3`);
    return r;
  } catch (e) {
    const msg = sharpMessage(e);
    if (/pixel limit/i.test(msg)) {
      throw imageError('E_IMAGE_TOO_LARGE', `${h.name} exceeds the limit of ${h.maxPixels} pixels`, 'Downscale the image first, or raise maxPixels.', { file: h.name, limit: h.maxPixels });
    }
    throw corrupt(h.name, msg);
  }
}

function plain(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/**
 * Decodes an image file or buffer to 8-bit RGB HWC, orientation applied, alpha over white.
 * Throws E_FILE_MISSING (no such file), E_IMAGE_TOO_LARGE (over maxPixels), E_IMAGE_CORRUPT
 * (truncated, corrupt, or not PNG/JPEG/WebP/GIF), each naming the file.
 */
export async function decodeImage(input: string | Uint8Array, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const h = await readHeader(input, opts);
  const { data, info } = await run(h, pipeline(h));
  return { width: info.width, height: info.height, channels: 3, data: plain(data) };
}

/** Python's round(): halves go to the even neighbour (torchvision's centre-crop offsets use it). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Checks an ImagePreprocess; throws E_BAD_OPTION naming the bad field. */
export function checkPreprocess(pre: ImagePreprocess): void {
  const bad = (what: string, hint: string) => new GraftError('E_BAD_OPTION', `image preprocessing: ${what}`, hint);
  const [h, w] = pre.size ?? [];
  if (!(Number.isInteger(h) && Number.isInteger(w) && h! > 0 && w! > 0)) throw bad(`size must be [height, width] positive integers, got ${JSON.stringify(pre.size)}`, 'Use e.g. [224, 224].');
  if (pre.resize !== 'squash' && pre.resize !== 'center-crop') throw bad(`resize must be 'squash' or 'center-crop', got ${JSON.stringify(pre.resize)}`, "Use 'center-crop' for ImageNet-style models.");
  if (pre.resize === 'center-crop' && pre.resizeTo !== undefined) {
    if (!(Number.isInteger(pre.resizeTo) && pre.resizeTo >= Math.max(h!, w!))) {
      throw bad(`resizeTo must be an integer >= max(size) = ${Math.max(h!, w!)}, got ${pre.resizeTo}`, 'Use e.g. 256 for a 224 crop.');
    }
  }
  if (!(Number.isFinite(pre.scale) && pre.scale !== 0)) throw bad(`scale must be a finite non-zero number, got ${pre.scale}`, 'Use 1/255 for inputs in 0..1.');
  for (let c = 0; c < 3; c++) {
    if (!Number.isFinite(pre.mean?.[c])) throw bad(`mean must be three finite numbers, got ${JSON.stringify(pre.mean)}`, 'Use e.g. [0.485, 0.456, 0.406].');
    if (!(Number.isFinite(pre.std?.[c]) && pre.std[c] !== 0)) throw bad(`std must be three finite non-zero numbers, got ${JSON.stringify(pre.std)}`, 'Use e.g. [0.229, 0.224, 0.225].');
  }
}

/**
 * The resize target and crop box for an image of width x height (torchvision semantics:
 * Resize(resizeTo) scales the shorter side to resizeTo and the longer to floor(resizeTo * long /
 * short); CenterCrop offsets are round((resized - crop) / 2)).
 */
export function resizePlan(width: number, height: number, pre: ImagePreprocess): { width: number; height: number; crop: { left: number; top: number; width: number; height: number } } {
  const [ch, cw] = pre.size;
  if (pre.resize === 'squash') return { width: cw, height: ch, crop: { left: 0, top: 0, width: cw, height: ch } };
  const s = pre.resizeTo ?? Math.max(ch, cw);
  let rw: number;
  let rh: number;
  if (width <= height) {
    rw = s;
    rh = Math.max(s, Math.floor((s * height) / width));
  } else {
    rh = s;
    rw = Math.max(s, Math.floor((s * width) / height));
  }
  return { width: rw, height: rh, crop: { left: roundHalfEven((rw - cw) / 2), top: roundHalfEven((rh - ch) / 2), width: cw, height: ch } };
}

/** RGB HWC uint8 -> CHW float32, pixel' = (pixel * scale - mean[c]) / std[c]. */
export function normalizeHWC(data: Uint8Array, width: number, height: number, pre: Pick<ImagePreprocess, 'scale' | 'mean' | 'std'>, out?: Float32Array): Float32Array {
  const n = width * height;
  if (data.length !== n * 3) throw new RangeError(`normalizeHWC: ${data.length} bytes is not ${width}x${height}x3`);
  const o = out ?? new Float32Array(n * 3);
  if (o.length !== n * 3) throw new RangeError(`normalizeHWC: output holds ${o.length} values, need ${n * 3}`);
  for (let c = 0; c < 3; c++) {
    const a = pre.scale / pre.std[c];
    const b = -pre.mean[c] / pre.std[c];
    const base = c * n;
    for (let i = 0; i < n; i++) o[base + i] = data[i * 3 + c]! * a + b;
  }
  return o;
}

/**
 * Decodes and resizes an image to 8-bit RGB HWC of pre.size ([height, width]); 'squash' ignores
 * the aspect ratio, 'center-crop' resizes the shorter side to pre.resizeTo (default max(size)) and
 * crops the centre (torchvision's Resize + CenterCrop).
 *
 * Resampling is bilinear with antialiasing, as PIL's BILINEAR (which torchvision uses): when both
 * axes shrink, libvips does it (kernel 'linear', no JPEG shrink-on-load; within about 1 level of
 * PIL); when an axis grows, the image is small and graft resamples it in TypeScript
 * (augment.ts resizedCrop, PIL's half-pixel-centre convention), because libvips' upsampling
 * is offset by half an output pixel from PIL's.
 */
export async function resizeImage(input: string | Uint8Array, pre: ImagePreprocess, opts: DecodeOptions = {}): Promise<DecodedImage> {
  checkPreprocess(pre);
  const h = await readHeader(input, opts);
  // The orientation is applied before the resize, so plan with the displayed size.
  const [dw, dh] = h.orientation >= 5 ? [h.height, h.width] : [h.width, h.height];
  const plan = resizePlan(dw, dh, pre);
  const [oh, ow] = pre.size;
  if (plan.width > dw || plan.height > dh) {
    const { data, info } = await run(h, pipeline(h));
    const sx = info.width / plan.width;
    const sy = info.height / plan.height;
    const box = { left: plan.crop.left * sx, top: plan.crop.top * sy, width: ow * sx, height: oh * sy };
    const r = resizedCrop({ width: info.width, height: info.height, data: plain(data), channels: 3, layout: 'hwc' }, box, ow, oh);
    return { width: ow, height: oh, channels: 3, data: r.data };
  }
  let p = pipeline(h).resize(plan.width, plan.height, { fit: 'fill', kernel: RESIZE_KERNEL, fastShrinkOnLoad: false });
  if (pre.resize === 'center-crop') p = p.extract(plan.crop);
  const { data, info } = await run(h, p);
  if (info.width !== ow || info.height !== oh) throw corrupt(h.name, `resized to ${info.width}x${info.height}, expected ${ow}x${oh}`);
  return { width: ow, height: oh, channels: 3, data: plain(data) };
}

/**
 * An image as the backbone's input: CHW float32 of 3 x size[0] x size[1], resized per
 * pre.resize and normalised as (pixel * scale - mean[c]) / std[c].
 */
export async function prepareImage(input: string | Uint8Array, pre: ImagePreprocess, opts: DecodeOptions = {}): Promise<Float32Array> {
  const img = await resizeImage(input, pre, opts);
  return normalizeHWC(img.data, img.width, img.height, pre);
}
