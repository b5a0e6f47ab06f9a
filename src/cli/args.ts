// Command-line parsing, driven by the settings table. Unknown flags are errors with a
// "did you mean". (meow did the last step until session 3; it cost ≈ 40–55 ms of every
// start for splitting `--name=value`: docs/decisions.md.)
import { settingsTable, kebab, type SettingDef } from '../config/settings.js';
import { ConfigError, type RawLayer } from '../config/load.js';
import { closest } from '../config/did-you-mean.js';
import { PACKAGE } from '../version.js';

type FlagSpec = { type: 'string' | 'boolean'; isMultiple?: boolean; shortFlag?: string };
export type ExtraFlags = Record<string, FlagSpec & { doc?: string }>;

export interface ParsedArgs {
  positionals: string[];
  layer: RawLayer;
  /** Values of the command's own flags (not settings), camelCased. */
  extra: Record<string, unknown>;
}

function settingFlags(): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = {};
  for (const s of settingsTable as readonly SettingDef[]) {
    if (s.positional) continue;
    flags[s.name] = {
      type: s.kind === 'boolean' ? 'boolean' : 'string',
      ...(s.kind === 'list' ? { isMultiple: true } : {}),
      ...(s.short ? { shortFlag: s.short } : {}),
    };
  }
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
 * long form, `--long-name=value` for those that take a value (so that a value such as `-`
 * (stdout) or `-1` is never read as a flag).
 */
function normalizeArgv(argv: readonly string[], flags: Record<string, FlagSpec>): string[] {
  const long = new Map<string, FlagSpec>();
  const short = new Map<string, { flag: FlagSpec; long: string }>();
  for (const [name, f] of Object.entries({ ...flags, help: { type: 'boolean' } as FlagSpec, version: { type: 'boolean' } as FlagSpec })) {
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
        const hint = closest(
          name,
          [...long.keys()].filter((k) => !k.startsWith('no-')),
        );
        throw new ConfigError(`Unknown flag --${name}.${hint ? ` Did you mean --${hint}?` : ''} See --help.`);
      }
      if (f.type === 'string' && !inline) {
        i = valueAt(argv, i, `--${name}`);
        out.push(`--${name}=${argv[i]!}`);
      } else if (!inline && isBooleanWord(argv[i + 1])) out.push(`--${name}=${argv[++i]!}`);
      else out.push(token);
    } else if (token.startsWith('-') && token.length > 1 && !isNegativeNumber(token)) {
      const f = short.get(token[1]!);
      if (!f) throw new ConfigError(`Unknown flag ${token}. See --help.`);
      if (f.flag.type !== 'string')
        out.push(token.length === 2 && isBooleanWord(argv[i + 1]) ? `--${f.long}=${argv[++i]!}` : `--${f.long}`);
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
    if (s.positional) continue;
    const flag = `${s.short ? `-${s.short}, ` : '    '}--${kebab(s.name)}${s.kind === 'boolean' ? '' : ' VALUE'}`;
    const list = sections.get(s.section) ?? [];
    list.push(`    ${flag.padEnd(36)} ${s.doc}`);
    sections.set(s.section, list);
  }
  lines.push(`  Usage`, `    $ ws-proxy-kit ${command}`, '');
  lines.push(
    '  Commands',
    '    serve (default)   run the server',
    '    check             validate the configuration and load the app once (exit 0 or 1)',
    '    init              generate the nginx site, systemd units and config file for a deployment',
    '',
  );
  if (Object.keys(extra).length) {
    lines.push('  Options');
    for (const [name, f] of Object.entries(extra))
      lines.push(`        --${kebab(name)}${f.type === 'boolean' ? '' : ' VALUE'}`.padEnd(41) + ` ${f.doc ?? ''}`);
    lines.push('');
  }
  for (const [section, list] of sections) lines.push(`  ${section}`, ...list, '');
  lines.push('  Every setting can also come from a config file key or a WS_PROXY_KIT_<NAME> variable.');
  lines.push('  Precedence: defaults < config file < environment < command line.');
  return lines.join('\n');
}

/**
 * Flag values by camelCase name from normalized argv (normalizeArgv), and the positionals.
 * `--help`/`-h` and `--version` print and exit, except in WS_PROXY_KIT_CMD_ARGS.
 */
function readFlags(
  normalized: readonly string[],
  flags: Record<string, FlagSpec>,
  opts: { command: string; extra: ExtraFlags; origin?: string },
) {
  const byFlag = new Map(Object.entries(flags).map(([name, f]) => [kebab(name), { name, f }]));
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  for (let i = 0; i < normalized.length; i++) {
    const token = normalized[i]!;
    if (token === '--') {
      positionals.push(...normalized.slice(i + 1));
      break;
    }
    if (!token.startsWith('--')) {
      positionals.push(token);
      continue;
    }
    const eq = token.indexOf('=');
    const flag = eq < 0 ? token.slice(2) : token.slice(2, eq);
    const inline = eq < 0 ? undefined : token.slice(eq + 1);
    if (flag === 'help' || flag === 'version') {
      if (opts.origin === 'environment') continue;
      process.stdout.write(
        flag === 'help' ? `\n  ${PACKAGE.description}\n\n${helpText(opts.command, opts.extra)}\n\n` : `${PACKAGE.version}\n`,
      );
      process.exit(0);
    }
    const negated = !byFlag.has(flag) && flag.startsWith('no-');
    const known = byFlag.get(negated ? flag.slice(3) : flag);
    if (!known) continue; // --no-help, --no-version: normalizeArgv refused every other unknown flag
    const { name, f } = known;
    let value: unknown = inline ?? '';
    if (f.type === 'boolean')
      value = negated ? false : inline === undefined || inline === 'true' ? true : inline === 'false' ? false : inline;
    if (f.isMultiple) ((values[name] ??= []) as unknown[]).push(value);
    else if (name in values) throw new ConfigError(`The flag --${kebab(name)} can only be set once.`);
    else values[name] = value;
  }
  return { values, positionals };
}

/** Parses argv (without the command word) into a layer of raw setting values. */
export function parseArgs(
  argv: string[],
  opts: { command: string; extra?: ExtraFlags; origin?: 'command line' | 'environment'; via?: string },
): ParsedArgs {
  const extra = opts.extra ?? {};
  const flags = { ...settingFlags(), ...extra };
  // --no-<flag> of a setting that takes a value: its offValue.
  const offForms = new Map(
    (settingsTable as readonly SettingDef[]).flatMap((s) =>
      s.offValue === undefined ? [] : [[`--no-${kebab(s.name)}`, `--${kebab(s.name)}=${s.offValue}`]],
    ),
  );
  const aliased = argv.map((a) => offForms.get(a) ?? a);
  const { values, positionals } = readFlags(normalizeArgv(aliased, flags), flags, { command: opts.command, extra, origin: opts.origin });
  const layer: RawLayer = new Map();
  for (const s of settingsTable as readonly SettingDef[]) {
    const v = values[s.name];
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
    const where = opts.via ? `--${kebab(s.name)} in ${opts.via}` : `--${kebab(s.name)}`;
    layer.set(s.name, { value: v, source: { origin: opts.origin ?? 'command line', where } });
  }
  const extraValues: Record<string, unknown> = {};
  for (const name of Object.keys(extra)) extraValues[name] = values[name];
  return { positionals, layer, extra: extraValues };
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
