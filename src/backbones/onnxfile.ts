/**
 * Checks for ONNX files that come from elsewhere (a model hub, a download), before ONNX Runtime sees them.
 *
 * checkOnnxFile reads the model with onnx-proto and checks every tensor graft will read (initializers,
 * and tensor attributes, in subgraphs too) before anything is allocated for it:
 *  - dims are non-negative integers and hold at most 2^31 elements;
 *  - inline data (raw_data, or the typed fields) holds exactly dims product x element size;
 *  - external data (data_location EXTERNAL) names a file inside the model's folder: no absolute path, no
 *    `..` segment, no symlink that resolves outside the folder (fs.realpathSync), a regular file; its
 *    offset and length lie within that file, and the tensor is no larger than what the file holds there;
 *  - the model file plus all external bytes read stay within `maxBytes`.
 * External bytes are then read (only the ranges named, and only inside the folder) into the tensors, so
 * the Graph that comes back is self-contained: Graph.toBytes() has no external references, and ORT never
 * resolves a path itself. A protobuf that does not decode is E_ONNX_PARSE; a refused file is E_ONNX_UNSAFE.
 */
import fs from 'node:fs';
import { dirname, isAbsolute, join, posix, resolve, sep, win32 } from 'node:path';
import onnxProto from 'onnx-proto';
import { GraftError } from '../errors.ts';
import { Graph } from '../graph/ir.ts';
import { allocate, dtypeFromOnnx } from '../graph/tensor.ts';

const { onnx } = onnxProto;

/** A self-contained model must fit one protobuf message (2 GiB), so that is the default limit. */
export const DEFAULT_MAX_BYTES = 2 ** 31 - 1;
/** The most elements one tensor may hold. */
export const MAX_ELEMENTS = 2 ** 31;
const MAX_DEPTH = 64;

export interface OnnxCheckOptions {
  /** Most bytes read in all: the model file plus its external data (default 2 GiB - 1). */
  maxBytes?: number | undefined;
}

export interface OnnxFolderOptions extends OnnxCheckOptions {
  /** The model file, relative to the folder (default: onnx/model.onnx, else model.onnx, else the only .onnx file). */
  file?: string | undefined;
}

const unsafe = (source: string, what: string, hint: string, details?: Record<string, unknown>) =>
  new GraftError('E_ONNX_UNSAFE', `${source}: ${what}`, hint, details);

const parseError = (source: string, what: string) =>
  new GraftError('E_ONNX_PARSE', `${source}: ${what}`, 'The model file is truncated or corrupt; export or download it again.');

const EXTERNAL_HINT = 'Refusing to read it: external data must be a file inside the model\'s folder. Keep model.onnx and its data files together, with relative names.';

function inside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);
}

interface Opened {
  fd: number;
  size: number;
}

/** Opens a regular file without following a final symlink and without blocking on a FIFO. */
function openRegular(path: string, noFollow: boolean): Opened | null {
  const flags = fs.constants.O_RDONLY | (noFollow ? fs.constants.O_NOFOLLOW ?? 0 : 0) | (fs.constants.O_NONBLOCK ?? 0);
  const fd = fs.openSync(path, flags);
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    return null;
  }
  return { fd, size: st.size };
}

function readAt(fd: number, length: number, position: number): Uint8Array | null {
  const buf = Buffer.allocUnsafeSlow(length);
  let off = 0;
  while (off < length) {
    const n = fs.readSync(fd, buf, off, length - off, position + off);
    if (n === 0) return null; // the file shrank under us
    off += n;
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, length);
}

function num(x: number | { toString(): string } | null | undefined): number {
  if (x == null) return 0;
  return typeof x === 'number' ? x : Number(x.toString());
}

/** Reads the external data of tensors, from inside one folder only (`root`: a real path, no symlinks). */
class ExternalData {
  private readonly files = new Map<string, Opened>();
  read = 0;

  constructor(readonly root: string, readonly source: string, readonly budget: number) {}

