// Command-line parsing on top of meow, driven by the settings table. Unknown flags are
// errors with a "did you mean" (meow alone would only say "unknown flag").
import meow from 'meow';
import { settingsTable, kebab, type SettingDef } from '../config/settings.js';
import { ConfigError, type RawLayer } from '../config/load.js';
import { closest } from '../config/did-you-mean.js';

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

/** Rejects unknown flags before meow sees them, suggesting the closest known one. */
function checkUnknownFlags(argv: readonly string[], flags: Record<string, MeowFlag>): void {
  const long = new Map<string, MeowFlag>();
  const short = new Map<string, MeowFlag>();
  for (const [name, f] of Object.entries({ ...flags, help: { type: 'boolean' } as MeowFlag, version: { type: 'boolean' } as MeowFlag })) {
    long.set(kebab(name), f);
    if (f.type === 'boolean') long.set('no-' + kebab(name), f);
    if (f.shortFlag) short.set(f.shortFlag, f);
  }
  short.set('h', { type: 'boolean' });
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') break;
    if (token.startsWith('--')) {
      const [name, inline] = [token.slice(2).split('=')[0]!, token.includes('=')];
      const f = long.get(name);
      if (!f) {
        const hint = closest(name, [...long.keys()].filter((k) => !k.startsWith('no-')));
        throw new ConfigError(`Unknown flag --${name}.${hint ? ` Did you mean --${hint}?` : ''} See --help.`);
      }
      if (f.type === 'string' && !inline) i++;
    } else if (token.startsWith('-') && token.length > 1) {
      const f = short.get(token[1]!);
      if (!f) throw new ConfigError(`Unknown flag ${token}. See --help.`);
      if (f.type === 'string' && token.length === 2) i++;
    }
  }
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
  checkUnknownFlags(argv, flags);
  const cli = meow(helpText(opts.command, extra), {
    importMeta: import.meta,
    argv,
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
