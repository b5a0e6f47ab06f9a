// The master's Prometheus endpoint (--metrics-bind). Workers put a snapshot of their
// counters in each heartbeat (worker-metrics.ts); a scrape aggregates the last ones with
// prom-client's AggregatorRegistry and adds what only the master knows (pool, restarts,
// heartbeat ages, per-worker RSS/CPU, listen queues, its own process metrics). A scrape
// never asks a worker anything, so a busy or hung worker cannot block it.
import http from 'node:http';
import net from 'node:net';
import { statSync, unlinkSync } from 'node:fs';
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { parseBind, type BindSpec } from '../listeners/bind-spec.js';
import type { Logger } from '../log/logger.js';
import { WorkerMetrics, type MetricsSnapshot } from './worker-metrics.js';
import { readQueueDepths } from '../listeners/queue-depth.js';

/** What the collector reads from a live worker (WorkerProcess fits). */
export interface MetricsWorkerView {
  readonly pid: number;
  readonly index: number;
  readonly state: string;
  readonly lastHeartbeat: number;
  readonly alive: boolean;
  readonly stats: { inflight: number; rss: number; cpuSeconds?: number; elu?: number };
}

/** A listening socket of ours (Listener fits). */
export interface MetricsListenerView {
  readonly fd: number;
  readonly address: string;
}

export const RESTART_REASONS = ['crash', 'timeout', 'max-requests', 'memory', 'reload', 'boot-failure', 'manual', 'other'] as const;
export type RestartReason = (typeof RESTART_REASONS)[number];

/**
 * Maps a worker's exit (WorkerProcess.describeExit(): its killReason, else what happened)
 * to a restart reason; null when the exit is not a restart (the server or pool is stopping).
 */
export function restartReason(exitDescription: string): RestartReason | null {
  const d = exitDescription;
  if (
    d === 'server stopping' ||
    d === 'server quitting' ||
    d === 'killed: graceful timeout' ||
    d === 'stopped by WINCH' ||
    d.startsWith('pool shrunk')
  )
    return null;
  if (d === 'killed: timeout') return 'timeout';
  if (d === 'killed: boot timeout' || d === 'failed to boot') return 'boot-failure';
  if (d === 'max requests reached' || d === 'recycled') return 'max-requests';
  if (d.startsWith('memory')) return 'memory';
  if (d === 'replaced by reload' || d === 'killed: reload aborted' || d === 'reload rolled back') return 'reload';
  if (d.endsWith('by ctl')) return 'manual'; // `ws-proxy-kit ctl worker kill PID`
  if (d === 'crashed' || d === 'uncaught error' || d === 'exited' || d.startsWith('killed by ')) return 'crash';
  return 'other';
}

export interface MasterMetricsOptions {
  /** The --metrics-bind value: HOST:PORT or unix:PATH (validated by the settings table). */
  bind: string;
  log: Logger;
  workers: () => Iterable<MetricsWorkerView>;
  listeners: () => readonly MetricsListenerView[];
  /** Replacements keep failing to boot: the pool serves with fewer workers than asked. */
  degraded: () => boolean;
  /** The pool's size now, its floor and ceiling, and its mean event-loop utilization (null before any report). */
  poolSize: () => { size: number; floor: number; ceiling: number; utilization: number | null };
}

export class MasterMetrics {
  /** Last snapshot of each live worker. */
  private readonly live = new Map<object, MetricsSnapshot>();
  /** Counters and histograms of exited workers, so totals never go down when one dies. */
  private graveyard: MetricsSnapshot[] = [];
  private readonly exited = new WeakSet<object>();
  /** Zeros: the worker metric families are listed even before the first heartbeat. */
  private readonly baseline = new WorkerMetrics().snapshot({ inflight: 0, connections: 0 });
  private readonly registry = new Registry();
  private readonly restarts: Counter<'reason'>;
  private readonly rollbacks: Counter<'cause'>;
  private server: http.Server | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private createdSocket: string | null = null;
  private closed = false;
  private readonly bind: BindSpec;

