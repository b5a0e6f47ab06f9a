// THE settings table. Each setting is declared once, as one row (its fields: settings/definition.ts);
// the CLI flags and --help (cli/args.ts, cli/help.ts), the config file keys and their type
// (defineConfig), the environment variables, `--print-config` and the README's settings
// reference (scripts/settings-doc.ts) are all derived from it. The rows live by section in
// settings/*.ts; this is their order in --help, --print-config and the docs.
import type { SettingDef } from './settings/definition.js';
import type { InputOf } from './settings/parsers.js';
import { processSettings } from './settings/process.js';
import { bindingSettings } from './settings/binding.js';
import { workerSettings } from './settings/workers.js';
import { httpSettings } from './settings/http.js';
import { proxySettings } from './settings/proxy.js';
import { loggingSettings } from './settings/logging.js';

export { InvalidValue } from './settings/parsers.js';
export type { SettingDef, Section } from './settings/definition.js';

export const settingsTable = [
  ...processSettings,
  ...bindingSettings,
  ...workerSettings,
  ...httpSettings,
  ...proxySettings,
  ...loggingSettings,
] as const;

type Table = (typeof settingsTable)[number];
export type SettingName = Table['name'];
/** The effective settings, as parsed. */
export type Settings = { [S in Table as S['name']]: ReturnType<S['parse']> };
/** The settings as a config file gives them (`bind: ['unix:/run/app.sock']`, `socketMode: '0660'`): each row's input type. */
export type SettingsInput = {
  [S in Table as S extends { readonly cliOnly: true } | { readonly action: true } ? never : S['name']]?: InputOf<S['parse']>;
};

export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

export const ENV_PREFIX = 'WS_PROXY_KIT_';

export function envName(name: string): string {
  return ENV_PREFIX + name.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

/** The environment variables that set a setting, the first present one winning. */
export function envNamesOf(setting: SettingDef): readonly string[] {
  return setting.action ? [] : (setting.env ?? [envName(setting.name)]);
}

/** Is it a key of the config file? */
export function isConfigKey(setting: SettingDef): boolean {
  return !setting.cliOnly && !setting.action;
}

/** The default; `note` hears what in the environment chose a computed one (DefaultFn). */
export function defaultOf(setting: SettingDef, env: NodeJS.ProcessEnv, note: (what: string) => void = () => {}): unknown {
  return typeof setting.default === 'function'
    ? (setting.default as (e: NodeJS.ProcessEnv, n: typeof note) => unknown)(env, note)
    : setting.default;
}

/** How a value reads for people: the row's display(), else the value as text, lists joined with ", ". */
export function displayOf(setting: SettingDef | undefined, value: unknown): string {
  if (setting?.display && value !== null) return setting.display(value);
  if (value === null) return '(none)';
  if (Array.isArray(value)) return value.length ? value.join(', ') : '(none)';
  return String(value);
}

export const settingsByName: ReadonlyMap<string, SettingDef> = new Map(settingsTable.map((s) => [s.name, s as SettingDef]));
