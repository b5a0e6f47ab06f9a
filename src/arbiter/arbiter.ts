// The arbiter: owns the listening sockets and the worker pool. Signals and worker exits
// are queued and handled one at a time by a single loop, so two reloads never interleave.
import type { ChildProcess } from 'node:child_process';
import type { Settings } from '../config/settings.js';
import type { LoadedConfig } from '../config/load.js';
import { openListeners, closeListeners, type Listener } from '../listeners/bind.js';
import { forgetActivationEnv } from '../listeners/systemd.js';
import { parseBind } from '../listeners/bind-spec.js';
import { errorInfo, flushLogs, reopenLogFiles, resolvedFormat, type Logger } from '../log/logger.js';
import { Balancer } from './balance.js';
import { WorkerProcess } from './workers.js';
import { runControlCall, type ControlTarget, type StatusView, type WorkerRow } from './control.js';
import { ControlServer, controlSocketPath } from './control-socket.js';
import { displayValue } from '../config/display.js';
import { spawnNewMaster, inheritedListeners, announceUpgradeReady } from './upgrade.js';
import { SignalQueue, type ArbiterEvent } from './signals.js';
import { EXIT_BOOT_ERROR } from '../protocol.js';
import { VERSION } from '../version.js';
import { noopNotifier, type Notifier } from '../notify/notifier.js';
import { runHook } from '../config/hooks.js';
import { Pidfile } from './pidfile.js';
// Loaded when used (hang capture, --reload, --metrics-bind): a master that doesn't use
// them doesn't carry ws, chokidar or prom-client.
import type { MasterMetrics } from '../metrics/master-metrics.js';

/**
 * After this many boots in a row fail before any worker ever served, the arbiter gives up
 * (exit 3) instead of looping. Once the pool has served, it never gives up: it keeps what
 * still serves and retries the failed slots with the crash backoff (degraded).
 */
const MAX_BOOT_FAILURES = 3;
/** A worker that was ready this long before dying resets the crash backoff. */
const STABLE_MS = 5000;
const MAX_BACKOFF_MS = 10_000;

export type ArbiterState = 'booting' | 'running' | 'reloading' | 'stopping';

export interface ArbiterOptions {
  config: LoadedConfig;
  log: Logger;
  /** Re-reads config file and environment on reload (SIGHUP). */
  reloadConfig?: () => Promise<LoadedConfig>;
  env?: NodeJS.ProcessEnv;
  /** Supervisor notifications (systemd); defaults to none. */
  notifier?: Notifier;
}

export class Arbiter {
  state: ArbiterState = 'booting';
  settings: Settings;
  listeners: Listener[] = [];
  readonly workers = new Set<WorkerProcess>();
  /** --balance-connections: among the workers that accept now. */
  private readonly balancer = new Balancer(() => [...this.workers].filter((w) => w.alive && w.state === 'ready' && !w.hung));
  readonly startedAt = Date.now();
  private readonly log: Logger;
  private readonly notifier: Notifier;
  private readonly queue = new SignalQueue();
  private config: LoadedConfig;
  /** The generation that serves; reloads start a newer one and switch when it is ready. */
  private generation = 0;
  private generations = 0;
  private announced = false;
  private stopping: Promise<void> | null = null;
  private nextId = 1;
  private desired: number;
  private crashStreak = 0;
  private bootFailures = 0;
  /** A worker of this master became ready at least once: boot failures no longer stop it. */
  private everServed = false;
  /** Boots of the serving generation keep failing: the pool runs with fewer workers. */
  private degraded: { error: string; since: number } | null = null;
  private respawnAt = 0;
  private exitCode = 0;
  private pidfile: Pidfile | null = null;
  /** This master was started by USR2 on inherited sockets. */
  private upgraded = false;
  /** The master we started with USR2, while it runs. */
  private newMaster: ChildProcess | null = null;
  /** A new master took over our sockets: don't unlink them on exit. */
  private handedOver = false;
  private stopWatching: (() => Promise<void>) | null = null;
  private listenersClosed = false;
  private control: ControlServer | null = null;
  /** Workers that died without being asked to, since start (logged with each such exit). */
  private unexpectedExits = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The Prometheus endpoint (--metrics-bind), when set. */
  private metrics: MasterMetrics | null = null;

