/**
 * BIO tag schemes: entity extraction exactly as seqeval reads tags, and the rewrite to IOB2. A data-format
 * concern (readConll uses it), so it lives in data/; text/ner.ts re-exports it with the NER scores.
 * Entities are spans of tokens [start, end) (end exclusive, unlike seqeval's inclusive end).
 */
import { GraftError } from '../errors.ts';

/** `default`: seqeval's default (conlleval-style) reading; `strict`: seqeval mode='strict', scheme=IOB2. */
export type NerMode = 'default' | 'strict';

/** An entity: a type and a span of tokens [start, end). */
export interface Chunk { type: string; start: number; end: number }

/** seqeval, suffix=False: the prefix is the first character, the type what follows the first '-' ('_' if none). */
export function splitTag(tag: string): [string, string] {
  const rest = tag.slice(1);
  const i = rest.indexOf('-');
  return [tag.charAt(0), (i >= 0 ? rest.slice(i + 1) : rest) || '_'];
}

function endOfChunk(prevTag: string, tag: string, prevType: string, type: string): boolean {
  if (prevTag === 'E' || prevTag === 'S') return true;
  if ((prevTag === 'B' || prevTag === 'I') && (tag === 'B' || tag === 'S' || tag === 'O')) return true;
  return prevTag !== 'O' && prevTag !== '.' && prevType !== type;
}

function startOfChunk(prevTag: string, tag: string, prevType: string, type: string): boolean {
  if (tag === 'B' || tag === 'S') return true;
  if ((prevTag === 'E' || prevTag === 'S' || prevTag === 'O') && (tag === 'E' || tag === 'I')) return true;
  return tag !== 'O' && tag !== '.' && prevType !== type;
}

const STRICT_TAG = /^(?:O|[BI]-(.+))$/;

/**
 * The entities of one sentence's tags.
 *
 * `default` is seqeval's `get_entities` (what `f1_score(y_true, y_pred)` uses): an I-X after O or after
 * another type starts an entity (IOB1 and sloppy IOB2 read as conlleval reads them), B-X B-X are two
 * entities, and E-/S- tags (IOBES) are understood too. `strict` is seqeval's mode='strict' with
 * scheme=IOB2: an entity is a B-X followed by any I-X, and an I- tag that does not continue one is
 * not part of any entity; a tag that is not O, B-* or I-* is an error (E_NER_TAG).
 */
export function getEntities(tags: readonly string[], mode: NerMode = 'default'): Chunk[] {
  const out: Chunk[] = [];
  if (mode === 'strict') {
    let open: Chunk | null = null;
    for (let i = 0; i <= tags.length; i++) {
      const t = i < tags.length ? tags[i]! : 'O';
      const m = STRICT_TAG.exec(t);
      if (!m) {
        throw new GraftError('E_NER_TAG', `tag ${JSON.stringify(t)} at position ${i} is not IOB2 (expected O, B-TYPE or I-TYPE)`,
          'Strict scoring reads IOB2 only; convert the tags (readConll does) or score in default mode.');
      }
      const type = m[1];
      if (open && t === `I-${open.type}`) { open.end = i + 1; continue; }
      if (open) { out.push(open); open = null; }
      if (t.startsWith('B-')) open = { type: type!, start: i, end: i + 1 };
    }
    return out;
  }
  let prevTag = 'O';
  let prevType = '';
  let begin = 0;
  for (let i = 0; i <= tags.length; i++) {
    const [tag, type] = splitTag(i < tags.length ? tags[i]! : 'O');
    if (endOfChunk(prevTag, tag, prevType, type)) out.push({ type: prevType, start: begin, end: i });
    if (startOfChunk(prevTag, tag, prevType, type)) begin = i;
    prevTag = tag;
    prevType = type;
  }
  return out;
}

/** IOB2 tags for chunks over n tokens (the inverse of getEntities for valid IOB2). */
export function chunksToTags(chunks: readonly Chunk[], n: number): string[] {
  const tags = new Array<string>(n).fill('O');
  for (const c of chunks) {
    if (!(c.start >= 0 && c.end <= n && c.start < c.end)) throw new RangeError(`chunksToTags: span [${c.start}, ${c.end}) is outside 0..${n}`);
    tags[c.start] = `B-${c.type}`;
    for (let i = c.start + 1; i < c.end; i++) tags[i] = `I-${c.type}`;
  }
  return tags;
}

/** Rewrites any tag sequence to IOB2 as seqeval's default mode reads it (IOB1, sloppy IOB2, IOBES). */
export function toIob2(tags: readonly string[]): string[] {
  return chunksToTags(getEntities(tags), tags.length);
}

