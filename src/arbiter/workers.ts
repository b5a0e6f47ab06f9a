// Spawning and tracking worker processes. The pool policy (how many, when to respawn)
// lives in arbiter.ts; this module knows how to start one worker and follow its life.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  BOOT_ENV,
  isWorkerMessage,
  type MasterMessage,
  type ErrorInfo,
  type WorkerBoot,
  type WorkerMessage,
  type WorkerStats,
} from '../protocol.js';
import type { Listener } from '../listeners/bind.js';
import type { Settings } from '../config/settings.js';

const WORKER_ENTRY = fileURLToPath(new URL('../worker/worker.js', import.meta.url));

/**
 * Node's SIGUSR1 opens the inspector on 127.0.0.1:9229, where any local user could run code
 * as the app's user: workers turn that off (Node 22.14+; the worker also handles SIGUSR1
 * itself, which replaces Node's handler on older releases).
 */
const NO_SIGUSR1_INSPECTOR = process.allowedNodeEnvironmentFlags.has('--disable-sigusr1') ? ['--disable-sigusr1'] : [];

/**
 * Node 22 runs AsyncLocalStorage on async hooks (a promise hook on every promise) unless
 * this flag is given; Node 24 uses async context frames by default. Workers name the
 * request an uncaught error came from with it (src/worker/http-server.ts).
 */
const ASYNC_CONTEXT_FRAME = process.allowedNodeEnvironmentFlags.has('--experimental-async-context-frame')
  ? ['--experimental-async-context-frame']
  : [];

export type WorkerState = 'booting' | 'ready' | 'retiring';

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class WorkerProcess {
  state: WorkerState = 'booting';
  readonly spawnedAt = Date.now();
  readyAt: number | null = null;
  lastHeartbeat = Date.now();
  stats: WorkerStats = { requests: 0, inflight: 0, connections: 0, rss: 0 };
  appKind = '';
  bootError: ErrorInfo | null = null;
  fatalError: ErrorInfo | null = null;
  /** Why the arbiter ended this worker, when it did: logged with the exit. */
  killReason: string | null = null;
  exit: WorkerExit | null = null;
  /** The socketpair to the worker's watchdog thread (--hang-stacks), which reads its stack when it hangs. */
  readonly watchdog: Socket | null;
  /** Heartbeats in a row with RSS over --max-worker-memory. */
  overMemory = 0;
  /** A replacement has been requested (max-requests, memory): don't ask twice. */
  replacing = false;
  /** What the app printed while booting, when the worker answered a boot-report request. */
  bootReport: string[] | null = null;
  /** The heartbeat stopped: a stack capture and kill are under way. */
  hung = false;
  /** Its death already counted towards the crash backoff (an uncaught error, reported before it exits). */
  crashCounted = false;
  readonly exited: Promise<WorkerExit>;
  /** Resolves true once ready, false if the worker exits first. */
  readonly booted: Promise<boolean>;
  private readonly child: ChildProcess;

  constructor(
    readonly id: number,
    readonly index: number,
    readonly generation: number,
    opts: {
      settings: Settings;
      listeners: readonly Listener[];
      configPath: string | null;
      logFormat: 'json' | 'pretty';
      onMessage: (w: WorkerProcess, m: WorkerMessage) => void;
    },
  ) {
    // fd 3 is IPC, the listeners follow, then the watchdog's socketpair.
    const watchdogFd = opts.settings.hangStacks ? 4 + opts.listeners.length : null;
    const boot: WorkerBoot = {
      id,
      index,
      generation,
      listeners: opts.listeners.map((l, i) => ({
        fd: 4 + i,
        address: l.address,
        unix: l.spec.kind === 'unix' || l.address.startsWith('unix:'),
      })),
      watchdogFd,
      settings: opts.settings,
      configPath: opts.configPath,
      logFormat: opts.logFormat,
      maxRequests:
        opts.settings.maxRequests > 0 ? opts.settings.maxRequests + Math.floor(Math.random() * (opts.settings.maxRequestsJitter + 1)) : 0,
    };
    const execArgv = [
      ...process.execArgv.filter((a) => !a.startsWith('--inspect')),
      ...ASYNC_CONTEXT_FRAME,
      ...NO_SIGUSR1_INSPECTOR,
      ...opts.settings.import.flatMap((m) => ['--import', m]),
    ];
    this.child = spawn(process.execPath, [...execArgv, WORKER_ENTRY], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...opts.listeners.map((l) => l.fd), ...(watchdogFd !== null ? ['pipe' as const] : [])],
      env: { ...process.env, [BOOT_ENV]: JSON.stringify(boot) },
      cwd: opts.settings.chdir ?? process.cwd(),
    });
    this.watchdog = watchdogFd !== null ? ((this.child.stdio[watchdogFd] as Socket | null) ?? null) : null;
    this.watchdog?.setEncoding('utf8');
    this.watchdog?.on('error', () => {});
    let onBooted!: (ok: boolean) => void;
    this.booted = new Promise((resolve) => (onBooted = resolve));
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': it comes after the IPC channel's last message (the final counts).
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        onBooted(false);
        resolve(this.exit);
      });
    });
    this.child.on('error', () => {
      // spawn failures surface as an exit; nothing else to do here
    });
    this.child.on('message', (m: unknown) => {
      if (!isWorkerMessage(m)) return;
      this.lastHeartbeat = Date.now();
      if (m.type === 'ready' && this.state === 'booting') {
        this.state = 'ready';
        this.readyAt = Date.now();
        this.appKind = m.appKind;
        onBooted(true);
      } else if (m.type === 'heartbeat') {
        const { type: _type, metrics: _metrics, ...stats } = m;
        this.stats = stats;
      } else if (m.type === 'load') {
        this.stats.busy = m.busy;
      } else if (m.type === 'boot-report') {
        this.bootReport = m.lines;
      } else if (m.type === 'boot-error') {
        this.bootError = m.error;
      } else if (m.type === 'fatal') {
        this.fatalError = m.error;
      }
      opts.onMessage(this, m);
    });
  }

  send(msg: MasterMessage): void {
    if (this.alive && this.child.connected) this.child.send(msg, () => {});
  }

  /** Plain data about this worker, for hooks and status. */
  info(): {
    pid: number;
    index: number;
    generation: number;
    state: WorkerState;
    requests: number;
    rss: number;
    spawnedAt: number;
    exit: WorkerExit | null;
    reason: string | null;
  } {
    return {
      pid: this.pid,
      index: this.index,
      generation: this.generation,
      state: this.state,
      requests: this.stats.requests,
      rss: this.stats.rss,
      spawnedAt: this.spawnedAt,
      exit: this.exit,
      reason: this.exit ? this.describeExit() : null,
    };
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.exit === null;
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.alive) return;
    try {
      this.child.kill(sig);
    } catch {
      // already gone
    }
  }

  /** Graceful stop: the worker stops accepting and finishes its requests. */
  retire(reason: string): void {
    if (this.state === 'retiring' || !this.alive) return;
    this.state = 'retiring';
    this.killReason ??= reason;
    this.signal('SIGTERM');
  }

  kill(reason: string, sig: NodeJS.Signals = 'SIGKILL'): void {
    this.state = 'retiring';
    this.killReason ??= reason;
    this.signal(sig);
  }

  /** What to say about this worker's exit in the log. */
  describeExit(): string {
    if (this.killReason) return this.killReason;
    if (this.bootError) return 'failed to boot';
    if (this.fatalError) return 'uncaught error';
    if (this.exit?.signal) return `killed by ${this.exit.signal}`;
    return this.exit?.code === 0 ? 'exited' : 'crashed';
  }
}