  constructor(private readonly opts: ArbiterOptions) {
    this.config = opts.config;
    this.settings = opts.config.settings;
    this.log = opts.log;
    this.notifier = opts.notifier ?? noopNotifier;
    this.desired = this.settings.workers;
  }

  /** Runs the server until it stops; resolves with the process exit code. */
  async run(): Promise<number> {
    const s = this.settings;
    const env = this.opts.env ?? process.env;
    this.log.info({ version: VERSION, node: process.version, app: s.app, workers: s.workers }, 'starting ws-proxy-kit');
    await this.hook('onStarting');
    const inherited = inheritedListeners(env);
    this.upgraded = inherited !== null;
    this.listeners = inherited ?? (await openListeners(s.bind, s, this.log, env));
    // --health-bind: one more socket, appended after the app binds; workers serve only the
    // health paths on it (src/worker/health.ts). After USR2 it is among the inherited ones.
    if (!inherited && s.healthBind) {
      const health = await openListeners([parseBind(s.healthBind)], s, this.log, env).catch((err: unknown) => {
        closeListeners(this.listeners);
        throw err;
      });
      this.listeners.push(...health);
    }
    if (inherited)
      this.log.info(
        { binds: inherited.map((l) => l.address), parent: process.ppid },
        'upgrade: serving the sockets inherited from the old master',
      );
    forgetActivationEnv(env);
    if (s.metricsBind) {
      const { MasterMetrics } = await import('../metrics/master-metrics.js');
      this.metrics = new MasterMetrics({
        bind: s.metricsBind,
        log: this.log,
        workers: () => this.workers,
        listeners: () => this.listeners,
        degraded: () => this.degraded !== null,
      });
      // After USR2 the old master still holds the address: the new one retries until it is free.
      await this.metrics.listen(this.upgraded).catch((err: unknown) => {
        closeListeners(this.listeners, { unlink: !this.upgraded });
        throw err;
      });
    }
    if (s.pid) this.pidfile = Pidfile.create(s.pid);
    this.queue.install();
    if (s.reload && s.app) {
      const { watchForReload } = await import('./reloader.js');
      this.stopWatching = watchForReload({
        app: s.app,
        cwd: process.cwd(),
        configPath: this.config.configPath,
        log: this.log,
        onChange: () => this.queue.push({ type: 'signal', signal: 'SIGHUP' }),
      });
    }
    this.timer = setInterval(() => this.queue.push({ type: 'tick' }), 500);
    // Not awaited after an upgrade: the new master serves while it waits for the path.
    if (this.upgraded) void this.openControlSocket();
    else await this.openControlSocket();

    // The loop runs while the first workers boot, so a TERM during boot is honoured at once.
    this.generation = ++this.generations;
    for (let i = 1; i <= this.desired; i++) this.spawnWorker(i, this.generation);
    this.state = 'running';
    while (!this.isStopping()) {
      const event = await this.queue.next();
      await this.handle(event);
      if (this.state === 'running') {
        this.maintain();
        this.announceReady();
      }
      if (this.announced) this.publishStatus();
    }
    return this.finish();
  }

  private isStopping(): boolean {
    return this.state === 'stopping';
  }

  /** Logs "ready" once, when the whole first pool is up. */
  private announceReady(): void {
    if (this.announced) return;
    const ready = this.current().filter((w) => w.state === 'ready');
    // A first pool that cannot fully boot still serves with what did: ready, and degraded.
    if (ready.length < this.desired && !(this.degraded && ready.length > 0)) return;
    this.announced = true;
    for (const w of this.workers) w.send({ type: 'readiness', ready: true, reason: 'serving' });
    const addresses = this.listeners.map((l) => l.address);
    const app = ready[0]?.appKind ?? this.settings.app;
    this.log.info(
      { binds: addresses, workers: this.desired, app, bootMs: Date.now() - this.startedAt },
      `ready: serving ${app} on ${addresses.join(', ')} with ${ready.length} worker${ready.length === 1 ? '' : 's'}${ready.length < this.desired ? ` of ${this.desired} (degraded)` : ''}`,
    );
    this.notifier.ready(this.statusLine());
    this.notifier.startWatchdog(() => this.isHealthy());
    if (this.upgraded) announceUpgradeReady();
    void this.hook('whenReady');
  }

