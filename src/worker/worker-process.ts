// The worker process's side of the pool: loads the app, serves on the inherited fds,
// heartbeats to the arbiter, drains or quits when told. The entry (worker.ts) reads the boot
// data, builds one Worker and hands it the process's signals and messages.
import { performance } from 'node:perf_hooks';
import { EXIT_BOOT_ERROR, type MasterMessage, type WorkerBoot, type WorkerMessage } from '../protocol.js';
import type { Settings } from '../config/settings.js';
import { errorInfo, flushLogs, reopenLogFiles, type Logger } from '../log/logger.js';
import type { AccessLog } from '../log/access.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import { runHook, type Hooks } from '../config/hooks.js';
import { loadApp, type LoadedApp } from './app.js';
import { HttpWorker } from './http-server.js';
import { currentRequest } from './request-context.js';
import { HealthResponder, serveHealthBind } from './health.js';
import { answerError } from './error-answers.js';
import { countServerErrors, serverErrorCount } from './response-counts.js';
// The config loader, the access log and metrics load only when used: a worker's boot time
// is mostly module loading (docs/performance.md).

export interface WorkerOptions {
  boot: WorkerBoot;
  log: Logger;
  /** A message to the arbiter; resolves once it is sent (at once when the channel is gone). */
  send: (msg: WorkerMessage) => Promise<void>;
  /** The last lines the app printed while loading (boot-output.ts), for the arbiter's boot report. */
  bootOutput: { lines(): string[]; stop(): void };
  /** Resolves once the --hang-stacks watchdog thread is up (at once without one): awaited before listening. */
  watchdog: Promise<void>;
}

export class Worker {
  private readonly boot: WorkerBoot;
  private readonly settings: Settings;
  private readonly log: Logger;
  private readonly send: (msg: WorkerMessage) => Promise<void>;
  private readonly bootOutput: WorkerOptions['bootOutput'];
  private readonly watchdog: Promise<void>;
  /** What hooks see of this worker. */
  private readonly view: { pid: number; index: number; id: number; generation: number; log: Logger };
  /** Hooks that run in the worker (the others run in the arbiter): see docs/hooks.md. */
  private hooks: Hooks = {};
  private access: AccessLog | undefined;
  private metrics: WorkerMetrics | undefined;
  private http: HttpWorker | null = null;
  private exiting = false;
  /** --health-path/--ready-path on the app binds, and the --health-bind server: told the pool's readiness. */
  private readonly healthResponders: HealthResponder[] = [];
  private poolReadiness = { ready: false, reason: 'booting' };
  private askedToRetire = false;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** Why the master drains us ('leaving', sent before the SIGTERM); a SIGTERM from outside is a stop. */
  private leavingWhy: 'reload' | 'recycle' | 'stop' | null = null;
  private app: LoadedApp | null = null;
  /** A rolled-back canary: it drains as after an uncaught error, taking no more work at once. */
  private leavingNow = false;
  /** The event-loop counters at the last heartbeat (utilization is reported since then). */
  private lastElu = performance.eventLoopUtilization();
  private atFdLimit = false;

  constructor(opts: WorkerOptions) {
    this.boot = opts.boot;
    this.settings = opts.boot.settings;
    this.log = opts.log;
    this.send = opts.send;
    this.bootOutput = opts.bootOutput;
    this.watchdog = opts.watchdog;
    const b = opts.boot;
    this.view = { pid: process.pid, index: b.index, id: b.id, generation: b.generation, log: opts.log };
  }

