// Builds the effective settings: defaults < config file < environment < command line.
// Every error names the setting, the value, where it came from and what is accepted.
import { existsSync, readFileSync } from 'node:fs';
import { resolve, extname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import {
  settingsTable,
  settingsByName,
  envNamesOf,
  isConfigKey,
  kebab,
  defaultOf,
  ENV_PREFIX,
  InvalidValue,
  type SettingDef,
  type Settings,
  type SettingName,
} from './settings.js';
import { CONFIG_FILE_EXTENSIONS, TYPESCRIPT_EXTENSIONS } from './settings/process.js';
import { hookNames, type Hooks } from './hooks.js';
import { closest } from './did-you-mean.js';

export class ConfigError extends Error {
  readonly exitCode = 2;
  readonly code = 'EWSPK_CONFIG';
}

export type Origin = 'default' | 'config file' | 'environment' | 'command line' | 'serve()' | 'ctl set';
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
export interface RawValue {
  value: unknown;
  source: Source;
}
export type RawLayer = Map<string, RawValue>;

let loads = 0;

/**
 * Can this Node import a .ts file? Node 23.6+ and 22.18+ strip types by default
 * (process.features.typescript); 22.6+ does with --experimental-strip-types.
 */
function nodeStripsTypes(): boolean {
  const feature = (process.features as { typescript?: string | false }).typescript;
  if (feature !== undefined) return feature !== false;
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return flags.some((f) => f === '--experimental-strip-types' || f === '--experimental-transform-types');
}

/** ./ws-proxy-kit.config.* looked for when no config file is named, in this order. */
export function defaultConfigNames(stripsTypes = nodeStripsTypes()): string[] {
  return CONFIG_FILE_EXTENSIONS.filter((ext) => stripsTypes || !TYPESCRIPT_EXTENSIONS.has(ext)).map((ext) => `ws-proxy-kit.config.${ext}`);
}
/** Variables with our prefix that are not settings. */
const NON_SETTING_ENV = new Set(['WS_PROXY_KIT_CMD_ARGS']);
const INTERNAL_ENV_PREFIX = 'WS_PROXY_KIT_INTERNAL_';

export function describe(setting: SettingDef, source: Source): string {
  return `${setting.name} (${source.where})`;
}

export function parseValue(setting: SettingDef, raw: RawValue): unknown {
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

/**
 * Environment layer: each setting's variables (WS_PROXY_KIT_<NAME>, aliases like
 * WEB_CONCURRENCY), the first present one winning; ours count even when empty, a
 * platform's only when not.
 */
export function envLayer(env: NodeJS.ProcessEnv): RawLayer {
  const layer: RawLayer = new Map();
  const known = new Set<string>();
  for (const s of settingsTable as readonly SettingDef[]) {
    const names = envNamesOf(s);
    for (const name of names) if (name.startsWith(ENV_PREFIX)) known.add(name);
    const found = names.find((name) => env[name] !== undefined && (name.startsWith(ENV_PREFIX) || env[name] !== ''));
    if (found) layer.set(s.name, { value: env[found], source: { origin: 'environment', where: found } });
  }
  for (const key of Object.keys(env)) {
    if (!key.startsWith(ENV_PREFIX) || known.has(key) || NON_SETTING_ENV.has(key) || key.startsWith(INTERNAL_ENV_PREFIX)) continue;
    // Compare what follows the prefix, so that any short name is not "close" to every other.
    const strip = (k: string) => k.slice(ENV_PREFIX.length);
    const hint = closest(strip(key), [...known, ...NON_SETTING_ENV].map(strip));
    throw new ConfigError(
      `Unknown environment variable ${key}.${hint ? ` Did you mean ${ENV_PREFIX}${hint}?` : ''} Unset it, or see --help for the settings.`,
    );
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
    const typescript = TYPESCRIPT_EXTENSIONS.has(extname(path).slice(1)) && !nodeStripsTypes();
    throw new ConfigError(
      `Could not load the config file ${path}: ${msg}${typescript ? ` (Node ${process.version} does not strip types: Node 22.18+ and 23.6+ do, 22.6+ with --experimental-strip-types; or write the config as .mjs)` : ''}`,
    );
  }
  if (exported === null || typeof exported !== 'object' || Array.isArray(exported)) {
    throw new ConfigError(`The config file ${path} must export an object of settings (export default { workers: 2, ... }).`);
  }
  const layer: RawLayer = new Map();
  const hooks: Hooks = {};
  const allowedKeys = [...(settingsTable as readonly SettingDef[]).filter(isConfigKey).map((s) => s.name), ...hookNames];
  for (const [key, value] of Object.entries(exported)) {
    if (hookNames.has(key)) {
      if (typeof value !== 'function') throw new ConfigError(`Hook ${key} in ${path} must be a function.`);
      (hooks as Record<string, unknown>)[key] = value;
      continue;
    }
    const s = settingsByName.get(key);
    if (s && !isConfigKey(s)) {
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
  for (const name of defaultConfigNames()) {
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
      let chosenBy: string | undefined;
      try {
        settings[s.name] = defaultOf(s, opts.env, (what) => (chosenBy = what));
      } catch (err) {
        if (err instanceof InvalidValue) throw new ConfigError(`Invalid value for ${s.name}: ${err.message}`);
        throw err;
      }
      sources[s.name] = { origin: 'default', where: chosenBy ? `default (${chosenBy})` : 'default' };
    }
  }
  settings.config = configPath;
  const { workers, maxWorkers } = settings as { workers: number; maxWorkers: number };
  if (maxWorkers !== 0 && maxWorkers < workers) {
    throw new ConfigError(
      `Invalid value for maxWorkers: ${maxWorkers} (${sources.maxWorkers!.where}) is below workers, ${workers} (${sources.workers!.where}). --max-workers is the pool's ceiling and --workers its floor: give at least ${workers}, or 0 for a fixed pool.`,
    );
  }
  return {
    settings: Object.freeze(settings) as unknown as Settings,
    sources: sources as Record<SettingName, Source>,
    configPath,
    hooks: file.hooks,
  };
}

export { kebab };
