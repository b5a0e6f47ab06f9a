#!/usr/bin/env node
// The ws-proxy-kit command: serve (default), check, init, ctl. Each command imports what it
// needs when it runs: the arbiter and the logger only for serve, so that ctl stays quick.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, type LoadedConfig, type RawLayer } from '../config/load.js';
import { settingsTable, type SettingDef } from '../config/settings.js';
import { parseArgs, splitCommandLine, type ExtraFlags, type ParsedArgs } from './args.js';
import { COMMANDS, helpText, type Command } from './help.js';

const checkFlags: ExtraFlags = {
  proxyUser: { type: 'string', doc: "tell whether this user (nginx's, e.g. www-data) can connect to the UNIX sockets" },
};

/** The setting that serve's and check's positional argument gives (the app). */
const POSITIONAL = (settingsTable as readonly SettingDef[]).find((s) => s.positional)!;

/** `init --help`: init's flags, and the server settings its files follow. */
function initHelp(initFlags: ExtraFlags, settings: readonly string[]): string {
  return helpText({
    command: 'init',
    extra: initFlags,
    settings,
    notes: ["Given to init, these server settings set the timeouts of nginx's and systemd's files too."],
  });
}

/** `ctl top` runs in ctl itself (a client of status and workers), not in the server's command table. */
const TOP_HELP: [string, string] = [
  'top [--once]',
  'a live view of the pool, refreshed every second (q or Ctrl-C quits); --once prints one frame',
];

/** `ctl --help`: ctl's own flags, then ctl's commands (the table in src/arbiter/control.ts). */
function ctlHelp(ctlFlags: ExtraFlags, commands: [string, string][]): string {
  return helpText({
    command: 'ctl',
    extra: ctlFlags,
    settings: [],
    sections: [{ title: 'Commands', rows: commands }],
    notes: [
      'Without --socket, ctl works out the control socket from the settings, as the server does: flags such as -c, -b, -p and --control-socket, the config file and the environment.',
    ],
  });
}

function fail(message: string, exitCode: number): never {
  process.stderr.write(`ws-proxy-kit: ${message}\n`);
  process.exit(exitCode);
}

function exitCodeOf(err: unknown): number {
  const code = (err as { exitCode?: unknown })?.exitCode;
  return typeof code === 'number' ? code : 1;
}

/** Reads argv, WS_PROXY_KIT_CMD_ARGS, env and the config file into settings. */
async function readConfig(parsed: ParsedArgs, env: NodeJS.ProcessEnv): Promise<LoadedConfig> {
  const cli: RawLayer = new Map(parsed.layer);
  if (parsed.positionals.length > 1) {
    throw new ConfigError(
      `Expected one ${POSITIONAL.name}, got ${parsed.positionals.length}: ${parsed.positionals.join(' ')}. Quote paths with spaces.`,
    );
  }
  const value = parsed.positionals[0];
  if (value !== undefined)
    cli.set(POSITIONAL.name, { value, source: { origin: 'command line', where: `the ${POSITIONAL.positional!} argument` } });
  let cmdArgs: RawLayer | undefined;
  if (env.WS_PROXY_KIT_CMD_ARGS) {
    const extra = parseArgs(splitCommandLine(env.WS_PROXY_KIT_CMD_ARGS), {
      command: 'serve',
      origin: 'environment',
      via: 'WS_PROXY_KIT_CMD_ARGS',
    });
    if (extra.positionals.length) throw new ConfigError('WS_PROXY_KIT_CMD_ARGS takes flags only, not the app.');
    cmdArgs = extra.layer;
  }
  return loadConfig({ cli, ...(cmdArgs ? { cmdArgs } : {}), env, cwd: process.cwd() });
}