  /** Loads the app and starts serving; a failure is reported to the arbiter and ends the process. */
  async start(): Promise<void> {
    const { settings, boot, log } = this;
    try {
      if (boot.configPath) this.hooks = (await (await import('../config/load.js')).configFileLayer(boot.configPath)).hooks;
      await runHook(this.hooks, 'postFork', log, this.view);
      const app = await loadApp(settings.app!, process.cwd(), (err) => log.error({ err }, 'app error in fetch handler: answered 500'));
      this.app = app;
      if (settings.accessLogfile)
        this.access = (await import('../log/access.js')).createAccessLog(settings.accessLogfile, boot.index, settings.accessLogformat);
      if (settings.metricsBind) this.metrics = new (await import('../metrics/worker-metrics.js')).WorkerMetrics();
      const draining = () => this.exiting;
      const health = HealthResponder.fromSettings(settings, draining);
      if (health) this.healthResponders.push(health);
      const hooks = this.hooks;
      // 5xx are counted for whom they matter (a canary is compared with the old workers, the
      // metrics have them): the count costs every response about 1 % of its instructions.
      if (settings.reloadCanary > 0 || settings.metricsBind) countServerErrors();
      const http = new HttpWorker({
        settings,
        app,
        log,
        access: this.access,
        metrics: this.metrics,
        health,
        preRequest: hooks.preRequest ? (req) => this.callHookSync('preRequest', req) : undefined,
        postRequest: hooks.postRequest ? (req, res) => this.callHookSync('postRequest', req, res) : undefined,
        reportLoad: settings.balanceConnections ? (busy) => void this.send({ type: 'load', busy }) : undefined,
      });
      this.http = http;
      await runHook(hooks, 'postWorkerInit', log, this.view);
      // --health-bind: the master appends that socket after the app binds (src/arbiter/arbiter.ts).
      const appListeners = settings.healthBind ? boot.listeners.slice(0, -1) : boot.listeners;
      if (settings.healthBind) this.healthResponders.push(await serveHealthBind(settings, boot.listeners.at(-1)!.fd, draining, log));
      for (const h of this.healthResponders) h.setPoolReadiness(this.poolReadiness.ready, this.poolReadiness.reason);
      await this.watchdog;
      await http.listen(appListeners);
      if (this.exiting) {
        // A stop arrived while we were booting.
        this.drain('stopped during boot');
      } else {
        log.debug({ app: app.description }, 'worker ready');
        this.bootOutput.stop();
        void this.send({ type: 'ready', appKind: app.description });
      }
      this.startHeartbeat(http);
    } catch (err) {
      const info = errorInfo(err);
      log.error({ err: info, app: settings.app }, 'worker failed to boot: could not load the app');
      await this.send({ type: 'boot-error', error: info });
      this.exit(EXIT_BOOT_ERROR);
    }
  }

  /** A message from the arbiter. */
  onMessage(m: MasterMessage): void {
    switch (m.type) {
      case 'reopen-logs':
        reopenLogFiles();
        this.log.debug('log files reopened');
        return;
      case 'boot-report':
        void this.send({ type: 'boot-report', lines: this.bootOutput.lines() });
        return;
      case 'balance': {
        if (!this.http) return;
        const shed = this.http.acceptControl.order(m.target, m.limit);
        if (shed)
          this.log.debug({ target: m.target, shed }, "more than this worker's share of the connections: pausing accepts, closing some");
        return;
      }
      case 'readiness':
        this.poolReadiness = m; // may arrive before the app is loaded: applied to responders made later
        for (const h of this.healthResponders) h.setPoolReadiness(m.ready, m.reason);
        return;
      case 'settings':
        void this.applySettings(m.changes);
        return;
      case 'leaving':
        this.leavingWhy = m.why;
        this.leavingNow = m.now === true;
        return;
      default: {
        // Compiles only while every MasterMessage has its case above.
        const _unhandled: never = m;
        return;
      }
    }
  }

