/**
 * Replaying a loaded ONNX graph's nodes into a builder (a pretrained backbone inside a training graph):
 * the tensor lookup every replay shares. A tensor is an already replayed value, a trainable parameter (from
 * the forward context), or a constant initializer, added once under a prefixed name.
 */
import { GraftError } from '../errors.ts';
import type { GraphBuilder, Sym } from './builder.ts';
import type { TensorData } from './tensor.ts';

export function replayLookup(
  b: GraphBuilder, vals: Map<string, Sym>, isParam: (name: string) => boolean, param: (name: string) => Sym,
  inits: Map<string, TensorData>, prefix: string, missing: (name: string) => string,
): (name: string) => Sym | null {
  return (i) => {
    if (!i) return null;
    const v = vals.get(i);
    if (v) return v;
    if (isParam(i)) return param(i);
    const t = inits.get(i);
    if (!t) throw new GraftError('E_GRAPH_UNKNOWN_TENSOR', missing(i), 'This is a bug in graft.');
    const name = `${prefix}${i}`;
    const s = b.has(name) ? b.sym(name) : b.init(name, t);
    vals.set(i, s);
    return s;
  };
}
