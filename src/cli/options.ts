/**
 * The CLI's option tables: one per command, each the single source of what the command accepts, how
 * its values parse (integers, numbers, lists) and what `graft <command> --help` prints. An option
 * outside the command's table is a usage error, with a "did you mean" hint for a near miss.
 */
import { parseArgs } from 'node:util';
import { GraftError } from '../index.ts';

export type OptionType = 'string' | 'boolean' | 'int' | 'number' | 'int-list' | 'list';

export interface OptionSpec {
  /** The name without the leading dashes. */
  name: string;
  type: OptionType;
  /** The value's placeholder in help (e.g. N, DIR). */
  arg?: string;
  help: string;
  /** The API option it sets (default: none, the CLI reads it itself). */
  key?: string;
  /** For a flag: the value it sets under `key` (default true). */
  flag?: unknown;
}

export interface CommandSpec {
  name: string;
  /** Usage lines (the top-level help lists them too). */
  synopsis: string[];
  /** A paragraph under the usage lines of the command's help. */
  about: string;
  options: readonly OptionSpec[];
}

export type Values = Record<string, string | number | boolean | number[] | string[]>;

/** A usage error, with the hint to read a command's help. */
export function usage(msg: string, cmd?: string, hint?: string): GraftError {
  return new GraftError('E_USAGE', msg, hint ?? (cmd ? `Run graft ${cmd} --help for its options.` : 'Run graft --help for the commands and options.'));
}

/** Levenshtein distance (insertions, deletions, substitutions, and swaps of neighbours count 1). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest of `names` to `name`, if it is near enough to be a typo (distance <= 1, or 2 for names of 5+ characters). */
export function didYouMean(name: string, names: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const n of names) {
    const dist = editDistance(name, n);
    if (dist < bestD) { best = n; bestD = dist; }
  }
  if (best !== null && bestD <= (name.length >= 5 ? 2 : 1)) return best;
  // Or the start of exactly one name (--lr-m for --lr-mult).
  const prefixed = names.filter((n) => name.length >= 3 && n.startsWith(name));
  return prefixed.length === 1 ? prefixed[0]! : null;
}

/** Whether argv asks for help (before a `--` terminator). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

function parseNumber(v: string, name: string, int: boolean, cmd: string): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || (int && !Number.isInteger(x))) throw usage(`--${name} expects ${int ? 'an integer' : 'a number'}, got "${v}"`, cmd);
  return x;
}

/**
 * Parses a command's arguments by its table: unknown options are usage errors (with the nearest
 * option, or the command that takes it, as the hint); values are converted by type.
 */
export function parseCommand(spec: CommandSpec, argv: string[], all: readonly CommandSpec[]): { values: Values; positionals: string[] } {
  const names = spec.options.map((o) => o.name);
  for (const a of argv) {
    if (a === '--') break;
    if (!a.startsWith('--')) continue;
    const name = a.slice(2).split('=')[0]!;
    if (names.includes(name)) continue;
    const near = didYouMean(name, names);
    const elsewhere = all.filter((c) => c.name !== spec.name && c.options.some((o) => o.name === name)).map((c) => `graft ${c.name}`);
    const hint = near ? `did you mean --${near}? (graft ${spec.name} --help lists its options)`
      : elsewhere.length ? `--${name} is an option of ${elsewhere.join(', ')}; graft ${spec.name} --help lists this command's options.`
        : `graft ${spec.name} --help lists its options.`;
    throw usage(`graft ${spec.name} has no option --${name}`, spec.name, hint);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: Object.fromEntries(spec.options.map((o) => [o.name, { type: o.type === 'boolean' ? 'boolean' as const : 'string' as const }])),
    });
  } catch (e) {
    throw usage((e as Error).message, spec.name);
  }
  const values: Values = {};
  for (const o of spec.options) {
    const v = (parsed.values as Record<string, string | boolean | undefined>)[o.name];
    if (v === undefined) continue;
    if (typeof v === 'boolean') { values[o.name] = v; continue; }
    switch (o.type) {
      case 'int': case 'number': values[o.name] = parseNumber(v, o.name, o.type === 'int', spec.name); break;
      case 'int-list': values[o.name] = v.split(',').map((s) => parseNumber(s, o.name, true, spec.name)); break;
      case 'list': values[o.name] = v.split(',').map((s) => s.trim()).filter(Boolean); break;
      default: values[o.name] = v;
    }
  }
  return { values, positionals: parsed.positionals };
}

/** The API options a command's parsed values set (each option's `key`; flags set their `flag` value). */
export function apiOptions(spec: CommandSpec, values: Values): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const o of spec.options) {
    if (!o.key || values[o.name] === undefined) continue;
    out[o.key] = o.type === 'boolean' ? (o.flag ?? true) : values[o.name];
  }
  return out;
}

/** Words of `text` in lines of at most `width` characters, each after `indent`. */
function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + w.length > width) { lines.push(indent + line); line = w; } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(indent + line);
  return lines;
}

/** `graft <command> --help`: the usage lines, what it does, and its options, generated from the command's table. */
export function commandHelp(spec: CommandSpec): string {
  const left = (o: OptionSpec) => `--${o.name}${o.type === 'boolean' ? '' : ` ${o.arg ?? 'VALUE'}`}`;
  const w = Math.min(26, Math.max(...spec.options.map((o) => left(o).length)));
  const lines = ['usage:', ...spec.synopsis.map((s) => `  ${s}`), '', ...wrap(spec.about, 100, '')];
  if (spec.options.length) {
    lines.push('', 'options:');
    for (const o of spec.options) {
      const l = left(o);
      const help = wrap(o.help, 96 - w, ' '.repeat(w + 4));
      if (l.length > w) lines.push(`  ${l}`, ...help);
      else lines.push(`  ${l.padEnd(w)}  ${help[0]!.trimStart()}`, ...help.slice(1));
    }
  }
  return lines.join('\n');
}
