// `ws-proxy-kit ctl [--socket PATH] [--json] COMMAND [ARGS]`: talks to a running server's
// control socket. Without --socket it finds the server as pumactl does with its state file:
// from the settings the server uses (flags, the config file in this directory or --config,
// environment), paths relative to its directory, and from the pidfile (--pid FILE: the
// master's pid, and the socket next to it). When nothing answers, it says what it tried.
// Exit codes: 0 done, 1 no server reachable or the server refused, 2 bad arguments.
import { dirname, resolve } from 'node:path';
import { formatBind } from '../listeners/bind-spec.js';
import { ControlUsageError, ctlCommandsHelp, parseControlRequest, type ControlReply, type WorkerRow } from '../arbiter/control.js';
import { controlSocketPath, sendControl } from '../arbiter/control-socket.js';
import { isRunning, readPid } from '../arbiter/pidfile.js';
import { ConfigError, type LoadedConfig } from '../config/load.js';
import type { ExtraFlags } from './args.js';
import { duration } from './units.js';
import { formatConfigRows } from '../config/display.js';

export const ctlFlags: ExtraFlags = {
  socket: { type: 'string', doc: 'the control socket (default: found from the settings and the pidfile, as the server works it out)' },
  json: { type: 'boolean', doc: 'print the raw JSON answer' },
  once: { type: 'boolean', doc: 'ctl top: print one frame and exit' },
};

/** Exit codes: no server reachable or it refused; bad arguments. An unknown command exits 1, as it always has. */
const EXIT = { failed: 1, usage: 2, unknownCommand: 2 } as const;

/** A place the control socket may be, and why we look there. */
interface Candidate {
  path: string;
  from: string;
}
/** A place that did not work out, and why. */
interface Miss {
  what: string;
  why: string;
}

export async function runCtl(
  positionals: string[],
  extra: { socket?: string; json?: boolean; once?: boolean },
  config: LoadedConfig,
): Promise<number> {
  const [command, ...args] = positionals;
  if (!command) throw new ConfigError(`ctl needs a command.\n${ctlCommandsHelp().trimEnd()}`);
  // `ctl top` is a client of status and workers: found the way every command is.
  const first = command === 'top' ? { command: 'status', args: [] } : { command, args };
  if (command === 'top' && args.length) {
    process.stderr.write(`ws-proxy-kit ctl: top takes no arguments (got ${args.join(' ')}); --once prints one frame.\n`);
    return EXIT.usage;
  }
  try {
    parseControlRequest(first);
  } catch (err) {
    if (!(err instanceof ControlUsageError)) throw err;
    process.stderr.write(`ws-proxy-kit ctl: ${err.message}\n`);
    return err.kind === 'unknown command' ? EXIT.unknownCommand : EXIT.usage;
  }
  const reached = await reach(first, extra.socket, config);
  if (typeof reached === 'number') return reached;
  const { reply, path } = reached;
  if (!reply.ok) {
    process.stderr.write(`ws-proxy-kit ctl: ${reply.error}\n`);
    return EXIT.failed;
  }
  if (command === 'top') return (await import('./top.js')).runTop(path, { once: Boolean(extra.once) });
  process.stdout.write(extra.json ? JSON.stringify(reply.result, null, 2) + '\n' : human(command, args, reply.result));
  return 0;
}

/** Sends `request` to the first place the control socket may be that answers; an exit code when none does. */
async function reach(
  request: { command: string; args: string[] },
  socket: string | undefined,
  config: LoadedConfig,
): Promise<{ reply: ControlReply; path: string } | number> {
  const { candidates, misses } = socket
    ? { candidates: [{ path: socket, from: '--socket' }], misses: [] }
    : findControlSocket(config, process.env, process.cwd());
  for (const c of candidates) {
    try {
      // A reload answers once the new workers serve: their boots and a canary's window.
      const s = config.settings;
      const timeoutMs = request.command === 'reload' ? (2 * s.bootTimeout + s.reloadCanary + 30) * 1000 : undefined;
      return { reply: await sendControl(c.path, request, timeoutMs), path: c.path };
    } catch (err) {
      const why = unreachable(err);
      // Anything but "nobody there" may have reached a server: never send the command twice.
      if (why === null) {
        process.stderr.write(`ws-proxy-kit ctl: ${c.path} (${c.from}): ${(err as Error).message}\n`);
        return EXIT.failed;
      }
      misses.push({ what: `${c.path} (${c.from})`, why });
    }
  }
  process.stderr.write(notFound(misses));
  return EXIT.failed;
}

/** Why nobody answers on a path; null for any other error (then the request may have arrived). */
function unreachable(err: unknown): string | null {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'no such socket (is the server running, with the same settings?)';
    case 'ECONNREFUSED':
      return 'nobody listens on it (stale socket file)';
    case 'EACCES':
    case 'EPERM':
      return "permission denied (the socket is mode 0600: run as the server's user)";
    case 'ENOTDIR':
    case 'ENOTSOCK':
      return 'not a socket';
    default:
      return null;
  }
}

function notFound(misses: Miss[]): string {
  if (misses.length === 1) return `ws-proxy-kit ctl: cannot reach ${misses[0]!.what}: ${misses[0]!.why}\n`;
  return [
    'ws-proxy-kit ctl: cannot reach the server. Tried:',
    ...misses.map((m) => `  ${m.what}: ${m.why}`),
    'Run ctl where the server runs (its config file), or give --config FILE, --pid FILE or --socket PATH.\n',
  ].join('\n');
}

