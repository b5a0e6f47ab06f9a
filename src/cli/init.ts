// `ws-proxy-kit init`: parses its flags, picks the plan for --target (src/deploy/plans.ts),
// then writes (or with --dry-run prints) the plan's files and prints its checks and next
// steps. What the files say is the plans' business.
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { ConfigError } from '../config/load.js';
import { settingsByName } from '../config/settings.js';
import { outputDir, type DeployOptions } from '../deploy/options.js';
import { missingAppModule } from '../app-spec.js';
import { ALIGNED_SETTINGS, type AlignedSettings, type DeployPlan, type ValidationResult } from '../deploy/plan.js';
export { ALIGNED_SETTINGS };
import { deployPlans } from '../deploy/plans.js';
import type { ExtraFlags } from './args.js';

export const initFlags = {
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
  // --keep-alive, --timeout, --graceful-timeout and --drain-seconds (settings) are honoured: nginx's and systemd's timeouts follow them.
} as const satisfies ExtraFlags;

type FlagValue<F> = F extends { readonly type: 'boolean' } ? boolean : F extends { readonly isMultiple: true } ? string[] : string;

/** init's flag values as the parser returns them, by camelCase name; a flag not given is undefined. */
export type InitFlags = { -readonly [K in keyof typeof initFlags]?: FlagValue<(typeof initFlags)[K]> };

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

function planFor(target: string): DeployPlan {
  if (Object.hasOwn(deployPlans, target)) return deployPlans[target as keyof typeof deployPlans];
  throw new ConfigError(`--target ${target}: choose systemd (the default), kubernetes or hosts.`);
}

function formatResult(r: ValidationResult): string {
  const status = r.status === 'failed' ? (r.advisory ? 'warning' : 'FAILED') : r.status;
  return `${r.check}: ${status}${r.output ? `\n${r.output.replace(/^/gm, '  ')}` : ''}\n`;
}

/** Runs `init`; returns the exit code. */
export function runInit(
  flags: InitFlags,
  cwd: string,
  settings: AlignedSettings = {},
  write: (s: string) => void = (s) => process.stdout.write(s),
): number {
  const plan = planFor(flags.target ?? 'systemd');
  const o: DeployOptions = plan.options(flags, cwd, settings);
  const missingAt = missingAppModule(o.app, cwd);
  const missing = missingAt && `no such file in ${cwd} (${missingAt}).`;
  if (missing)
    process.stderr.write(`warning: --app ${o.app}: ${missing} The generated files run it as given; create it, or pass the right path.\n`);
  const out = outputDir(flags, cwd);
  const files = plan.files(o);
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
  for (const f of files) {
    mkdirSync(dirname(join(out, f.name)), { recursive: true }); // --target hosts: one directory per host
    writeFileSync(join(out, f.name), f.content);
    if (f.mode !== undefined) chmodSync(join(out, f.name), f.mode);
    write(`wrote ${join(out, f.name)}\n`);
  }
  const results = plan.validate(files, o);
  write(`\n${results.map(formatResult).join('')}\n${plan.nextSteps(o, files, relative(cwd, out) || '.')}`);
  return results.some((r) => r.status === 'failed' && !r.advisory) ? 1 : 0;
}
