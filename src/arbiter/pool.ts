// The pool policy: how many workers, of which generation; what a worker's message or exit
// calls for (a replacement now, after a backoff, or never); when the pool is degraded and
// when the master gives up. The arbiter's loop calls it; the workers are WorkerProcess.
import type { Settings } from '../config/settings.js';
import type { Listener } from '../listeners/bind.js';
import { resolvedFormat, type Logger } from '../log/logger.js';
import type { MasterMetrics } from '../metrics/master-metrics.js';
import { exhaustive, type WorkerMessage } from '../protocol.js';
import { Balancer } from './balance.js';
import { pinnedVersion } from './versions.js';
import type { ArbiterEvent } from './signals.js';
import { WorkerProcess } from './workers.js';

/**
 * After this many boots in a row fail before any worker ever served, the arbiter gives up
 * (exit 3) instead of looping. Once the pool has served, it never gives up: it keeps what
 * still serves and retries the failed slots with the crash backoff (degraded).
 */
const MAX_BOOT_FAILURES = 3;
/** A worker that was ready this long before dying resets the crash backoff. */
const STABLE_MS = 5000;
const MAX_BACKOFF_MS = 10_000;

/** What the pool needs from the arbiter. */
export interface PoolHost {
  readonly log: Logger;
  /** The settings now (a reload changes them). */
  settings(): Settings;
  listeners(): readonly Listener[];
  configPath(): string | null;
  /** The first pool is up and no stop has begun: new workers are told the pool is ready. */
  poolReady(): boolean;
  stopping(): boolean;
  metrics(): MasterMetrics | null;
  hook(name: string, ...args: unknown[]): Promise<void>;
  push(event: ArbiterEvent): void;
}

export class WorkerPool {
  readonly workers = new Set<WorkerProcess>();
  /** The generation that serves; a reload starts a newer one and switches once it is ready. */
  generation = 0;
  /** Boots of the serving generation keep failing: the pool runs with fewer workers. */
  degraded: { error: string; since: number } | null = null;
  bootFailures = 0;
  private generations = 0;
  private nextId = 1;
  private wanted: number;
  private crashStreak = 0;
  /** A worker of this master became ready at least once: boot failures no longer stop it. */
  private everServed = false;
  private respawnAt = 0;
  /** Why the next extra workers retire: a manual shrink, or the adaptive pool's. */
  shrinkReason = 'pool shrunk (TTOU)';
  /** Workers that died without being asked to, since start (logged with each such exit). */
  private unexpectedExits = 0;
  private readonly spawnsBySlot = new Map<number, number>();
  private readonly exitedTotals = { requests: 0, serverErrors: 0 };
  /** A reload's new workers (a canary too) that hit --max-requests: recycled once their generation serves. */
  private readonly recycleLater = new Map<WorkerProcess, string>();
  /** The settings each generation runs with (the version it pinned at its start). */
  private readonly settingsOf = new Map<number, Settings>();
  /** --balance-connections: among the workers that accept now. */
  private readonly balancer = new Balancer(() => [...this.workers].filter((w) => w.accepting));

  /** The pool never shrinks below this (--workers, moved by TTIN/TTOU and ctl). */
  floor: number;
  /** --max-workers: the adaptive pool never grows past this; equal to the floor when off. */
  ceiling: number;

  constructor(
    private readonly host: PoolHost,
    bounds: { floor: number; ceiling: number },
  ) {
    this.floor = bounds.floor;
    this.ceiling = Math.max(bounds.floor, bounds.ceiling);
    this.wanted = this.floor;
  }

  get desired(): number {
    return this.wanted;
  }

  /** The size now, the floor and the ceiling. */
  bounds(): { size: number; floor: number; ceiling: number } {
    return { size: this.wanted, floor: this.floor, ceiling: this.ceiling };
  }

  /**
   * TTIN/TTOU, `ctl workers add/remove`: `delta` workers more or fewer now (a shrink stops at
   * one). A manual change moves the floor (as NGINX Unit's `spare`), and the ceiling with it
   * when it passes it. Returns the new size.
   */
  resize(delta: number): number {
    this.shrinkReason = 'pool shrunk (TTOU)';
    this.floor = Math.max(1, this.floor + delta);
    this.ceiling = Math.max(this.ceiling, this.floor);
    this.setDesired(delta >= 0 ? this.wanted + delta : Math.max(Math.min(this.wanted, 1), this.wanted + delta, this.floor));
    return this.wanted;
  }

