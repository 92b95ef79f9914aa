/**
 * The graft command line. It calls only the public API (src/api.ts). With --json the last line on
 * stdout is one JSON object; progress goes to stderr. Errors print as `error [CODE]: message` plus a
 * hint, with exit code 2 and no stack trace.
 */
import { parseArgs } from 'node:util';
import { GraftError, isGraftError } from '../errors.ts';
import { evalCsv, predictCsv, trainCsv } from '../tabular/csv.ts';
import { runDemo } from './demo.ts';
import { existsSync, statSync } from 'node:fs';
import { evalImages, predictImages, trainImages } from '../probe/images.ts';
import { REGISTRY, findBackbone } from '../backbones/registry.ts';
import { embedCommand } from '../probe/embed.ts';
import { checkHead } from '../probe/fit.ts';
import { reportCommand, writeLrFindReport } from '../report/report.ts';
import { type FineTuneImagesOptions, fineTuneImages, lrFindImages } from '../finetune/images.ts';
import { blockCuts, loadImageBackbone } from '../backbones/image.ts';
import { rankImages, rankTexts } from '../rank/rank.ts';
import { backboneGroups } from '../backbones/trainable.ts';

import { readdirSync } from 'node:fs';
import { readCard } from '../model/folder.ts';
import { loadTextEncoder } from '../backbones/textenc.ts';
import { encoderGroups } from '../text/encoder-net.ts';
import { join } from 'node:path';
import { evalAudio, trainAudio } from '../probe/audio.ts';
import { evalText, predictTexts, trainText } from '../probe/text.ts';
import { readTextTable } from '../data/text.ts';
import { TEXT_TASKS, type TextTask, evalNer, evalPairs, fineTuneText, predictEntities, predictPairs, textTaskOf } from '../finetune/text.ts';
import { openSync, readSync, closeSync } from 'node:fs';

