/**
 * Feature-extraction transfer for audio: clips (root/<label>/*.wav) are decoded, resampled to 16 kHz,
 * embedded by the frozen speech-embedding backbone (openWakeWord's mel + embedding models), pooled
 * over windows (mean and max, 192-d), cached, and a head is fitted on top. The mel/window front end runs
 * in graft (TypeScript + ORT); model.onnx holds the head over the pooled embedding.
 */
import { readFileSync } from 'node:fs';
import { checkAborted } from '../context.ts';
import { GraftError } from '../errors.ts';
import { readImageFolder } from '../data/folders.ts';
import { loadAudio16k } from '../data/audio.ts';
import { SPEECH_MODEL_SHA256, speechEmbedding } from '../backbones/speech.ts';
import { FeatureCache, contentKey } from '../features/cache.ts';
import { sha256 } from '../model/folder.ts';
import { loadModel } from '../model/folder.ts';
import { encodeLabels } from '../data/csv.ts';
import { accuracy, argmaxRows, macroF1 } from '../train/metrics.ts';
import { type ProbeFeatures, type Protocol, checkHead, chooseProtocol, fitProbe, saveProbe, type HeadKind } from './fit.ts';
import type { Diagnosis } from '../train/diagnose.ts';

export const AUDIO_EXTENSIONS = ['.wav'] as const;
const BACKBONE = 'speech-embedding';
const POOLING = 'meanmax';
const backboneSha = () => sha256(Object.values(SPEECH_MODEL_SHA256).join('\n'));

export interface AudioEmbedded { x: Float32Array; d: number; kept: number[]; skipped: string[]; cacheHits: number }

/** Embeds WAV files (skipping unreadable ones with a warning), through the feature cache. */
export async function embedAudio(paths: readonly string[], o: { cache?: boolean; cacheRoot?: string; threads?: number; log?: (s: string) => void } = {}): Promise<AudioEmbedded> {
  const cache = o.cache ?? true ? new FeatureCache({ backboneSha256: backboneSha(), cut: POOLING, preprocess: { rate: 16000 } }, o.cacheRoot) : null;
  const rows: Float32Array[] = [];
  const kept: number[] = [];
  const skipped: string[] = [];
  let hits = 0;
  let emb: Awaited<ReturnType<typeof speechEmbedding>> | null = null;
  const fresh: [string, Float32Array][] = [];
  try {
    for (let i = 0; i < paths.length; i++) {
      checkAborted();
      let bytes: Buffer;
      try { bytes = readFileSync(paths[i]!); } catch { skipped.push(paths[i]!); o.log?.(`warning: skipped ${paths[i]}: cannot read it`); continue; }
      const key = contentKey(bytes);
      let v = cache?.get(key) ?? null;
      if (v) hits++;
      else {
        let samples: Float32Array;
        try {
          samples = loadAudio16k(paths[i]!);
        } catch (e) {
          if (!(e instanceof GraftError)) throw e;
          skipped.push(paths[i]!);
          o.log?.(`warning: skipped ${paths[i]}: ${e.message}`);
          continue;
        }
        emb ??= await speechEmbedding(o.threads ? { threads: o.threads } : {});
        const { frames, m } = await emb.embed(samples);
        v = emb.pool(frames, m, POOLING);
        fresh.push([key, v]);
      }
      rows.push(v);
      kept.push(i);
    }
  } finally {
    await emb?.dispose();
  }
  cache?.putMany(fresh);
  const d = rows[0]?.length ?? 192;
  const x = new Float32Array(rows.length * d);
  rows.forEach((r, i) => x.set(r, i * d));
  return { x, d, kept, skipped, cacheHits: hits };
}

export interface TrainAudioOptions { data: string; out: string; head?: HeadKind; classWeight?: 'balanced' | null; val?: number; epochs?: number; lr?: number; seed?: number; threads?: number; cacheRoot?: string; log?: (s: string) => void }