  private open(location: string, tensor: string): Opened {
    const details = { tensor, location };
    if (location === '' || location.includes('\0')) throw unsafe(this.source, `tensor "${tensor}" has an empty or malformed external data location`, EXTERNAL_HINT, details);
    if (posix.isAbsolute(location) || win32.isAbsolute(location) || /^[A-Za-z]:/.test(location)) {
      throw unsafe(this.source, `tensor "${tensor}" points at external data by the absolute path "${location}"`, EXTERNAL_HINT, details);
    }
    if (location.split(/[\\/]/).includes('..')) {
      throw unsafe(this.source, `tensor "${tensor}" points at external data "${location}", which climbs out of the model's folder`, EXTERNAL_HINT, details);
    }
    const full = resolve(this.root, location);
    let real: string;
    try {
      real = fs.realpathSync(full);
    } catch {
      throw new GraftError('E_FILE_MISSING', `${this.source}: tensor "${tensor}" keeps its data in "${location}", which does not exist`,
        `Put ${location} beside the model (for a hub model, download its onnx/*.onnx_data file too).`, details);
    }
    if (!inside(this.root, real) || !inside(this.root, full)) {
      throw unsafe(this.source, `tensor "${tensor}" points at external data "${location}", which resolves to ${real}, outside the model's folder ${this.root}`,
        EXTERNAL_HINT, details);
    }
    const hit = this.files.get(real);
    if (hit) return hit;
    let f: Opened | null = null;
    try {
      const st = fs.statSync(real);
      if (st.isFile()) f = openRegular(real, true);
    } catch { /* replaced or unreadable: refused below */ }
    if (!f) throw unsafe(this.source, `tensor "${tensor}" points at external data "${location}", which is not a readable regular file`, EXTERNAL_HINT, details);
    this.files.set(real, f);
    return f;
  }

  load(t: onnxProto.onnx.ITensorProto, bytes: number): Uint8Array {
    const name = t.name ?? '';
    let location: string | undefined;
    let offset = 0;
    let length: number | null = null;
    const int = (key: string, v: string): number => {
      const n = /^\d{1,16}$/.test(v) ? Number(v) : NaN;
      if (!Number.isSafeInteger(n)) {
        throw unsafe(this.source, `tensor "${name}" has external data ${key} "${v}", which is not a non-negative integer`, EXTERNAL_HINT, { tensor: name });
      }
      return n;
    };
    for (const e of t.externalData ?? []) {
      const v = e.value ?? '';
      if (e.key === 'location') {
        if (location !== undefined) throw unsafe(this.source, `tensor "${name}" names two external data locations`, EXTERNAL_HINT, { tensor: name });
        location = v;
      } else if (e.key === 'offset') offset = int('offset', v);
      else if (e.key === 'length') length = int('length', v);
    }
    if (location === undefined) throw parseError(this.source, `tensor "${name}" is marked external but names no location`);
    const f = this.open(location, name);
    const details = { tensor: name, location, offset, length, fileBytes: f.size, tensorBytes: bytes };
    if (offset > f.size) {
      throw unsafe(this.source, `tensor "${name}" reads ${location} from offset ${offset}, past its end (${f.size} bytes)`, EXTERNAL_HINT, details);
    }
    if (length !== null && offset + length > f.size) {
      throw unsafe(this.source, `tensor "${name}" reads ${length} bytes of ${location} from offset ${offset}, past its end (${f.size} bytes)`, EXTERNAL_HINT, details);
    }
    if (bytes > f.size - offset) {
      throw unsafe(this.source, `tensor "${name}" needs ${bytes} bytes, but ${location} holds only ${f.size - offset} from offset ${offset}`, EXTERNAL_HINT, details);
    }
    if (length !== null && length !== bytes) {
      throw parseError(this.source, `tensor "${name}" says its external data is ${length} bytes long, but its dims and type need ${bytes}`);
    }
    if (this.read + bytes > this.budget) {
      throw unsafe(this.source, `the model and its external data exceed the limit of ${this.budget} bytes`,
        'Raise maxBytes if the model really is this large.', details);
    }
    const data = readAt(f.fd, bytes, offset);
    if (!data) throw unsafe(this.source, `${location} changed while it was read`, 'Do not modify the model folder while it loads.', details);
    this.read += bytes;
    return data;
  }

