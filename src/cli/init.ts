// `ws-proxy-kit init`: renders, from one DeployOptions, the nginx site, the systemd
// .socket/.service and a ws-proxy-kit.config.mjs that agree with each other; validates
// them with `nginx -t` (in a temporary prefix) and `systemd-analyze verify` when present.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { parseAppSpec } from '../app-spec.js';
import { ConfigError } from '../config/load.js';
import { settingsByName } from '../config/settings.js';
import type { ExtraFlags } from './args.js';
import { serverRuntimeDir, type DeployOptions } from '../deploy/options.js';
import { renderNginxSite, nginxMainConf, type NginxSiteOptions } from '../deploy/nginx-site.js';
import { renderSystemdUnits } from '../deploy/systemd-units.js';
import { checkProxyAccess, formatProxyAccess, lookupGid, lookupUid, type PathPlan } from '../deploy/proxy-access.js';
import { minimumDrainSeconds, renderKubernetes, type KubernetesOptions } from '../deploy/kubernetes.js';
import { parseHostPort, renderHostsFiles } from '../deploy/hosts.js';

export const initFlags: ExtraFlags = {
  name: { type: 'string', doc: 'service name: unit names, nginx upstream, /run/NAME (default: package.json name)' },
  app: { type: 'string', doc: 'app module, relative to the app directory (default: from package.json start/main)' },
  serverName: { type: 'string', doc: 'nginx server_name (default: _ , any name; required with --tls)' },
  socket: { type: 'string', doc: 'the UNIX socket path (default: /run/NAME/app.sock)' },
  user: { type: 'string', doc: 'user the app runs as (default: NAME)' },
  group: { type: 'string', doc: 'group the app runs as (default: the user)' },
  proxyGroup: { type: 'string', doc: "nginx workers' group, given the socket (default: www-data)" },
  proxyUser: { type: 'string', doc: "nginx workers' user, to check socket access (default: www-data)" },
  workers: { type: 'string', doc: 'worker processes (default: number of cores, at least 2)' },
  clientMaxBodySize: { type: 'string', doc: 'largest request body nginx accepts (default: 10m)' },
  static: { type: 'string', doc: 'a directory nginx serves at /static/ itself' },
  tls: { type: 'boolean', doc: 'HTTPS server block (certbot paths) and an HTTP -> HTTPS redirect' },
  out: { type: 'string', doc: 'output directory (default: ./deploy)' },
  force: { type: 'boolean', doc: 'overwrite files that exist' },
  dryRun: { type: 'boolean', doc: 'print the files to stdout instead of writing them' },
  target: { type: 'string', doc: 'what to generate: systemd (nginx + systemd on one host, the default), kubernetes, hosts' },
  image: { type: 'string', doc: 'kubernetes: the app image, with the app and node_modules/ws-proxy-kit in /app (default: NAME:latest)' },
  nginxImage: { type: 'string', doc: 'kubernetes: a non-root nginx image (default: nginxinc/nginx-unprivileged:1.27-alpine)' },
  replicas: { type: 'string', doc: 'kubernetes: pods (default: 2)' },
  hosts: { type: 'string', doc: 'hosts: the app hosts as nginx reaches them, HOST:PORT,HOST:PORT,...' },
  proxyAddress: { type: 'string', doc: "hosts: the nginx host's address as the app hosts see it (trusted for X-Forwarded-For)" },
  // --keep-alive, --timeout and --graceful-timeout (settings below) are honoured: nginx's and systemd's timeouts follow them.
};

export interface InitFlags {
  name?: string;
  app?: string;
  serverName?: string;
  socket?: string;
  user?: string;
  group?: string;
  proxyGroup?: string;
  proxyUser?: string;
  workers?: string;
  clientMaxBodySize?: string;
  static?: string;
  tls?: boolean;
  out?: string;
  force?: boolean;
  dryRun?: boolean;
  target?: string;
  image?: string;
  nginxImage?: string;
  replicas?: string;
  hosts?: string;
  proxyAddress?: string;
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
  return existsSync(local) ? local : fileURLToPath(new URL('./main.js', import.meta.url));
}

/** Server settings the generated files must agree on; --keep-alive etc. given to init override the defaults. */
export const ALIGNED_SETTINGS = ['keepAlive', 'timeout', 'gracefulTimeout', 'drainSeconds'] as const;
export type AlignedSettings = Partial<Record<(typeof ALIGNED_SETTINGS)[number], number>>;

/** The aligned settings from init's command line (a layer of raw values), validated by the settings table. */
export function alignedSettingsFrom(raw: ReadonlyMap<string, { value: unknown }>): AlignedSettings {
  const out: AlignedSettings = {};
  for (const name of ALIGNED_SETTINGS) {
    const v = raw.get(name);
    if (v === undefined) continue;
    const def = settingsByName.get(name)!;
    try {
      out[name] = def.parse(v.value) as number;
    } catch {
      throw new ConfigError(
        `Invalid value for --${name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}: ${JSON.stringify(v.value)}. Expected ${def.accepted}.`,
      );
    }
  }
  return out;
}