export interface TrainAudioResult {
  out: string; labels: string[]; backbone: string; head: string; trainAccuracy: number; valAccuracy: number | null;
  valMacroF1: number | null; cvAccuracy: number | null; cvStd: number | null; protocol: Protocol; skipped: number; cacheHits: number; seconds: number; diagnosis: Diagnosis;
}

export async function trainAudio(o: TrainAudioOptions): Promise<TrainAudioResult> {
  const t0 = performance.now();
  const head = checkHead(o.head ?? 'linear');
  const all = readImageFolder(o.data, { valFraction: 0, seed: o.seed ?? 0, extensions: AUDIO_EXTENSIONS });
  const protocol: Protocol = all.val ? { kind: 'holdout', valFraction: 0, reason: 'the folder has its own val/ split' } : chooseProtocol(all.train.y, all.classes.length, o.val);
  const folder = protocol.valFraction > 0 ? readImageFolder(o.data, { valFraction: protocol.valFraction, seed: o.seed ?? 0, extensions: AUDIO_EXTENSIONS }) : all;
  o.log?.(`protocol: ${protocol.reason}`);
  const eo = { ...(o.cacheRoot ? { cacheRoot: o.cacheRoot } : {}), ...(o.threads ? { threads: o.threads } : {}), ...(o.log ? { log: o.log } : {}) };
  const tr = await embedAudio(folder.train.paths, eo);
  const va = folder.val ? await embedAudio(folder.val.paths, eo) : null;
  const feats: ProbeFeatures = {
    train: new Map([[POOLING, { x: tr.x, d: tr.d }]]), val: va ? new Map([[POOLING, { x: va.x, d: va.d }]]) : null,
    yTrain: Int32Array.from(tr.kept, (i) => folder.train.y[i]!), yVal: va ? Int32Array.from(va.kept, (i) => folder.val!.y[i]!) : null, classes: folder.classes,
  };
  const p = await fitProbe(feats, { ...o, head, protocol });
  try {
    const skipped = tr.skipped.length + (va?.skipped.length ?? 0);
    saveProbe(o.out, p, feats, {
      ...o,
      input: { name: 'input', kind: 'speech-embedding', columns: [], shape: [tr.d], preprocess: { sampleRate: 16000, pooling: POOLING } },
      backbone: { id: BACKBONE, sha256: backboneSha(), cut: POOLING },
      graph: p.learner.inferenceGraph('softmax'),
      data: { path: o.data, clips: folder.train.paths.length + (folder.val?.paths.length ?? 0) },
      extraMetrics: { skipped },
    });
    return {
      out: o.out, labels: folder.classes, backbone: BACKBONE, head, trainAccuracy: p.trainAccuracy, valAccuracy: p.valAccuracy, valMacroF1: p.valMacroF1,
      cvAccuracy: p.cvAccuracy, cvStd: p.cvStd, protocol, skipped, cacheHits: tr.cacheHits + (va?.cacheHits ?? 0), seconds: (performance.now() - t0) / 1000, diagnosis: p.diagnosis,
    };
  } finally {
    await p.learner.dispose();
  }
}

/** Accuracy and macro-F1 of an audio model on a labelled folder of WAV files. */
export async function evalAudio(dir: string, data: string): Promise<{ accuracy: number; macroF1: number; n: number }> {
  const model = await loadModel(dir);
  try {
    const f = readImageFolder(data, { valFraction: 0, extensions: AUDIO_EXTENSIONS });
    const e = await embedAudio(f.train.paths);
    const k = model.card.labels.length;
    const pred = argmaxRows(await model.predict(e.x, e.kept.length), k);
    const { y } = encodeLabels(e.kept.map((i) => f.classes[f.train.y[i]!]!), model.card.labels);
    return { accuracy: accuracy(y, pred), macroF1: macroF1(y, pred, k), n: y.length };
  } finally {
    await model.dispose();
  }
}
