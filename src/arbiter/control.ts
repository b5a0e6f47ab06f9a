// The `ws-proxy-kit ctl` commands, as one table shared by both ends: the CLI (src/cli/ctl.ts)
// parses and checks a command with it before it connects, the control socket
// (control-socket.ts) parses what arrives with it, and the arbiter runs the handler. Each
// command is its words, its arguments, a one-line help and its handler; `ctl` without a
// command, unknown commands and `ctl --help` are generated from it.
import { closest } from '../config/did-you-mean.js';

/** On the wire: one JSON line each way. */
export interface ControlRequest {
  command: string;
  args: string[];
}
export type ControlReply = { ok: true; result: unknown } | { ok: false; error: string };

/** A command once parsed. */
export type ControlCall =
  | { name: 'status' }
  | { name: 'workers' }
  | { name: 'reload' }
  | { name: 'workers add'; count: number }
  | { name: 'workers remove'; count: number }
  | { name: 'worker kill'; pid: number }
  | { name: 'reopen-logs' }
  | { name: 'shutdown'; mode: 'graceful' | 'quick' }
  | { name: 'set'; setting: string; value: string }
  | { name: 'get'; setting: string }
  | { name: 'config' };
export type ControlCommandName = ControlCall['name'];
type Call<N extends ControlCommandName> = Extract<ControlCall, { name: N }>;

/** `ctl status`. */
export interface StatusView {
  pid: number;
  version: string;
  state: string;
  uptimeSec: number;
  app: string | null;
  binds: string[];
  workers: number;
  ready: number;
  status: string;
  /** While replacements cannot boot: the boot error, since when, failures in a row. */
  degraded: { bootError: string; sinceSec: number; failures: number } | null;
  /**
   * The pool: its size, floor and ceiling (--workers, --max-workers), how busy it is (mean
   * event-loop utilization of the ready workers, %), the CPU its workers use (% of one core,
   * summed), their RSS summed, the 5xx answered so far, and the connections waiting in the
   * listen queues (null when unknown).
   */
  pool: {
    size: number;
    floor: number;
    ceiling: number;
    busyPercent: number | null;
    cpuPercent: number;
    rssMb: number;
    requests: number;
    /** null unless --reload-canary or --metrics-bind is on (5xx are not counted otherwise). */
    serverErrors: number | null;
    listenQueue: number | null;
  };
  /** The last reload: when it ended (seconds ago), and how (and why, when it did not take over). */
  lastReload: { agoSec: number; outcome: 'completed' | 'aborted' | 'rolled back'; reason?: string } | null;
  /** The settings that differ from the defaults, with where each came from. */
  settings: Record<string, string>;
}

/** One row of `ctl workers`. */
export interface WorkerRow {
  pid: number;
  /** The slot (1..workers) the worker fills. */
  index: number;
  generation: number;
  state: string;
  ageSec: number;
  requests: number;
  inflight: number;
  connections: number;
  rssMb: number;
  heartbeatMsAgo: number;
  /** CPU over the last heartbeat interval, in % of one core; null before the second heartbeat. */
  cpuPercent: number | null;
  /** Event-loop utilization over the last heartbeat interval, in %; null before the first heartbeat. */
  busyPercent: number | null;
  /** 5xx answered so far; null unless --reload-canary or --metrics-bind is on. */
  serverErrors: number | null;
  /** Workers started in this slot since the master started, after its first one. */
  restarts: number;
}

/** What the commands act on: the arbiter implements it, so this module never imports it. */
export interface ControlTarget {
  status(): StatusView;
  workerRows(): WorkerRow[];
  /** Resolves true when the new workers took over, false when the reload did not happen. */
  reload(): Promise<boolean>;
  /** `delta` workers more or fewer (never fewer than one); the new pool size. */
  resize(delta: number): number;
  /** Retires the live worker with this pid; false when there is none. */
  retireWorker(pid: number): boolean;
  reopenLogs(): void;
  /** Through the event queue, as the signal would come. */
  enqueueSignal(signal: 'SIGTERM' | 'SIGQUIT'): void;
  /** `ctl set`: validated as the CLI validates it, applied now where it can be (live-settings.ts). */
  setSetting(name: string, value: string): SetResult;
  getSetting(name: string): { setting: string; value: string; source: string };
  /** Every setting as --print-config shows it: name, value, where it came from. */
  configRows(): [string, string, string][];
}