async function main(argv: string[]): Promise<number> {
  const command: Command = Object.hasOwn(COMMANDS, argv[0] ?? '') ? (argv.shift() as Command) : 'serve';
  if (command === 'init') {
    // Loaded on demand: serving never needs the deploy renderers.
    const { initFlags, runInit, alignedSettingsFrom, ALIGNED_SETTINGS } = await import('./init.js');
    const init = parseArgs(argv, { command, extra: initFlags, help: () => initHelp(initFlags, ALIGNED_SETTINGS) });
    if (init.positionals.length) throw new ConfigError(`init takes flags only (got ${init.positionals.join(' ')}); the app is --app PATH.`);
    return runInit(init.extra as Parameters<typeof runInit>[0], process.cwd(), alignedSettingsFrom(init.layer));
  }
  if (command === 'ctl') {
    const { ctlFlags, runCtl } = await import('./ctl.js');
    const { ctlCommandRows } = await import('../arbiter/control.js');
    const ctl = parseArgs(argv, { command, extra: ctlFlags, help: () => ctlHelp(ctlFlags, [...ctlCommandRows(), TOP_HELP]) });
    const config = await loadConfig({ cli: ctl.layer, env: process.env, cwd: process.cwd() });
    return runCtl(ctl.positionals, ctl.extra as { socket?: string; json?: boolean; once?: boolean }, config);
  }
  const parsed = parseArgs(argv, { command, ...(command === 'check' ? { extra: checkFlags } : {}) });
  const config = await readConfig(parsed, process.env);
  const s = config.settings;
  if (s.printConfig) {
    const { printConfig } = await import('./print-config.js');
    process.stdout.write(printConfig(config));
    return 0;
  }
  if (!s.app)
    throw new ConfigError('No app given. Usage: ws-proxy-kit [options] path/to/app.mjs[:export] (or set app in the config file).');
  if (s.chdir) {
    try {
      process.chdir(s.chdir);
    } catch {
      throw new ConfigError(`Invalid value for chdir: ${JSON.stringify(s.chdir)} is not a directory we can enter.`);
    }
  }
  if (command === 'check') {
    const { checkBindDirectory } = await import('../listeners/bind.js');
    for (const b of s.bind) checkBindDirectory(b);
    const { loadApp } = await import('../worker/app.js');
    const app = await loadApp(s.app, process.cwd());
    process.stdout.write(`ok: configuration valid${config.configPath ? ` (${config.configPath})` : ''}; app ${app.description}\n`);
    const proxyUser = parsed.extra.proxyUser as string | undefined;
    if (!proxyUser) return 0;
    const { checkProxyAccess, formatProxyAccess, socketPlanFromSettings } = await import('../deploy/proxy-access.js');
    let accessOk = true;
    const sockets = s.bind.filter((b) => b.kind === 'unix');
    if (sockets.length === 0) process.stdout.write(`--proxy-user: no unix: bind configured; nothing to check.\n`);
    for (const b of sockets) {
      const report = checkProxyAccess(proxyUser, b.path, socketPlanFromSettings(b.path, s));
      process.stdout.write(formatProxyAccess(report));
      accessOk &&= report.ok;
    }
    return accessOk ? 0 : 1;
  }
  const [{ createLogger, errorInfo, flushLogs }, { Arbiter }] = await Promise.all([
    import('../log/logger.js'),
    import('../arbiter/arbiter.js'),
  ]);
  const log = createLogger(s, { role: 'master' });
  // Takes NOTIFY_SOCKET/WATCHDOG_* out of the environment so workers don't inherit them.
  const notifier = process.env.NOTIFY_SOCKET
    ? ((await (await import('../notify/sd-notify.js')).createSdNotifier(process.env, log)) ?? undefined)
    : undefined;
  const arbiter = new Arbiter({ config, log, reloadConfig: () => readConfig(parsed, process.env), notifier });
  try {
    return await arbiter.run();
  } catch (err) {
    log.fatal({ err: errorInfo(err) }, (err as Error).message);
    flushLogs();
    return exitCodeOf(err);
  }
}

const isEntry = (() => {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (isEntry) {
  const command = process.argv[2];
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof ConfigError) fail(err.message, command === 'check' ? 1 : err.exitCode);
      fail(err instanceof Error ? err.message : String(err), command === 'check' ? 1 : exitCodeOf(err));
    },
  );
}

export { main };