/** A JSONL file, or a CSV whose header has a "text" column, holds texts (not numeric features). */
function isTextFile(path: string): boolean {
  if (/\.(jsonl(\.gz)?|conll|conllu|iob|bio)$/i.test(path)) return true;
  if (!existsSync(path) || isDir(path) || /\.gz$/i.test(path)) return false;
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(4096);
  const n = readSync(fd, buf, 0, 4096, 0);
  closeSync(fd);
  const header = buf.subarray(0, n).toString('utf8').split(/\r?\n/)[0]!.replace(/^\ufeff/, '');
  return header.split(',').map((h) => h.trim().replace(/^"|"$/g, '')).includes('text');
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/** Whether a data folder holds WAV clips (audio) rather than images: the first file found decides. */
function isAudioFolder(root: string, depth = 0): boolean {
  for (const e of readdirSync(root, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    if (e.isFile() && /\.(png|jpe?g|webp|gif)$/i.test(e.name)) return false;
    if (e.isFile() && /\.wav$/i.test(e.name)) return true;
    if (e.isDirectory() && depth < 3 && isAudioFolder(join(root, e.name), depth + 1)) return true;
  }
  return false;
}

const USAGE = `graft: transfer learning for TypeScript

usage:
  graft train <texts.csv|.jsonl> [--backbone use-lite|glove-100d] [--cut mean|sif|cls] [--head linear|svm|ridge|mlp|knn] [--class-weight balanced]   (columns text,label)
  graft train <texts.csv|.jsonl> --backbone <model folder|model.onnx|owner/name[@rev]> [--cut cls|mean] [--head linear|svm|ridge|mlp|knn] [--class-weight balanced]
              a BERT-family ONNX encoder with its tokenizer.json (hub layout; GRAFT_HUB_ENDPOINT, GRAFT_OFFLINE=1)
  graft train <texts.csv|.jsonl|.conll> --backbone <encoder> --task classify|pair|ner [--mode finetune|gradual|probe|setfit]
              [--unfreeze N] [--lr X] [--lr-mult M (layer-wise decay)] [--warmup F] [--cut cls|mean] [--max-length N]
              [--pair-column text_pair] [--val-data dev.conll] [--epochs N] [--freeze-epochs E] [--batch-size N]
              fine-tune the encoder: pair rows have text,text_pair,label; NER reads CoNLL (token tag) or JSONL tokens/tags
  graft train <clips/>  [--head linear|svm|ridge|mlp|knn] [--class-weight balanced]   audio folders: root/<label>/*.wav (speech-embedding backbone)
  graft train <images/> [--backbone mobilenet_v2|inception_v3] [--cut NAME] [--head linear|svm|ridge|mlp|knn] [--class-weight balanced] [--val 0.2] [--out DIR]
              image folders: root/<label>/*.jpg|png|webp|gif (or train/ val/ test/ subfolders)
  graft train <train.csv> --backbone none --head linear|mlp [--val 0.2] [--epochs N] [--lr X]
              [--batch-size N] [--seed S] [--hidden 256,128] [--dropout P] [--weight-decay W]
              [--optimizer adamw|sgd] [--schedule one-cycle|cosine|constant] [--label-smoothing E]
              [--patience N] [--threads N] [--resume] [--out DIR] [--json]
  graft train <images/> --mode finetune|gradual [--unfreeze N] [--lr X] [--lr-mult M] [--l2sp W] [--mixup A]
              [--augment] [--bn frozen|train] [--size S] [--freeze-epochs E] [--epochs N] [--patience N] [--resume]
              fine-tune the backbone itself (--mode probe, the default, trains only a head on frozen features)
  graft lr-find <images/> [--mode finetune] [--unfreeze N] [--out lr-find.html]   loss vs learning rate, and a suggestion
  graft eval <DIR> <test.csv|test.conll|images/> [--json]      NER models: entity-level precision, recall, F1
  graft predict <DIR> <rows.csv|texts.jsonl|images/|image> [--json]   NER models print entities with character offsets
  graft rank <images/|texts.csv> [--backbones a,b,c] [--top 3] [--all] [--json]
              ranks backbone x cut pairs without fine-tuning (LogME, H-score, kNN, LEEP, NCE, k-fold probe)
              against a no-transfer baseline (raw pixels, TF-IDF): negative transfer is shown
  graft embed <images/> [--backbone ID] [--cut NAME] --out FILE.safetensors
  graft report <DIR> [--data test.csv|images/] [--out FILE.html]   one self-contained HTML report (default DIR/report.html)
  graft backbones [show ID]
  graft demo                      train and evaluate on sklearn's digits (the quick start)

Numeric CSV: a header row, a 'label' column and numeric feature columns.`;

/** Fine-tuning options from the command line (all optional). */
function fineTuneOptions(v: Record<string, string | boolean | undefined>): Partial<FineTuneImagesOptions> {
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const head = str('head');
  const bn = str('bn');
  if (bn && bn !== 'frozen' && bn !== 'train') throw new GraftError('E_BAD_OPTION', `--bn takes frozen or train, not "${bn}"`, 'Keep BatchNorm statistics frozen (the default for small data), or update them with --bn train.');
  if (head && head !== 'linear' && head !== 'mlp') throw new GraftError('E_BAD_OPTION', `fine-tuning takes --head linear or mlp, not "${head}"`, 'A kNN head has nothing to fine-tune through: use --mode probe --head knn.');
  const o: Record<string, unknown> = {
    backbone: str('backbone'), cut: str('cut'), head, bn, val: num(str('val'), 'val'), epochs: num(str('epochs'), 'epochs', true), lr: num(str('lr'), 'lr'),
    seed: num(str('seed'), 'seed', true), threads: num(str('threads'), 'threads', true), unfreeze: num(str('unfreeze'), 'unfreeze', true),
    lrMult: num(str('lr-mult'), 'lr-mult'), l2sp: num(str('l2sp'), 'l2sp'), mixup: num(str('mixup'), 'mixup'), size: num(str('size'), 'size', true),
    freezeEpochs: num(str('freeze-epochs'), 'freeze-epochs', true), batchSize: num(str('batch-size'), 'batch-size', true),
    labelSmoothing: num(str('label-smoothing'), 'label-smoothing'), dropout: num(str('dropout'), 'dropout'), weightDecay: num(str('weight-decay'), 'weight-decay'),
    patience: num(str('patience'), 'patience', true), checkpoint: str('checkpoint'), resume: v['resume'] === true ? true : undefined, augment: v['augment'] === true ? true : v['no-augment'] === true ? false : undefined, probeFallback: v['no-probe-fallback'] === true ? false : undefined,
  };
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as Partial<FineTuneImagesOptions>;
}

function usage(msg: string): GraftError {
  return new GraftError('E_USAGE', msg, 'Run graft --help for the commands and options.');
}

function num(v: string | undefined, name: string, int = false): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isFinite(x) || (int && !Number.isInteger(x))) throw usage(`--${name} expects ${int ? 'an integer' : 'a number'}, got "${v}"`);
  return x;
}

