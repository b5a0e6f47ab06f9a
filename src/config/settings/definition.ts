// What a row of the settings table says. Everything about a setting is a field here, so
// that the command line, the config file, the environment, --help, --print-config and the
// README reference (scripts/settings-doc.ts) need no special case for any setting's name.
import type { Parser } from './parsers.js';

export type Section = 'Process' | 'Binding' | 'Workers' | 'HTTP' | 'Proxy' | 'Logging';

/**
 * A default worked out from the environment. `note('PORT=5123')` says what in the
 * environment chose it; --print-config then reads `default (PORT=5123)`.
 */
export type DefaultFn<T> = (env: NodeJS.ProcessEnv, note: (what: string) => void) => T;

export interface SettingDef<N extends string = string, T = unknown, I = unknown> {
  /** camelCase name: the config-file key and the base of the flag and env var. */
  readonly name: N;
  readonly section: Section;
  /** One-letter flag, e.g. 'w' for -w. */
  readonly short?: string;
  /** 'boolean' flags take --x / --no-x (or --x=VALUE); 'list' flags may repeat; 'value' takes one value. */
  readonly kind: 'boolean' | 'value' | 'list';
  /** Value used when nothing sets it; a function for defaults that depend on the environment. */
  readonly default: T | DefaultFn<T>;
  /** How the default reads in --help and the docs, when display(default) would not say it. */
  readonly defaultDoc?: string;
  /** Human sentence naming what is accepted, used in errors and docs. */
  readonly accepted: string;
  /** Converts a raw value; its input type is what a typed config file may give (defineConfig). */
  readonly parse: Parser<T, I>;
  readonly doc: string;
  /**
   * The environment variables that set it, the first present one winning: our own
   * WS_PROXY_KIT_* ones even when empty, others (a platform's, e.g. WEB_CONCURRENCY) only
   * when not empty. Default: WS_PROXY_KIT_<NAME> alone.
   */
  readonly env?: readonly string[];
  /** Given on the command line as the positional argument of serve and check (named so in usage); no flag. */
  readonly positional?: string;
  /** The value --no-<flag> stands for, for a setting that takes a value (e.g. 'off'). */
  readonly offValue?: string;
  /** How a value reads for people (--print-config, ctl, --help, docs); default: the value as text, lists joined with ", ". */
  display?(value: T): string;
  /** Not a config-file key (the config file's own path); the command line and `env` set it. */
  readonly cliOnly?: true;
  /** A flag that makes the command do something else (--print-config): no config key, no variable, not printed. */
  readonly action?: true;
}

/**
 * One row of the table, typed from its fields: N is the name, T what parse returns, I what a
 * typed config gives. A row with `cliOnly` or `action` keeps that literal, so that the
 * config-file type (SettingsInput) leaves it out.
 */
export function def<const N extends string, T, I = T>(
  d: SettingDef<N, T, I> & { readonly action: true },
): SettingDef<N, T, I> & { readonly action: true };
export function def<const N extends string, T, I = T>(
  d: SettingDef<N, T, I> & { readonly cliOnly: true },
): SettingDef<N, T, I> & { readonly cliOnly: true };
export function def<const N extends string, T, I = T>(d: SettingDef<N, T, I>): SettingDef<N, T, I>;
export function def(d: SettingDef): SettingDef {
  return d;
}