/** What `ctl set` did. */
export interface SetResult {
  setting: string;
  old: string;
  new: string;
  /** "now": the master and the live workers use it; "new workers": workers started from now on. */
  applied: 'now' | 'new workers';
  note?: string;
}

interface ControlCommand<N extends ControlCommandName> {
  /** The arguments, as shown in help: "[N]", "PID". */
  args: string;
  help: string;
  parse(args: readonly string[], name: N): Call<N>;
  run(server: ControlTarget, call: Call<N>): unknown;
}

/** A command line `ctl` cannot run: exit 2 (bad arguments) or 1 (an unknown command). */
export class ControlUsageError extends Error {
  readonly code = 'EWSPK_CTL_USAGE';
  constructor(
    message: string,
    readonly kind: 'unknown command' | 'bad arguments',
  ) {
    super(message);
  }
}

function none<N extends 'status' | 'workers' | 'reload' | 'reopen-logs' | 'config'>(args: readonly string[], name: N): Call<N> {
  if (args.length) throw badArgs(name, `takes no arguments (got "${args.join(' ')}")`);
  return { name } as Call<N>;
}

function count<N extends 'workers add' | 'workers remove'>(args: readonly string[], name: N): Call<N> {
  if (args.length > 1) throw badArgs(name, `takes one count at most (got "${args.join(' ')}")`);
  const n = args[0] === undefined ? 1 : Number(args[0]);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw badArgs(name, `expected a count from 1 to 1024, got "${args[0]}"`);
  return { name, count: n } as Call<N>;
}

function badArgs(name: ControlCommandName, why: string): ControlUsageError {
  return new ControlUsageError(`${name}: ${why}. Usage: ${usage(name)}`, 'bad arguments');
}

export const CONTROL_COMMANDS: { readonly [N in ControlCommandName]: ControlCommand<N> } = {
  status: {
    args: '',
    help: 'the master: pid, version, state, uptime, binds, workers ready, degraded, settings changed from the defaults',
    parse: none,
    run: (server) => server.status(),
  },
  workers: {
    args: '',
    help: 'one line per worker: pid, slot, generation, state, age, requests, in flight, connections, RSS, CPU, restarts',
    parse: none,
    run: (server) => server.workerRows(),
  },
  reload: {
    args: '',
    help: 'as HUP: new configuration and workers; answers once they serve (or says why the reload was aborted)',
    parse: none,
    run: async (server) => {
      const started = Date.now();
      const reloaded = await server.reload();
      const why = server.status().lastReload?.reason;
      if (!reloaded)
        throw new Error(
          `reload did not happen${why ? `: ${why}` : ' (the server is not running, or the new workers or configuration failed: see its log)'}`,
        );
      return { reloaded, ms: Date.now() - started };
    },
  },
  'workers add': {
    args: '[N]',
    help: 'as TTIN, N times (default 1): N workers more',
    parse: count,
    run: (server, { count }) => ({ workers: server.resize(count) }),
  },
  'workers remove': {
    args: '[N]',
    help: 'as TTOU, N times (default 1): N workers fewer, never below one',
    parse: count,
    run: (server, { count }) => ({ workers: server.resize(-count) }),
  },
  'worker kill': {
    args: 'PID',
    help: 'retire that worker gracefully; the master starts its replacement',
    parse: (args, name) => {
      const pid = Number(args[0]);
      if (args.length !== 1 || !Number.isInteger(pid) || pid < 1)
        throw badArgs(name, `expected the pid of a worker (see "ws-proxy-kit ctl workers"), got "${args.join(' ')}"`);
      return { name, pid };
    },
    run: (server, { pid }) => {
      if (!server.retireWorker(pid)) throw new Error(`no worker with pid ${pid}; see "ws-proxy-kit ctl workers"`);
      return { retiring: pid };
    },
  },
  'reopen-logs': {
    args: '',
    help: 'as USR1: reopen the log files in the master and every worker',
    parse: none,
    run: (server) => {
      server.reopenLogs();
      return { reopened: true };
    },
  },
  set: {
    args: 'NAME VALUE',
    help: 'change a setting of the running server (validated as the CLI does); a HUP reload goes back to the config file',
    parse: (args, name) => {
      if (args.length !== 2) throw badArgs(name, `expected a setting and its value, got "${args.join(' ')}"`);
      return { name, setting: args[0]!, value: args[1]! };
    },
    run: (server, { setting, value }) => server.setSetting(setting, value),
  },
  get: {
    args: 'NAME',
    help: 'one setting of the running server, and where its value came from',
    parse: (args, name) => {
      if (args.length !== 1) throw badArgs(name, `expected a setting, got "${args.join(' ')}"`);
      return { name, setting: args[0]! };
    },
    run: (server, { setting }) => server.getSetting(setting),
  },
  config: {
    args: '',
    help: 'every setting of the running server and where it came from, as --print-config shows them',
    parse: none,
    run: (server) => server.configRows(),
  },
  shutdown: {
    args: '[graceful|quick]',
    help: 'as TERM (graceful, the default) or QUIT (quick): stop the server',
    parse: (args, name) => {
      const mode = args[0] ?? 'graceful';
      if (args.length > 1 || (mode !== 'graceful' && mode !== 'quick'))
        throw badArgs(name, `expected graceful or quick, got "${args.join(' ')}"`);
      return { name, mode };
    },
    run: (server, { mode }) => {
      server.enqueueSignal(mode === 'graceful' ? 'SIGTERM' : 'SIGQUIT');
      return { stopping: mode };
    },
  },
};