  constructor(private readonly opts: MasterMetricsOptions) {
    this.bind = parseBind(opts.bind);
    const registers = [this.registry];
    const workers = () => [...opts.workers()].filter((w) => w.alive);
    const perWorker = (w: MetricsWorkerView) => ({ worker: w.index, pid: w.pid });
    this.restarts = new Counter({
      name: 'ws_proxy_kit_worker_restarts_total',
      help: 'Workers replaced, by reason.',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of RESTART_REASONS) this.restarts.inc({ reason }, 0);
    this.rollbacks = new Counter({
      name: 'ws_proxy_kit_reload_rollbacks_total',
      help: 'Reloads rolled back because their canary (--reload-canary) exited, hung or answered 5xx too often, by cause.',
      labelNames: ['cause'],
      registers,
    });
    for (const cause of ['exited', 'hung', 'errors']) this.rollbacks.inc({ cause }, 0);
    new Gauge({
      name: 'ws_proxy_kit_workers',
      help: 'Live workers by state.',
      labelNames: ['state'],
      registers,
      collect() {
        const counts: Record<string, number> = { booting: 0, ready: 0, retiring: 0 };
        for (const w of workers()) counts[w.state] = (counts[w.state] ?? 0) + 1;
        this.reset();
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'ws_proxy_kit_worker_busy',
      help: '1 when the worker had requests in flight at its last heartbeat, else 0 (idle).',
      labelNames: ['worker', 'pid'],
      registers,
      collect() {
        this.reset();
        for (const w of workers()) this.set(perWorker(w), w.stats.inflight > 0 ? 1 : 0);
      },
    });
    new Gauge({
      name: 'ws_proxy_kit_worker_heartbeat_age_seconds',
      help: 'Seconds since the worker last reported.',
      labelNames: ['worker', 'pid'],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const w of workers()) this.set(perWorker(w), (now - w.lastHeartbeat) / 1000);
      },
    });
    new Gauge({
      name: 'ws_proxy_kit_worker_resident_memory_bytes',
      help: 'Resident memory of the worker at its last heartbeat.',
      labelNames: ['worker', 'pid'],
      registers,
      collect() {
        this.reset();
        for (const w of workers()) this.set(perWorker(w), w.stats.rss);
      },
    });
    new Counter({
      name: 'ws_proxy_kit_worker_cpu_seconds_total',
      help: 'CPU time (user + system) the worker used, at its last heartbeat.',
      labelNames: ['worker', 'pid'],
      registers,
      collect() {
        this.reset();
        for (const w of workers()) this.inc(perWorker(w), w.stats.cpuSeconds ?? 0);
      },
    });
    new Gauge({
      name: 'ws_proxy_kit_listen_queue_depth',
      help: 'Connections waiting in the listen queue of each bind (TCP from /proc/net/tcp, UNIX through ss; absent when unknown).',
      labelNames: ['listener'],
      registers,
      async collect() {
        this.reset();
        for (const q of await readQueueDepths(opts.listeners())) if (q.queued !== null) this.set({ listener: q.address }, q.queued);
      },
    });
    new Gauge({
      name: 'ws_proxy_kit_worker_event_loop_utilization',
      help: "Share of the last heartbeat interval the worker's event loop spent running code (0 to 1): how busy it is.",
      labelNames: ['worker', 'pid'],
      registers,
      collect() {
        this.reset();
        for (const w of workers()) if (w.stats.elu !== undefined) this.set(perWorker(w), w.stats.elu);
      },
    });
    new Gauge({
      name: 'ws_proxy_kit_pool_busy_ratio',
      help: 'Mean event-loop utilization of the ready workers (0 to 1); over 0.75 for 2 s grows an adaptive pool (--max-workers).',
      registers,
      collect() {
        const u = opts.poolSize().utilization;
        if (u !== null) this.set(u);
      },
    });
    new Gauge({
      name: 'ws_proxy_kit_pool_workers',
      help: 'Workers the pool is sized to now ("size"), its floor (--workers, moved by TTIN/TTOU) and its ceiling (--max-workers).',
      labelNames: ['bound'],
      registers,
      collect() {
        const p = opts.poolSize();
        this.set({ bound: 'size' }, p.size);
        this.set({ bound: 'floor' }, p.floor);
        this.set({ bound: 'ceiling' }, p.ceiling);
      },
    });
    new Gauge({
      name: 'ws_proxy_kit_pool_degraded',
      help: '1 while replacement workers keep failing to boot and the pool serves with fewer workers than asked (ctl status says why), else 0.',
      registers,
      collect() {
        this.set(opts.degraded() ? 1 : 0);
      },
    });
    // process_* and nodejs_* describe the master process itself.
    collectDefaultMetrics({ register: this.registry });
  }

  /** From the arbiter's heartbeat handler: the worker's latest snapshot. */
  heartbeat(worker: object, snapshot: MetricsSnapshot | undefined): void {
    if (snapshot && !this.exited.has(worker)) this.live.set(worker, snapshot);
  }

  /** A canary reload was rolled back (src/arbiter/canary.ts), for this cause. */
  reloadRolledBack(cause: string): void {
    this.rollbacks.inc({ cause });
  }

