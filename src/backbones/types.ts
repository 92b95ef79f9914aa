/** Shared descriptions of backbones: how inputs are prepared and where the graph can be cut. */

/** How an image becomes the backbone's input tensor [N, 3, H, W] (float32, RGB, NCHW). */
export interface ImagePreprocess {
  /** Input height and width. */
  size: [number, number];
  /** 'squash': resize to size ignoring aspect; 'center-crop': resize the shorter side to `resizeTo`, then crop the centre. */
  resize: 'squash' | 'center-crop';
  resizeTo?: number;
  /** pixel' = (pixel * scale - mean[c]) / std[c], with pixel in 0..255. */
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** A named place where the backbone's graph can be cut; its output is the feature tensor. */
export interface CutPoint {
  name: string;
  /** The tensor name in the backbone graph. */
  tensor: string;
  /** Per-example shape of the tensor (without batch), e.g. [1280] or [320, 7, 7]. */
  shape: number[];
  description?: string;
}

/** An ordered layer group of a backbone (stem, stages, head), for freezing in fine-tuning. */
export interface LayerGroup {
  name: string;
  /** Names of the initializers (weights) in this group. */
  params: string[];
  /** The tensor this group ends with (what the next group starts from), where there is one. */
  end?: string;
}
