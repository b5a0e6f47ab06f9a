// `ws-proxy-kit ctl set NAME VALUE`: settings changed on a running server, as NGINX Unit's
// control API allows. A value is validated by the settings table, with the CLI's messages;
// it is taken by the master at once and sent to the live workers, which apply what they can
// live (src/worker/worker-process.ts); the rest reaches the workers started from then on,
// and the reply says which. A HUP reload re-reads the config file and drops ctl-set values.
import { parseValue, ConfigError, type LoadedConfig } from '../config/load.js';
import { displayOf, settingsByName, settingsTable, type SettingDef, type Settings } from '../config/settings.js';
import { closest } from '../config/did-you-mean.js';
import type { SetResult } from './control.js';

/** What a change reaches: "now" (the master and the live workers), or only new workers. */
const LIVE: Record<string, { applied: 'now' | 'new workers'; note?: string }> = {
  workers: { applied: 'now', note: 'the pool is resized to it (the floor of an adaptive pool)' },
  maxWorkers: { applied: 'now', note: 'the ceiling of the adaptive pool' },
  maxRequests: { applied: 'now', note: 'each live worker counts from its own start' },
  maxRequestsJitter: { applied: 'now' },
  maxWorkerMemory: { applied: 'now' },
  timeout: { applied: 'now' },
  gracefulTimeout: { applied: 'now' },
  logLevel: { applied: 'now' },
  accessLogfile: { applied: 'now' },
  keepAlive: { applied: 'now', note: 'for the next responses of every connection' },
  limitRequestLine: { applied: 'now', note: "a limit raised past the worker's start-up one applies in full to new workers" },
  limitRequestFields: { applied: 'now', note: "a limit raised past the worker's start-up one applies in full to new workers" },
  limitRequestFieldSize: { applied: 'now', note: "a limit raised past the worker's start-up one applies in full to new workers" },
  limitRequestBody: { applied: 'now' },
  forwardedAllowIps: { applied: 'now', note: 'every connection is judged again with the new list' },
  proxyAllowIps: { applied: 'new workers', note: "the live workers' PROXY protocol listeners keep the list they started with" },
};

/** Settings that need other sockets: no ctl set, say what does it instead. */
const NEEDS_SOCKETS: Record<string, string> = {
  bind: 'binds are sockets the master holds: change them in the config file and restart, or use a USR2 upgrade (docs/signals.md)',
  socketMode: 'the mode of a socket file is set when it is created: change it in the config file and restart, or use a USR2 upgrade',
  socketUser: 'the owner of a socket file is set when it is created: change it in the config file and restart, or use a USR2 upgrade',
  socketGroup: 'the group of a socket file is set when it is created: change it in the config file and restart, or use a USR2 upgrade',
  backlog: 'the listen queue is the sockets’: change it in the config file and restart, or use a USR2 upgrade',
};

function settingNamed(name: string): SettingDef {
  const setting = settingsByName.get(name) ?? settingsByName.get(name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()));
  if (setting && !setting.action && !setting.cliOnly) return setting;
  const hint = closest(
    name,
    (settingsTable as readonly SettingDef[]).map((s) => s.name),
  );
  throw new ConfigError(`Unknown setting "${name}".${hint ? ` Did you mean ${hint}?` : ''} See ws-proxy-kit --help.`);
}

/** The parsed change, or a ConfigError that says why not (the CLI's wording). */
export function parseChange(config: LoadedConfig, name: string, raw: string): { setting: SettingDef; value: unknown; result: SetResult } {
  const setting = settingNamed(name);
  if (NEEDS_SOCKETS[setting.name])
    throw new ConfigError(`${setting.name} cannot change on a running server: ${NEEDS_SOCKETS[setting.name]}.`);
  const live = LIVE[setting.name];
  if (!live)
    throw new ConfigError(`${setting.name} cannot change on a running server: put it in the config file and reload (HUP, ctl reload).`);
  const value = parseValue(setting, { value: raw, source: { origin: 'ctl set', where: 'ctl set' } });
  const s = config.settings as Record<string, unknown>;
  if (setting.name === 'maxWorkers' && (value as number) !== 0 && (value as number) < (s.workers as number))
    throw new ConfigError(
      `Invalid value for maxWorkers: ${String(value)} is below workers, ${String(s.workers)}: give at least that, or 0.`,
    );
  if (setting.name === 'workers' && (s.maxWorkers as number) !== 0 && (value as number) > (s.maxWorkers as number))
    throw new ConfigError(
      `Invalid value for workers: ${String(value)} is above maxWorkers, ${String(s.maxWorkers)}: raise maxWorkers first.`,
    );
  const result: SetResult = {
    setting: setting.name,
    old: displayOf(setting, s[setting.name]),
    new: displayOf(setting, value),
    applied: live.applied,
    ...(live.note ? { note: live.note } : {}),
  };
  return { setting, value, result };
}

/** The configuration with the change in it, its source "ctl set". */
export function withChange(config: LoadedConfig, setting: SettingDef, value: unknown): LoadedConfig {
  return {
    ...config,
    settings: Object.freeze({ ...config.settings, [setting.name]: value }) as Settings,
    sources: { ...config.sources, [setting.name]: { origin: 'ctl set', where: 'ctl set' } },
  };
}

/** `ctl get`. */
export function getSetting(config: LoadedConfig, name: string): { setting: string; value: string; source: string } {
  const setting = settingNamed(name);
  const src = config.sources[setting.name as keyof typeof config.sources];
  return {
    setting: setting.name,
    value: displayOf(setting, (config.settings as Record<string, unknown>)[setting.name]),
    source: src.origin === 'default' || src.origin === src.where ? src.where : `${src.origin}: ${src.where}`,
  };
}
