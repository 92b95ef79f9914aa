/**
 * Reference activations of the original CenterNet MobileNetV3 TF.js graph model (@vladmandic/human
 * models/centernet.json + .bin) for src/backbones/tfjs-graph.test.ts, which checks graft's converted
 * backbone (registry id mobilenet_v3_centernet) against them. Runs the model with @tensorflow/tfjs (pure
 * JS CPU backend, prod mode), reading the files as tf.loadGraphModel does from memory, with one change:
 * the Placeholder's fixed [1, 512, 512, 3] becomes [-1, -1, -1, 3] so that TF.js takes other sizes (its
 * convolutions compute 'SAME' padding from the actual input, as TF does).
 *
 * Inputs (float pixels 0..255, as human feeds them; graft's converted backbone takes them / 255):
 *   photo     fixtures/images/tfjs-flower.jpg squashed to 224x224 by graft's own image pipeline, written as
 *             fixtures/centernet/flower-224.png (lossless, so the test reads back the same integers)
 *   synthetic synthPixels(): a batch of 2 at 75x61, odd sizes where TF's strided 'SAME' pads differ
 *             from the even-size ones
 * Writes fixtures/centernet/reference.json: per input, every cut point's activation averaged over H and W
 * (the pooled cut graft exposes), and for the synthetic batch the whole last feature map (extern1, NHWC).
 * Values have 7 significant digits.
 *
 *   node --import tsx scripts/gen_centernet_fixture.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type * as TF from '@tensorflow/tfjs';
import sharp from 'sharp';
import { findBackbone } from '../src/backbones/registry.ts';
import { packageDir, verifyEntryFiles } from '../src/backbones/image.ts';
import { GRAPH_PRESETS, loadTfjsGraph } from '../src/backbones/tfjs-graph.ts';
import { prepareImage } from '../src/data/images.ts';

export const ID = 'mobilenet_v3_centernet';
export const FIXTURE_DIR = new URL('../fixtures/centernet/', import.meta.url).pathname;
export const SYNTH = { n: 2, h: 75, w: 61 };

/** Integer pixels 0..255, NCHW [n, 3, h, w]: smooth colour waves, different per image and channel. */
export function synthPixels(n: number, h: number, w: number): Float32Array {
  const out = new Float32Array(n * 3 * h * w);
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const v = 127.5 + 127.5 * Math.sin(0.11 * x + 0.07 * y * (c + 1) + 1.3 * c + 0.9 * b) * Math.cos(0.05 * (x - y) + b);
          out[((b * 3 + c) * h + y) * w + x] = Math.round(v);
        }
      }
    }
  }
  return out;
}

export function nchwToNhwc(x: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++) for (let k = 0; k < c; k++) for (let i = 0; i < h * w; i++) out[(b * h * w + i) * c + k] = x[(b * c + k) * h * w + i]!;
  return out;
}

/** The PNG's RGB bytes as float NCHW [1, 3, h, w]. */
export async function readPng(path: string): Promise<{ data: Float32Array; h: number; w: number }> {
  const { data, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const [h, w] = [info.height, info.width];
  const out = new Float32Array(3 * h * w);
  for (let i = 0; i < h * w; i++) for (let c = 0; c < 3; c++) out[c * h * w + i] = data[i * 3 + c]!;
  return { data: out, h, w };
}

const sig7 = (x: number) => Number(x.toPrecision(7));

async function main(): Promise<void> {
  const entry = findBackbone(ID);
  verifyEntryFiles(entry);
  const model = loadTfjsGraph(`${packageDir(entry.package.name)}/${entry.files[0]!.path}`);
  const preset = GRAPH_PRESETS.find((p) => p.name === 'MobileNetV3-CenterNet')!.preset;
  const tf = (await import('@tensorflow/tfjs')) as typeof TF;
  tf.enableProdMode();
  await tf.setBackend('cpu');
  const topo = structuredClone(model.modelJson['modelTopology']) as { node: { op: string; attr: { shape: { shape: { dim: { size: string }[] } } } }[] };
  for (const n of topo.node) if (n.op === 'Placeholder') n.attr.shape.shape.dim = ['-1', '-1', '-1', '3'].map((size) => ({ size }));
  const w = model.weightData;
  const gm = await tf.loadGraphModel({
    load: async () => ({
      modelTopology: topo, format: 'graph-model', weightSpecs: model.weightSpecs as TF.io.WeightsManifestEntry[],
      weightData: w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength) as ArrayBuffer,
    }),
  });
  const nodes = preset.cuts.map((c) => c[1]);
  const run = (nchw: Float32Array, n: number, h: number, wd: number) => {
    const outs = gm.execute(tf.tensor4d(nchwToNhwc(nchw, n, 3, h, wd), [n, h, wd, 3]), nodes) as TF.Tensor[];
    const pooled = Object.fromEntries(preset.cuts.map(([name], i) => {
      const m = outs[i]!.mean([1, 2]).arraySync() as number[][];
      return [name, m.map((row) => row.map(sig7))];
    }));
    const last = outs.at(-1)!;
    const map = { shape: last.shape, data: Array.from(last.dataSync(), sig7) };
    tf.dispose(outs);
    return { pooled, map };
  };

  mkdirSync(FIXTURE_DIR, { recursive: true });
  const pre = { ...entry.preprocess!, size: [224, 224] as [number, number] }; // 224, not the native 512: a size graft runs it at too
  const photo = await prepareImage(new URL('../fixtures/images/tfjs-flower.jpg', import.meta.url).pathname, pre);
  const [h, wd] = pre.size;
  const rgb = Buffer.alloc(h * wd * 3);
  for (let i = 0; i < h * wd; i++) {
    for (let c = 0; c < 3; c++) {
      const v = photo[c * h * wd + i]! / pre.scale; // back to the 0..255 the resize produced (mean 0, std 1)
      if (Math.abs(v - Math.round(v)) > 1e-3 || v < 0 || v > 255) throw new Error(`prepared pixel ${v} is not an integer 0..255 (preprocessing changed?)`);
      rgb[i * 3 + c] = Math.round(v);
    }
  }
  const pngPath = `${FIXTURE_DIR}flower-224.png`;
  writeFileSync(pngPath, await sharp(rgb, { raw: { width: wd, height: h, channels: 3 } }).png({ compressionLevel: 9 }).toBuffer());
  const back = await readPng(pngPath);
  const t0 = Date.now();
  const a = run(back.data, 1, back.h, back.w);
  const { n, h: sh, w: sw } = SYNTH;
  const bRun = run(synthPixels(n, sh, sw), n, sh, sw);
  const ms = Date.now() - t0;
  writeFileSync(`${FIXTURE_DIR}reference.json`, JSON.stringify({
    source: `${entry.package.name}@${entry.package.version} ${entry.files.map((f) => `${f.path} sha256:${f.sha256}`).join(', ')}`,
    generator: 'scripts/gen_centernet_fixture.ts, @tensorflow/tfjs (cpu backend)',
    note: 'pooled: each cut node averaged over H and W, [images][channels]; feature_map: the last cut node (NHWC) of the synthetic batch; 7 significant digits',
    nodes: Object.fromEntries(preset.cuts.map(([name, node]) => [name, node])),
    photo: { file: 'flower-224.png', size: [back.h, back.w], pooled: a.pooled },
    synthetic: { ...SYNTH, pooled: bRun.pooled, feature_map: bRun.map },
  }));
  console.error(`wrote ${FIXTURE_DIR}reference.json (TF.js ran in ${ms} ms)`);
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await main();