function settingDefault(name: (typeof ALIGNED_SETTINGS)[number], given: AlignedSettings): number {
  return given[name] ?? (settingsByName.get(name)!.default as number);
}

/** DeployOptions from the flags, filling the rest from package.json and the settings' defaults. */
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
  const out = resolve(cwd, flags.out ?? 'deploy');
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
    gracefulTimeout: settingDefault('gracefulTimeout', settings),
    timeout: settingDefault('timeout', settings),
    keepAlive: settingDefault('keepAlive', settings),
    serverName: flags.serverName ?? '_',
    tls: flags.tls ?? false,
    nodePath: process.execPath,
    cliPath: cliEntry(cwd),
    configPath: join(out, 'ws-proxy-kit.config.mjs'),
    clientMaxBodySize: body,
    ...(flags.static ? { staticDir: resolve(cwd, flags.static) } : {}),
  };
}

/** The ws-proxy-kit config file: the same socket, group and timeouts as the other files. */
export function renderConfigFile(o: DeployOptions): string {
  return `// ws-proxy-kit settings for ${o.name}, generated by \`ws-proxy-kit init\` together with the
// nginx site and the systemd units: keep them in agreement (regenerate rather than edit).
export default {
  app: ${JSON.stringify(o.app)},
  // The socket nginx's upstream points at. Under systemd, ${o.name}.socket creates it and the
  // service passes --bind systemd (socket activation); run by hand, ws-proxy-kit binds it.
  bind: [${JSON.stringify(`unix:${o.socketPath}`)}],
  // 0660 and nginx's group: nginx's workers can connect, other local users cannot.
  socketMode: '0660',
  socketGroup: ${JSON.stringify(o.proxyGroup)},${
    serverRuntimeDir(o.socketPath)
      ? `
  // For \`ws-proxy-kit ctl -c THIS_FILE status\`: in the service's own runtime directory.
  controlSocket: ${JSON.stringify(`${serverRuntimeDir(o.socketPath)}/${o.name}.ctl`)},`
      : ''
  }
  workers: ${o.workers},
  // Above nginx's upstream keepalive_timeout, so nginx closes idle connections first.
  keepAlive: ${o.keepAlive},
  timeout: ${o.timeout},
  // systemd's TimeoutStopSec is set above this so a graceful stop is never cut short.
  gracefulTimeout: ${o.gracefulTimeout},
};
`;
}

export interface GeneratedFile {
  name: string;
  content: string;
  mode?: number;
}

/** --target kubernetes | hosts: other files from the same options (src/deploy/kubernetes.ts, hosts.ts). */
export function generateTargetFiles(target: string, flags: InitFlags, o: NginxSiteOptions, settings: AlignedSettings): GeneratedFile[] {
  if (target === 'kubernetes') {
    const drainSeconds = settings.drainSeconds ?? 10;
    if (drainSeconds < minimumDrainSeconds()) {
      throw new ConfigError(
        `--drain-seconds ${drainSeconds} is shorter than Kubernetes needs to stop routing to a stopping pod (${minimumDrainSeconds()} s: readiness probes, then endpoint updates). Use at least ${minimumDrainSeconds()}.`,
      );
    }
    const replicas = flags.replicas === undefined ? 2 : Number(flags.replicas);
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 1000)
      throw new ConfigError(`--replicas ${flags.replicas}: give an integer from 1 to 1000.`);
    const k: KubernetesOptions = {
      ...o,
      workers: flags.workers === undefined ? 2 : o.workers,
      // Paths inside the app image, not on this machine.
      workingDirectory: '/app',
      cliPath: '/app/node_modules/ws-proxy-kit/dist/cli/main.js',
      nodePath: 'node',
      image: flags.image ?? `${o.name}:latest`,
      nginxImage: flags.nginxImage ?? 'nginxinc/nginx-unprivileged:1.27-alpine',
      replicas,
      drainSeconds,
    };
    return [{ name: `${o.name}.k8s.yaml`, content: renderKubernetes(k) }];
  }
  if (target === 'hosts') {
    if (!flags.hosts) throw new ConfigError('--target hosts needs --hosts HOST:PORT,HOST:PORT (the app hosts as nginx reaches them).');
    if (!flags.proxyAddress)
      throw new ConfigError(
        "--target hosts needs --proxy-address ADDRESS: the nginx host's address as the app hosts see it (they trust X-Forwarded-For from it only).",
      );
    const hosts = flags.hosts
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean);
    try {
      for (const h of hosts) parseHostPort(h);
    } catch (err) {
      throw new ConfigError(`--hosts ${(err as Error).message}`);
    }
    return renderHostsFiles({ ...o, hosts, proxyAddress: flags.proxyAddress, drainSeconds: settings.drainSeconds ?? 0 });
  }
  throw new ConfigError(`--target ${target}: choose systemd (the default), kubernetes or hosts.`);
}