/**
 * Where the control socket may be: as the server works it out from its settings, relative
 * to each directory the server may have run in (its chdir, its config file's directory,
 * here), and next to the pidfile when that names a running master (first when --pid is given).
 */
function findControlSocket(config: LoadedConfig, env: NodeJS.ProcessEnv, cwd: string): { candidates: Candidate[]; misses: Miss[] } {
  const s = config.settings;
  const src = config.sources;
  const dirs = [...new Set([s.chdir ? resolve(cwd, s.chdir) : null, config.configPath ? dirname(config.configPath) : null, cwd])].filter(
    (d): d is string => d !== null,
  );
  const fromSettings: Candidate[] = [];
  const fromPidfile: Candidate[] = [];
  const misses: Miss[] = [];
  const path = controlSocketPath(s, env);
  if (path === null)
    misses.push({ what: 'the settings', why: `the control socket is off (${src.controlSocket.where}); give --socket PATH` });
  else
    for (const dir of dirs)
      fromSettings.push({ path: resolve(dir, path), from: `${derivation(config)}${dir === cwd ? '' : `, in ${dir}`}` });
  if (s.pid) {
    for (const pidfile of new Set(dirs.map((dir) => resolve(dir, s.pid!)))) {
      const master = masterOf(pidfile);
      const what = `the pidfile ${pidfile} (${src.pid.where})`;
      if (typeof master === 'string') misses.push({ what, why: master });
      else
        fromPidfile.push({
          path: controlSocketPath({ controlSocket: 'auto', bind: [], pid: pidfile }, env)!,
          from: `next to the pidfile of master ${master}, ${pidfile} (${src.pid.where})`,
        });
    }
  }
  const ordered = src.pid.origin === 'command line' ? [...fromPidfile, ...fromSettings] : [...fromSettings, ...fromPidfile];
  const seen = new Set<string>();
  return { candidates: ordered.filter((c) => !seen.has(c.path) && seen.add(c.path)), misses };
}

/** The running master's pid a pidfile names, or why there is none. */
function masterOf(pidfile: string): number | string {
  let pid: number | null;
  try {
    pid = readPid(pidfile);
  } catch (err) {
    return `cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  if (pid === null) return 'no such file, or no pid in it (is the server running?)';
  return isRunning(pid) ? pid : `it names process ${pid}, which is not running (a stale pidfile)`;
}

/** Why controlSocketPath() picked its path, with where that setting came from. */
function derivation({ settings: s, sources }: LoadedConfig): string {
  if (s.controlSocket !== 'auto') return `control socket setting (${sources.controlSocket.where})`;
  const unix = s.bind.find((b) => b.kind === 'unix');
  if (unix) return `next to the bind ${formatBind(unix)} (${sources.bind.where})`;
  if (s.pid) return `next to the pidfile ${s.pid} (${sources.pid.where})`;
  return `the default for ${s.bind.map(formatBind).join(', ')} (no UNIX bind or pidfile in the settings)`;
}

function human(command: string, args: string[], result: unknown): string {
  if (command === 'workers' && args.length === 0 && Array.isArray(result)) return workerTable(result as Partial<WorkerRow>[]);
  if (command === 'config' && Array.isArray(result)) return formatConfigRows(result as [string, string, string][]);
  if (result && typeof result === 'object') {
    const lines: string[] = [];
    for (const [k, v] of Object.entries(result as Record<string, unknown>)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        lines.push(`${k}:`);
        for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) lines.push(`  ${k2}: ${String(v2)}`);
      } else lines.push(`${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`);
    }
    return lines.join('\n') + '\n';
  }
  return String(result) + '\n';
}

const dash = (v: number | string | null | undefined, f: (x: number) => string = String): string =>
  v === null || v === undefined ? '-' : typeof v === 'number' ? f(v) : v;

/** `ctl workers`, as `pm2 ls` reads: one row per worker, human units. */
const WORKER_COLUMNS: [string, (r: Partial<WorkerRow>) => string][] = [
  ['PID', (r) => dash(r.pid)],
  ['INDEX', (r) => dash(r.index)],
  ['GENERATION', (r) => dash(r.generation)],
  ['STATE', (r) => dash(r.state)],
  ['AGE', (r) => dash(r.ageSec, duration)],
  ['REQS', (r) => dash(r.requests)],
  ['IN-FLIGHT', (r) => dash(r.inflight)],
  ['CONNS', (r) => dash(r.connections)],
  ['BUSY %', (r) => dash(r.busyPercent, (p) => p.toFixed(0))],
  ['RSS', (r) => dash(r.rssMb, (mb) => `${mb.toFixed(1)} MB`)],
  ['CPU %', (r) => dash(r.cpuPercent, (p) => p.toFixed(1))],
  ['RESTARTS', (r) => dash(r.restarts)],
];

function workerTable(rows: Partial<WorkerRow>[]): string {
  if (rows.length === 0) return '(no workers)\n';
  const cells = [WORKER_COLUMNS.map(([title]) => title), ...rows.map((r) => WORKER_COLUMNS.map(([, cell]) => cell(r)))];
  const widths = WORKER_COLUMNS.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((v, i) => v.padEnd(widths[i]!)).join('  ');
  return cells.map((row) => line(row).trimEnd()).join('\n') + '\n';
}