const NAMES = Object.keys(CONTROL_COMMANDS) as ControlCommandName[];

function usage(name: ControlCommandName): string {
  const { args } = CONTROL_COMMANDS[name];
  return args ? `${name} ${args}` : name;
}

/** "Commands: status, workers, ..." for error messages. */
export function ctlCommandList(): string {
  return `Commands: ${NAMES.map(usage).join(', ')}`;
}

/** The commands with their arguments and help, one a line, for `ws-proxy-kit ctl --help`. */
/** Each command as [usage, help], for `ctl --help`. */
export function ctlCommandRows(): [string, string][] {
  return NAMES.map((n) => [usage(n), CONTROL_COMMANDS[n].help]);
}

export function ctlCommandsHelp(): string {
  const width = Math.max(...NAMES.map((n) => usage(n).length));
  return ['Commands:', ...NAMES.map((n) => `  ${usage(n).padEnd(width)}  ${CONTROL_COMMANDS[n].help}`)].join('\n') + '\n';
}

/** Finds the command a request names (its longest matching words) and parses its arguments. */
export function parseControlRequest(req: ControlRequest): ControlCall {
  const words = [req.command, ...req.args];
  const name = [...NAMES]
    .sort((a, b) => b.split(' ').length - a.split(' ').length)
    .find((n) => n.split(' ').every((w, i) => words[i] === w));
  if (!name) {
    const typed = words.join(' ');
    // "worker" is the start of "worker kill"; else the closest name.
    const guess = NAMES.find((n) => n.startsWith(`${req.command} `)) ?? closest(typed, NAMES) ?? closest(req.command, NAMES);
    throw new ControlUsageError(`unknown command "${typed}". ${ctlCommandList()}.${didYouMean(guess)}`, 'unknown command');
  }
  try {
    return parseArgs(name, words.slice(name.split(' ').length));
  } catch (err) {
    // "workers frob": perhaps a longer command that starts the same.
    const longer = NAMES.filter((n) => n.startsWith(`${name} `));
    if (!(err instanceof ControlUsageError) || longer.length === 0) throw err;
    throw new ControlUsageError(
      `${err.message}.${didYouMean(closest(words.slice(0, 2).join(' '), longer) ?? longer.map(usage).join('" or "'))}`,
      err.kind,
    );
  }
}

function didYouMean(guess: string | null): string {
  return guess ? ` Did you mean "${guess}"?` : '';
}

function parseArgs<N extends ControlCommandName>(name: N, args: readonly string[]): ControlCall {
  return CONTROL_COMMANDS[name].parse(args, name);
}

/** Runs a parsed command against the server (the arbiter, in its event loop). */
export function runControlCall<N extends ControlCommandName>(server: ControlTarget, call: Call<N>): unknown {
  const command: ControlCommand<N> = CONTROL_COMMANDS[call.name as N];
  return command.run(server, call);
}