export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const print = (s: string) => out.write(s + '\n');
  const log = (s: string) => err.write(s + '\n');
  try {
    const [cmd, ...rest] = argv;
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      print(USAGE);
      return cmd ? 0 : 2;
    }
    let parsed;
    try {
      parsed = parseArgs({
        args: rest, allowPositionals: true, strict: true,
        options: {
          backbone: { type: 'string' }, head: { type: 'string' }, val: { type: 'string' }, epochs: { type: 'string' },
          lr: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' },
          'batch-size': { type: 'string' }, hidden: { type: 'string' }, dropout: { type: 'string' }, 'weight-decay': { type: 'string' },
          optimizer: { type: 'string' }, schedule: { type: 'string' }, 'label-smoothing': { type: 'string' }, patience: { type: 'string' },
          threads: { type: 'string' }, resume: { type: 'boolean' }, checkpoint: { type: 'string' }, cut: { type: 'string' }, 'no-cache': { type: 'boolean' }, data: { type: 'string' },
          mode: { type: 'string' }, unfreeze: { type: 'string' }, 'lr-mult': { type: 'string' }, l2sp: { type: 'string' }, mixup: { type: 'string' },
          augment: { type: 'boolean' }, 'no-augment': { type: 'boolean' }, 'no-probe-fallback': { type: 'boolean' }, size: { type: 'string' }, 'freeze-epochs': { type: 'string' }, bn: { type: 'string' },
          'class-weight': { type: 'string' }, backbones: { type: 'string' }, top: { type: 'string' }, all: { type: 'boolean' }, task: { type: 'string' }, 'pair-column': { type: 'string' }, warmup: { type: 'string' }, 'val-data': { type: 'string' }, 'max-length': { type: 'string' },
        },
      });
    } catch (e) {
      throw usage((e as Error).message);
    }
    const { values: v, positionals: pos } = parsed;
    const json = !!v.json;
    switch (cmd) {
      case 'train': {
        if (pos.length !== 1) throw usage('graft train takes one CSV file or image folder');
        // NER and pair tasks have no probe path of their own worth defaulting to: they fine-tune unless told.
        const mode = v.mode ?? (v.task === 'ner' || v.task === 'pair' ? 'finetune' : 'probe');
        if (!['probe', 'finetune', 'gradual', 'setfit'].includes(mode)) throw new GraftError('E_BAD_OPTION', `unknown --mode "${mode}"`, 'Use --mode probe (head only), finetune, gradual, or setfit (few-shot text).');
        const task = v.task as TextTask | undefined;
        if (task !== undefined && !TEXT_TASKS.includes(task)) throw new GraftError('E_BAD_OPTION', `unknown --task "${task}"`, `Use one of ${TEXT_TASKS.join(', ')} (text data).`);
        if (isTextFile(pos[0]!) && ((task ?? 'classify') !== 'classify' || mode !== 'probe')) {
          if (!v.backbone) throw new GraftError('E_BAD_OPTION', `--task ${task ?? 'classify'} --mode ${mode} trains a transformer encoder: pass one with --backbone`, 'Give a model folder, an .onnx file or a hub id (owner/name), or use --mode probe with word vectors.');
          const f = fineTuneOptions(v);
          const pooling = v.cut as 'cls' | 'mean' | undefined;
          if (pooling && pooling !== 'cls' && pooling !== 'mean') throw new GraftError('E_BAD_OPTION', `an encoder pools by --cut cls or mean, not "${pooling}"`, 'Use --cut cls (the first token) or --cut mean.');
          const defined = <T extends Record<string, unknown>>(o: T) => Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined));
          const r = await fineTuneText({
            data: pos[0]!, out: v.out ?? 'graft-model', backbone: v.backbone, mode: mode as 'probe' | 'finetune' | 'gradual' | 'setfit', log, ...(task ? { task } : {}),
            ...defined({
              unfreeze: f.unfreeze, epochs: f.epochs, freezeEpochs: f.freezeEpochs, lr: f.lr, lrMult: f.lrMult, batchSize: f.batchSize, val: f.val, seed: f.seed,
              threads: f.threads, dropout: f.dropout, weightDecay: f.weightDecay, labelSmoothing: f.labelSmoothing, patience: f.patience, checkpoint: f.checkpoint,
              resume: f.resume, pooling, pairColumn: v['pair-column'], valData: v['val-data'], warmup: num(v.warmup, 'warmup'), maxLength: num(v['max-length'], 'max-length', true),
            }),
          });
          if (json) print(JSON.stringify(r));
          else {
            print(`saved ${r.out}: ${r.backbone} ${r.task} (${r.mode}), trained [${r.trainedGroups.join(', ')}], ${r.labels.length} ${r.task === 'ner' ? 'tags' : 'classes'}, ${r.seconds.toFixed(1)} s`);
            if (r.ner) print(`validation entities: precision ${r.ner.micro.precision.toFixed(4)}, recall ${r.ner.micro.recall.toFixed(4)}, F1 ${r.ner.micro.f1.toFixed(4)} (${r.ner.micro.support} entities)`);
            if (r.trainAccuracy !== null) print(`train accuracy ${r.trainAccuracy.toFixed(4)}${r.valAccuracy !== null ? `, validation accuracy ${r.valAccuracy.toFixed(4)}, macro-F1 ${r.valMacroF1!.toFixed(4)}` : ''}`);
            if (r.truncated) print(`${r.truncated} example(s) truncated to the encoder's token limit`);
            if (r.note) print(`note: ${r.note}`);
            print(`diagnosis: ${r.diagnosis.summary}`);
            for (const a of r.diagnosis.advice) print(`  - ${a}`);
          }
          return 0;
        }
        if (task !== undefined && task !== 'classify') throw new GraftError('E_BAD_OPTION', `--task ${task} needs text data (CSV/JSONL, or CoNLL for ner); ${pos[0]} is not`, 'Pass a text file.');
        if (mode === 'setfit') throw new GraftError('E_BAD_OPTION', `--mode setfit is few-shot text classification; ${pos[0]} is not a text file`, 'Pass a CSV/JSONL of texts, or use --mode finetune for images.');
        if (mode !== 'probe') {
          if (!isDir(pos[0]!) || isAudioFolder(pos[0]!)) throw new GraftError('E_BAD_OPTION', `--mode ${mode} fine-tunes image backbones; ${pos[0]} is not an image folder`, 'Use --mode probe for CSV, text and audio data.');
          const r = await fineTuneImages({ data: pos[0]!, out: v.out ?? 'graft-model', mode: mode as 'finetune' | 'gradual', log, cache: !v['no-cache'], ...fineTuneOptions(v) });
          if (json) print(JSON.stringify(r));
          else {
            print(`saved ${r.out}: ${r.backbone} ${r.mode}, trained [${r.trainedGroups.join(', ')}], ${r.labels.length} classes, ${r.seconds.toFixed(1)} s`);
            print(r.cachedPrefix ? `cached prefix: ${r.cachedPrefix}` : 'no cached prefix (augmentation on, or every group trained)');
            print(`train accuracy ${r.trainAccuracy.toFixed(4)}${r.valAccuracy !== null ? `, validation accuracy ${r.valAccuracy.toFixed(4)}, macro-F1 ${r.valMacroF1!.toFixed(4)}` : ''}`);
            print(`diagnosis: ${r.diagnosis.summary}`);
            for (const a of r.diagnosis.advice) print(`  - ${a}`);
          }
          return 0;
        }
        const cw = v['class-weight'];
        if (cw !== undefined && cw !== 'balanced' && cw !== 'none') throw new GraftError('E_BAD_OPTION', `unknown --class-weight "${cw}"`, 'Use --class-weight balanced (each class weighs n / (k n_c)) or none.');
        const classWeight = cw === 'balanced' ? { classWeight: 'balanced' as const } : {};
        const cvLine = (r: { cvAccuracy: number | null; cvStd: number | null; protocol: { reason: string } }) => {
          print(`protocol: ${r.protocol.reason}`);
          if (r.cvAccuracy !== null) print(`cross-validated accuracy ${r.cvAccuracy.toFixed(4)} +- ${r.cvStd!.toFixed(4)} (the estimate for new data${r.protocol.reason.startsWith('the smallest') ? '' : ' from the training part'})`);
        };
        if (isDir(pos[0]!)) {
          const head = checkHead(v.head ?? 'linear');
          const defined = <T extends Record<string, unknown>>(o: T) => Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined));
          const common = defined({ val: num(v.val, 'val'), epochs: num(v.epochs, 'epochs', true), lr: num(v.lr, 'lr'), seed: num(v.seed, 'seed', true), threads: num(v.threads, 'threads', true) });
          const r = isAudioFolder(pos[0]!) ? { ...(await trainAudio({ data: pos[0]!, out: v.out ?? 'graft-model', head, log, ...classWeight, ...common })), cut: 'meanmax' } : await trainImages({
            data: pos[0]!, out: v.out ?? 'graft-model', head, log, cache: !v['no-cache'], ...classWeight,
            ...defined({ backbone: v.backbone, cut: v.cut, val: num(v.val, 'val'), epochs: num(v.epochs, 'epochs', true), lr: num(v.lr, 'lr'), seed: num(v.seed, 'seed', true), threads: num(v.threads, 'threads', true) }),
          });
          if (json) print(JSON.stringify(r));
          else {
            print(`saved ${r.out}: ${r.backbone} cut ${r.cut} + ${r.head} head, ${r.labels.length} classes, ${r.seconds.toFixed(1)} s`);
            cvLine(r);
            print(`train accuracy ${r.trainAccuracy.toFixed(4)}${r.valAccuracy !== null ? `, validation accuracy ${r.valAccuracy.toFixed(4)}, macro-F1 ${r.valMacroF1!.toFixed(4)}` : ''}`);
            print(`diagnosis: ${r.diagnosis.summary}`);
            for (const a of r.diagnosis.advice) print(`  - ${a}`);
          }
          return 0;
        }
        if (isTextFile(pos[0]!)) {
          const defined = <T extends Record<string, unknown>>(o: T) => Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined));
          const cut = v.cut as 'mean' | 'sif' | 'cls' | undefined;
          if (cut && cut !== 'mean' && cut !== 'sif' && cut !== 'cls') {
            throw new GraftError('E_BAD_OPTION', `unknown text pooling "${cut}"`, 'Use --cut mean or sif for word vectors, cls or mean for a text encoder (or leave it out to choose by cross-validation).');
          }
          const r = await trainText({
            data: pos[0]!, out: v.out ?? 'graft-model', head: checkHead(v.head ?? 'linear'), log, cache: !v['no-cache'], ...classWeight,
            ...defined({ backbone: v.backbone, cut, val: num(v.val, 'val'), epochs: num(v.epochs, 'epochs', true), lr: num(v.lr, 'lr'), seed: num(v.seed, 'seed', true), threads: num(v.threads, 'threads', true) }),
          });
          if (json) print(JSON.stringify(r));
          else {
            print(`saved ${r.out}: ${r.backbone} ${r.cut} pooling + ${r.head} head, ${r.labels.length} classes, ${r.seconds.toFixed(1)} s`);
            cvLine(r);
            print(`train accuracy ${r.trainAccuracy.toFixed(4)}${r.valAccuracy !== null ? `, validation accuracy ${r.valAccuracy.toFixed(4)}` : ''}`);
            if (r.truncated) print(`${r.truncated} text(s) truncated to the encoder's token limit`);
            print(`diagnosis: ${r.diagnosis.summary}`);
          }
          return 0;
        }
        if (v.backbone !== undefined && v.backbone !== 'none') {
          throw new GraftError('E_BAD_OPTION', `--backbone ${v.backbone} needs image or text data; numeric CSV trains with --backbone none`, 'Pass --backbone none for numeric CSV features.');
        }
        const head = (v.head ?? 'mlp') as 'linear' | 'mlp';
        if (head !== 'linear' && head !== 'mlp') throw new GraftError('E_BAD_OPTION', `unknown head "${v.head}"`, 'Use --head linear or --head mlp.');
        const hidden = v.hidden?.split(',').map((s) => num(s, 'hidden', true)!);
        const opt = v.optimizer as 'adamw' | 'sgd' | undefined;
        if (opt && opt !== 'adamw' && opt !== 'sgd') throw new GraftError('E_BAD_OPTION', `unknown optimizer "${opt}"`, 'Use --optimizer adamw or sgd.');
        const sched = v.schedule as 'one-cycle' | 'cosine' | 'constant' | undefined;
        if (sched && !['one-cycle', 'cosine', 'constant'].includes(sched)) throw new GraftError('E_BAD_OPTION', `unknown schedule "${sched}"`, 'Use one-cycle, cosine or constant.');
        const defined = <T extends Record<string, unknown>>(o: T) => Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined));
        const r = await trainCsv({
          train: pos[0]!, out: v.out ?? 'graft-model', head,
          ...defined({
            hidden, dropout: num(v.dropout, 'dropout'), val: num(v.val, 'val'), epochs: num(v.epochs, 'epochs', true), lr: num(v.lr, 'lr'),
            batchSize: num(v['batch-size'], 'batch-size', true), seed: num(v.seed, 'seed', true), weightDecay: num(v['weight-decay'], 'weight-decay'),
            optimizer: opt, schedule: sched, labelSmoothing: num(v['label-smoothing'], 'label-smoothing'), patience: num(v.patience, 'patience', true),
            threads: num(v.threads, 'threads', true), checkpoint: v.checkpoint, resume: v.resume,
          }),
          ...(process.stderr.isTTY ? {} : { log }),
        });
        if (json) print(JSON.stringify(r));
        else {
          print(`saved ${r.out} (${r.labels.length} classes, ${r.epochs} epochs${r.stoppedEarly ? ', stopped early' : ''}, ${r.seconds.toFixed(1)} s)`);
          print(`train accuracy ${r.trainAccuracy.toFixed(4)}${r.valAccuracy !== null ? `, validation accuracy ${r.valAccuracy.toFixed(4)}, macro-F1 ${r.valMacroF1!.toFixed(4)}` : ''}`);
          print(`diagnosis: ${r.diagnosis.summary}`);
          for (const a of r.diagnosis.advice) print(`  - ${a}`);
        }
        return 0;
      }
      case 'eval': {
        if (pos.length !== 2) throw usage('graft eval takes a model folder and a CSV file');
        if (isTextFile(pos[1]!) && textTaskOf(pos[0]!) === 'ner') {
          const r = await evalNer(pos[0]!, pos[1]!, { log });
          if (json) print(JSON.stringify(r));
          else {
            print(`entities: precision ${r.micro.precision.toFixed(4)}  recall ${r.micro.recall.toFixed(4)}  F1 ${r.micro.f1.toFixed(4)}  (${r.micro.support} entities, ${r.n} sentences)`);
            for (const [type, sc] of Object.entries(r.perType)) print(`  ${type.padEnd(10)} P ${sc.precision.toFixed(4)}  R ${sc.recall.toFixed(4)}  F1 ${sc.f1.toFixed(4)}  n ${sc.support}`);
          }
          return 0;
        }
        const r = isTextFile(pos[1]!) ? textTaskOf(pos[0]!) === 'pair' ? await evalPairs(pos[0]!, pos[1]!, { log }) : await evalText(pos[0]!, pos[1]!, { log }) : !isDir(pos[1]!) ? await evalCsv(pos[0]!, pos[1]!) : isAudioFolder(pos[1]!) ? await evalAudio(pos[0]!, pos[1]!) : await evalImages(pos[0]!, pos[1]!);
        print(json ? JSON.stringify(r) : `accuracy ${r.accuracy.toFixed(4)}  macro-F1 ${r.macroF1.toFixed(4)}  n ${r.n}`);
        return 0;
      }
      case 'predict': {
        if (pos.length !== 2) throw usage('graft predict takes a model folder and a CSV file');
        if (isTextFile(pos[1]!) && textTaskOf(pos[0]!) === 'ner') {
          const t = readTextTable(pos[1]!, { requireLabel: false });
          const r = await predictEntities(pos[0]!, t.texts, { log });
          if (json) print(JSON.stringify({ predictions: r.map((x) => ({ text: x.text, entities: x.entities })) }));
          else {
            r.forEach((x, i) => {
              print(`text ${i + 1}: ${x.entities.length} entit${x.entities.length === 1 ? 'y' : 'ies'}`);
              for (const e of x.entities) print(`  ${e.type}\t${e.start}-${e.end}\t${JSON.stringify(e.text)}\t${e.score.toFixed(4)}`);
            });
          }
          return 0;
        }
        if (isTextFile(pos[1]!)) {
          const t = readTextTable(pos[1]!, { requireLabel: false });
          const pairCol = textTaskOf(pos[0]!) === 'pair' ? (readCard(pos[0]!).input.preprocess as { pairColumn?: string }).pairColumn ?? 'text_pair' : null;
          const { labels, probs } = pairCol
            ? await predictPairs(pos[0]!, t.texts, readTextTable(pos[1]!, { requireLabel: false, textColumn: pairCol }).texts, { log })
            : await predictTexts(pos[0]!, t.texts, { log });
          const k = labels.length;
          const preds = t.texts.map((_, i) => {
            let best = 0;
            for (let j = 1; j < k; j++) if (probs[i * k + j]! > probs[i * k + best]!) best = j;
            return { label: labels[best]!, probabilities: Object.fromEntries(labels.map((l, j) => [l, probs[i * k + j]!])) };
          });
          if (json) print(JSON.stringify({ predictions: preds }));
          else for (const p of preds) print(`${p.label}\t${p.probabilities[p.label]!.toFixed(4)}`);
          return 0;
        }
        const r = /\.(csv|csv\.gz)$/i.test(pos[1]!) ? await predictCsv(pos[0]!, pos[1]!) : (await predictImages(pos[0]!, pos[1]!, log)).predictions;
        if (json) print(JSON.stringify({ predictions: r }));
        else for (const p of r) print(`${p.label}\t${p.probabilities[p.label]!.toFixed(4)}`);
        return 0;
      }
      case 'backbones': {
        if (pos[0] === 'show') {
          if (!pos[1]) throw usage('graft backbones show takes a backbone id');
          const e = findBackbone(pos[1]);
          // Layer groups come from the converted graph (converted once, then cached).
          const bb = e.modality === 'image' ? await loadImageBackbone(e.id) : null;
          const groups: { name: string; params: number; entry: string | null; entryShape: number[] | null }[] = bb
            ? backboneGroups(bb).map((g) => ({ name: g.name, params: g.paramCount, entry: g.entry, entryShape: g.entryShape }))
            : e.modality === 'text' ? encoderGroups(await loadTextEncoder(e.id)).map((g) => ({ name: g.name, params: g.paramCount, entry: null, entryShape: null })) : [];
          // The cut search's candidates: every block output, pooled by mean and mean+max.
          const candidates = bb ? blockCuts(bb).map((c) => ({ name: c.name, dim: c.shape[0]! })) : [];
          if (json) print(JSON.stringify({ ...e, groups, candidates }));
          else {
            print(`${e.id} (${e.modality}): ${e.description}`);
            print(`  package ${e.package.name}@${e.package.version}, licence ${e.license}`);
            print(`  input ${e.input}; output ${e.outputDim}-d; default cut ${e.defaultCut}`);
            if (e.preprocess) print(`  preprocessing: resize ${e.preprocess.resize} to ${e.preprocess.size.join('x')}, pixel*${e.preprocess.scale.toPrecision(4)}, mean [${e.preprocess.mean}], std [${e.preprocess.std}]`);
            print('  cut points (early to late):');
            for (const c of e.cuts) print(`    ${c.name.padEnd(22)} ${String(c.dim).padStart(5)}-d${c.note ? `  ${c.note}` : ''}`);
            if (candidates.length) {
              print(`  candidate cuts searched by graft train and graft rank (${candidates.length}: every block output, pooled by mean, and by mean+max as NAME:meanmax; --cut takes any tensor name):`);
              const names = candidates.filter((c) => !c.name.includes(':')).map((c) => `${c.name} (${c.dim})`);
              for (let i = 0; i < names.length; i += 4) print(`    ${names.slice(i, i + 4).join(', ')}`);
            }
            if (groups.length) {
              print('  layer groups for fine-tuning (input to output; --unfreeze N trains the top N, plus the head):');
              groups.forEach((g, i) => print(`    ${String(i).padStart(2)} ${g.name.padEnd(10)} ${String(g.params).padStart(9)} weights${g.entry ? `  input ${g.entry} [${g.entryShape?.join('x') ?? '?'}]` : ''}`));
              print(`    ${String(groups.length).padStart(2)} head       the new classifier`);
            }
            print('  files:');
            for (const f of e.files) print(`    ${f.path}  sha256 ${f.sha256.slice(0, 16)}…`);
          }
          return 0;
        }
        if (json) print(JSON.stringify(REGISTRY.map((e) => ({ id: e.id, modality: e.modality, outputDim: e.outputDim, cuts: e.cuts.map((c) => c.name) }))));
        else {
          const w = Math.max(...REGISTRY.map((e) => e.id.length));
          for (const e of REGISTRY) print(`${e.id.padEnd(w)} ${e.modality.padEnd(6)} ${String(e.outputDim).padStart(5)}-d  ${e.description}`);
        }
        return 0;
      }
      case 'rank': {
        if (pos.length !== 1) throw usage('graft rank takes one image folder or text file');
        const backbones = v.backbones?.split(',').map((b) => b.trim()).filter(Boolean);
        const ro = { ...(backbones ? { backbones } : {}), ...(v.top ? { top: num(v.top, 'top', true)! } : {}), ...(v.seed ? { seed: num(v.seed, 'seed', true)! } : {}), ...(v.threads ? { threads: num(v.threads, 'threads', true)! } : {}), cache: !v['no-cache'], log };
        const r = isTextFile(pos[0]!) ? await rankTexts(pos[0]!, ro) : await rankImages(pos[0]!, ro);
        if (json) print(JSON.stringify(r));
        else {
          const pct = (x: number | null) => (x === null ? '     -' : `${(100 * x).toFixed(1).padStart(5)}%`);
          print(`${r.n} examples, ${r.classes.length} classes; ${r.ranking.length} backbone x cut candidates, best first (CV: ${r.ranking.filter((q) => q.cvAccuracy !== null).length} probed by k-fold cross-validation)`);
          print(`${'backbone'.padEnd(16)} ${'cut'.padEnd(30)} ${'dim'.padStart(5)} ${'CV acc'.padStart(7)} ${'LogME'.padStart(8)} ${'H-score'.padStart(8)} ${'kNN'.padStart(6)} ${'LEEP'.padStart(7)} ${'NCE'.padStart(7)}`);
          const f = (x: number | undefined, w: number, dp = 3) => (x === undefined ? '-'.padStart(w) : x.toFixed(dp).padStart(w));
          for (const q of r.ranking.slice(0, v.all ? undefined : 15)) {
            print(`${q.backbone.padEnd(16)} ${q.cut.padEnd(30)} ${String(q.dim).padStart(5)} ${pct(q.cvAccuracy).padStart(7)} ${f(q.scores.logme, 8)} ${f(q.scores.hScore, 8, 2)} ${f(q.scores.knn, 6)} ${f(q.scores.leep, 7)} ${f(q.scores.nce, 7)}`);
          }
          if (r.ranking.length > 15 && !v.all) print(`… ${r.ranking.length - 15} more (--all, or --json)`);
          print(`baseline without transfer: ${r.baseline.kind} (${r.baseline.dim}-d), ${pct(r.baseline.cvAccuracy)} +- ${(100 * r.baseline.cvStd).toFixed(1)} cross-validated`);
          print(`${r.negativeTransfer ? 'warning: ' : ''}${r.verdict}`);
        }
        return 0;
      }
      case 'embed': {
        if (pos.length !== 1 || !v.out) throw usage('graft embed takes an image folder and --out FILE');
        const r = await embedCommand({ data: pos[0]!, out: v.out, ...(v.backbone ? { backbone: v.backbone } : {}), ...(v.cut ? { cut: v.cut } : {}), cache: !v['no-cache'], log });
        print(json ? JSON.stringify(r) : `wrote ${r.out}: ${r.n} x ${r.dim} features (${r.cacheHits} from the cache, ${r.skipped} skipped) in ${r.seconds.toFixed(1)} s`);
        return 0;
      }
      case 'report': {
        if (pos.length !== 1) throw usage('graft report takes one model folder (and --data, --out)');
        const r = await reportCommand({ dir: pos[0]!, log, ...(v.data !== undefined ? { data: v.data } : {}), ...(v.out !== undefined ? { out: v.out } : {}) });
        print(json ? JSON.stringify(r) : `wrote ${r.out}${r.data ? ` (evaluated on ${r.description}: accuracy ${r.accuracy!.toFixed(4)}, macro-F1 ${r.macroF1!.toFixed(4)})` : ` (${r.note ?? 'no evaluation'})`}`);
        return 0;
      }
      case 'lr-find': {
        if (pos.length !== 1 || !isDir(pos[0]!)) throw usage('graft lr-find takes one image folder');
        const mode = (v.mode ?? 'finetune') as 'finetune' | 'gradual';
        if (mode !== 'finetune' && mode !== 'gradual') throw new GraftError('E_BAD_OPTION', `lr-find sweeps the fine-tuning network: --mode finetune or gradual, not "${v.mode}"`, 'Leave --mode out.');
        const r = await lrFindImages({ data: pos[0]!, out: '', mode, log, cache: !v['no-cache'], ...fineTuneOptions(v) });
        const outPath = v.out ?? 'lr-find.html';
        writeLrFindReport(outPath, r, { title: `graft lr-find: ${pos[0]}`, notes: [`Groups swept: ${r.groups.join(', ')}.`] });
        print(json ? JSON.stringify({ suggestion: r.suggestion, minOver10: r.minOver10, report: outPath, lrs: r.lrs, losses: r.losses })
          : `suggested learning rate ${r.suggestion.toPrecision(3)} (steepest descent; minimum/10: ${r.minOver10.toPrecision(3)}); plot in ${outPath}`);
        return 0;
      }
      case 'demo':
        return await runDemo(print, log, v.out ?? 'graft-demo-report.html');
      default:
        throw usage(`unknown command "${cmd}"`);
    }
  } catch (e) {
    if (isGraftError(e)) {
      log(`error [${e.code}]: ${e.message}`);
      log(`hint: ${e.hint}`);
      return 2;
    }
    log(`internal error: ${(e as Error).message}`);
    log('hint: this is a bug in graft; please report it with the command you ran.');
    if (process.env['GRAFT_DEBUG']) log((e as Error).stack ?? '');
    return 1;
  }
}