  /**
   * `ctl set`: every generation's settings take the change (its pinned version stays), the
   * live workers are told, and the floor and ceiling follow workers and maxWorkers.
   */
  applySettings(changes: Partial<Settings>): void {
    for (const [g, settings] of this.settingsOf)
      this.settingsOf.set(g, { ...settings, ...changes, chdir: settings.chdir, app: settings.app });
    for (const w of this.alive()) w.send({ type: 'settings', changes });
    const s = this.host.settings();
    if ('workers' in changes || 'maxWorkers' in changes) {
      this.shrinkReason = 'pool shrunk (ctl set workers)';
      this.setBounds(s.workers, s.maxWorkers);
      if ('workers' in changes) this.setDesired(s.workers);
    }
  }

  /** A reload's settings: the new floor and ceiling; the size stays within them. */
  setBounds(floor: number, ceiling: number): void {
    this.floor = floor;
    this.ceiling = Math.max(floor, ceiling);
    this.setDesired(Math.min(this.ceiling, Math.max(this.floor, this.wanted)));
  }

  setDesired(n: number): void {
    const old = this.wanted;
    if (n === old) return;
    this.wanted = n;
    void this.host.hook('nworkersChanged', n, old);
  }

  /** `ctl worker kill PID`: false when no live worker has that pid. */
  retireByPid(pid: number, reason: string): boolean {
    const w = [...this.workers].find((x) => x.pid === pid && x.alive);
    w?.retire(reason);
    return w !== undefined;
  }

  /** WINCH: no workers, the master stays. */
  retireAll(): void {
    this.setDesired(0);
    for (const w of this.workers) w.retire('stopped by WINCH');
    this.host.log.info('all workers stopping (WINCH); the master stays');
  }

  /**
   * Starts a generation of `count` workers with `settings` (the host's by default): the first
   * pool, or a reload's; it serves from switchTo(). Its workers, and every later replacement
   * of one of them, run the version the generation started with (pinnedVersion()).
   */
  startGeneration(count: number, settings: Settings = this.host.settings()): { generation: number; fresh: WorkerProcess[] } {
    const generation = ++this.generations;
    this.settingsOf.set(generation, pinnedVersion(settings));
    const fresh: WorkerProcess[] = [];
    for (let i = 1; i <= count; i++) fresh.push(this.spawn(i, generation));
    return { generation, fresh };
  }

  /** More workers of a generation already started (a canary reload's rest), in the slots after `from`. */
  extendGeneration(generation: number, from: number, count: number): WorkerProcess[] {
    return Array.from({ length: count }, (_, i) => this.spawn(from + i + 1, generation));
  }

  /** A generation that will never serve (an aborted or rolled-back reload's). */
  forgetGeneration(generation: number): void {
    if (generation !== this.generation) this.settingsOf.delete(generation);
  }

  /** A reload's workers are all ready: they are the pool now. */
  switchTo(generation: number): void {
    for (const g of this.settingsOf.keys()) if (g < generation) this.settingsOf.delete(g);
    this.generation = generation;
    for (const [w, reason] of this.recycleLater) if (w.generation === generation && w.alive) this.replace(w, reason);
    this.recycleLater.clear();
    this.degraded = null;
  }

  alive(): WorkerProcess[] {
    return [...this.workers].filter((w) => w.alive);
  }

  /** Workers that count towards the pool size (not leaving, not waiting for a successor). */
  current(): WorkerProcess[] {
    return [...this.workers].filter((w) => w.countsInPool && w.generation === this.generation);
  }

  ready(): WorkerProcess[] {
    return this.current().filter((w) => w.serving);
  }

  /** Requests served by every worker of this master, exited ones included. */
  servedTotal(): number {
    return this.exitedTotals.requests + this.alive().reduce((a, w) => a + w.stats.requests, 0);
  }

  /** 5xx answered by every worker of this master, exited ones included; null when no worker counts them. */
  serverErrorsTotal(): number | null {
    const alive = this.alive();
    if (!alive.some((w) => w.stats.serverErrors !== undefined) && this.exitedTotals.serverErrors === 0) return null;
    return this.exitedTotals.serverErrors + alive.reduce((a, w) => a + (w.stats.serverErrors ?? 0), 0);
  }

  /** Workers started in this slot after its first one. */
  restarts(index: number): number {
    return Math.max(0, (this.spawnsBySlot.get(index) ?? 0) - 1);
  }