export function generateFiles(o: NginxSiteOptions): GeneratedFile[] {
  const units = renderSystemdUnits(o);
  return [
    { name: `${o.name}.nginx.conf`, content: renderNginxSite(o) },
    { name: units.socketFile, content: units.socketUnit },
    { name: units.serviceFile, content: units.serviceUnit },
    { name: 'ws-proxy-kit.config.mjs', content: renderConfigFile(o) },
  ];
}

export interface ToolResult {
  tool: string;
  ran: boolean;
  ok: boolean;
  output: string;
}

/** `nginx -t` on the site, in a throwaway prefix with its own pid/log/temp paths (never /etc). */
export function validateNginxSite(o: NginxSiteOptions): ToolResult {
  if (spawnSync('nginx', ['-v'], { stdio: 'ignore' }).error)
    return { tool: 'nginx -t', ran: false, ok: false, output: 'nginx is not installed here: not validated' };
  const dir = mkdtempSync(join(tmpdir(), 'wspk-nginx-t-'));
  try {
    let site = o;
    if (o.tls) {
      // The real certificate lives on the server; validate the TLS block with a throwaway one.
      const cert = join(dir, 'cert.pem');
      const key = join(dir, 'key.pem');
      const r = spawnSync(
        'openssl',
        ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert],
        { encoding: 'utf8' },
      );
      if (r.status !== 0)
        return {
          tool: 'nginx -t',
          ran: false,
          ok: false,
          output: 'openssl is needed to validate the TLS block with a throwaway certificate: not validated',
        };
      site = { ...o, tlsCertificate: cert, tlsCertificateKey: key };
    }
    writeFileSync(join(dir, 'site.conf'), renderNginxSite(site));
    writeFileSync(join(dir, 'nginx.conf'), nginxMainConf(dir, join(dir, 'site.conf')));
    const r = spawnSync('nginx', ['-t', '-p', dir + '/', '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
      encoding: 'utf8',
    });
    const output = (r.stderr || r.stdout || '').trim().split(dir).join('<tmp>');
    return { tool: 'nginx -t', ran: true, ok: r.status === 0, output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `systemd-analyze verify` on the units, written to a throwaway directory. */
export function validateUnits(files: GeneratedFile[]): ToolResult {
  if (spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).error)
    return { tool: 'systemd-analyze verify', ran: false, ok: false, output: 'systemd-analyze is not installed here: not validated' };
  const dir = mkdtempSync(join(tmpdir(), 'wspk-units-'));
  try {
    const units = files.filter((f) => /\.(socket|service)$/.test(f.name));
    for (const f of units) writeFileSync(join(dir, f.name), f.content);
    const r = spawnSync('systemd-analyze', ['verify', ...units.map((f) => join(dir, f.name))], { encoding: 'utf8' });
    const output = `${r.stdout}${r.stderr}`.trim().split(dir).join('<tmp>');
    return { tool: 'systemd-analyze verify', ran: true, ok: r.status === 0, output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Reads Key=value from a rendered unit (the last one wins, as in systemd). */
function unitValue(unit: string, key: string): string | undefined {
  const all = [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))];
  return all.at(-1)?.[1]?.trim();
}

/** How the socket and its directory will look once systemd creates them (for the access check). */
export function plannedSocketPaths(o: DeployOptions, socketUnit: string): Map<string, PathPlan> {
  const plans = new Map<string, PathPlan>();
  const uid = lookupUid(unitValue(socketUnit, 'SocketUser') ?? 'root') ?? 0;
  const gid = lookupGid(unitValue(socketUnit, 'SocketGroup') ?? 'root') ?? 0;
  const mode = parseInt(unitValue(socketUnit, 'SocketMode') ?? '0666', 8);
  const dirMode = parseInt(unitValue(socketUnit, 'DirectoryMode') ?? '0755', 8);
  plans.set(o.socketPath, { uid, gid, mode, planned: `${o.name}.socket creates it` });
  // systemd creates missing parent directories as root with DirectoryMode=.
  for (let d = dirname(o.socketPath); d !== dirname(d); d = dirname(d))
    plans.set(d, { uid: 0, gid: 0, mode: dirMode, planned: `${o.name}.socket creates it` });
  return plans;
}

function nextSteps(o: DeployOptions, out: string, cwd: string, files: GeneratedFile[]): string {
  const rel = relative(cwd, out) || '.';
  const f = (name: string) => join(rel, name);
  const units = files.filter((x) => /\.(socket|service)$/.test(x.name)).map((x) => f(x.name));
  return [
    'Next, as root on the server:',
    `  id ${o.user} || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin ${o.user}`,
    `  cp ${units.join(' ')} /etc/systemd/system/`,
    `  systemctl daemon-reload && systemctl enable --now ${o.name}.socket ${o.name}.service`,
    `  cp ${f(`${o.name}.nginx.conf`)} /etc/nginx/sites-available/${o.name}`,
    `  ln -s ../sites-available/${o.name} /etc/nginx/sites-enabled/${o.name}`,
    `  nginx -t && systemctl reload nginx`,
    `  ws-proxy-kit check --config ${f('ws-proxy-kit.config.mjs')} --proxy-user www-data`,
    ...(o.tls ? [`  certbot certonly --webroot -w /var/www/html -d ${o.serverName.split(/\s+/)[0]}   (before enabling the TLS site)`] : []),
    '',
  ].join('\n');
}

/** Why the app module cannot be found from `cwd`, or null when it can (a file, or a package). */
function missingAppModule(app: string, cwd: string): string | null {
  const { module } = parseAppSpec(app);
  if (existsSync(resolve(cwd, module))) return null;
  if (!module.startsWith('.') && !module.startsWith('/')) {
    try {
      createRequire(join(cwd, 'noop.js')).resolve(module);
      return null;
    } catch {
      // neither a file nor a package
    }
  }
  return `no such file in ${cwd} (${resolve(cwd, module)}).`;
}

/** Runs `init`; returns the exit code. */
export function runInit(
  flags: InitFlags,
  cwd: string,
  settings: AlignedSettings = {},
  write: (s: string) => void = (s) => process.stdout.write(s),
): number {
  const o = deployOptionsFrom(flags, cwd, settings);
  const missing = missingAppModule(o.app, cwd);
  if (missing)
    process.stderr.write(`warning: --app ${o.app}: ${missing} The generated files run it as given; create it, or pass the right path.\n`);
  const out = resolve(cwd, flags.out ?? 'deploy');
  const target = flags.target ?? 'systemd';
  const files = target === 'systemd' ? generateFiles(o) : generateTargetFiles(target, flags, o, settings);
  if (flags.dryRun) {
    for (const f of files) write(`# ---- ${join(out, f.name)}\n${f.content}\n`);
    return 0;
  }
  const existing = files.filter((f) => existsSync(join(out, f.name)));
  if (existing.length && !flags.force) {
    throw new ConfigError(
      `Refusing to overwrite ${existing.map((f) => join(out, f.name)).join(', ')}. Pass --force to overwrite, or --out DIR to write elsewhere.`,
    );
  }
  mkdirSync(out, { recursive: true });
  for (const f of files) {
    mkdirSync(dirname(join(out, f.name)), { recursive: true }); // --target hosts: one directory per host
    writeFileSync(join(out, f.name), f.content);
    if (f.mode !== undefined) chmodSync(join(out, f.name), f.mode);
    write(`wrote ${join(out, f.name)}\n`);
  }
  if (target === 'kubernetes') {
    write(
      `\nNext: build an image with the app and node_modules/ws-proxy-kit in /app, then\n  kubectl apply -f ${join(relative(cwd, out) || '.', files[0]!.name)}\n`,
    );
    return 0;
  }
  if (target === 'hosts') {
    write(
      `\nNext: install ${o.name}.nginx.conf on the nginx host; on each app host, its directory's units in /etc/systemd/system/ and its ws-proxy-kit.config.mjs at ${o.configPath}.\n`,
    );
    return 0;
  }
  write(
    `\n${o.name}: app ${o.app} in ${o.workingDirectory}, ${o.workers} workers as ${o.user}:${o.group}, socket ${o.socketPath} (group ${o.proxyGroup}), nginx server_name ${o.serverName}${o.tls ? ' with TLS' : ''}\n\n`,
  );
  let ok = true;
  for (const r of [validateNginxSite(o), validateUnits(files)]) {
    write(`${r.tool}: ${r.ran ? (r.ok ? 'ok' : 'FAILED') : 'skipped'}${r.output ? `\n${r.output.replace(/^/gm, '  ')}` : ''}\n`);
    if (r.ran && !r.ok) ok = false;
  }
  const socketUnit = files.find((f) => f.name.endsWith('.socket'))!.content;
  const access = checkProxyAccess(flags.proxyUser ?? 'www-data', o.socketPath, plannedSocketPaths(o, socketUnit));
  write(`\nproxy access (as configured):\n${formatProxyAccess(access)}\n`);
  write(nextSteps(o, out, cwd, files));
  return ok ? 0 : 1;
}
