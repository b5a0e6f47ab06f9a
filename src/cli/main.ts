#!/usr/bin/env node
// The ws-proxy-kit command: serve (default), check, init, ctl.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, type LoadedConfig, type RawLayer } from '../config/load.js';
import { parseArgs, splitCommandLine, type ParsedArgs } from './args.js';
import { printConfig } from './print-config.js';
import { createLogger, errorInfo, flushLogs } from '../log/logger.js';
import { Arbiter } from '../arbiter/arbiter.js';
import { loadApp } from '../worker/app.js';

const COMMANDS = ['serve', 'check'] as const;
type Command = (typeof COMMANDS)[number];

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
    throw new ConfigError(`Expected one app, got ${parsed.positionals.length}: ${parsed.positionals.join(' ')}. Quote paths with spaces.`);
  }
  const app = parsed.positionals[0];
  if (app !== undefined) cli.set('app', { value: app, source: { origin: 'command line', where: 'the APP argument' } });
  let cmdArgs: RawLayer | undefined;
  if (env.WS_PROXY_KIT_CMD_ARGS) {
    const extra = parseArgs(splitCommandLine(env.WS_PROXY_KIT_CMD_ARGS), { command: 'serve', origin: 'environment', via: 'WS_PROXY_KIT_CMD_ARGS' });
    if (extra.positionals.length) throw new ConfigError('WS_PROXY_KIT_CMD_ARGS takes flags only, not the app.');
    cmdArgs = extra.layer;
  }
  return loadConfig({ cli, ...(cmdArgs ? { cmdArgs } : {}), env, cwd: process.cwd() });
}

async function main(argv: string[]): Promise<number> {
  const command: Command = (COMMANDS as readonly string[]).includes(argv[0] ?? '') ? (argv.shift() as Command) : 'serve';
  const parsed = parseArgs(argv, { command: command === 'check' ? 'check [options] APP[:export]' : '[serve] [options] APP[:export]' });
  const config = await readConfig(parsed, process.env);
  const s = config.settings;
  if (s.printConfig) {
    process.stdout.write(printConfig(config));
    return 0;
  }
  if (!s.app) throw new ConfigError('No app given. Usage: ws-proxy-kit [options] path/to/app.mjs[:export] (or set app in the config file).');
  if (s.chdir) {
    try {
      process.chdir(s.chdir);
    } catch {
      throw new ConfigError(`Invalid value for chdir: ${JSON.stringify(s.chdir)} is not a directory we can enter.`);
    }
  }
  if (command === 'check') {
    const app = await loadApp(s.app, process.cwd());
    process.stdout.write(`ok: configuration valid${config.configPath ? ` (${config.configPath})` : ''}; app ${app.description}\n`);
    return 0;
  }
  const log = createLogger(s, { role: 'master' });
  const arbiter = new Arbiter({ config, log, reloadConfig: () => readConfig(parsed, process.env) });
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