  private spawn(index: number, generation: number): WorkerProcess {
    const { host } = this;
    void host.hook('preFork', { index, generation });
    const settings = this.settingsOf.get(generation) ?? host.settings();
    const w = new WorkerProcess(this.nextId++, index, generation, {
      settings,
      listeners: host.listeners(),
      configPath: host.configPath(),
      logFormat: resolvedFormat(settings),
      onMessage: (worker, m) => this.onMessage(worker, m),
    });
    this.workers.add(w);
    this.spawnsBySlot.set(index, (this.spawnsBySlot.get(index) ?? 0) + 1);
    if (host.poolReady()) w.send({ type: 'readiness', ready: true, reason: 'serving' });
    host.log.info({ worker: index, workerPid: w.pid, generation }, 'worker spawned');
    void w.exited.then(() => host.push({ type: 'exit', worker: w }));
    void w.booted.then((ok) => {
      if (!ok) return;
      this.bootFailures = 0;
      this.everServed = true;
      if (this.degraded && generation === this.generation) {
        host.log.info(
          { worker: index, workerPid: w.pid, failingForMs: Date.now() - this.degraded.since },
          'recovered: a worker booted again; the pool fills up',
        );
        this.degraded = null;
      }
      host.push({ type: 'tick' });
      host.log.debug({ worker: index, workerPid: w.pid, bootMs: w.readyAt! - w.spawnedAt }, 'worker ready');
    });
    return w;
  }

  /** What a worker's message calls for (WorkerProcess recorded its content already). */
  private onMessage(w: WorkerProcess, m: WorkerMessage): void {
    switch (m.type) {
      case 'heartbeat':
        this.checkMemory(w);
        this.host.metrics()?.heartbeat(w, m.metrics);
        this.balance(); // also after a scale-up, when the old workers' counts hold still
        return;
      case 'load':
        this.balance();
        return;
      case 'retire-me':
        if (w.generation > this.generation) this.recycleLater.set(w, 'max requests reached');
        else this.replace(w, 'max requests reached');
        return;
      case 'boot-error':
        this.host.log.error({ worker: w.index, workerPid: w.pid, err: m.error }, 'worker could not load the app');
        return;
      case 'fatal':
        return this.leftOnItsOwn(w, 'uncaught error', m.reason);
      case 'draining':
        // Asked to (retiring, stopping) or failing already: nothing new.
        if (this.host.stopping() || !w.countsInPool) return;
        return this.leftOnItsOwn(w, 'draining on its own', m.reason);
      case 'ready':
      case 'boot-report':
        return; // w.booted and w.bootReport carry them
      default:
        exhaustive(m);
    }
  }

  /**
   * It takes no more work (after an uncaught error it closed its listeners and finishes only
   * the requests in progress, src/worker/worker.ts). Its replacement starts now, not when it
   * exits, which may be --graceful-timeout later.
   */
  private leftOnItsOwn(w: WorkerProcess, cause: 'uncaught error' | 'draining on its own', reason: string): void {
    const fields = { worker: w.index, workerPid: w.pid, reason };
    if (cause === 'uncaught error')
      this.host.log.error(
        fields,
        'worker hit an uncaught error: starting its replacement now; it exits once its requests in progress finish',
      );
    else this.host.log.warn(fields, 'worker draining without being asked (a signal from outside?): starting its replacement now');
    if (!w.markFailed(cause)) return;
    if (!this.host.stopping() && w.generation === this.generation) this.countCrash(w);
    this.host.push({ type: 'tick' });
  }

  /**
   * --balance-connections: tells the workers holding more than their share of the open
   * connections to shed down to it (src/arbiter/balance.ts). Runs on each load report.
   */
  private balance(): void {
    if (this.host.settings().balanceConnections) this.balancer.run();
  }

  private checkMemory(w: WorkerProcess): void {
    const limitMb = this.host.settings().maxWorkerMemory;
    if (limitMb <= 0 || w.replacedFor !== null) return;
    if (w.overMemoryStreak(limitMb * 1024 * 1024) >= 3)
      this.replace(w, `memory: RSS ${Math.round(w.stats.rss / 1048576)} MB above --max-worker-memory ${limitMb}`);
  }

