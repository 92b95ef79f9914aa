/**
 * The audio entry: folders of WAV clips by class (root/<label>/*.wav), embedded by the frozen speech
 * embedding (probe/audio.ts) with a head on top.
 */
import { existsSync, statSync } from 'node:fs';
import { loadModel } from '../model/folder.ts';
import { listExamples } from '../data/folders.ts';
import { checkHead } from '../probe/fit.ts';
import { AUDIO_EXTENSIONS, embedAudio, evalAudio, trainAudio } from '../probe/audio.ts';
import { classWeightOf, defined, probeCommon, probeOnly, toPredictions, wrongInput } from './common.ts';
import { isAudioFile, isAudioFolder, isDir } from './detect.ts';
import { reportFolder } from './images.ts';
import type { Task } from './types.ts';

export const audioTask: Task = {
  id: 'audio',
  description: 'audio: root/<label>/*.wav (speech-embedding backbone); one clip, or a list of clips, to predict',
  textTask: 'classify',
  detect: (p) => (isDir(p) ? isAudioFolder(p) : isAudioFile(p)),
  owns: (card) => card.input.kind === 'speech-embedding',

  train(data, o, mode) {
    probeOnly(data, mode);
    const classWeight = classWeightOf(o);
    const head = checkHead(o.head ?? 'linear');
    return {
      task: 'audio', trainer: 'audio-probe', mode,
      run: async () => ({ ...(await trainAudio({ data, out: o.out ?? 'graft-model', head, ...classWeight, ...defined({ log: o.log }), ...probeCommon(o) })), cut: 'meanmax' }),
    };
  },

  evaluate: (dir, data) => evalAudio(dir, data),

  async predict(dir, input, o) {
    if (typeof input !== 'string' && !Array.isArray(input)) throw wrongInput(dir, 'audio clips', 'rows or texts');
    const paths: string[] = typeof input !== 'string' ? [...(input as readonly string[])]
      : existsSync(input) && statSync(input).isFile() ? [input] : listExamples(input, AUDIO_EXTENSIONS).paths;
    const model = o.model ?? await loadModel(dir, o.threads ? { threads: o.threads } : {});
    try {
      if (model.card.input.kind !== 'speech-embedding') throw wrongInput(dir, model.card.input.kind === 'image' ? 'images' : 'other data', 'audio clips');
      const e = await embedAudio(paths, defined({ threads: o.threads, log: o.log }));
      const probs = e.kept.length ? await model.predict(e.x, e.kept.length) : new Float32Array(0);
      const preds = toPredictions(model.card.labels, probs, e.kept.length);
      return { task: 'audio', predictions: preds.map((p, r) => ({ path: paths[e.kept[r]!]!, ...p })) };
    } finally {
      if (!o.model) await model.dispose();
    }
  },

  report: (ctx) => reportFolder(ctx, true),
};
