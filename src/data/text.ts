/**
 * Labelled texts from CSV (a header with `text` and `label` columns) or JSONL (one object per line with
 * those fields). Bytes that are not UTF-8 are refused with a hint rather than decoded into garbage.
 */
import { GraftError } from '../errors.ts';
import { readText, records } from './csv.ts';

export interface TextTable { texts: string[]; labels: string[] | null; lines: number[] }

export interface ReadTextOptions { textColumn?: string; labelColumn?: string; requireLabel?: boolean }

export function readTextTable(path: string, o: ReadTextOptions = {}): TextTable {
  const tc = o.textColumn ?? 'text';
  const lc = o.labelColumn ?? 'label';
  const requireLabel = o.requireLabel ?? true;
  const text = readText(path, true);
  const texts: string[] = [];
  const labels: string[] = [];
  const lines: number[] = [];
  let hasLabel = true;
  if (/\.jsonl(\.gz)?$/i.test(path)) {
    text.split('\n').forEach((raw, i) => {
      if (!raw.trim()) return;
      let obj: Record<string, unknown>;
      try { obj = JSON.parse(raw); } catch {
        throw new GraftError('E_CSV_RAGGED', `${path} line ${i + 1} is not a JSON object`, 'Write one JSON object per line, e.g. {"text": "...", "label": "spam"}.');
      }
      if (typeof obj[tc] !== 'string') throw new GraftError('E_CSV_COLUMNS', `${path} line ${i + 1} has no string "${tc}" field`, `Give every line a "${tc}" field.`);
      if (obj[lc] === undefined) hasLabel = false;
      texts.push(obj[tc] as string);
      labels.push(String(obj[lc] ?? ''));
      lines.push(i + 1);
    });
  } else {
    let header: string[] | null = null;
    let ti = -1;
    let li = -1;
    for (const [f, line] of records(text, path)) {
      if (!header) {
        header = f.map((h) => h.trim());
        ti = header.indexOf(tc);
        li = header.indexOf(lc);
        if (ti < 0) throw new GraftError('E_CSV_COLUMNS', `${path} has no "${tc}" column; its columns are: ${header.join(', ')}`, `Name the column that holds the texts "${tc}".`);
        hasLabel = li >= 0;
        continue;
      }
      if (f.length !== header.length) {
        throw new GraftError('E_CSV_RAGGED', `${path} line ${line} has ${f.length} fields; the header has ${header.length}`, 'Quote texts that contain commas or line breaks.');
      }
      texts.push(f[ti]!);
      labels.push(li >= 0 ? f[li]!.trim() : '');
      lines.push(line);
    }
  }
  if (!texts.length) throw new GraftError('E_CSV_EMPTY', `${path} holds no texts`, 'Add rows with a text and a label.');
  if (requireLabel && (!hasLabel || labels.some((l) => l === ''))) {
    throw new GraftError('E_CSV_NO_LABEL', `${path}: every row needs a "${lc}"`, `Add a "${lc}" column (CSV) or field (JSONL) to every row.`);
  }
  return { texts, labels: hasLabel ? labels : null, lines };
}
