// --help: generated from the commands below, a command's own flags and the settings table
// (grouped by section, with their defaults), wrapped to the terminal's width.
import { settingsTable, kebab, displayOf, type SettingDef } from '../config/settings.js';
import { PACKAGE } from '../version.js';
import type { ExtraFlags } from './args.js';

/** The commands, each with its usage (after `ws-proxy-kit`) and one line. */
export const COMMANDS = {
  serve: { usage: '[serve] [options] APP[:export]', doc: 'run the server' },
  check: { usage: 'check [options] APP[:export]', doc: 'validate the configuration and load the app once (exit 0 or 1)' },
  init: { usage: 'init [options]', doc: 'generate the nginx site, systemd units and config file for a deployment' },
  ctl: {
    usage: 'ctl [--socket PATH] [--json] COMMAND [ARGS]',
    doc: 'steer a running server through its control socket (status, workers, reload, ...)',
  },
} as const;
export type Command = keyof typeof COMMANDS;

/** A titled list of [term, description] rows, e.g. ctl's commands. */
export interface HelpSection {
  title: string;
  rows: readonly (readonly [string, string])[];
}

export interface HelpOptions {
  command: Command;
  /** The command's own flags, listed first under "Options". */
  extra?: ExtraFlags;
  /** Which settings to list by section: all of them (serve, check), some (init) or none (ctl). */
  settings?: 'all' | readonly string[];
  /** More sections after the options (ctl's commands). */
  sections?: readonly HelpSection[];
  /** Closing paragraphs. */
  notes?: readonly string[];
  /** Columns to wrap to; default the terminal's, 80 when stdout is not a terminal. */
  width?: number;
}

const INDENT = '    ';

/** Words of `text` in lines of at most `width` characters; a longer word is broken after a `,` or `/` (else anywhere). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > width) {
      if (line) lines.push(line);
      const cut = Math.max(word.lastIndexOf(',', width - 1), word.lastIndexOf('/', width - 1)) + 1 || width;
      lines.push(word.slice(0, cut));
      [line, word] = ['', word.slice(cut)];
    }
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

function flagTerm(name: string, type: 'string' | 'boolean', short?: string): string {
  return `${short ? `-${short}, ` : '    '}--${kebab(name)}${type === 'boolean' ? '' : ' VALUE'}`;
}

/** What --help says after a setting's doc about its default; nothing when there is none to speak of. */
function defaultNote(s: SettingDef): string {
  if (s.defaultDoc) return ` [default: ${s.defaultDoc}]`;
  if (s.action || typeof s.default === 'function' || s.default === null || (Array.isArray(s.default) && s.default.length === 0)) return '';
  return ` [default: ${displayOf(s, s.default)}]`;
}

export function helpText(opts: HelpOptions): string {
  const width = Math.max(40, opts.width ?? (process.stdout.columns || 80));
  const groups: HelpSection[] = [];
  const extra = Object.entries(opts.extra ?? {});
  if (extra.length)
    groups.push({ title: 'Options', rows: extra.map(([name, f]) => [flagTerm(name, f.type, f.shortFlag), f.doc ?? ''] as const) });
  groups.push(...(opts.sections ?? []));
  const wanted = opts.settings ?? 'all';
  const bySection = new Map<string, [string, string][]>();
  for (const s of settingsTable as readonly SettingDef[]) {
    if (s.positional || (wanted !== 'all' && !wanted.includes(s.name))) continue;
    const rows = bySection.get(s.section) ?? bySection.set(s.section, []).get(s.section)!;
    rows.push([flagTerm(s.name, s.kind === 'boolean' ? 'boolean' : 'string', s.short), s.doc + defaultNote(s)]);
  }
  for (const [title, rows] of bySection) groups.push({ title, rows });

  const { doc } = COMMANDS[opts.command];
  const about = opts.command === 'serve' ? PACKAGE.description : `${doc[0]!.toUpperCase()}${doc.slice(1)}.`;
  const out = ['', ...wrap(about, width - 2).map((l) => '  ' + l), ''];
  out.push('  Usage', `${INDENT}$ ws-proxy-kit ${COMMANDS[opts.command].usage}`, '');
  if (opts.command === 'serve') {
    const commands = Object.entries(COMMANDS).map(([name, c]) => [name === 'serve' ? 'serve (default)' : name, c.doc] as const);
    out.push(...rowsText([{ title: 'Commands', rows: commands }], width));
  }
  out.push(...rowsText(groups, width));
  for (const note of opts.notes ?? []) out.push(...wrap(note, width - 2).map((l) => '  ' + l), '');
  return out.join('\n');
}

/**
 * Titled groups of rows, the descriptions starting in one column (at most 40 % of the width
 * in; a longer term has a line of its own) and wrapped to the width.
 */
function rowsText(groups: readonly HelpSection[], width: number): string[] {
  const longest = Math.max(...groups.flatMap((g) => g.rows.map(([term]) => term.length)));
  const column = INDENT.length + Math.min(longest + 2, Math.floor(width * 0.4));
  const out: string[] = [];
  for (const group of groups) {
    out.push(`  ${group.title}`);
    for (const [term, doc] of group.rows) {
      const lines = wrap(doc, width - column);
      const first = INDENT + term;
      if (first.length + 2 > column) out.push(first);
      else out.push(first.padEnd(column) + (lines.shift() ?? ''));
      out.push(...lines.map((l) => ' '.repeat(column) + l));
    }
    out.push('');
  }
  return out;
}

/** The closing notes of a help that lists settings. */
export const SETTINGS_NOTES = [
  'A boolean flag also takes --no-FLAG, or a value: --reload false.',
  'Every setting can also come from a config file key or a WS_PROXY_KIT_<NAME> variable. Precedence: defaults < config file < environment < command line.',
];