  /** What hooks get as their first argument: a read-only view of the arbiter. */
  hookView(): { pid: number; state: ArbiterState; settings: Settings; workers: ReturnType<WorkerProcess['info']>[]; log: Logger } {
    return { pid: process.pid, state: this.state, settings: this.settings, workers: [...this.workers].map((w) => w.info()), log: this.log };
  }

  private hook(name: string, ...args: unknown[]): Promise<void> {
    return runHook(this.config.hooks, name, this.log, this.hookView(), ...args);
  }

  private setDesired(n: number): void {
    const old = this.desired;
    if (n === old) return;
    this.desired = n;
    void this.hook('nworkersChanged', n, old);
  }

  /** One line for `systemctl status` and logs. */
  statusLine(): string {
    const all = [...this.workers].filter((w) => w.alive);
    const ready = all.filter((w) => w.state === 'ready' && w.generation === this.generation).length;
    const retiring = all.filter((w) => w.state === 'retiring').length;
    const booting = all.filter((w) => w.state === 'booting').length;
    if (this.degraded && this.state !== 'stopping')
      return `degraded: ${ready}/${this.desired} workers, boot failing: ${this.degraded.error}`;
    return `${this.state}: ${ready}/${this.desired} workers ready${booting ? `, ${booting} booting` : ''}${retiring ? `, ${retiring} draining` : ''}`;
  }

  /** Healthy = serving with at least one ready worker, none stuck past the timeout. */
  isHealthy(): boolean {
    if (this.state === 'stopping' || this.state === 'booting') return false;
    const now = Date.now();
    const ready = this.current().filter((w) => w.state === 'ready');
    const limit = this.settings.timeout > 0 ? this.settings.timeout * 1000 : Infinity;
    return ready.length > 0 && ready.some((w) => now - w.lastHeartbeat <= limit);
  }

  private lastStatus = '';
  private publishStatus(): void {
    const line = this.statusLine();
    if (line !== this.lastStatus) {
      this.lastStatus = line;
      this.notifier.status(line);
    }
  }

  private async handle(event: ArbiterEvent): Promise<void> {
    switch (event.type) {
      case 'tick':
        this.checkHealth();
        return;
      case 'exit':
        this.reap(event.worker);
        return;
      case 'command':
        try {
          event.reply({ ok: true, result: await runControlCall(this.commands, event.call) });
        } catch (err) {
          event.reply({ ok: false, error: (err as Error).message });
        }
        return;
      case 'signal':
        this.log.info({ signal: event.signal }, `received ${event.signal}`);
        switch (event.signal) {
          case 'SIGTERM':
            return this.beginStop(true);
          case 'SIGINT':
          case 'SIGQUIT':
            return this.beginStop(false);
          case 'SIGHUP':
            await this.reload();
            return;
          case 'SIGTTIN':
            this.setDesired(this.desired + 1);
            this.log.info({ workers: this.desired }, 'one worker more');
            return;
          case 'SIGTTOU':
            if (this.desired > 1) this.setDesired(this.desired - 1);
            this.log.info({ workers: this.desired }, 'one worker fewer');
            return;
          case 'SIGUSR2':
            return this.upgrade();
          case 'SIGWINCH':
            // After an upgrade: the old master stops its workers but keeps its sockets,
            // so a HUP can bring them back if the new master misbehaves.
            this.setDesired(0);
            for (const w of this.workers) w.retire('stopped by WINCH');
            this.log.info('all workers stopping (WINCH); the master stays');
            return;
          case 'SIGUSR1':
            reopenLogFiles();
            for (const w of this.workers) w.send({ type: 'reopen-logs' });
            this.log.info('log files reopened');
            return;
          default:
            return;
        }
    }
  }

