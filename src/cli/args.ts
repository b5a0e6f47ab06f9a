// Command-line parsing on top of meow, driven by the settings table. Unknown flags are
// errors with a "did you mean" (meow alone would only say "unknown flag").
import meow from 'meow';
import { settingsTable, kebab, type SettingDef } from '../config/settings.js';
import { ConfigError, type RawLayer } from '../config/load.js';
import { closest } from '../config/did-you-mean.js';
import { PACKAGE } from '../version.js';

type MeowFlag = { type: 'string' | 'boolean'; isMultiple?: boolean; shortFlag?: string };
export type ExtraFlags = Record<string, MeowFlag & { doc?: string }>;

export interface ParsedArgs {
  positionals: string[];
  layer: RawLayer;
  /** Values of the command's own flags (not settings), camelCased. */
  extra: Record<string, unknown>;
}

function settingFlags(): Record<string, MeowFlag> {
  const flags: Record<string, MeowFlag> = {};
  for (const s of settingsTable as readonly SettingDef[]) {
    if (s.name === 'app') continue; // positional
    flags[s.name] = {
      type: s.kind === 'boolean' ? 'boolean' : 'string',
      ...(s.kind === 'list' ? { isMultiple: true } : {}),
      ...(s.short ? { shortFlag: s.short } : {}),
    };
  }
  return flags;
}

const isNegativeNumber = (t: string) => /^-\d/.test(t);

/**
 * Index of the value that follows the flag at i. A flag there instead is an error: the
 * parser underneath would take it as a flag and silently leave this one empty.
 */
function valueAt(argv: readonly string[], i: number, flag: string): number {
  const next = argv[i + 1];
  if (next === undefined) throw new ConfigError(`${flag} needs a value. See --help.`);
  if (next.startsWith('-') && next !== '-' && !isNegativeNumber(next)) {
    throw new ConfigError(`${flag} needs a value, but the next argument ${next} is a flag. For a value that starts with "-", write ${flag.startsWith('--') ? `${flag}=VALUE` : `${flag}VALUE`}.`);
  }
  return i + 1;
}

/**
 * Rejects unknown flags before meow sees them, suggesting the closest known one, and
 * rewrites every flag that takes a value to `--long-name=value`: the parser underneath
 * would otherwise read a value such as `-` (stdout) or `-1` as something else.
 */
function normalizeArgv(argv: readonly string[], flags: Record<string, MeowFlag>): string[] {
  const long = new Map<string, MeowFlag>();
  const short = new Map<string, { flag: MeowFlag; long: string }>();
  for (const [name, f] of Object.entries({ ...flags, help: { type: 'boolean' } as MeowFlag, version: { type: 'boolean' } as MeowFlag })) {
    long.set(kebab(name), f);
    if (f.type === 'boolean') long.set('no-' + kebab(name), f);
    if (f.shortFlag) short.set(f.shortFlag, { flag: f, long: kebab(name) });
  }
  short.set('h', { flag: { type: 'boolean' }, long: 'help' });
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (token.startsWith('--')) {
      const [name, inline] = [token.slice(2).split('=')[0]!, token.includes('=')];
      const f = long.get(name);
      if (!f) {
        const hint = closest(name, [...long.keys()].filter((k) => !k.startsWith('no-')));
        throw new ConfigError(`Unknown flag --${name}.${hint ? ` Did you mean --${hint}?` : ''} See --help.`);
      }
      if (f.type === 'string' && !inline) {
        i = valueAt(argv, i, `--${name}`);
        out.push(`--${name}=${argv[i]!}`);
      } else out.push(token);
    } else if (token.startsWith('-') && token.length > 1 && !isNegativeNumber(token)) {
      const f = short.get(token[1]!);
      if (!f) throw new ConfigError(`Unknown flag ${token}. See --help.`);
      if (f.flag.type !== 'string') out.push(token);
      else if (token.length > 2) out.push(`--${f.long}=${token.slice(token[2] === '=' ? 3 : 2)}`);
      else {
        i = valueAt(argv, i, token);
        out.push(`--${f.long}=${argv[i]!}`);
      }
    } else out.push(token);
  }
  return out;
}

export function helpText(command: string, extra: ExtraFlags = {}): string {
  const lines: string[] = [];
  const sections = new Map<string, string[]>();
  for (const s of settingsTable as readonly SettingDef[]) {
    if (s.name === 'app') continue;
    const flag = `${s.short ? `-${s.short}, ` : '    '}--${kebab(s.name)}${s.kind === 'boolean' ? '' : ' VALUE'}`;
    const list = sections.get(s.section) ?? [];
    list.push(`    ${flag.padEnd(36)} ${s.doc}`);
    sections.set(s.section, list);
  }
  lines.push(`  Usage`, `    $ ws-proxy-kit ${command}`, '');
  lines.push('  Commands', '    serve (default)   run the server', '    check             validate the configuration and load the app once (exit 0 or 1)', '    init              generate the nginx site, systemd units and config file for a deployment', '');
  if (Object.keys(extra).length) {
    lines.push('  Options');
    for (const [name, f] of Object.entries(extra)) lines.push(`        --${kebab(name)}${f.type === 'boolean' ? '' : ' VALUE'}`.padEnd(41) + ` ${f.doc ?? ''}`);
    lines.push('');
  }
  for (const [section, list] of sections) lines.push(`  ${section}`, ...list, '');
  lines.push('  Every setting can also come from a config file key or a WS_PROXY_KIT_<NAME> variable.');
  lines.push('  Precedence: defaults < config file < environment < command line.');
  return lines.join('\n');
}

/** Parses argv (without the command word) into a layer of raw setting values. */
export function parseArgs(argv: string[], opts: { command: string; extra?: ExtraFlags; origin?: 'command line' | 'environment'; via?: string }): ParsedArgs {
  const extra = opts.extra ?? {};
  const flags = { ...settingFlags(), ...extra };
  // Negative forms of value settings that mean "off".
  const aliased = argv.map((a) => (a === '--no-control-socket' ? '--control-socket=off' : a));
  const normalized = normalizeArgv(aliased, flags);
  // meow only knows --help; -h is the short form users try first.
  if (opts.origin !== 'environment') (flags as Record<string, MeowFlag>).help = { type: 'boolean', shortFlag: 'h' };
  const cli = meow(helpText(opts.command, extra), {
    importMeta: import.meta,
    pkg: PACKAGE,
    argv: normalized,
    flags: flags as never,
    allowUnknownFlags: true,
    booleanDefault: undefined,
    autoHelp: opts.origin !== 'environment',
    autoVersion: opts.origin !== 'environment',
  });
  const values = cli.flags as Record<string, unknown>;
  const layer: RawLayer = new Map();
  for (const s of settingsTable as readonly SettingDef[]) {
    const v = values[s.name];
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
    const where = opts.via ? `--${kebab(s.name)} in ${opts.via}` : `--${kebab(s.name)}`;
    layer.set(s.name, { value: v, source: { origin: opts.origin ?? 'command line', where } });
  }
  const extraValues: Record<string, unknown> = {};
  for (const name of Object.keys(extra)) extraValues[name] = values[name];
  return { positionals: cli.input, layer, extra: extraValues };
}

/** Splits WS_PROXY_KIT_CMD_ARGS like a shell would (quotes, backslashes). */
export function splitCommandLine(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: '"' | "'" | null = null;
  let has = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < text.length) cur += text[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
    }
  }
  if (quote) throw new ConfigError(`WS_PROXY_KIT_CMD_ARGS has an unclosed ${quote} quote.`);
  if (has || cur) out.push(cur);
  return out;
}