  /**
   * Graceful stop: no new connections, finish in-flight requests, then exit. `abandon` after
   * an uncaught error: stop taking work at once (HttpWorker.drain).
   */
  drain(reason: string, code = 0, abandon = false): void {
    if (this.exiting) return;
    this.exiting = true;
    void this.send({ type: 'draining', reason });
    const http = this.http;
    if (!http) {
      this.log.info({ reason }, 'worker draining');
      this.exit(code);
    }
    const deadline = setTimeout(() => {
      this.log.warn(
        { inflight: http.stats.inflight, connections: http.stats.connections },
        'graceful timeout: closing remaining connections',
      );
      http.closeAll();
      this.exit(code);
    }, this.settings.gracefulTimeout * 1000);
    // Logged once the listening sockets are closed (after the backlog is emptied): from this
    // line on, no new connection reaches us.
    this.tellAppDraining();
    const drained = http.drain(() => this.log.info({ reason, inflight: http.stats.inflight }, 'worker draining'), {
      abandon: abandon || this.leavingNow,
    });
    void drained.then(async () => {
      clearTimeout(deadline);
      this.log.info('worker stopped');
      // The final counts, so the master's exit line and totals include the last requests.
      await this.send(this.heartbeat(http));
      this.exit(code);
    });
  }

  /**
   * An app with a drain hook hears why its worker drains and the window to close its
   * WebSocket clients in (--ws-drain-seconds, kept under --graceful-timeout: the upgraded
   * connections still open at the graceful timeout are cut).
   */
  private tellAppDraining(): void {
    const drain = this.app?.drain;
    if (!drain) return;
    const windowMs = Math.min(this.settings.wsDrainSeconds * 1000, this.settings.gracefulTimeout * 800);
    const info = { reason: this.leavingWhy ?? 'stop', windowMs };
    try {
      const r = drain(info) as Promise<unknown> | undefined;
      if (r && typeof r.then === 'function')
        r.then(undefined, (err: unknown) => this.log.error({ err: errorInfo(err) }, 'app drain hook failed'));
    } catch (err) {
      this.log.error({ err: errorInfo(err) }, 'app drain hook failed');
    }
    this.log.info(info, 'app told its worker drains');
  }

  /** Quick stop (SIGINT, SIGQUIT): close everything now. */
  quit(reason: string): void {
    const http = this.http;
    if (this.exiting && !http) this.exit(0);
    this.exiting = true;
    this.callHookSync('workerInt');
    this.log.info({ reason }, 'worker quitting now');
    if (!http) this.exit(0);
    http.closeAll();
    // The final counts for the master's exit line, if the channel takes them at once.
    void Promise.race([this.send(this.heartbeat(http)), new Promise((r) => setTimeout(r, 100))]).then(() => this.exit(0));
  }

  /**
   * An uncaught exception or unhandled rejection: the request whose code threw (its timers
   * and promises carry its context), if any, is answered 500 (or its connection cut), and the
   * worker takes no more work.
   */
  onUncaught(event: 'uncaughtException' | 'unhandledRejection', err: unknown): void {
    const running = currentRequest();
    const req = running?.response?.req;
    const where =
      running?.requestId !== undefined ? { requestId: running.requestId, method: req?.method, url: req?.url?.slice(0, 200) } : {};
    this.log.fatal(
      { err: errorInfo(err), event, ...where },
      running?.response
        ? `uncaught error in a request's code: that request is answered 500; the worker takes no more work and exits once its other requests finish`
        : running?.upgraded
          ? "uncaught error in an upgraded connection's code: that connection is closed; the worker takes no more work and exits once its other requests finish"
          : running?.requestId !== undefined
            ? 'uncaught error in the code of a request already answered: the worker takes no more work and exits once its requests finish'
            : 'uncaught error outside a request: the worker takes no more work and exits once its requests finish',
    );
    if (running?.response) answerError(running.response, 500);
    else running?.upgraded?.destroy();
    void this.send({ type: 'fatal', reason: event, error: errorInfo(err) });
    this.drain(event, 1, true);
  }

  private exit(code: number): never {
    this.callHookSync('workerExit');
    this.access?.flush();
    flushLogs();
    process.exit(code);
  }

  /** For hooks on exit paths, which can't wait: a returned promise is not awaited. */
  private callHookSync(name: string, ...args: unknown[]): void {
    const fn = this.hooks[name] as ((...a: unknown[]) => unknown) | undefined;
    if (!fn) return;
    try {
      const r = fn(this.view, ...args) as Promise<unknown> | undefined;
      if (r && typeof r.then === 'function')
        r.then(undefined, (err: unknown) => this.log.error({ hook: name, err: errorInfo(err) }, `hook ${name} threw; continuing`));
    } catch (err) {
      this.log.error({ hook: name, err: errorInfo(err) }, `hook ${name} threw; continuing`);
    }
  }

