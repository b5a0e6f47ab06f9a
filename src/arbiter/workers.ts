// The master's view of one worker process (Puma's WorkerHandle): it starts the process,
// records what the worker reports, and holds ONE phase, changed only through the intent
// methods below. The pool policy (how many, when to respawn) lives in pool.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  BOOT_ENV,
  exhaustive,
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

/** Why the master SIGKILLs a worker it found stuck. */
export type HangReason = 'killed: timeout' | 'killed: boot timeout';

/** Loading the app. Counts in the pool. */
type Booting = { is: 'booting' };
/** Serving. Counts in the pool. */
type Ready = { is: 'ready' };
/** Still serving, until its successor in the same slot is ready (max-requests, memory). */
type Replacing = { is: 'replacing'; reason: string };
/** The master asked it to go (SIGTERM; SIGQUIT or SIGKILL when stopping): a planned exit. */
type Retiring = { is: 'retiring'; reason: string };
/** It left the pool by itself (an uncaught error, or a drain nobody asked for); its crash is counted. */
type Failing = { is: 'failing'; cause: 'uncaught error' | 'draining on its own' };
/** What a worker was doing when its heartbeat (or its boot) ran out of time. */
type Settled = Booting | Ready | Replacing | Retiring | Failing;
/** Out of time: the master reads where it is stuck, then SIGKILLs it. Otherwise as before. */
type Hung = { is: 'hung'; reason: HangReason; was: Settled };
/** SIGKILLed: for being stuck (unplanned), or on purpose (an aborted reload, the graceful timeout). */
type Killed = { is: 'killed'; reason: string; planned: boolean; crashCounted: boolean };

/** The master's view of a worker: one phase, written only through WorkerProcess's intent methods. */
export type WorkerPhase = Settled | Hung | Killed;

/** The coarse state hooks and metrics see (docs/hooks.md, ws_proxy_kit_workers{state}). */
/**
 * Why a worker drains, as its app hears it: a reload (new workers of a new version take
 * over), a recycle (its slot gets a fresh worker of the same version) or a stop (nothing
 * takes over here).
 */
function drainWhy(reason: string): 'reload' | 'recycle' | 'stop' {
  if (reason === 'server stopping' || reason === 'server quitting') return 'stop';
  if (reason === 'replaced by reload' || reason === 'stopped by WINCH') return 'reload';
  return 'recycle';
}