  close(): void {
    for (const f of this.files.values()) fs.closeSync(f.fd);
    this.files.clear();
  }
}

/** Checks one tensor; reads external data into raw_data. Returns whether it was external. */
function visitTensor(t: onnxProto.onnx.ITensorProto, ext: ExternalData): boolean {
  const name = t.name ?? '';
  const source = ext.source;
  const dtype = dtypeFromOnnx(t.dataType ?? 0);
  const elemBytes = allocate(dtype, 0).BYTES_PER_ELEMENT;
  let count = 1;
  for (const d of t.dims ?? []) {
    const n = num(d);
    if (!Number.isSafeInteger(n) || n < 0 || n > MAX_ELEMENTS) {
      throw unsafe(source, `tensor "${name}" has dimension ${String(d)}`, 'Dimensions must be non-negative integers; the model is corrupt or hostile.', { tensor: name });
    }
    count *= n;
    if (count > MAX_ELEMENTS) {
      throw unsafe(source, `tensor "${name}" of dims [${(t.dims ?? []).map(String)}] holds more than ${MAX_ELEMENTS} elements`,
        'graft refuses tensors this large; the model is corrupt or hostile.', { tensor: name });
    }
  }
  const bytes = count * elemBytes;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    t.rawData = ext.load(t, bytes);
    t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
    t.externalData = [];
    return true;
  }
  if (t.rawData && t.rawData.length) {
    if (t.rawData.length !== bytes) {
      throw parseError(source, `tensor "${name}" of dims [${(t.dims ?? []).map(String)}] ${dtype} needs ${bytes} bytes of raw data, it holds ${t.rawData.length}`);
    }
    return false;
  }
  const field = dtype === 'float32' ? t.floatData : dtype === 'float64' ? t.doubleData : dtype === 'int64' ? t.int64Data : t.int32Data;
  const len = field?.length ?? 0;
  if (len !== count) throw parseError(source, `tensor "${name}" of dims [${(t.dims ?? []).map(String)}] holds ${len} values, expected ${count}`);
  return false;
}

function visitGraph(g: onnxProto.onnx.IGraphProto, ext: ExternalData, depth: number): boolean {
  if (depth > MAX_DEPTH) throw unsafe(ext.source, `subgraphs nest deeper than ${MAX_DEPTH}`, 'The model is corrupt or hostile.');
  if (g.sparseInitializer?.length) {
    throw new GraftError('E_ONNX_PARSE', `${ext.source}: graph "${g.name}" has sparse initializers, which graft does not read`, 'Re-export the model with dense initializers.');
  }
  let external = false;
  for (const t of g.initializer ?? []) external = visitTensor(t, ext) || external;
  const T = onnx.AttributeProto.AttributeType;
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      // Only what graft reads (ir.ts attrFromProto): TENSOR and GRAPH attributes; other kinds it refuses.
      if (a.type === T.TENSOR && a.t) external = visitTensor(a.t, ext) || external;
      else if (a.type === T.GRAPH && a.g) external = visitGraph(a.g, ext, depth + 1) || external;
    }
  }
  return external;
}

function readModel(path: string, maxBytes: number): Uint8Array {
  let f: Opened | null;
  try {
    f = fs.statSync(path).isFile() ? openRegular(path, false) : null;
  } catch {
    throw new GraftError('E_FILE_MISSING', `cannot read ONNX file ${path}`, 'Check the path; the file must exist and be readable.');
  }
  if (!f) throw unsafe(path, 'is not a regular file', 'Pass the path of an .onnx file.');
  try {
    if (f.size > maxBytes) {
      throw unsafe(path, `is ${f.size} bytes, more than the limit of ${maxBytes}`, 'Raise maxBytes if the model really is this large.', { bytes: f.size, maxBytes });
    }
    const bytes = readAt(f.fd, f.size, 0);
    if (!bytes) throw unsafe(path, 'changed while it was read', 'Do not modify the model while it loads.');
    return bytes;
  } finally {
    fs.closeSync(f.fd);
  }
}