  /** Heartbeats from now on (again, after `ctl set timeout`); with max-requests, the request for a replacement. */
  private startHeartbeat(http: HttpWorker): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    const heartbeatMs = Math.max(100, Math.min(1000, (this.settings.timeout * 1000) / 4 || 1000));
    this.heartbeatTimer = setInterval(() => {
      void this.send(this.heartbeat(http));
      // max-requests: the arbiter starts our replacement and retires us once it is ready,
      // so recycling drops nothing. Checked with the heartbeat: off the request path.
      const { maxRequests } = this.boot;
      if (maxRequests > 0 && !this.askedToRetire && !this.exiting && http.stats.requests >= maxRequests) {
        this.askedToRetire = true;
        this.log.info({ requests: http.stats.requests, maxRequests }, 'max requests reached: asking for a replacement');
        void this.send({ type: 'retire-me', reason: 'max-requests' });
      }
    }, heartbeatMs).unref();
  }

  /**
   * `ctl set` on the running server (src/arbiter/live-settings.ts): the settings object the
   * worker reads as it serves takes the changes; what was read once at start is redone.
   */
  private async applySettings(changes: Partial<Settings>): Promise<void> {
    Object.assign(this.settings, changes);
    if (changes.logLevel) this.log.level = changes.logLevel;
    if ('maxRequests' in changes || 'maxRequestsJitter' in changes) {
      const s = this.settings;
      this.boot.maxRequests = s.maxRequests > 0 ? s.maxRequests + Math.floor(Math.random() * (s.maxRequestsJitter + 1)) : 0;
    }
    const http = this.http;
    if (!http) return;
    if ('timeout' in changes) this.startHeartbeat(http);
    if ('accessLogfile' in changes) {
      this.access?.flush();
      const file = this.settings.accessLogfile;
      this.access = file
        ? (await import('../log/access.js')).createAccessLog(file, this.boot.index, this.settings.accessLogformat)
        : undefined;
      http.useAccessLog(this.access);
    }
    http.applySettings(changes);
    this.log.debug({ changes: Object.keys(changes) }, 'settings changed (ctl set)');
  }

  /** The heartbeat message: stats, CPU time, and the metrics snapshot when --metrics-bind is set. */
  private heartbeat(http: HttpWorker): WorkerMessage {
    const rss = this.currentRss();
    const cpu = process.cpuUsage();
    const stats = http.stats;
    const busy = this.settings.balanceConnections ? http.acceptControl.busy() : undefined;
    const elu = performance.eventLoopUtilization();
    const since = performance.eventLoopUtilization(elu, this.lastElu);
    this.lastElu = elu;
    return {
      type: 'heartbeat',
      ...stats,
      busy,
      rss,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      elu: Math.round(since.utilization * 1000) / 1000,
      serverErrors: serverErrorCount() ?? undefined,
      metrics: this.metrics?.snapshot({ ...stats, moved: http.acceptControl.shedTotal }),
    };
  }

  /** RSS now; 0 when it cannot be read. */
  private currentRss(): number {
    try {
      const rss = process.memoryUsage.rss();
      this.atFdLimit = false;
      return rss;
    } catch (err) {
      // EMFILE (it reads /proc): a missed figure, not a crash. libuv then closes the connections
      // it cannot accept without telling node, so this is where the fd limit becomes visible.
      if (!this.atFdLimit)
        this.log.warn(
          { code: (err as NodeJS.ErrnoException).code, connections: this.http?.stats.connections },
          'at the open-file limit: new connections are closed unserved; raise `ulimit -n` (LimitNOFILE=) or lower --worker-connections',
        );
      this.atFdLimit = true;
      return 0;
    }
  }
}