export type WorkerState = 'booting' | 'ready' | 'retiring';

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class WorkerProcess {
  private current: WorkerPhase = { is: 'booting' };
  readonly spawnedAt = Date.now();
  readyAt: number | null = null;
  lastHeartbeat = Date.now();
  stats: WorkerStats = { requests: 0, inflight: 0, connections: 0, rss: 0 };
  /** CPU used over the last heartbeat interval, in % of one core; null before the second heartbeat. */
  cpuPercent: number | null = null;
  appKind = '';
  bootError: ErrorInfo | null = null;
  fatalError: ErrorInfo | null = null;
  exit: WorkerExit | null = null;
  /** The socketpair to the worker's watchdog thread (--hang-stacks), which reads its stack when it hangs. */
  readonly watchdog: Socket | null;
  /** What the app printed while booting, when the worker answered a boot-report request. */
  bootReport: string[] | null = null;
  readonly exited: Promise<WorkerExit>;
  /** Resolves true once ready, false if the worker exits first. */
  readonly booted: Promise<boolean>;
  private readonly child: ChildProcess;
  private onBooted!: (ok: boolean) => void;
  /** Heartbeats in a row with RSS over --max-worker-memory. */
  private overMemory = 0;
  private lastCpu: { seconds: number; at: number } | null = null;

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
    this.booted = new Promise((resolve) => (this.onBooted = resolve));
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': it comes after the IPC channel's last message (the final counts).
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        this.onBooted(false);
        resolve(this.exit);
      });
    });
    this.child.on('error', () => {
      // spawn failures surface as an exit; nothing else to do here
    });
    this.child.on('message', (m: unknown) => {
      if (!isWorkerMessage(m)) return;
      this.record(m);
      opts.onMessage(this, m);
    });
  }

  /** Takes in what the worker reports; what the pool does about it is pool.ts's business. */
  private record(m: WorkerMessage): void {
    this.lastHeartbeat = Date.now();
    switch (m.type) {
      case 'ready':
        if (this.settled.is !== 'booting') return;
        this.settled = { is: 'ready' };
        this.readyAt = Date.now();
        this.appKind = m.appKind;
        this.onBooted(true);
        return;
      case 'heartbeat': {
        const { type: _type, metrics: _metrics, ...stats } = m;
        this.stats = stats;
        if (stats.cpuSeconds === undefined) return;
        const now = Date.now();
        if (this.lastCpu && now > this.lastCpu.at)
          this.cpuPercent = ((stats.cpuSeconds - this.lastCpu.seconds) * 1e5) / (now - this.lastCpu.at);
        this.lastCpu = { seconds: stats.cpuSeconds, at: now };
        return;
      }
      case 'load':
        this.stats.busy = m.busy;
        return;
      case 'boot-report':
        this.bootReport = m.lines;
        return;
      case 'boot-error':
        this.bootError = m.error;
        return;
      case 'fatal':
        this.fatalError = m.error;
        return;
      case 'draining':
      case 'retire-me':
        return;
      default:
        exhaustive(m);
    }
  }

  /** The phase, through a stack capture under way (hung): what the worker was doing. */
  private get settled(): Settled | Killed {
    return this.current.is === 'hung' ? this.current.was : this.current;
  }

  private set settled(phase: Settled) {
    if (this.current.is === 'hung') this.current = { ...this.current, was: phase };
    else this.current = phase;
  }

  /** booting, ready, replacing, retiring, failing, hung or killed: for `ctl workers`. */
  get label(): WorkerPhase['is'] {
    return this.current.is;
  }

  /** The coarse state for hooks and metrics: booting, ready (also while replaced), retiring (any way out). */
  get state(): WorkerState {
    const is = this.settled.is;
    return is === 'booting' ? 'booting' : is === 'ready' || is === 'replacing' ? 'ready' : 'retiring';
  }

  /** Counts towards the pool size: booting or serving, not on its way out nor waiting for a successor. */
  get countsInPool(): boolean {
    return this.alive && (this.settled.is === 'booting' || this.settled.is === 'ready');
  }

  /** Takes connections now (for --balance-connections): serving and not stuck. */
  get accepting(): boolean {
    return this.alive && (this.current.is === 'ready' || this.current.is === 'replacing');
  }

  /** Booted and serving (also while its successor boots). */
  get serving(): boolean {
    return this.state === 'ready';
  }

  get booting(): boolean {
    return this.state === 'booting';
  }

  /** On its way out: asked to go, failing, or killed. */
  get leaving(): boolean {
    return this.state === 'retiring';
  }

  /** Serving until its successor is ready: the reason it is being replaced, else null. */
  get replacedFor(): string | null {
    return this.settled.is === 'replacing' ? this.settled.reason : null;
  }

  /** It exits because the master asked it to (not killed for being broken, not failing). */
  get plannedExit(): boolean {
    const s = this.settled;
    return s.is === 'retiring' || (s.is === 'killed' && s.planned);
  }

  /** Its death was counted towards the crash backoff when it left the pool (before its exit). */
  get crashCounted(): boolean {
    const s = this.settled;
    return s.is === 'failing' || (s.is === 'killed' && s.crashCounted);
  }

  /** Recycle without dropping anything: it keeps serving until pool.ts retires it once its successor is ready. */
  replaceWhenSuccessorReady(reason: string): boolean {
    if (!this.countsInPool) return false;
    this.settled = { is: 'replacing', reason };
    return true;
  }

  /** Graceful stop: the worker stops accepting and finishes its requests. Once only. */
  retire(reason: string): void {
    const s = this.settled;
    if (!this.alive || s.is === 'retiring' || s.is === 'failing' || s.is === 'killed') return;
    this.leave(reason, 'SIGTERM');
  }

  /** The server stops: SIGTERM (graceful) or SIGQUIT, sent again on each call. */
  stop(graceful: boolean): void {
    this.leave(graceful ? 'server stopping' : 'server quitting', graceful ? 'SIGTERM' : 'SIGQUIT');
  }

  /** SIGKILL, planned (an aborted reload, the graceful timeout): its first reason to go stays. */
  kill(reason: string): void {
    const s = this.settled;
    if (s.is !== 'killed') {
      const first = s.is === 'replacing' || s.is === 'retiring' ? s.reason : reason;
      this.current = { is: 'killed', reason: first, planned: true, crashCounted: s.is === 'failing' };
    }
    this.signal('SIGKILL');
  }

  /** It reported an uncaught error, or began draining by itself: it no longer counts. True if that is news. */
  markFailed(cause: Failing['cause']): boolean {
    const s = this.settled;
    if (!this.alive || (s.is !== 'booting' && s.is !== 'ready' && s.is !== 'replacing')) return false;
    this.settled = { is: 'failing', cause };
    return true;
  }

  /** Its heartbeat or boot ran out of time: a stack capture starts. False when one is under way already. */
  markHung(reason: HangReason): boolean {
    if (!this.alive || this.current.is === 'hung' || this.current.is === 'killed') return false;
    this.current = { is: 'hung', reason, was: this.current };
    return true;
  }

  /** The end of a hang: SIGKILL. A worker that was retiring still exits as planned. */
  killHung(): void {
    const c = this.current;
    if (c.is === 'hung') {
      const was = c.was;
      this.current =
        was.is === 'retiring'
          ? { is: 'killed', reason: was.reason, planned: true, crashCounted: false }
          : { is: 'killed', reason: c.reason, planned: false, crashCounted: was.is === 'failing' };
    }
    this.signal('SIGKILL');
  }

  /** Counts the heartbeats in a row with RSS over the limit (bytes); 0 once under it. */
  overMemoryStreak(limitBytes: number): number {
    this.overMemory = this.stats.rss > limitBytes ? this.overMemory + 1 : 0;
    return this.overMemory;
  }

  private leave(reason: string, sig: NodeJS.Signals): void {
    const s = this.settled;
    if (s.is === 'replacing') this.settled = { is: 'retiring', reason: s.reason };
    else if (s.is !== 'retiring' && s.is !== 'killed') this.settled = { is: 'retiring', reason };
    // Why, before the signal: an app with a drain hook tells its WebSocket clients.
    if (sig === 'SIGTERM') {
      const why = this.settled.is === 'retiring' ? this.settled.reason : reason;
      this.send({ type: 'leaving', why: drainWhy(why), ...(why === 'reload rolled back' ? { now: true } : {}) });
    }
    this.signal(sig);
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

  private signal(sig: NodeJS.Signals): void {
    if (!this.alive) return;
    try {
      this.child.kill(sig);
    } catch {
      // already gone
    }
  }

  /** What to say about this worker's exit in the log. */
  describeExit(): string {
    const s = this.settled;
    if (s.is === 'replacing' || s.is === 'retiring' || s.is === 'killed') return s.reason;
    if (this.bootError) return 'failed to boot';
    if (this.fatalError) return 'uncaught error';
    if (this.exit?.signal) return `killed by ${this.exit.signal}`;
    return this.exit?.code === 0 ? 'exited' : 'crashed';
  }
}