  /**
   * Recycles a worker without dropping anything: it keeps serving while maintain() starts
   * its replacement, and is retired once the replacement is ready.
   */
  private replace(w: WorkerProcess, reason: string): void {
    if (!w.replaceWhenSuccessorReady(reason)) return;
    this.host.log.info({ worker: w.index, workerPid: w.pid, reason }, 'recycling worker: starting its replacement first');
    this.host.push({ type: 'tick' });
  }

  /** Keeps the pool at the desired size: respawns (with backoff) and retires extras. */
  maintain(): void {
    for (const old of this.workers) {
      const reason = old.replacedFor;
      if (reason === null) continue;
      const successor = [...this.workers].some(
        (w) => w !== old && w.index === old.index && w.countsInPool && w.serving && w.generation === this.generation,
      );
      if (successor || old.generation !== this.generation) old.retire(reason);
    }
    const live = this.current();
    if (live.length > this.wanted) {
      const extra = live.sort((a, b) => b.index - a.index).slice(0, live.length - this.wanted);
      for (const w of extra) w.retire(this.shrinkReason);
      return;
    }
    if (live.length < this.wanted && Date.now() >= this.respawnAt) {
      const used = new Set(live.map((w) => w.index));
      for (let i = 1; i <= this.wanted && this.current().length < this.wanted; i++) {
        if (!used.has(i)) this.spawn(i, this.generation);
      }
    }
  }

  /** A worker exited: log why, count failures. 'give up' when the app cannot boot at all (exit 3). */
  reap(w: WorkerProcess): 'give up' | null {
    const { host } = this;
    const stopping = host.stopping();
    this.workers.delete(w);
    this.exitedTotals.requests += w.stats.requests;
    this.exitedTotals.serverErrors += w.stats.serverErrors ?? 0;
    host.metrics()?.workerExited(w, w.describeExit());
    void host.hook('childExit', w.info());
    const { code, signal } = w.exit!;
    const reason = w.describeExit();
    // Asked to go, not killed for being broken (a hang, a boot that never finished).
    const planned = w.plannedExit;
    const fields = { worker: w.index, workerPid: w.pid, generation: w.generation, code, signal, reason, requests: w.stats.requests };
    if (planned || stopping) host.log.info(fields, 'worker exited');
    else host.log.warn({ ...fields, unexpectedExits: ++this.unexpectedExits }, 'worker exited unexpectedly');
    // Only deaths in the serving generation call for a replacement (an aborted reload's don't).
    if (stopping || planned || w.generation !== this.generation) return null;

    if (w.readyAt === null) {
      this.bootFailures++;
      if (!this.everServed && this.bootFailures >= MAX_BOOT_FAILURES) {
        host.log.fatal(
          { failures: this.bootFailures, err: w.bootError ?? undefined },
          `workers failed to boot ${this.bootFailures} times in a row${w.bootError ? `: ${w.bootError.message}` : ''}. Stopping (exit 3).`,
        );
        return 'give up';
      }
      if (this.everServed) this.bootFailed(w);
    }
    if (!w.crashCounted) this.countCrash(w);
    return null;
  }

  /**
   * A replacement of the serving generation failed to boot (the app on disk is broken now,
   * a dependency is gone): keep serving with the workers that run, and keep retrying.
   */
  private bootFailed(w: WorkerProcess): void {
    const error = w.bootError?.message.split('\n')[0] ?? w.describeExit();
    this.degraded ??= { error, since: Date.now() };
    this.degraded.error = error;
    const ready = this.ready().length;
    this.host.log.error(
      { ready, workers: this.wanted, failures: this.bootFailures, err: w.bootError ?? undefined },
      `degraded: ${ready}/${this.wanted} workers, boot failing: ${error} (retrying with backoff; fix the app, or reload with a good one)`,
    );
  }

  /** Quick deaths in a row back the respawns off (100 ms doubling to 10 s); a stable worker resets it. */
  private countCrash(w: WorkerProcess): void {
    const stableFor = w.readyAt ? Date.now() - w.readyAt : 0;
    this.crashStreak = stableFor >= STABLE_MS ? 0 : this.crashStreak + 1;
    const delay = this.crashStreak === 0 ? 0 : Math.min(100 * 2 ** (this.crashStreak - 1), MAX_BACKOFF_MS);
    this.respawnAt = Date.now() + delay;
    if (delay > 0) {
      this.host.log.info({ delayMs: delay, crashes: this.crashStreak }, 'respawning after backoff');
      setTimeout(() => this.host.push({ type: 'tick' }), delay);
    }
  }
}
