// What the master says about itself: the one-line status (logs, systemd's STATUS=), the
// health the watchdog pings on, and the views `ctl status` and `ctl workers` print.
import type { LoadedConfig } from '../config/load.js';
import type { Settings } from '../config/settings.js';
import { displayValue } from '../config/display.js';
import type { Listener } from '../listeners/bind.js';
import type { Logger } from '../log/logger.js';
import { VERSION } from '../version.js';
import type { StatusView, WorkerRow } from './control.js';
import type { WorkerPool } from './pool.js';
import type { Autoscaler } from './autoscale.js';
import type { ReloadOutcome } from './reload.js';
import type { WorkerProcess } from './workers.js';

export type ArbiterState = 'booting' | 'running' | 'reloading' | 'stopping';

/** What the views read from the arbiter. */
export interface StatusSource {
  readonly state: ArbiterState;
  readonly settings: Settings;
  readonly config: LoadedConfig;
  readonly listeners: readonly Listener[];
  readonly pool: WorkerPool;
  readonly startedAt: number;
  readonly autoscaler: Autoscaler;
  readonly lastReload: ({ at: number } & ReloadOutcome) | null;
}

/** One line for `systemctl status` and logs. */
export function statusLine({ state, pool }: StatusSource): string {
  const all = pool.alive();
  const ready = all.filter((w) => w.serving && w.generation === pool.generation).length;
  const retiring = all.filter((w) => w.leaving).length;
  const booting = all.filter((w) => w.booting).length;
  if (pool.degraded && state !== 'stopping') return `degraded: ${ready}/${pool.desired} workers, boot failing: ${pool.degraded.error}`;
  return `${state}: ${ready}/${pool.desired} workers ready${booting ? `, ${booting} booting` : ''}${retiring ? `, ${retiring} draining` : ''}`;
}

/** Healthy = serving with at least one ready worker, none stuck past the timeout. */
export function isHealthy({ state, pool, settings }: StatusSource): boolean {
  if (state === 'stopping' || state === 'booting') return false;
  const now = Date.now();
  const limit = settings.timeout > 0 ? settings.timeout * 1000 : Infinity;
  return pool.ready().some((w) => now - w.lastHeartbeat <= limit);
}

export function statusView(src: StatusSource): StatusView {
  const { config, settings, pool } = src;
  const changed: Record<string, string> = {};
  for (const [name, where] of Object.entries(config.sources)) {
    if (where.origin !== 'default') changed[name] = `${displayValue(name, (settings as Record<string, unknown>)[name])} (${where.where})`;
  }
  return {
    pid: process.pid,
    version: VERSION,
    state: src.state,
    uptimeSec: Math.round((Date.now() - src.startedAt) / 1000),
    app: settings.app,
    binds: src.listeners.map((l) => l.address),
    workers: pool.desired,
    ready: pool.ready().length,
    status: statusLine(src),
    degraded: pool.degraded
      ? { bootError: pool.degraded.error, sinceSec: Math.round((Date.now() - pool.degraded.since) / 1000), failures: pool.bootFailures }
      : null,
    pool: poolView(src),
    lastReload: src.lastReload
      ? {
          agoSec: Math.round((Date.now() - src.lastReload.at) / 1000),
          outcome: src.lastReload.outcome,
          ...('reason' in src.lastReload ? { reason: src.lastReload.reason } : {}),
        }
      : null,
    settings: changed,
  };
}

function poolView({ pool, autoscaler }: StatusSource): StatusView['pool'] {
  const alive = pool.alive();
  const utilization = autoscaler.utilization();
  return {
    size: pool.desired,
    floor: pool.floor,
    ceiling: pool.ceiling,
    busyPercent: utilization === null ? null : Math.round(utilization * 100),
    cpuPercent: Math.round(alive.reduce((a, w) => a + (w.cpuPercent ?? 0), 0) * 10) / 10,
    rssMb: Math.round(alive.reduce((a, w) => a + w.stats.rss, 0) / 104857.6) / 10,
    requests: pool.servedTotal(),
    serverErrors: pool.serverErrorsTotal(),
    listenQueue: autoscaler.queued(),
  };
}

export function workerRows(pool: WorkerPool): WorkerRow[] {
  const now = Date.now();
  return pool
    .alive()
    .sort((a, b) => a.index - b.index || a.spawnedAt - b.spawnedAt)
    .map((w) => ({
      pid: w.pid,
      index: w.index,
      generation: w.generation,
      state: w.label,
      ageSec: Math.round((now - w.spawnedAt) / 1000),
      requests: w.stats.requests,
      inflight: w.stats.inflight,
      connections: w.stats.connections,
      rssMb: Math.round((w.stats.rss / 1048576) * 10) / 10,
      heartbeatMsAgo: now - w.lastHeartbeat,
      cpuPercent: w.cpuPercent === null ? null : Math.round(w.cpuPercent * 10) / 10,
      busyPercent: w.stats.elu === undefined ? null : Math.round(w.stats.elu * 100),
      serverErrors: w.stats.serverErrors ?? null,
      restarts: pool.restarts(w.index),
    }));
}

export interface HookView {
  pid: number;
  state: ArbiterState;
  settings: Settings;
  workers: ReturnType<WorkerProcess['info']>[];
  log: Logger;
}

/** What hooks get as their first argument (docs/hooks.md). */
export function hookView({ state, settings, pool }: StatusSource, log: Logger): HookView {
  return { pid: process.pid, state, settings, workers: [...pool.workers].map((w) => w.info()), log };
}
