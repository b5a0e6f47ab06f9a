// The command line, parsed by meow with flags fed from the settings table (and a command's
// own flags). A first pass over argv makes it strict where meow (yargs-parser) is lenient:
// unknown flags are errors with a "did you mean", a value flag never swallows the next flag,
// `-` and negative numbers are values, `-bunix:/a` is -b's value, and a boolean flag's value
// (`--reload false`, `--reload=yes`) is read by its setting, where yargs reads anything but
// "true" as false. meow then gets every flag in its long form.
import { readFileSync } from 'node:fs';
import meow, { type AnyFlag, type AnyFlags } from 'meow';
import { settingsTable, settingsByName, kebab, type SettingDef } from '../config/settings.js';
import { bool, InvalidValue } from '../config/settings/parsers.js';
import { ConfigError, parseValue, type RawLayer, type Source } from '../config/load.js';
import { closest } from '../config/did-you-mean.js';
import { PACKAGE } from '../version.js';
import { helpText, SETTINGS_NOTES, type Command } from './help.js';

/** A command's own flag (not a setting), as meow takes it, with a line for --help. */
type FlagSpec = { type: 'string' | 'boolean'; isMultiple?: boolean; shortFlag?: string; aliases?: string[] };
export type ExtraFlags = Record<string, FlagSpec & { doc?: string }>;

export interface ParsedArgs {
  positionals: string[];
  layer: RawLayer;
  /** Values of the command's own flags (not settings), camelCased. */
  extra: Record<string, unknown>;
}

export interface ParseOptions {
  /** The command whose --help this is; its usage line is in cli/help.ts. */
  command: Command;
  extra?: ExtraFlags;
  origin?: 'command line' | 'environment';
  /** Where the flags came from when not argv (WS_PROXY_KIT_CMD_ARGS). */
  via?: string;
  /** --help's text; default: the command's usage, its own flags and every setting. */
  help?: () => string;
}

/** A flag as the first pass sees it: meow's spec, and the setting it sets if any. */
interface FlagInfo extends FlagSpec {
  key: string;
  setting?: SettingDef;
}

const BUILT_IN: ExtraFlags = {
  help: { type: 'boolean', shortFlag: 'h' },
  // -v and -V as Gunicorn and PM2 spell it.
  version: { type: 'boolean', shortFlag: 'v', aliases: ['V'] },
};

/** Every flag of the command: the settings (but the positional one), its own flags, --help, --version. */
function flagsOf(extra: ExtraFlags): Map<string, FlagInfo> {
  const flags = new Map<string, FlagInfo>();
  for (const s of settingsTable as readonly SettingDef[]) {
    if (s.positional) continue;
    flags.set(s.name, {
      key: s.name,
      setting: s,
      type: s.kind === 'boolean' ? 'boolean' : 'string',
      ...(s.kind === 'list' ? { isMultiple: true } : {}),
      ...(s.short ? { shortFlag: s.short } : {}),
    });
  }
  // A command's own flag of a setting's name (init's --workers) is the command's; its value is offered to the setting too.
  for (const [key, f] of Object.entries({ ...extra, ...BUILT_IN })) flags.set(key, { key, ...f, setting: settingsByName.get(key) });
  return flags;
}

const isNegativeNumber = (t: string) => /^-\d/.test(t);
/** `--flag false`: a boolean flag takes a following true or false as its value. */
const isBooleanWord = (t: string | undefined) => t === 'true' || t === 'false';

/**
 * Index of the value that follows the flag at i. A flag there instead is an error: the
 * parser underneath would take it as a flag and silently leave this one empty.
 */
function valueAt(argv: readonly string[], i: number, flag: string): number {
  const next = argv[i + 1];
  if (next === undefined) throw new ConfigError(`${flag} needs a value. See --help.`);
  if (next.startsWith('-') && next !== '-' && !isNegativeNumber(next)) {
    throw new ConfigError(
      `${flag} needs a value, but the next argument ${next} is a flag. For a value that starts with "-", write ${flag.startsWith('--') ? `${flag}=VALUE` : `${flag}VALUE`}.`,
    );
  }
  return i + 1;
}

/**
 * Rejects unknown flags, suggesting the closest known one, and rewrites every flag to its
 * long form: `--long-name=value` for those that take a value (so that a value such as `-`
 * (stdout) or `-1` is never read as a flag), `--name` or `--no-name` for booleans.
 */
