/**
 * The commands of the CLI and their option tables (cli/options.ts): what each command accepts, the API
 * option each CLI option sets, and the help text, all from one place.
 */
import type { CommandSpec, OptionSpec } from './options.ts';

const json: OptionSpec = { name: 'json', type: 'boolean', help: 'print the result as one JSON object, the last line on stdout (progress goes to stderr)' };
const noCache: OptionSpec = { name: 'no-cache', type: 'boolean', key: 'cache', flag: false, help: 'do not read or write the feature cache' };
const threads: OptionSpec = { name: 'threads', type: 'int', arg: 'N', key: 'threads', help: 'ONNX Runtime threads (default GRAFT_THREADS, else every core)' };
const seed: OptionSpec = { name: 'seed', type: 'int', arg: 'S', key: 'seed', help: 'seed of splits, initialisation and shuffling (default 0)' };

/** The options that fine-tuning shares (graft train --mode finetune|gradual, graft lr-find). */
const fineTuning: OptionSpec[] = [
  { name: 'backbone', type: 'string', arg: 'ID', key: 'backbone', help: 'image backbone: a registry id (graft backbones), a model.onnx, or a hub id owner/name[@rev]; text: use-lite, glove-100d, or an encoder (model folder, .onnx, hub id); numeric CSV: none' },
  { name: 'cut', type: 'string', arg: 'NAME', key: 'cut', help: 'the layer the head reads (images: any tensor name, NAME:meanmax), or the text pooling (mean, sif, cls); default: chosen by cross-validation' },
  { name: 'head', type: 'string', arg: 'KIND', key: 'head', help: 'linear (default; mlp for numeric CSV), svm, ridge, mlp or knn; fine-tuning takes linear or mlp' },
  { name: 'val', type: 'number', arg: 'F', key: 'val', help: 'validation fraction (default: by the small-data protocol)' },
  { name: 'epochs', type: 'int', arg: 'N', key: 'epochs', help: 'training epochs (the most; early stopping may end sooner)' },
  { name: 'lr', type: 'number', arg: 'X', key: 'lr', help: 'learning rate' },
  seed, threads,
  { name: 'batch-size', type: 'int', arg: 'N', key: 'batchSize', help: 'examples per training step' },
  { name: 'unfreeze', type: 'int', arg: 'N', key: 'unfreeze', help: 'fine-tuning: train the top N layer groups (graft backbones show ID lists them) plus the head' },
  { name: 'lr-mult', type: 'number', arg: 'M', key: 'lrMult', help: 'fine-tuning: each layer group down trains at lr x M (layer-wise decay)' },
  { name: 'freeze-epochs', type: 'int', arg: 'E', key: 'freezeEpochs', help: 'fine-tuning: head-only epochs before unfreezing' },
  { name: 'l2sp', type: 'number', arg: 'W', key: 'l2sp', help: 'image fine-tuning: pull weights toward the pretrained ones (L2-SP) with strength W' },
  { name: 'mixup', type: 'number', arg: 'A', key: 'mixup', help: 'image fine-tuning: mixup with Beta(A, A)' },
  { name: 'no-augment', type: 'boolean', key: 'augment', flag: false, help: 'image fine-tuning: no augmentation' },
  { name: 'augment', type: 'boolean', key: 'augment', flag: true, help: 'image fine-tuning: augment (default below 100 images per class)' },
  { name: 'bn', type: 'string', arg: 'frozen|train', key: 'bn', help: 'image fine-tuning: BatchNorm statistics frozen (default) or updated' },
  { name: 'size', type: 'int', arg: 'S', key: 'size', help: 'image fine-tuning: square input size (default the backbone\'s)' },
  { name: 'no-probe-fallback', type: 'boolean', key: 'probeFallback', flag: false, help: 'image fine-tuning: keep the fine-tuned model even when the probe validates better' },
  { name: 'label-smoothing', type: 'number', arg: 'E', key: 'labelSmoothing', help: 'label smoothing epsilon' },
  { name: 'dropout', type: 'number', arg: 'P', key: 'dropout', help: 'dropout before the head (MLP: between layers)' },
  { name: 'weight-decay', type: 'number', arg: 'W', key: 'weightDecay', help: 'AdamW weight decay' },
  { name: 'patience', type: 'int', arg: 'N', key: 'patience', help: 'early stopping: epochs without improvement' },
  { name: 'checkpoint', type: 'string', arg: 'FILE', key: 'checkpoint', help: 'checkpoint file (default beside the output folder)' },
  { name: 'resume', type: 'boolean', key: 'resume', help: 'continue a killed run from its checkpoint' },
  noCache,
];

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'train',
    synopsis: [
    'graft train <texts.csv|.jsonl> [--backbone use-lite|glove-100d] [--cut mean|sif|cls] [--head linear|svm|ridge|mlp|knn] [--class-weight balanced]   (columns text,label)',
    'graft train <texts.csv|.jsonl> --backbone <model folder|model.onnx|owner/name[@rev]> [--cut cls|mean] [--head linear|svm|ridge|mlp|knn] [--class-weight balanced]',
    '            a BERT-family ONNX encoder with its tokenizer.json (hub layout; GRAFT_HUB_ENDPOINT, GRAFT_OFFLINE=1)',
    'graft train <texts.csv|.jsonl|.conll> --backbone <encoder> --task classify|pair|ner [--mode finetune|gradual|probe|setfit]',
    '            [--unfreeze N] [--lr X] [--lr-mult M (layer-wise decay)] [--warmup F] [--cut cls|mean] [--max-length N]',
    '            [--pair-column text_pair] [--val-data dev.conll] [--epochs N] [--freeze-epochs E] [--batch-size N]',
    '            fine-tune the encoder: pair rows have text,text_pair,label; NER reads CoNLL (token tag) or JSONL tokens/tags',
    'graft train <clips/>  [--head linear|svm|ridge|mlp|knn] [--class-weight balanced]   audio folders: root/<label>/*.wav (speech-embedding backbone)',
    'graft train <images/> [--backbone mobilenet_v2|inception_v3] [--cut NAME] [--head linear|svm|ridge|mlp|knn] [--class-weight balanced] [--val 0.2] [--out DIR]',
    '            image folders: root/<label>/*.jpg|png|webp|gif (or train/ val/ test/ subfolders)',
    'graft train <train.csv> --backbone none --head linear|mlp [--val 0.2] [--epochs N] [--lr X]',
    '            [--batch-size N] [--seed S] [--hidden 256,128] [--dropout P] [--weight-decay W]',
    '            [--optimizer adamw|sgd] [--schedule one-cycle|cosine|constant] [--label-smoothing E]',
    '            [--patience N] [--threads N] [--resume] [--out DIR] [--json]',
    'graft train <images/> --mode finetune|gradual [--unfreeze N] [--lr X] [--lr-mult M] [--l2sp W] [--mixup A]',
    '            [--augment] [--bn frozen|train] [--size S] [--freeze-epochs E] [--epochs N] [--patience N] [--resume]',
    '            fine-tune the backbone itself (--mode probe, the default, trains only a head on frozen features)',
  ],
    about: 'Trains a model on labelled data and writes it as a model folder (graft.json and model.onnx). The data decides the task: numeric CSV, an image or audio folder, a text CSV/JSONL, sentence pairs (--task pair) or CoNLL (--task ner).',
    options: [
      { name: 'out', type: 'string', arg: 'DIR', key: 'out', help: 'the model folder to write (default graft-model)' },
      { name: 'mode', type: 'string', arg: 'MODE', key: 'mode', help: 'probe (a head on frozen features, the default), finetune, gradual, or setfit (few-shot text)' },
      { name: 'task', type: 'string', arg: 'TASK', key: 'task', help: 'text data: classify (default), pair or ner' },
      ...fineTuning,
      { name: 'class-weight', type: 'string', arg: 'balanced|none', key: 'classWeight', help: 'probes: weigh each class n / (k n_c)' },
      { name: 'hidden', type: 'int-list', arg: 'W,W', key: 'hidden', help: 'numeric-CSV MLP: hidden layer widths (default 256)' },
      { name: 'optimizer', type: 'string', arg: 'adamw|sgd', key: 'optimizer', help: 'numeric-CSV MLP: the optimizer (default adamw)' },
      { name: 'schedule', type: 'string', arg: 'KIND', key: 'schedule', help: 'numeric-CSV MLP: one-cycle (default), cosine or constant' },
      { name: 'warmup', type: 'number', arg: 'F', key: 'warmup', help: 'text fine-tuning: linear warm-up over this fraction of each stage' },
      { name: 'max-length', type: 'int', arg: 'N', key: 'maxLength', help: 'text encoders: a lower token limit than the encoder\'s own' },
      { name: 'pair-column', type: 'string', arg: 'NAME', key: 'pairColumn', help: 'sentence pairs: the second text\'s column (default text_pair)' },
      { name: 'val-data', type: 'string', arg: 'FILE', key: 'valData', help: 'NER: a separate validation file (CoNLL or JSONL)' },
      json,
    ],
  },
  {
    name: 'lr-find',
    synopsis: [
    'graft lr-find <images/> [--mode finetune] [--unfreeze N] [--out lr-find.html]   loss vs learning rate, and a suggestion',
  ],
    about: 'Sweeps the learning rate over the fine-tuning network of an image folder and plots loss against rate, with a suggestion (steepest descent).',
    options: [
      { name: 'out', type: 'string', arg: 'FILE', key: 'report', help: 'the HTML plot (default lr-find.html)' },
      { name: 'mode', type: 'string', arg: 'MODE', key: 'mode', help: 'finetune (default) or gradual' },
      ...fineTuning,
      json,
    ],
  },
  {
    name: 'eval',
    synopsis: [
    'graft eval <DIR> <test.csv|test.conll|images/> [--json]      NER models: entity-level precision, recall, F1',
  ],
    about: 'Accuracy and macro-F1 of a model folder on labelled data of the kind it was trained on; NER models: entity-level precision, recall and F1 per type.',
    options: [threads, json],
  },
  {
    name: 'predict',
    synopsis: [
    'graft predict <DIR> <rows.csv|texts.jsonl|images/|image> [--json]   NER models print entities with character offsets',
  ],
    about: 'Predictions of a model folder: the label and its probability per row, text, image or clip (--json: every probability).',
    options: [threads, json],
  },
  {
    name: 'rank',
    synopsis: [
    'graft rank <images/|texts.csv> [--backbones a,b,c] [--top 3] [--all] [--json]',
    '            ranks backbone x cut pairs without fine-tuning (LogME, H-score, kNN, LEEP, NCE, k-fold probe)',
    '            against a no-transfer baseline (raw pixels, TF-IDF): negative transfer is shown',
  ],
    about: 'Ranks backbone x layer pairs for labelled data before any training.',
    options: [
      { name: 'backbones', type: 'list', arg: 'A,B', key: 'backbones', help: 'the backbones to compare (default every one of the data\'s modality)' },
      { name: 'top', type: 'int', arg: 'N', key: 'top', help: 'candidates per backbone probed by k-fold cross-validation (default 3)' },
      { name: 'all', type: 'boolean', help: 'list every candidate (default the best 15)' },
      seed, threads, noCache, json,
    ],
  },
  {
    name: 'adapt',
    synopsis: [
    'graft adapt <source.csv> --target <target.csv> [--method self-train|coral|standardize|source-only|auto|dann] [--out DIR] [--json]',
    '            a classifier for the target domain from labelled source rows and unlabelled target rows;',
    '            a label column in the target is used only to report target accuracy',
  ],
    about: 'Domain adaptation: says how far apart the domains are, adapts, and writes a model folder for the target.',
    options: [
      { name: 'target', type: 'string', arg: 'CSV', key: 'target', help: 'the target domain\'s rows (same feature columns; labels optional, for reporting only)' },
      { name: 'method', type: 'string', arg: 'NAME', key: 'method', help: 'self-train (default), coral, standardize, source-only, auto (one of those, by reverse validation), or dann (adversarial, an MLP)' },
      { name: 'out', type: 'string', arg: 'DIR', key: 'out', help: 'the model folder to write (default graft-model)' },
      seed, threads, json,
    ],
  },
  {
    name: 'embed',
    synopsis: [
    'graft embed <images/|image files...> [--backbone ID] [--cut NAME] --out FILE.safetensors',
    '            a folder of class folders adds labels; images directly in the folder, or files, need none',
  ],
    about: 'Writes features at a backbone layer as safetensors: features [n, dim], the file of each row, and labels when the folder has class folders.',
    options: [
      { name: 'out', type: 'string', arg: 'FILE', key: 'out', help: 'the .safetensors file to write (required)' },
      { name: 'backbone', type: 'string', arg: 'ID', key: 'backbone', help: 'image backbone (default mobilenet_v2)' },
      { name: 'cut', type: 'string', arg: 'NAME', key: 'cut', help: 'the layer (default the backbone\'s default cut)' },
      noCache, json,
    ],
  },
  {
    name: 'report',
    synopsis: [
    'graft report <DIR> [--data test.csv|images/] [--out FILE.html]   one self-contained HTML report (default DIR/report.html)',
  ],
    about: 'Writes one self-contained HTML report: learning curves, the confusion matrix, per-class scores, the most confidently wrong examples and the diagnosis.',
    options: [
      { name: 'data', type: 'string', arg: 'PATH', key: 'data', help: 'labelled data to evaluate on (default the data graft.json records, its held-out part when known)' },
      { name: 'out', type: 'string', arg: 'FILE', key: 'out', help: 'the HTML file (default DIR/report.html)' },
      json,
    ],
  },
  {
    name: 'serve',
    synopsis: [
    'graft serve <DIR|NAME=DIR>... [--port 8080] [--host 127.0.0.1] [--token T] [--max-batch 64] [--max-wait-ms 5]',
    '            HTTP: POST /v1/models/NAME/predict, GET /v1/models, /healthz, /metrics (Prometheus)',
  ],
    about: 'Serves model folders over HTTP: POST /v1/models/NAME/predict with {"rows": [...]} (numeric CSV), {"texts": [...]} or {"images": [base64, ...]} / multipart files, answered as graft predict --json prints; concurrent requests are micro-batched. NAME is the folder\'s name, or NAME=DIR. SIGTERM stops accepting, finishes in-flight requests and exits 0.',
    options: [
      { name: 'port', type: 'int', arg: 'N', key: 'port', help: 'TCP port (default 8080; 0 picks a free one)' },
      { name: 'host', type: 'string', arg: 'ADDR', key: 'host', help: 'interface to bind (default 127.0.0.1; 0.0.0.0 for every one)' },
      { name: 'token', type: 'string', arg: 'T', key: 'token', help: 'require Authorization: Bearer T on every endpoint but /healthz (default GRAFT_SERVE_TOKEN, else none)' },
      { name: 'max-batch', type: 'int', arg: 'N', key: 'maxBatch', help: 'the most inputs one predict call takes (default 64)' },
      { name: 'max-wait-ms', type: 'int', arg: 'MS', key: 'maxWaitMs', help: 'how long a request waits for others to join its batch (default 5)' },
      { name: 'body-limit', type: 'int', arg: 'BYTES', key: 'bodyLimit', help: 'the largest request body (default 10485760)' },
      { name: 'request-timeout-ms', type: 'int', arg: 'MS', key: 'requestTimeoutMs', help: 'the longest a request may take to arrive or be answered (default 30000)' },
      threads,
    ],
  },
  {
    name: 'backbones',
    synopsis: [
    'graft backbones [show ID]',
  ],
    about: 'The backbone registry; show ID adds its files, preprocessing, cut points and layer groups.',
    options: [json],
  },
  {
    name: 'demo',
    synopsis: [
    'graft demo                      train and evaluate on sklearn\'s digits (the quick start)',
  ],
    about: 'Transfer learning on real handwritten digits: scratch vs pretrained, by labels per class; writes a comparison report.',
    options: [{ name: 'out', type: 'string', arg: 'FILE', help: 'the report (default graft-demo-report.html)' }],
  },
];

/** The top-level help: every command's usage lines. */
export function topHelp(): string {
  return [
    'graft: transfer learning for TypeScript',
    '',
    'usage:',
    ...COMMANDS.flatMap((c) => c.synopsis.map((s) => `  ${s}`)),
    '  graft <command> --help          the options of one command',
    '',
    "Numeric CSV: a header row, a 'label' column and numeric feature columns.",
  ].join('\n');
}
