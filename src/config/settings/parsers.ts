// Parsers of the settings table: each converts a raw value (a string from the command line
// or the environment, anything from a config file) or throws InvalidValue. A parser's type
// also says what a typed config file gives it (Parser's I), which is what defineConfig checks.
import { parseBind, type BindSpec } from '../../listeners/bind-spec.js';
import { allowListEntries, compileAllowList } from '../../proxy/trust.js';
import { compileAccessFormat } from '../../log/access-format.js';

/** Thrown by parsers; a message, when there is one, says what exactly is wrong. */
export class InvalidValue extends Error {}

declare const configInput: unique symbol;

/**
 * Converts a raw value to T or throws InvalidValue. I is the type a config file written in
 * TypeScript is held to (a type only: at run time the parser also takes the strings of the
 * command line and the environment). A plain `(raw: unknown) => T` is a Parser whose I is T.
 */
export type Parser<T, I = T> = ((raw: unknown) => T) & { readonly [configInput]?: I };

/** The config-file input type of a parser. */
export type InputOf<P> = P extends { readonly [configInput]?: infer I } ? I : never;

/** A list in a typed config file: an array, or one string (commas and spaces separate). */
export type ListInput = string | readonly string[];

export function integer(min: number, max: number): Parser<number> {
  return (raw) => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidValue();
    return n;
  };
}

/** A non-negative decimal number (seconds, megabytes) within bounds. */
export function decimal(min: number, max: number): Parser<number> {
  return (raw) => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidValue();
    return n;
  };
}

export function bool(raw: unknown): boolean {
  if (typeof raw === 'boolean') return raw;
  if (typeof raw === 'string') {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  }
  throw new InvalidValue();
}

export function text(raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') throw new InvalidValue();
  return raw;
}

export function optionalText(raw: unknown): string | null {
  if (raw === null || raw === undefined || raw === '') return null;
  return text(raw);
}

export function oneOf<const V extends string>(values: readonly V[]): Parser<V> {
  return (raw) => {
    if (typeof raw === 'string' && (values as readonly string[]).includes(raw.trim().toLowerCase())) {
      return raw.trim().toLowerCase() as V;
    }
    throw new InvalidValue();
  };
}

/** --log-level as Gunicorn spells it too. */
const GUNICORN_LEVELS = { warning: 'warn', critical: 'fatal' } as const;
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LEVELS)[number];

export const logLevel: Parser<LogLevel, LogLevel | keyof typeof GUNICORN_LEVELS> = (raw) =>
  oneOf(LEVELS)((GUNICORN_LEVELS as Record<string, string>)[String(raw).trim().toLowerCase()] ?? raw);

/** An octal file mode: 0660, 660 or 0o660 as text, or a number (0o660) from a config file. */
export const fileMode: Parser<number, number | `${number}`> = (raw) => {
  let n = NaN;
  if (typeof raw === 'number') n = raw;
  else if (typeof raw === 'string' && /^\s*(0o?)?[0-7]{1,4}\s*$/.test(raw)) n = parseInt(raw.trim().replace(/^0o/, ''), 8);
  if (!Number.isInteger(n) || n < 0 || n > 0o7777) throw new InvalidValue();
  return n;
};

/** How a file mode reads: 0660. */
export const octal = (mode: number): string => '0' + mode.toString(8);

/** A list from a config array, or a comma/whitespace separated string (env). */
export function list<T>(item: (raw: unknown) => T): Parser<T[], ListInput> {
  return (raw) => {
    if (!Array.isArray(raw) && typeof raw !== 'string') throw new InvalidValue();
    const items: unknown[] = Array.isArray(raw) ? raw : raw.split(/[\s,]+/).filter(Boolean);
    return items.map(item);
  };
}

/** parseBind, its error as the reason of an InvalidValue. */
function bindSpec(raw: unknown): BindSpec {
  try {
    return parseBind(String(raw));
  } catch (err) {
    throw new InvalidValue(err instanceof Error ? err.message : '');
  }
}

export const bindList: Parser<BindSpec[], ListInput> = (raw) => {
  const parsed = list(bindSpec)(raw);
  if (parsed.length === 0) throw new InvalidValue();
  return parsed;
};

/** Trusted-proxy allow lists: every entry is checked now, so a typo fails at startup. */
export const allowList: Parser<string[], ListInput> = (raw) => {
  try {
    const entries = allowListEntries(raw);
    compileAllowList(entries);
    return entries;
  } catch {
    throw new InvalidValue();
  }
};

export type ProxyProtocol = 'off' | 'v1' | 'v2' | 'auto';

export const proxyProtocolMode: Parser<ProxyProtocol, ProxyProtocol | boolean> = (raw) => {
  if (raw === true) return 'auto';
  if (raw === false) return 'off';
  const v = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
  if (v === 'off' || v === 'v1' || v === 'v2' || v === 'auto') return v;
  if (['true', 'on', 'yes', '1'].includes(v)) return 'auto';
  if (['false', 'no', '0'].includes(v)) return 'off';
  throw new InvalidValue();
};

export const urlPath: Parser<string | null, `/${string}` | null> = (raw) => {
  if (raw === null || raw === undefined || raw === '') return null;
  if (typeof raw !== 'string' || !/^\/[^\s?#]*$/.test(raw)) throw new InvalidValue();
  return raw;
};

/** A side endpoint's address (metrics, health): TCP or UNIX only, kept as text (parsed again where it is opened). */
export function endpointAddress(what: string): Parser<string | null> {
  return (raw) => {
    if (raw === null || raw === undefined || raw === '') return null;
    const spec = bindSpec(raw);
    if (spec.kind !== 'tcp' && spec.kind !== 'unix')
      throw new InvalidValue(`"${spec.text}": the ${what} endpoint takes HOST:PORT or unix:PATH`);
    return spec.text;
  };
}

export function accessLogFormat(raw: unknown): string | null {
  if (raw === null || raw === undefined || raw === '') return null;
  if (typeof raw !== 'string') throw new InvalidValue();
  try {
    compileAccessFormat(raw);
  } catch (err) {
    throw new InvalidValue((err as Error).message);
  }
  return raw;
}

/** The control socket: a path, auto, or off (false, none). */
export const controlSocketPath: Parser<string, string | false> = (raw) => {
  if (raw === false) return 'off';
  const v = text(raw).trim();
  return v === 'off' || v === 'false' || v === 'none' ? 'off' : v;
};
