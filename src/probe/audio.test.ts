import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeWav, loadAudio16k } from '../data/audio.ts';
import { evalAudio, trainAudio } from './audio.ts';

const DATA = '/usr/share/pocketsphinx/test/data';

/**
 * Real speech from two sources (a card-game speaker and a LibriVox reader), cut into 1 s clips every
 * 0.5 s. Train and test clips come from different recordings, so no audio is shared between them.
 */
function writeClips(root: string, files: 'first' | 'last'): void {
  for (const label of ['cards', 'librivox']) {
    mkdirSync(join(root, label), { recursive: true });
    const all = readdirSync(join(DATA, label)).filter((f) => f.endsWith('.wav')).sort();
    for (const f of files === 'first' ? all.slice(0, 3) : all.slice(3)) {
      const s = loadAudio16k(join(DATA, label, f));
      for (let o = 0; o + 16000 <= s.length; o += 8000) writeFileSync(join(root, label, `${f}-${o}.wav`), encodeWav(s.subarray(o, o + 16000), 16000));
    }
  }
}

test('audio probe on real speech: speech embeddings separate two recording sources', { skip: !existsSync(DATA) && 'apt-get install pocketsphinx-testdata' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'graft-audio-'));
  writeClips(join(dir, 'train'), 'first');
  writeClips(join(dir, 'test'), 'last');
  writeFileSync(join(dir, 'train', 'cards', 'broken.wav'), 'RIFF....WAVEfmt garbage');
  const logs: string[] = [];
  // kNN over class prototypes: no training, so it copes best with 6 clips of one class.
  const r = await trainAudio({ data: join(dir, 'train'), out: join(dir, 'model'), head: 'knn', val: 0.25, cacheRoot: join(dir, 'cache'), log: (s) => logs.push(s) });
  assert.equal(r.skipped, 1);
  assert.ok(logs.some((l) => /broken\.wav/.test(l)));
  assert.ok(r.trainAccuracy >= 0.9, `train accuracy ${r.trainAccuracy}`);
  const e = await evalAudio(join(dir, 'model'), join(dir, 'test'));
  assert.ok(e.n >= 8, `test clips ${e.n}`);
  // Other recordings than in training, 8 cards vs 16 LibriVox clips: the majority guess scores 0.667 and
  // macro-F1 0.4. Measured: accuracy 0.708 (a small data set; stronger audio checks need a labelled corpus).
  assert.ok(e.accuracy > 0.667, `test accuracy ${e.accuracy}`);
  assert.ok(e.macroF1 > 0.5, `test macro-F1 ${e.macroF1}`);
  const again = await trainAudio({ data: join(dir, 'train'), out: join(dir, 'model2'), head: 'mlp', val: 0.25, cacheRoot: join(dir, 'cache') });
  const card = JSON.parse(readFileSync(join(dir, 'model', 'graft.json'), 'utf8'));
  assert.equal(again.cacheHits, card.metrics.nTrain + card.metrics.nVal); // every readable clip, now from the cache
});
