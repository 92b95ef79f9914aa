/**
 * Multiply-add work of a typed graph: 2 FLOPs per multiply-accumulate in Conv, ConvTranspose, Gemm and
 * MatMul, from the shapes the builder inferred. Elementwise ops, pools and reductions are left out: they
 * are memory-bound, and in convolutional and transformer networks the products are nearly all the
 * arithmetic. Benchmarks divide by it to say how close a run comes to the machine's peak.
 */
import type { GraphBuilder } from './builder.ts';
import type { Node } from './ir.ts';

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

/** FLOPs of one node, or 0 for ops that are not products (or whose shapes are not all static). */
export function nodeFlops(b: GraphBuilder, n: Node): number {
  const shape = (name: string | undefined): number[] | null => {
    if (!name || !b.has(name)) return null;
    const s = b.sym(name).shape;
    return s.every((d) => typeof d === 'number') ? (s as number[]) : null;
  };
  const y = shape(n.outputs[0]);
  const w = shape(n.inputs[1]);
  const a = shape(n.inputs[0]);
  if (!y || !w || !a) return 0;
  switch (n.op) {
    case 'Conv': // every output element sums Cin/group x kernel products
      return 2 * prod(y) * prod(w.slice(1));
    case 'ConvTranspose': // every input element scatters into Cout/group x kernel outputs
      return 2 * prod(a) * prod(w.slice(1));
    case 'Gemm':
    case 'MatMul': {
      const attr = n.attrs['transA'];
      const k = n.op === 'Gemm' && attr && 'i' in attr && attr.i ? a[0]! : a[a.length - 1]!;
      return 2 * prod(y) * (a.length === 1 ? a[0]! : k);
    }
    default:
      return 0;
  }
}

/** FLOPs of the whole graph. */
export function graphFlops(b: GraphBuilder): number {
  return b.graph.nodes.reduce((s, n) => s + nodeFlops(b, n), 0);
}
