// Builds the effective settings: defaults < config file < environment < command line.
// Every error names the setting, the value, where it came from and what is accepted.
import { existsSync, readFileSync } from 'node:fs';
import { resolve, extname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import {
  settingsTable,
  settingsByName,
  envName,
  kebab,
  defaultOf,
  InvalidValue,
  type SettingDef,
  type Settings,
  type SettingName,
} from './settings.js';
import { hookNames, type Hooks } from './hooks.js';
import { closest } from './did-you-mean.js';
import { passedSockets } from '../listeners/systemd.js';

export class ConfigError extends Error {
  readonly exitCode = 2;
  readonly code = 'EWSPK_CONFIG';
}

export type Origin = 'default' | 'config file' | 'environment' | 'command line';
export interface Source {
  origin: Origin;
  /** e.g. "--workers", "WEB_CONCURRENCY", "workers in ./ws-proxy-kit.config.mjs" */
  where: string;
}

export interface LoadedConfig {
  settings: Settings;
  sources: Record<SettingName, Source>;
  configPath: string | null;
  hooks: Hooks;
}

/** A raw value for one setting with where it was found. */
interface RawValue {
  value: unknown;
  source: Source;
}
export type RawLayer = Map<string, RawValue>;

let loads = 0;
const DEFAULT_CONFIG_NAMES = ['ws-proxy-kit.config.mjs', 'ws-proxy-kit.config.js', 'ws-proxy-kit.config.cjs', 'ws-proxy-kit.config.json'];
/** Variables with our prefix that are not settings. */
const NON_SETTING_ENV = new Set(['WS_PROXY_KIT_CMD_ARGS']);
const INTERNAL_ENV_PREFIX = 'WS_PROXY_KIT_INTERNAL_';

export function describe(setting: SettingDef, source: Source): string {
  return `${setting.name} (${source.where})`;
}

function parseValue(setting: SettingDef, raw: RawValue): unknown {
  try {
    return setting.parse(raw.value);
  } catch (err) {
    if (!(err instanceof InvalidValue)) throw err;
    const shown = typeof raw.value === 'string' ? JSON.stringify(raw.value) : safeJson(raw.value);
    const reason = err.message ? ` (${err.message})` : '';
    throw new ConfigError(`Invalid value for ${describe(setting, raw.source)}: ${shown}${reason}. Accepted: ${setting.accepted}.`);
  }
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Environment layer: WS_PROXY_KIT_<NAME>, aliases like WEB_CONCURRENCY. */
export function envLayer(env: NodeJS.ProcessEnv): RawLayer {
  const layer: RawLayer = new Map();
  const known = new Map<string, SettingDef>();
  for (const s of settingsTable as readonly SettingDef[]) {
    if (s.cliOnly && s.name !== 'config') continue;
    known.set(envName(s.name), s);
    for (const alias of s.envAliases ?? []) {
      const v = env[alias];
      if (v !== undefined && v !== '') layer.set(s.name, { value: v, source: { origin: 'environment', where: alias } });
    }
  }
  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith('WS_PROXY_KIT_') || NON_SETTING_ENV.has(key) || key.startsWith(INTERNAL_ENV_PREFIX)) continue;
    const s = known.get(key);
    if (!s) {
      // Compare what follows the prefix, so that any short name is not "close" to every other.
      const strip = (k: string) => k.slice('WS_PROXY_KIT_'.length);
      const hint = closest(strip(key), [...known.keys(), ...NON_SETTING_ENV].map(strip));
      throw new ConfigError(
        `Unknown environment variable ${key}.${hint ? ` Did you mean WS_PROXY_KIT_${hint}?` : ''} Unset it, or see --help for the settings.`,
      );
    }
    if (value === undefined) continue;
    layer.set(s.name, { value, source: { origin: 'environment', where: key } });
  }
  return layer;
}