  private spawnWorker(index: number, generation: number): WorkerProcess {
    void this.hook('preFork', { index, generation });
    const w = new WorkerProcess(this.nextId++, index, generation, {
      settings: this.settings,
      listeners: this.listeners,
      configPath: this.config.configPath,
      logFormat: resolvedFormat(this.settings),
      onMessage: (worker, m) => {
        if (m.type === 'heartbeat') {
          this.checkMemory(worker);
          this.metrics?.heartbeat(worker, m.metrics);
          this.balance(); // also after a scale-up, when the old workers' counts hold still
        } else if (m.type === 'load') this.balance();
        else if (m.type === 'retire-me') this.replace(worker, 'max requests reached');
        else if (m.type === 'boot-error')
          this.log.error({ worker: worker.index, workerPid: worker.pid, err: m.error }, 'worker could not load the app');
        else if (m.type === 'fatal') this.workerFailed(worker, m.reason);
      },
    });
    this.workers.add(w);
    if (this.announced && this.state !== 'stopping') w.send({ type: 'readiness', ready: true, reason: 'serving' });
    this.log.info({ worker: index, workerPid: w.pid, generation }, 'worker spawned');
    void w.exited.then(() => this.queue.push({ type: 'exit', worker: w }));
    void w.booted.then((ok) => {
      if (ok) {
        this.bootFailures = 0;
        this.everServed = true;
        if (this.degraded && generation === this.generation) {
          this.log.info(
            { worker: index, workerPid: w.pid, failingForMs: Date.now() - this.degraded.since },
            'recovered: a worker booted again; the pool fills up',
          );
          this.degraded = null;
        }
        this.queue.push({ type: 'tick' });
        this.log.debug({ worker: index, workerPid: w.pid, bootMs: w.readyAt! - w.spawnedAt }, 'worker ready');
      }
    });
    return w;
  }

  /** Starts `count` workers of a new generation; resolves with it once all are ready, or null if one fails. */
  private async spawnGeneration(count: number): Promise<number | null> {
    const generation = ++this.generations;
    const fresh: WorkerProcess[] = [];
    for (let i = 1; i <= count; i++) fresh.push(this.spawnWorker(i, generation));
    const results = await Promise.all(fresh.map((w) => w.booted));
    return results.every(Boolean) ? generation : null;
  }

  /** Workers that count towards the pool size (not retiring, not waiting for a replacement). */
  private current(): WorkerProcess[] {
    return [...this.workers].filter((w) => w.alive && w.state !== 'retiring' && !w.replacing && w.generation === this.generation);
  }

  /**
   * Recycles a worker without dropping anything: it keeps serving while maintain() starts
   * its replacement, and is retired once the replacement is ready.
   */
  private replace(w: WorkerProcess, reason: string): void {
    if (w.replacing || w.state === 'retiring' || !w.alive) return;
    w.replacing = true;
    w.killReason = reason;
    this.log.info({ worker: w.index, workerPid: w.pid, reason }, 'recycling worker: starting its replacement first');
    this.queue.push({ type: 'tick' });
  }

  /**
   * A worker hit an uncaught error: it takes no more work (it closed its listeners and
   * finishes only the requests in progress, src/worker/worker.ts). Its replacement starts
   * now, not when it exits, which may be --graceful-timeout later.
   */
  private workerFailed(w: WorkerProcess, reason: string): void {
    this.log.error(
      { worker: w.index, workerPid: w.pid, reason },
      'worker hit an uncaught error: starting its replacement now; it exits once its requests in progress finish',
    );
    if (!w.alive || w.state === 'retiring') return;
    w.state = 'retiring';
    if (this.state !== 'stopping' && w.generation === this.generation) {
      w.crashCounted = true;
      this.countCrash(w);
    }
    this.queue.push({ type: 'tick' });
  }

  /**
   * --balance-connections: tells the workers holding more than their share of the open
   * connections to shed down to it (src/arbiter/balance.ts). Runs on each load report.
   */
  private balance(): void {
    if (this.settings.balanceConnections) this.balancer.run();
  }

  private checkMemory(w: WorkerProcess): void {
    const limitMb = this.settings.maxWorkerMemory;
    if (limitMb <= 0 || w.replacing) return;
    w.overMemory = w.stats.rss > limitMb * 1024 * 1024 ? w.overMemory + 1 : 0;
    if (w.overMemory >= 3) this.replace(w, `memory: RSS ${Math.round(w.stats.rss / 1048576)} MB above --max-worker-memory ${limitMb}`);
  }

  /** Keeps the pool at the desired size: respawns (with backoff) and retires extras. */
  private maintain(): void {
    for (const old of this.workers) {
      if (!old.replacing || old.state === 'retiring') continue;
      const successor = [...this.workers].some(
        (w) => w !== old && w.index === old.index && w.state === 'ready' && !w.replacing && w.generation === this.generation,
      );
      if (successor || old.generation !== this.generation) old.retire(old.killReason ?? 'recycled');
    }
    const live = this.current();
    if (live.length > this.desired) {
      const extra = live.sort((a, b) => b.index - a.index).slice(0, live.length - this.desired);
      for (const w of extra) w.retire('pool shrunk (TTOU)');
      return;
    }
    if (live.length < this.desired && Date.now() >= this.respawnAt) {
      const used = new Set(live.map((w) => w.index));
      for (let i = 1; i <= this.desired && this.current().length < this.desired; i++) {
        if (!used.has(i)) this.spawnWorker(i, this.generation);
      }
    }
  }