  /** From the arbiter's reap(): keeps the worker's totals and counts the restart. */
  workerExited(worker: object, exitDescription: string): void {
    this.exited.add(worker);
    const last = this.live.get(worker);
    this.live.delete(worker);
    if (last) this.graveyard.push(last.filter((m) => m.type === 'counter' || m.type === 'histogram'));
    const reason = restartReason(exitDescription);
    if (reason) this.restarts.inc({ reason });
  }

  /** The Prometheus text exposition of everything. */
  async render(): Promise<string> {
    await this.compactGraveyard();
    const workers = AggregatorRegistry.aggregate<typeof Registry.PROMETHEUS_CONTENT_TYPE>([
      this.baseline,
      ...this.live.values(),
      ...this.graveyard,
    ]);
    return Registry.merge([workers, this.registry]).metrics();
  }

  /** Folds exited workers' snapshots into one, so a long-lived master stays small. */
  private async compactGraveyard(): Promise<void> {
    const n = this.graveyard.length;
    if (n < 2) return;
    const merged = (await AggregatorRegistry.aggregate(this.graveyard.slice(0, n)).getMetricsAsJSON()) as unknown as MetricsSnapshot;
    // Scrapes running meanwhile saw the uncompacted entries; swap in one step.
    this.graveyard.splice(0, n, merged);
  }

  /**
   * Starts serving. When the address is taken and `retryWhileBusy` (a USR2 upgrade: the old
   * master still has it), retries every second until it is free; otherwise throws.
   */
  async listen(retryWhileBusy: boolean): Promise<void> {
    try {
      await this.tryListen();
    } catch (err) {
      if (!retryWhileBusy || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      this.opts.log.warn({ metricsBind: this.bind.text }, 'metrics address busy (the old master still has it): retrying until it is free');
      this.retryTimer = setInterval(() => {
        this.tryListen().then(
          () => {
            if (this.retryTimer) clearInterval(this.retryTimer);
            this.retryTimer = null;
          },
          () => {},
        );
      }, 1000);
      this.retryTimer.unref();
    }
  }

  private async tryListen(): Promise<void> {
    if (this.closed || this.server) return;
    const spec = this.bind;
    if (spec.kind === 'unix') await removeStaleSocket(spec.path);
    const server = http.createServer((req, res) => this.serve(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE')
          reject(
            Object.assign(
              new Error(`--metrics-bind ${spec.text}: the address is in use. Pick a free address, or stop what listens there.`),
              { code: err.code, exitCode: 1 },
            ),
          );
        else
          reject(
            Object.assign(new Error(`--metrics-bind ${spec.text}: cannot listen (${err.code ?? err.message}).`), {
              code: err.code,
              exitCode: 1,
            }),
          );
      });
      if (spec.kind === 'unix') server.listen(spec.path, resolve);
      else if (spec.kind === 'tcp') server.listen(spec.port, spec.host, resolve);
      else reject(new Error(`--metrics-bind ${spec.text}: takes HOST:PORT or unix:PATH`));
    });
    if (this.closed) {
      server.close();
      return;
    }
    server.on('error', (err) => this.opts.log.error({ err }, 'metrics server error'));
    if (spec.kind === 'unix') this.createdSocket = spec.path;
    this.server = server;
    const address = server.address();
    this.opts.log.info(
      { metrics: typeof address === 'string' ? `unix:${address}` : `${address?.address}:${address?.port}` },
      'serving metrics',
    );
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('Method Not Allowed\n');
      return;
    }
    if (path !== '/metrics' && path !== '/') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found: metrics are at /metrics\n');
      return;
    }
    this.render().then(
      (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: unknown) => {
        this.opts.log.error({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable; see the server log\n');
      },
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearInterval(this.retryTimer);
    const server = this.server;
    this.server = null;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    if (this.createdSocket) {
      try {
        unlinkSync(this.createdSocket);
      } catch {
        // already gone
      }
    }
  }
}

/** A socket file left by a dead process is removed; one something still answers on is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    if (!statSync(path).isSocket())
      throw Object.assign(new Error(`--metrics-bind unix:${path}: the path exists and is not a socket; remove it or pick another path.`), {
        exitCode: 1,
      });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const answering = await new Promise<boolean>((resolve) => {
    const sock = net.connect(path);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
  if (answering)
    throw Object.assign(new Error(`--metrics-bind unix:${path}: another process serves on this socket.`), {
      code: 'EADDRINUSE',
      exitCode: 1,
    });
  unlinkSync(path);
}
