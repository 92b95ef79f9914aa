/**
 * A small convolutional network trained from scratch: [conv 3x3 -> BatchNorm -> ReLU -> MaxPool 2x2]
 * per stage, then global average pooling and a linear classifier. BatchNorm uses frozen statistics
 * (inference mode), as graft's transfer recipes do; its scale and shift train.
 */
import { initWeights, mixSeed } from '../train/init.ts';
import type { Network, Param } from '../train/network.ts';

export interface SmallCnnOptions {
  /** [channels, height, width] */
  inputShape: [number, number, number];
  classes: number;
  channels?: number[];
  seed?: number;
  /** How the last feature map becomes a vector: global average pooling (default) or flattening (keeps where things are). */
  pool?: 'global' | 'flatten';
}

export function smallCnn(o: SmallCnnOptions): Network {
  const seed = o.seed ?? 0;
  const chans = o.channels ?? [32, 64];
  const params: Param[] = [];
  let cin = o.inputShape[0];
  const flat = o.pool === 'flatten';
  // Each stage halves height and width (max-pool 2x2, floor).
  const side = (n: number) => chans.reduce((a) => Math.floor(a / 2), n);
  const spatial = flat ? side(o.inputShape[1]) * side(o.inputShape[2]) : 1;
  chans.forEach((c, i) => {
    const fanIn = cin * 9;
    params.push(
      { name: `conv${i}.weight`, shape: [c, cin, 3, 3], value: initWeights('he', c * fanIn, fanIn, c * 9, mixSeed(seed, 'conv', i)), group: i, decay: true },
      { name: `bn${i}.scale`, shape: [c], value: new Float32Array(c).fill(1), group: i, decay: false },
      { name: `bn${i}.bias`, shape: [c], value: new Float32Array(c), group: i, decay: false },
    );
    cin = c;
  });
  params.push(
    { name: 'fc.weight', shape: [cin * spatial, o.classes], value: initWeights('glorot', cin * spatial * o.classes, cin * spatial, o.classes, mixSeed(seed, 'fc')), group: chans.length, decay: true },
    { name: 'fc.bias', shape: [o.classes], value: new Float32Array(o.classes), group: chans.length, decay: false },
  );
  return {
    inputShape: [...o.inputShape],
    outputs: o.classes,
    groups: [...chans.map((_, i) => `stage${i}`), 'head'],
    params,
    config: { kind: 'small-cnn', inputShape: o.inputShape, classes: o.classes, channels: chans, pool: flat ? 'flatten' : 'global' },
    forward(b, x, ctx) {
      let h = x;
      chans.forEach((c, i) => {
        h = b.op1('Conv', [h, ctx.param(`conv${i}.weight`)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
        // Frozen running statistics (mean 0, var 1) as constants: only scale and shift train.
        const mean = b.constant({ dtype: 'float32', dims: [c], data: new Float32Array(c) });
        const vr = b.constant({ dtype: 'float32', dims: [c], data: new Float32Array(c).fill(1) });
        h = b.op1('BatchNormalization', [h, ctx.param(`bn${i}.scale`), ctx.param(`bn${i}.bias`), mean, vr], { epsilon: 1e-5 });
        h = b.relu(h);
        h = b.op1('MaxPool', [h], { kernel_shape: [2, 2], strides: [2, 2] });
      });
      h = b.op1('Flatten', [flat ? h : b.op1('GlobalAveragePool', [h])], { axis: 1 });
      return b.op1('Gemm', [h, ctx.param('fc.weight'), ctx.param('fc.bias')]);
    },
  };
}
