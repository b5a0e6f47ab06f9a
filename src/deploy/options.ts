// What `ws-proxy-kit init` knows about a deployment; every generated file (nginx site,
// systemd units, config file, manifests) is rendered from one of these so they agree.
// The options every target starts from are worked out here, from the flags, package.json
// and the settings' defaults; each plan adds its own (single-host.ts, kubernetes.ts, hosts.ts).
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../config/load.js';
import { settingsByName } from '../config/settings.js';
import type { InitFlags } from '../cli/init.js';
import type { NginxSiteOptions } from './nginx-site.js';
import type { ALIGNED_SETTINGS, AlignedSettings } from './plan.js';

export interface DeployOptions {
  /** Service name: unit names, nginx upstream name, runtime directory. [a-z0-9-] */
  name: string;
  /** App module path as given to ws-proxy-kit, relative to workingDirectory. */
  app: string;
  /** Where the app lives on the server (WorkingDirectory=). */
  workingDirectory: string;
  /** The user and group the app runs as. */
  user: string;
  group: string;
  /** The group nginx's workers run in (www-data on Debian): owns the socket so nginx can connect. */
  proxyGroup: string;
  /** The app's UNIX socket, e.g. /run/NAME/app.sock. */
  socketPath: string;
  workers: number;
  /** Seconds; mirror the server settings of the same names. */
  gracefulTimeout: number;
  timeout: number;
  keepAlive: number;
  /** nginx server_name. */
  serverName: string;
  tls: boolean;
  /** Absolute path of the node binary on the server. */
  nodePath: string;
  /** Absolute path of the ws-proxy-kit CLI entry on the server. */
  cliPath: string;
  /** Path of the generated ws-proxy-kit.config.mjs on the server. */
  configPath: string;
  /** Largest request body nginx accepts, nginx syntax (e.g. "10m"). */
  clientMaxBodySize: string;
}

/**
 * The directory the server itself writes to under systemd (control socket, pidfile): a
 * subdirectory of the socket's. systemd re-owns a RuntimeDirectory= and everything in it
 * to User= on every start, which must never reach the socket file: its group is nginx's.
 * null when the socket is not under /run (no RuntimeDirectory= then).
 */
export function serverRuntimeDir(socketPath: string): string | null {
  const dir = socketPath.slice(0, socketPath.lastIndexOf('/'));
  if (!dir.startsWith('/run/') || dir === '/run') return null;
  return `${dir}/server`;
}

interface PackageJson {
  name?: string;
  main?: string;
  bin?: string | Record<string, string>;
  scripts?: Record<string, string>;
}

function readPackageJson(dir: string): PackageJson {
  try {
    return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
  } catch {
    return {};
  }
}

/** npm names to a unit/upstream-safe name: "@acme/My App" -> "my-app". */
export function serviceName(raw: string): string {
  const n = raw
    .replace(/^@[^/]+\//, '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return n || 'app';
}

/** The app module: `ws-proxy-kit X` or `node X` in the start script, else main, else bin, else a usual file name. */
export function inferApp(pkg: PackageJson, dir: string): string | null {
  const start = pkg.scripts?.start ?? '';
  const fromStart = /(?:ws-proxy-kit|node)\s+(?:(?:serve|-{1,2}[\w-]+(?:[= ]\S+)?)\s+)*([^\s-][^\s]*\.[cm]?[jt]s(?::[\w$().]+)?)/.exec(
    start,
  );
  if (fromStart?.[1]) return fromStart[1];
  if (pkg.main && existsSync(join(dir, pkg.main))) return pkg.main;
  const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin ? Object.values(pkg.bin)[0] : undefined;
  if (bin && existsSync(join(dir, bin))) return bin;
  for (const f of ['app.mjs', 'app.js', 'server.mjs', 'server.js', 'index.mjs', 'index.js', 'dist/server.js', 'dist/index.js']) {
    if (existsSync(join(dir, f))) return f;
  }
  return null;
}

/** The CLI entry the service should run: the app's own node_modules copy, else this one. */
function cliEntry(dir: string): string {
  const local = join(dir, 'node_modules/ws-proxy-kit/dist/cli/main.js');
  return existsSync(local) ? local : fileURLToPath(new URL('../cli/main.js', import.meta.url));
}

/** Where init writes (--out, default ./deploy), absolute. */
export function outputDir(flags: Pick<InitFlags, 'out'>, cwd: string): string {
  return resolve(cwd, flags.out ?? 'deploy');
}

/** A setting init's files must agree on: as given to init, else the table's default. */
function settingValue(name: (typeof ALIGNED_SETTINGS)[number], given: AlignedSettings): number {
  return given[name] ?? (settingsByName.get(name)!.default as number);
}

/** The options every target starts from: the flags, filled in from package.json and the settings' defaults. */
export function deployOptionsFrom(flags: InitFlags, cwd: string, settings: AlignedSettings = {}): NginxSiteOptions {
  const pkg = readPackageJson(cwd);
  const name = serviceName(flags.name ?? pkg.name ?? basename(cwd));
  if (flags.name !== undefined && flags.name !== name)
    throw new ConfigError(`--name ${JSON.stringify(flags.name)}: use lowercase letters, digits and dashes (e.g. ${name}).`);
  const app = flags.app ?? inferApp(pkg, cwd);
  if (!app)
    throw new ConfigError(
      'Could not tell which module is the app (no start script, main or app.mjs/server.js). Pass --app path/to/app.mjs.',
    );
  const workers = flags.workers === undefined ? Math.max(2, availableParallelism()) : Number(flags.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 1024)
    throw new ConfigError(`--workers ${flags.workers}: give an integer from 1 to 1024.`);
  if (flags.tls && !flags.serverName)
    throw new ConfigError('--tls needs --server-name (the name on the certificate, e.g. --server-name app.example.com).');
  const socketPath = flags.socket ?? `/run/${name}/app.sock`;
  if (!socketPath.startsWith('/'))
    throw new ConfigError(`--socket ${socketPath}: give an absolute path (nginx and systemd resolve it from different directories).`);
  const user = flags.user ?? name;
  const body = flags.clientMaxBodySize ?? '10m';
  if (!/^\d+[kKmMgG]?$/.test(body)) throw new ConfigError(`--client-max-body-size ${body}: use nginx's syntax, e.g. 10m or 512k.`);
  return {
    name,
    app,
    workingDirectory: cwd,
    user,
    group: flags.group ?? user,
    proxyGroup: flags.proxyGroup ?? 'www-data',
    socketPath,
    workers,
    gracefulTimeout: settingValue('gracefulTimeout', settings),
    timeout: settingValue('timeout', settings),
    keepAlive: settingValue('keepAlive', settings),
    serverName: flags.serverName ?? '_',
    tls: flags.tls ?? false,
    nodePath: process.execPath,
    cliPath: cliEntry(cwd),
    configPath: join(outputDir(flags, cwd), 'ws-proxy-kit.config.mjs'),
    clientMaxBodySize: body,
    ...(flags.static ? { staticDir: resolve(cwd, flags.static) } : {}),
  };
}

