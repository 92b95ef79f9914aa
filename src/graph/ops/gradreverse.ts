/**
 * GradientReversal (domain ai.graft; Ganin and Lempitsky, ICML 2015): the identity in the forward pass, and
 * -lambda times the incoming gradient in the backward pass, so a domain classifier trained through it pushes
 * the features below it toward domain confusion (DANN). lambda is the second input, a float scalar, so a
 * schedule can change it every step without rebuilding the graph. ONNX has no such op: the node is written
 * out as Identity(x) whenever the graph is serialised (ir.ts), and its gradient is ordinary Mul and Neg nodes.
 */
import { GraftError } from '../../errors.ts';
import { defineOp } from './registry.ts';

/** The op domain of graft's own ops (lowered to ONNX ops when a graph is serialised). */
export const GRAFT_DOMAIN = 'ai.graft';

defineOp('GradientReversal', {
  infer: (c) => {
    const [x, lambda] = c.inputs;
    if (!x || !lambda || lambda.shape.length !== 0 || lambda.dtype !== x.dtype) {
      throw new GraftError('E_GRAPH_SHAPE', 'GradientReversal takes a tensor and a scalar lambda of the same float type',
        'Pass lambda as a 0-d tensor, e.g. a graph input of shape [].');
    }
    return [{ dtype: x.dtype, shape: [...x.shape] }];
  },
  nondiff: [1],
  grad: (c) => [c.b.mul(c.dy(0)!, c.b.neg(c.x(1))), null],
});