function check(path: string, root: string, opts: OnnxCheckOptions): Graph {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const bytes = readModel(path, maxBytes);
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new GraftError('E_ONNX_PARSE', `${path} is not a readable ONNX model: ${(e as Error).message}`,
      'The file is truncated or not an ONNX model; export or download it again.');
  }
  if (!model.graph) throw new GraftError('E_ONNX_PARSE', `${path} has no graph`, 'The file is not an ONNX model; export or download it again.');
  const ext = new ExternalData(root, path, maxBytes - bytes.byteLength);
  let external: boolean;
  try {
    external = visitGraph(model.graph, ext, 0);
  } finally {
    ext.close();
  }
  try {
    return Graph.fromBytes(external ? onnx.ModelProto.encode(model).finish() : bytes, path);
  } catch (e) {
    if (e instanceof GraftError) throw e;
    throw new GraftError('E_ONNX_PARSE', `${path} could not be read: ${(e as Error).message}`, 'The model file is corrupt; export or download it again.');
  }
}

/**
 * Reads an ONNX file from an untrusted source into a self-contained Graph, after the checks above.
 * External data may only come from the folder the model file is in (and its subfolders).
 */
export function checkOnnxFile(path: string, opts: OnnxCheckOptions = {}): Graph {
  let root: string;
  try {
    root = fs.realpathSync(dirname(resolve(path)));
  } catch {
    throw new GraftError('E_FILE_MISSING', `cannot read ONNX file ${path}`, 'Check the path; the file must exist and be readable.');
  }
  return check(path, root, opts);
}

/**
 * Loads the ONNX model of a model folder (such as a hub snapshot): `opts.file`, else onnx/model.onnx, else
 * model.onnx, else the only .onnx file in the folder or its onnx/ subfolder. The model file must lie
 * inside the folder (symlinks resolved); its external data must lie beside it. See checkOnnxFile.
 */
export function loadOnnxFolder(dir: string, opts: OnnxFolderOptions = {}): { graph: Graph; modelPath: string } {
  let realDir: string;
  try {
    realDir = fs.realpathSync(dir);
    if (!fs.statSync(realDir).isDirectory()) throw new Error('not a folder');
  } catch {
    throw new GraftError('E_FILE_MISSING', `model folder ${dir} does not exist`, 'Pass the folder that holds the model (e.g. a hub snapshot folder).');
  }
  let rel: string | undefined = opts.file;
  if (rel !== undefined) {
    if (isAbsolute(rel) || win32.isAbsolute(rel) || rel.split(/[\\/]/).includes('..')) {
      throw new GraftError('E_BAD_OPTION', `model file "${rel}" is not a path inside ${dir}`, 'Pass a path relative to the folder, e.g. onnx/model_quantized.onnx.');
    }
  } else {
    rel = ['onnx/model.onnx', 'model.onnx'].find((c) => fs.existsSync(join(dir, c)));
    if (rel === undefined) {
      const found = ['', 'onnx'].flatMap((sub) => {
        try {
          return fs.readdirSync(join(dir, sub)).filter((f) => f.endsWith('.onnx')).map((f) => (sub ? `${sub}/${f}` : f));
        } catch {
          return [];
        }
      });
      if (found.length !== 1) {
        throw new GraftError('E_FILE_MISSING', `model folder ${dir} has ${found.length ? `several .onnx files (${found.join(', ')})` : 'no .onnx file'}`,
          found.length ? 'Pass the one to load as the file option.' : 'The folder must hold onnx/model.onnx or model.onnx.');
      }
      rel = found[0]!;
    }
  }
  const modelPath = join(dir, rel);
  let realModel: string;
  try {
    realModel = fs.realpathSync(modelPath);
  } catch {
    throw new GraftError('E_FILE_MISSING', `cannot read ONNX file ${modelPath}`, 'Check the path; the file must exist and be readable.');
  }
  if (!inside(realDir, realModel)) {
    throw unsafe(modelPath, `resolves to ${realModel}, outside the model folder ${realDir}`, 'The model file must be inside its folder, not a link out of it.');
  }
  return { graph: check(realModel, dirname(realModel), opts), modelPath };
}