  /** A worker exited: log why, count failures, decide whether to give up. */
  private reap(w: WorkerProcess): void {
    this.workers.delete(w);
    this.metrics?.workerExited(w, w.describeExit());
    void this.hook('childExit', w.info());
    const { code, signal } = w.exit!;
    const reason = w.describeExit();
    // Asked to go, not killed for being broken (a hang, a boot that never finished).
    const planned =
      w.state === 'retiring' && w.killReason !== null && w.killReason !== 'killed: timeout' && w.killReason !== 'killed: boot timeout';
    const fields = { worker: w.index, workerPid: w.pid, generation: w.generation, code, signal, reason, requests: w.stats.requests };
    if (planned || this.state === 'stopping') this.log.info(fields, 'worker exited');
    else this.log.warn({ ...fields, unexpectedExits: ++this.unexpectedExits }, 'worker exited unexpectedly');
    // Only deaths in the serving generation call for a replacement (an aborted reload's don't).
    if (this.state === 'stopping' || planned || w.generation !== this.generation) return;

    if (w.readyAt === null) {
      this.bootFailures++;
      if (!this.everServed && this.bootFailures >= MAX_BOOT_FAILURES) {
        this.log.fatal(
          { failures: this.bootFailures, err: w.bootError ?? undefined },
          `workers failed to boot ${this.bootFailures} times in a row${w.bootError ? `: ${w.bootError.message}` : ''}. Stopping (exit 3).`,
        );
        this.exitCode = EXIT_BOOT_ERROR;
        this.beginStop(false);
        return;
      }
      if (this.everServed) this.bootFailed(w);
    }
    if (!w.crashCounted) this.countCrash(w);
  }

  /**
   * A replacement of the serving generation failed to boot (the app on disk is broken now,
   * a dependency is gone): keep serving with the workers that run, and keep retrying.
   */
  private bootFailed(w: WorkerProcess): void {
    const error = w.bootError?.message.split('\n')[0] ?? w.describeExit();
    this.degraded ??= { error, since: Date.now() };
    this.degraded.error = error;
    const ready = this.current().filter((x) => x.state === 'ready').length;
    this.log.error(
      { ready, workers: this.desired, failures: this.bootFailures, err: w.bootError ?? undefined },
      `degraded: ${ready}/${this.desired} workers, boot failing: ${error} (retrying with backoff; fix the app, or reload with a good one)`,
    );
  }

  /** Quick deaths in a row back the respawns off (100 ms doubling to 10 s); a stable worker resets it. */
  private countCrash(w: WorkerProcess): void {
    const stableFor = w.readyAt ? Date.now() - w.readyAt : 0;
    this.crashStreak = stableFor >= STABLE_MS ? 0 : this.crashStreak + 1;
    const delay = this.crashStreak === 0 ? 0 : Math.min(100 * 2 ** (this.crashStreak - 1), MAX_BACKOFF_MS);
    this.respawnAt = Date.now() + delay;
    if (delay > 0) {
      this.log.info({ delayMs: delay, crashes: this.crashStreak }, 'respawning after backoff');
      setTimeout(() => this.queue.push({ type: 'tick' }), delay);
    }
  }

  /** Kills workers whose event loop stopped answering, or that never finished booting. */
  private checkHealth(): void {
    const now = Date.now();
    const s = this.settings;
    for (const w of this.workers) {
      if (!w.alive) continue;
      if (w.state === 'booting' && now - w.spawnedAt > s.bootTimeout * 1000) {
        if (!w.hung) {
          w.hung = true;
          void this.killBootTimedOut(w);
        }
      } else if (w.state !== 'booting' && !w.hung && s.timeout > 0 && now - w.lastHeartbeat > s.timeout * 1000) {
        w.hung = true;
        void this.killHung(w, now - w.lastHeartbeat);
      }
    }
  }

