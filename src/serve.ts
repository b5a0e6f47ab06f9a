// Programmatic use: `serve({ app, bind, workers })` runs the master in this process, as the
// CLI would, and returns a handle to wait for it, reload it and stop it. The options take the
// command line's place among the sources (defaults < config file < environment < options), so
// a ws-proxy-kit.config.* in `cwd` and WS_PROXY_KIT_* variables apply as they do to the CLI.
// Relative paths (UNIX binds, the pidfile, log files; the app, from chdir, which defaults to
// `cwd`) are resolved against `cwd`.
// Hooks are given in a config file (`config: 'ws-proxy-kit.config.mjs'`): the workers load
// the worker-side ones from it.
import { isAbsolute, resolve } from 'node:path';
import { Arbiter } from './arbiter/arbiter.js';
import { loadConfig, type LoadedConfig, type RawLayer } from './config/load.js';
import type { Settings, SettingsInput } from './config/settings.js';
import { createLogger, errorInfo, flushLogs, type Logger } from './log/logger.js';
import type { BindSpec } from './listeners/bind-spec.js';
import { noopNotifier, type Notifier } from './notify/notifier.js';

export interface ServeOptions extends SettingsInput {
  /** Where relative paths start, and where the config file is looked for; default process.cwd(). */
  cwd?: string;
  /** The environment read for WS_PROXY_KIT_* (and WEB_CONCURRENCY, PORT); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** A config file, as --config. */
  config?: string;
}

export interface ServerHandle {
  /** Resolves once every worker of the first pool serves; rejects if the server stops first. */
  readonly ready: Promise<void>;
  /** Resolves with the exit code the CLI would have (0 after a clean stop, 3 when the app never booted). */
  readonly exited: Promise<number>;
  /** The master's listening addresses, once ready (unix:PATH, HOST:PORT). */
  readonly binds: string[];
  /** As SIGHUP: re-reads the configuration, starts new workers, retires the old ones once the new serve. False when it did not happen. */
  reload(): Promise<boolean>;
  /** Graceful stop (as SIGTERM), or quick (as SIGQUIT) with `{ graceful: false }`; resolves with the exit code. */
  stop(opts?: { graceful?: boolean }): Promise<number>;
}

/** A path from the options or the environment, relative to `cwd`. */
function fromCwd(cwd: string, path: string): string {
  return isAbsolute(path) ? path : resolve(cwd, path);
}

function resolveBind(cwd: string, b: BindSpec): BindSpec {
  return b.kind === 'unix' ? { ...b, path: fromCwd(cwd, b.path) } : b;
}

/** The settings with every relative path made absolute from `cwd` (the master's own cwd may be anything). */
function anchored(settings: Settings, cwd: string): Settings {
  const s = { ...settings };
  s.bind = s.bind.map((b) => resolveBind(cwd, b));
  // The workers load the app from chdir, as with the CLI: a relative app is relative to it.
  s.chdir = s.chdir ? fromCwd(cwd, s.chdir) : cwd;
  if (s.pid) s.pid = fromCwd(cwd, s.pid);
  if (s.controlSocket !== 'auto' && s.controlSocket !== 'off') s.controlSocket = fromCwd(cwd, s.controlSocket);
  if (s.errorLogfile !== '-') s.errorLogfile = fromCwd(cwd, s.errorLogfile);
  if (s.accessLogfile && s.accessLogfile !== '-') s.accessLogfile = fromCwd(cwd, s.accessLogfile);
  for (const key of ['metricsBind', 'healthBind'] as const) {
    const v = s[key];
    if (v?.startsWith('unix:')) s[key] = `unix:${fromCwd(cwd, v.slice('unix:'.length))}`;
  }
  return s;
}

async function settingsFor(opts: ServeOptions, cwd: string, env: NodeJS.ProcessEnv): Promise<LoadedConfig> {
  const layer: RawLayer = new Map();
  for (const [name, value] of Object.entries(opts)) {
    if (name === 'cwd' || name === 'env' || value === undefined) continue;
    layer.set(name, { value, source: { origin: 'serve()', where: `${name} in the options of serve()` } });
  }
  const loaded = await loadConfig({ cli: layer, env, cwd });
  return { ...loaded, settings: anchored(loaded.settings, cwd) };
}

/** Starts a server in this process. Throws (as the CLI exits 2) when an option is invalid. */
export async function serve(opts: ServeOptions): Promise<ServerHandle> {
  const cwd = resolve(opts.cwd ?? process.cwd());
  const env = opts.env ?? process.env;
  const config = await settingsFor(opts, cwd, env);
  const log: Logger = createLogger(config.settings, { role: 'master' });
  let onReady!: () => void;
  let onFailed!: (err: Error) => void;
  const ready = new Promise<void>((res, rej) => ((onReady = res), (onFailed = rej)));
  ready.catch(() => {}); // the caller may only await `exited`
  const binds: string[] = [];
  const notifier: Notifier = {
    ...noopNotifier,
    ready: () => {
      binds.splice(0, binds.length, ...arbiter.listeners.map((l) => l.address));
      onReady();
    },
  };
  const arbiter = new Arbiter({ config, log, env, notifier, reloadConfig: () => settingsFor(opts, cwd, env) });
  const exited = arbiter.run().then(
    (code) => {
      onFailed(new Error(`the server stopped (exit ${code}) before it was ready`));
      return code;
    },
    (err: unknown) => {
      log.fatal({ err: errorInfo(err) }, (err as Error).message);
      flushLogs();
      onFailed(err as Error);
      const code = (err as { exitCode?: unknown }).exitCode;
      return typeof code === 'number' ? code : 1;
    },
  );
  return {
    ready,
    exited,
    binds,
    async reload() {
      const reply = await arbiter.control({ name: 'reload' });
      return reply.ok;
    },
    async stop({ graceful = true } = {}) {
      await arbiter.control({ name: 'shutdown', mode: graceful ? 'graceful' : 'quick' });
      return exited;
    },
  };
}