function normalizeArgv(argv: readonly string[], flags: ReadonlyMap<string, FlagInfo>, source: (flag: string) => Source): string[] {
  const long = new Map<string, { flag: FlagInfo; negated: boolean }>();
  const short = new Map<string, FlagInfo>();
  for (const f of flags.values()) {
    long.set(kebab(f.key), { flag: f, negated: false });
    if (f.type === 'boolean' || f.setting?.offValue !== undefined) long.set('no-' + kebab(f.key), { flag: f, negated: true });
    for (const letter of [f.shortFlag, ...(f.aliases ?? [])]) if (letter?.length === 1) short.set(letter, f);
  }
  /** A boolean flag's value, read as its setting reads it: --name or --no-name. */
  const booleanToken = (f: FlagInfo, value: string): string => {
    const flag = `--${kebab(f.key)}`;
    let on: boolean;
    if (f.setting) on = parseValue(f.setting, { value, source: source(flag) }) as boolean;
    else
      try {
        on = bool(value);
      } catch (err) {
        if (!(err instanceof InvalidValue)) throw err;
        throw new ConfigError(`Invalid value for ${flag}: ${JSON.stringify(value)}. Accepted: true or false.`);
      }
    return on ? flag : `--no-${kebab(f.key)}`;
  };
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (token.startsWith('--')) {
      const eq = token.indexOf('=');
      const name = eq < 0 ? token.slice(2) : token.slice(2, eq);
      const inline = eq < 0 ? undefined : token.slice(eq + 1);
      const found = long.get(name);
      if (!found) {
        const hint = closest(
          name,
          [...long.keys()].filter((k) => !k.startsWith('no-')),
        );
        throw new ConfigError(`Unknown flag --${name}.${hint ? ` Did you mean --${hint}?` : ''} See --help.`);
      }
      const { flag: f, negated } = found;
      if (negated) {
        if (inline !== undefined) throw new ConfigError(`--${name} takes no value. See --help.`);
        out.push(f.type === 'boolean' ? token : `--${kebab(f.key)}=${f.setting!.offValue!}`);
      } else if (f.type === 'string') {
        if (inline !== undefined) out.push(token);
        else {
          i = valueAt(argv, i, `--${name}`);
          out.push(`--${name}=${argv[i]!}`);
        }
      } else if (inline !== undefined) out.push(booleanToken(f, inline));
      else if (isBooleanWord(argv[i + 1])) out.push(booleanToken(f, argv[++i]!));
      else out.push(token);
    } else if (token.startsWith('-') && token.length > 1 && !isNegativeNumber(token)) {
      const f = short.get(token[1]!);
      if (!f) throw new ConfigError(`Unknown flag ${token}. See --help.`);
      if (f.type !== 'string')
        out.push(token.length === 2 && isBooleanWord(argv[i + 1]) ? booleanToken(f, argv[++i]!) : `--${kebab(f.key)}`);
      else if (token.length > 2) out.push(`--${kebab(f.key)}=${token.slice(token[2] === '=' ? 3 : 2)}`);
      else {
        i = valueAt(argv, i, token);
        out.push(`--${kebab(f.key)}=${argv[i]!}`);
      }
    } else out.push(token);
  }
  // yargs lets a repeated boolean's last value win, where meow refuses any other flag that cannot repeat: refused alike.
  const seen = new Set<string>();
  for (const token of out) {
    if (token === '--') break;
    const f = token.startsWith('--') ? long.get(token.slice(2))?.flag : undefined;
    if (f?.type !== 'boolean') continue;
    if (seen.has(f.key)) throw new ConfigError(`The flag --${kebab(f.key)} can only be set once.`);
    seen.add(f.key);
  }
  return out;
}

/**
 * meow sets process.title to its package's name, which on Linux writes over the command line
 * that ps, top and `systemctl status` show (the app, its flags) with "ws-proxy-kit". Given the
 * command line itself as the name, the title it sets reads as before.
 */
function commandLine(): string {
  try {
    return readFileSync('/proc/self/cmdline', 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return [process.argv0, ...process.execArgv, ...process.argv.slice(1)].join(' ');
  }
}

/** The flags as meow takes them. Defaults stay out: the settings' defaults are the lowest layer of load.ts, below the config file and the environment. */
function meowFlags(flags: ReadonlyMap<string, FlagInfo>): AnyFlags {
  const out: AnyFlags = {};
  for (const { key, type, isMultiple, shortFlag, aliases } of flags.values())
    out[key] = {
      type,
      ...(isMultiple ? { isMultiple } : {}),
      ...(shortFlag ? { shortFlag } : {}),
      ...(aliases ? { aliases } : {}),
    } as AnyFlag;
  return out;
}

/** Parses argv (without the command word) into a layer of raw setting values. */
export function parseArgs(argv: string[], opts: ParseOptions): ParsedArgs {
  const extra = opts.extra ?? {};
  const flags = flagsOf(extra);
  const origin = opts.origin ?? 'command line';
  const where = (flag: string) => (opts.via ? `${flag} in ${opts.via}` : flag);
  const normalized = normalizeArgv(argv, flags, (flag) => ({ origin, where: where(flag) }));
  const wantsHelp = origin === 'command line' && normalized.includes('--help');
  let cli;
  try {
    cli = meow(wantsHelp ? (opts.help?.() ?? helpText({ command: opts.command, extra, notes: SETTINGS_NOTES })) : '', {
      importMeta: import.meta,
      argv: normalized,
      pkg: { ...PACKAGE, name: commandLine(), bin: undefined },
      description: false,
      flags: meowFlags(flags),
      autoHelp: false,
      autoVersion: false,
      booleanDefault: undefined,
    });
  } catch (err) {
    // meow's "The flag --logLevel can only be set once.", with the flag as it is written.
    const once = /^The flag --(\w+) can only be set once\.$/.exec((err as Error).message);
    if (once) throw new ConfigError(`The flag --${kebab(once[1]!)} can only be set once.`);
    throw err;
  }
  // In WS_PROXY_KIT_CMD_ARGS, --help and --version mean nothing.
  if (origin === 'command line' && cli.flags.help) cli.showHelp(0);
  if (origin === 'command line' && cli.flags.version) cli.showVersion();

  const layer: RawLayer = new Map();
  const values: Record<string, unknown> = {};
  for (const f of flags.values()) {
    const value = cli.flags[f.key];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    values[f.key] = value;
    if (f.setting) layer.set(f.key, { value, source: { origin, where: where(`--${kebab(f.key)}`) } });
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