/** Config file layer and its hooks. */
export async function configFileLayer(path: string): Promise<{ layer: RawLayer; hooks: Hooks }> {
  let exported: Record<string, unknown>;
  try {
    if (extname(path) === '.json') {
      exported = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } else {
      // A fresh URL each time, so that a reload (SIGHUP) reads the file again.
      delete createRequire(import.meta.url).cache[path];
      const mod = (await import(`${pathToFileURL(path).href}?load=${++loads}`)) as Record<string, unknown>;
      // `export default {...}`, `export default async () => ({...})`, or named exports.
      let value: unknown = 'default' in mod ? mod.default : { ...mod };
      if (typeof value === 'function') value = await (value as () => unknown)();
      exported = value as Record<string, unknown>;
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    throw new ConfigError(`Could not load the config file ${path}: ${msg}`);
  }
  if (exported === null || typeof exported !== 'object' || Array.isArray(exported)) {
    throw new ConfigError(`The config file ${path} must export an object of settings (export default { workers: 2, ... }).`);
  }
  const layer: RawLayer = new Map();
  const hooks: Hooks = {};
  const allowedKeys = [...(settingsTable as readonly SettingDef[]).filter((s) => !s.cliOnly).map((s) => s.name), ...hookNames];
  for (const [key, value] of Object.entries(exported)) {
    if (hookNames.has(key)) {
      if (typeof value !== 'function') throw new ConfigError(`Hook ${key} in ${path} must be a function.`);
      (hooks as Record<string, unknown>)[key] = value;
      continue;
    }
    const s = settingsByName.get(key);
    if (s?.cliOnly) {
      throw new ConfigError(`"${key}" in ${path} can only be given on the command line (--${kebab(key)}); remove it from the config file.`);
    }
    if (!s) {
      const hint = closest(key, allowedKeys);
      throw new ConfigError(
        `Unknown setting "${key}" in ${path}.${hint ? ` Did you mean "${hint}"?` : ''} The keys are the setting names listed by --help (camelCase).`,
      );
    }
    if (value === undefined) continue;
    layer.set(key, { value, source: { origin: 'config file', where: `${key} in ${path}` } });
  }
  return { layer, hooks };
}

export function findConfigFile(explicit: RawValue | undefined, cwd: string): string | null {
  if (explicit && typeof explicit.value === 'string' && explicit.value !== '') {
    const path = resolve(cwd, explicit.value);
    if (!existsSync(path)) throw new ConfigError(`The config file ${explicit.value} (${explicit.source.where}) does not exist.`);
    return path;
  }
  for (const name of DEFAULT_CONFIG_NAMES) {
    const path = resolve(cwd, name);
    if (existsSync(path)) return path;
  }
  return null;
}

/**
 * Merges the layers. `cli` and `cmdArgs` come from the command-line parser (cli/args.ts),
 * so that this module stays independent of it.
 */
export async function loadConfig(opts: { cli: RawLayer; cmdArgs?: RawLayer; env: NodeJS.ProcessEnv; cwd: string }): Promise<LoadedConfig> {
  const env = envLayer(opts.env);
  const cmdArgs = opts.cmdArgs ?? new Map();
  const configPath = findConfigFile(opts.cli.get('config') ?? cmdArgs.get('config') ?? env.get('config'), opts.cwd);
  const file = configPath ? await configFileLayer(configPath) : { layer: new Map() as RawLayer, hooks: {} };

  const settings: Record<string, unknown> = {};
  const sources: Record<string, Source> = {};
  for (const s of settingsTable as readonly SettingDef[]) {
    const raw = opts.cli.get(s.name) ?? cmdArgs.get(s.name) ?? env.get(s.name) ?? file.layer.get(s.name);
    if (raw) {
      settings[s.name] = parseValue(s, raw);
      sources[s.name] = raw.source;
    } else {
      try {
        settings[s.name] = defaultOf(s, opts.env);
      } catch (err) {
        if (err instanceof InvalidValue) throw new ConfigError(`Invalid value for ${s.name}: ${err.message}`);
        throw err;
      }
      const fromPort = s.name === 'bind' && opts.env.PORT?.trim() && passedSockets(opts.env).length === 0;
      sources[s.name] = { origin: 'default', where: fromPort ? `default (PORT=${opts.env.PORT!.trim()})` : 'default' };
    }
  }
  settings.config = configPath;
  return {
    settings: Object.freeze(settings) as unknown as Settings,
    sources: sources as Record<SettingName, Source>,
    configPath,
    hooks: file.hooks,
  };
}

export { kebab };
