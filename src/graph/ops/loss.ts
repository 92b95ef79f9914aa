/**
 * NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: type inference and gradient rules (PyTorch's nll_loss
 * and cross_entropy: the class weights and the labels take no gradient).
 */
import type { GraphBuilder, Sym } from '../builder.ts';
import type { Dim } from '../ir.ts';
import { tensor } from '../tensor.ts';
import { type GradCtx, type InferCtx, type TypeInfo, defineOp } from './registry.ts';

/** Loss output: the target's shape without reduction, a scalar with one. */
const lossShape = (c: InferCtx, target: Dim[]): Dim[] => (c.str('reduction', 'mean') === 'none' ? [...target] : []);

/**
 * The gradient of the loss with respect to the log-probabilities [N, C, d...]: -w[t] at the target class, 0
 * elsewhere and where the target is ignore_index, times dY (per element without reduction, divided by the sum
 * of the weights of the counted elements for `mean`). Built with a comparison against the class ids, so that an
 * ignore_index outside [0, C) gathers nothing.
 */
function logProbGrad(c: GradCtx, logp: Sym, target: Sym, weight: Sym | null, dy: Sym): Sym {
  const b: GraphBuilder = c.b;
  const ls = logp.shape.map(Number);
  const r = ls.length;
  const cls = b.constant(tensor('int64', [1, ls[1]!, ...new Array<number>(r - 2).fill(1)], Array.from({ length: ls[1]! }, (_, k) => k)));
  const t = b.op1('Unsqueeze', [target.dtype === 'int64' ? target : b.cast(target, 'int64'), b.ints([1])]);
  let mask = b.op1('Equal', [t, cls]);
  const ignore = c.node.attrs['ignore_index'];
  if (ignore) mask = b.op1('And', [mask, b.op1('Not', [b.op1('Equal', [t, b.constant(tensor('int64', [], [c.int('ignore_index', 0)]))])])]);
  let w = b.cast(mask, logp.dtype);
  if (weight) w = b.mul(w, b.reshape(weight, [1, ls[1]!, ...new Array<number>(r - 2).fill(1)]));
  const red = c.str('reduction', 'mean');
  let g = red === 'none' ? b.op1('Unsqueeze', [dy, b.ints([1])]) : dy;
  if (red === 'mean') g = b.div(g, b.reduceSum(w, [...Array(r).keys()], false));
  return b.neg(b.mul(w, g));
}

defineOp('NegativeLogLikelihoodLoss', {
  nondiff: [1, 2],
  infer: (c) => [{ dtype: c.inputs[0]!.dtype, shape: lossShape(c, c.inputs[1]!.shape) }],
  grad: (c) => [logProbGrad(c, c.x(0), c.x(1), c.node.inputs[2] ? c.x(2) : null, c.dy(0)!), null, null],
});

defineOp('SoftmaxCrossEntropyLoss', {
  nondiff: [1, 2],
  infer: (c): TypeInfo[] => {
    const x = c.inputs[0]!;
    return [{ dtype: x.dtype, shape: lossShape(c, c.inputs[1]!.shape) }, { dtype: x.dtype, shape: [...x.shape] }];
  },
  grad: (c) => {
    // Through log_prob = LogSoftmax(scores, axis 1): dScores = G - softmax * sum_c G, G the log_prob gradient.
    const { b } = c;
    const logp = c.ensureOutput(1);
    let g: Sym | null = c.dy(1);
    if (c.dy(0)) {
      const fromLoss = logProbGrad(c, logp, c.x(1), c.node.inputs[2] ? c.x(2) : null, c.dy(0)!);
      g = g ? b.add(g, fromLoss) : fromLoss;
    }
    return [b.sub(g!, b.mul(b.exp(logp), b.reduceSum(g!, [1]))), null, null];
  },
});