  private async openControlSocket(): Promise<void> {
    const path = controlSocketPath(this.settings);
    if (!path) return;
    const control = new ControlServer(path, (call) => new Promise((reply) => this.queue.push({ type: 'command', call, reply })), this.log);
    // After USR2 the old master holds the path until it exits: keep trying until then.
    for (let attempt = 0; !this.isStopping(); attempt++) {
      try {
        await control.listen();
        this.control = control;
        this.log.info({ path }, 'control socket listening (ws-proxy-kit ctl)');
        return;
      } catch (err) {
        // ctl is a convenience: a server must not fail to start over it.
        if (!this.upgraded || attempt === 0)
          this.log.warn(
            { path, err: (err as Error).message },
            this.upgraded ? 'control socket busy (the old master has it): retrying until it exits' : 'control socket not available',
          );
        if (!this.upgraded) return;
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  }

  /** `ws-proxy-kit ctl` commands (the table in control.ts); same effects as the signals, run from the same queue. */
  private readonly commands: ControlTarget = {
    status: () => this.status(),
    workerRows: () => this.workerTable(),
    reload: () => this.reload(),
    resize: (delta) => {
      this.setDesired(delta >= 0 ? this.desired + delta : Math.max(Math.min(this.desired, 1), this.desired + delta));
      return this.desired;
    },
    retireWorker: (pid) => {
      const w = [...this.workers].find((x) => x.pid === pid && x.alive);
      w?.retire('stopped by ctl');
      return w !== undefined;
    },
    reopenLogs: () => void this.handle({ type: 'signal', signal: 'SIGUSR1' }),
    enqueueSignal: (signal) => this.queue.push({ type: 'signal', signal }),
  };

  status(): StatusView {
    const changed: Record<string, string> = {};
    for (const [name, src] of Object.entries(this.config.sources)) {
      if (src.origin !== 'default')
        changed[name] = `${displayValue(name, (this.settings as Record<string, unknown>)[name])} (${src.where})`;
    }
    return {
      pid: process.pid,
      version: VERSION,
      state: this.state,
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
      app: this.settings.app,
      binds: this.listeners.map((l) => l.address),
      workers: this.desired,
      ready: this.current().filter((w) => w.state === 'ready').length,
      status: this.statusLine(),
      degraded: this.degraded
        ? { bootError: this.degraded.error, sinceSec: Math.round((Date.now() - this.degraded.since) / 1000), failures: this.bootFailures }
        : null,
      settings: changed,
    };
  }

  workerTable(): WorkerRow[] {
    const now = Date.now();
    return [...this.workers]
      .filter((w) => w.alive)
      .sort((a, b) => a.index - b.index || a.spawnedAt - b.spawnedAt)
      .map((w) => ({
        pid: w.pid,
        index: w.index,
        generation: w.generation,
        state: w.replacing ? 'replacing' : w.state,
        ageSec: Math.round((now - w.spawnedAt) / 1000),
        requests: w.stats.requests,
        inflight: w.stats.inflight,
        connections: w.stats.connections,
        rssMb: Math.round((w.stats.rss / 1048576) * 10) / 10,
        heartbeatMsAgo: now - w.lastHeartbeat,
      }));
  }

  /** SIGUSR2: start a new master on our sockets; keep serving until WINCH/TERM. */
  private async upgrade(): Promise<void> {
    if (this.newMaster) {
      this.log.warn({ newMasterPid: this.newMaster.pid }, 'upgrade already in progress: USR2 ignored');
      return;
    }
    this.pidfile?.moveAsideForUpgrade();
    await this.hook('preExec');
    const child = spawnNewMaster(this.listeners, { ...process.env, ...this.notifier.childEnv?.() });
    this.newMaster = child;
    this.log.info({ newMasterPid: child.pid }, 'upgrade: new master started on our sockets');
    child.on('message', (m: { type?: string; pid?: number }) => {
      if (m?.type !== 'upgrade-ready') return;
      this.handedOver = true;
      this.notifier.mainPid(child.pid!);
      this.log.info(
        { newMasterPid: child.pid },
        'upgrade: the new master is serving. Send WINCH to stop our workers, then TERM to stop this master.',
      );
    });
    child.once('exit', (code, signal) => {
      if (this.newMaster !== child) return;
      this.newMaster = null;
      if (!this.handedOver) {
        this.log.error({ code, signal }, 'upgrade failed: the new master exited before serving; this master keeps serving');
        this.pidfile?.restore();
      } else {
        this.log.info({ code, signal }, 'the new master exited');
      }
    });
  }

  /**
   * The boot timeout ran out. Say why as well as we can: the app's last output while loading
   * (asked over IPC), or, when the worker can't even answer, the JS stack it is stuck in.
   */
  private async killBootTimedOut(w: WorkerProcess): Promise<void> {
    const fields: Record<string, unknown> = { worker: w.index, workerPid: w.pid, bootTimeout: this.settings.bootTimeout };
    w.send({ type: 'boot-report' });
    const deadline = Date.now() + 1000;
    while (w.bootReport === null && w.alive && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    let detail = '';
    if (w.bootReport !== null) {
      fields.lastOutput = w.bootReport;
      detail = w.bootReport.length
        ? ` Its last output:\n${w.bootReport.map((l) => `    ${l}`).join('\n')}`
        : ' It printed nothing while loading.';
    } else if (w.alive) {
      try {
        const { captureBlockedStack, formatFrames } = await import('./hang-stack.js');
        const frames = await captureBlockedStack(w.watchdog);
        fields.stack = frames;
        detail = ` Its event loop is blocked at:\n${formatFrames(frames)}`;
      } catch (err) {
        fields.stackError = (err as Error).message;
      }
    }
    this.log.error(fields, `worker did not become ready within the boot timeout (${this.settings.bootTimeout} s): killing it.${detail}`);
    w.kill('killed: boot timeout');
  }

  /** A worker's event loop is blocked: log where (its JS stack), then kill it. */
  private async killHung(w: WorkerProcess, silentMs: number): Promise<void> {
    const fields = { worker: w.index, workerPid: w.pid, timeout: this.settings.timeout, silentMs };
    try {
      const { captureBlockedStack, formatFrames } = await import('./hang-stack.js');
      const frames = await captureBlockedStack(w.watchdog);
      this.log.error(
        { ...fields, stack: frames },
        `worker timeout: its event loop is blocked; killing it. It was stuck at:\n${formatFrames(frames)}`,
      );
      await this.hook('workerAbort', w.info(), frames);
    } catch (err) {
      this.log.error(
        { ...fields, stackError: (err as Error).message },
        'worker timeout: its event loop is blocked; killing it (its stack could not be read)',
      );
    }
    w.kill('killed: timeout');
  }

  /** SIGHUP: new config, new workers; the old ones retire only once the new are ready. */
  /** Resolves true when the new workers took over, false when the reload did not happen. */
  private async reload(): Promise<boolean> {
    if (this.state !== 'running') return false;
    this.state = 'reloading';
    this.notifier.reloading();
    await this.hook('onReload');
    const started = Date.now();
    if (this.opts.reloadConfig) {
      try {
        const next = await this.opts.reloadConfig();
        if (JSON.stringify(next.settings.bind) !== JSON.stringify(this.settings.bind)) {
          this.log.warn('reload: binds changed in the configuration; they take effect on restart (or a USR2 upgrade)');
        }
        this.config = next;
        this.settings = { ...next.settings, bind: this.settings.bind };
        this.setDesired(next.settings.workers);
      } catch (err) {
        this.log.error({ err: errorInfo(err) }, 'reload aborted: the new configuration is invalid; the current workers keep serving');
        this.state = 'running';
        this.notifier.ready(this.statusLine());
        return false;
      }
    }
    const old = [...this.workers].filter((w) => w.alive);
    const generation = await this.spawnGeneration(this.desired);
    if (generation === null) {
      const failed = [...this.workers].filter((w) => w.generation === this.generations);
      const err = failed.find((w) => w.bootError)?.bootError;
      for (const w of failed) w.kill('killed: reload aborted');
      this.log.error({ err }, 'reload aborted: new workers failed to boot; the old workers keep serving');
      this.state = 'running';
      this.notifier.ready(this.statusLine());
      return false;
    }
    this.generation = generation;
    this.degraded = null;
    for (const w of old) w.retire('replaced by reload');
    this.log.info({ workers: this.desired, reloadMs: Date.now() - started }, 'reload complete: new workers serving, old workers draining');
    this.state = 'running';
    this.notifier.ready(this.statusLine());
    return true;
  }

  private beginStop(graceful: boolean): void {
    if (this.state === 'stopping') return;
    this.state = 'stopping';
    this.notifier.stopping();
    // Readiness probes fail from now on (src/worker/health.ts), during the drain window too.
    for (const w of this.workers) w.send({ type: 'readiness', ready: false, reason: 'stopping' });
    const drain = graceful && this.settings.drainSeconds > 0 ? this.drainWindow() : Promise.resolve(graceful);
    this.stopping = drain.then((stillGraceful) => this.stopWorkers(stillGraceful));
  }

  /**
   * --drain-seconds: keep every listener open and every worker serving while load balancers
   * and endpoint controllers notice the failing readiness and stop sending. Resolves false
   * when a QUIT/INT asks for a quick stop meanwhile.
   */
  private async drainWindow(): Promise<boolean> {
    const ms = this.settings.drainSeconds * 1000;
    this.log.info(
      { drainSeconds: this.settings.drainSeconds },
      `draining: readiness fails, still serving for ${this.settings.drainSeconds} s`,
    );
    let timer: NodeJS.Timeout | undefined;
    const over = new Promise<'over'>((r) => (timer = setTimeout(() => r('over'), ms)));
    let next = this.queue.next();
    try {
      for (;;) {
        const event = await Promise.race([next, over]); // next first: an event already taken from the queue is never dropped
        if (event === 'over') break;
        next = this.queue.next();
        if (event.type === 'command') event.reply({ ok: false, error: 'the server is draining before it stops' });
        else if (event.type === 'exit') this.reap(event.worker);
        else if (event.type === 'signal' && (event.signal === 'SIGINT' || event.signal === 'SIGQUIT')) {
          this.log.info({ signal: event.signal }, 'drain window cut short: stopping now');
          return false;
        }
      }
    } finally {
      clearTimeout(timer);
    }
    this.log.info('drain window over: stopping the workers');
    return true;
  }

  private async stopWorkers(graceful: boolean): Promise<void> {
    const s = this.settings;
    const all = [...this.workers].filter((w) => w.alive);
    this.log.info({ graceful, workers: all.length }, graceful ? 'stopping gracefully' : 'stopping now');
    // Stop taking connections now (as Gunicorn does): new clients are refused at once instead
    // of waiting in a backlog nobody will accept from. After an upgrade the sockets stay.
    // Before the workers are signalled: with UNIX paths unlinked nothing new can queue, and
    // each worker accepts what is queued before it closes its fd (HttpWorker.drain), so a
    // planned stop resets no queued connection.
    closeListeners(this.listeners, { unlink: !this.handedOver });
    this.listenersClosed = true;
    for (const w of all) {
      w.killReason ??= graceful ? 'server stopping' : 'server quitting';
      w.state = 'retiring';
      w.signal(graceful ? 'SIGTERM' : 'SIGQUIT');
    }
    this.control?.close();
    const waitMs = graceful ? s.gracefulTimeout * 1000 + 1000 : Math.min(s.gracefulTimeout * 1000, 5000);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), waitMs)));
    // The loop no longer runs: reap (log, childExit hook) as each worker exits.
    const done = Promise.all(all.map((w) => w.exited.then(() => this.reap(w)))).then(() => 'done' as const);
    for (;;) {
      // A second INT/QUIT during a graceful stop makes it quick, as in Gunicorn.
      const event = await Promise.race([done, deadline, this.queue.next()]);
      if (event === 'done') break;
      if (event === 'timeout') {
        for (const w of all) if (w.alive) w.kill('killed: graceful timeout');
        await done;
        break;
      }
      if (event.type === 'command') event.reply({ ok: false, error: 'the server is stopping' });
      if (event.type === 'signal' && (event.signal === 'SIGINT' || event.signal === 'SIGQUIT')) {
        this.log.info({ signal: event.signal }, 'stopping now');
        for (const w of all) w.signal('SIGQUIT');
      }
    }
    clearTimeout(timer);
  }

  private async finish(): Promise<number> {
    await this.stopping;
    if (this.timer) clearInterval(this.timer);
    await this.stopWatching?.();
    await this.metrics?.close();
    this.queue.uninstall();
    // After an upgrade the sockets (and their files) belong to the new master.
    if (!this.listenersClosed) closeListeners(this.listeners, { unlink: !this.handedOver });
    this.control?.close();
    this.pidfile?.remove();
    this.notifier.close();
    await this.hook('onExit');
    this.log.info({ code: this.exitCode }, 'stopped');
    flushLogs();
    return this.exitCode;
  }
}
