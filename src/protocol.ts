// The small typed protocol between the arbiter and its workers. Neither side imports the
// other's modules; they share only these types. Each side handles the other's messages in
// a `switch` whose default is `exhaustive(m)`: a new message type fails to compile until
// it is handled there.
import type { Settings } from './config/settings.js';
import type { MetricsSnapshot } from './metrics/worker-metrics.js';

/** Handed to a worker at spawn time (JSON in an environment variable). */
export interface WorkerBoot {
  id: number;
  index: number;
  generation: number;
  /** The inherited listening sockets: fd numbers in the worker and their display address. */
  listeners: { fd: number; address: string; unix: boolean }[];
  /** The socketpair end the watchdog thread serves (src/worker/watchdog.ts); null without --hang-stacks. */
  watchdogFd: number | null;
  settings: Settings;
  configPath: string | null;
  /** 'json' or 'pretty', resolved by the master (workers' stderr is the master's). */
  logFormat: 'json' | 'pretty';
  /** Requests after which this worker asks to be replaced (max-requests + jitter); 0 = never. */
  maxRequests: number;
}

/** Master → worker. */
export type MasterMessage =
  | { type: 'reopen-logs' }
  /**
   * Readiness as the pool sees it (src/worker/health.ts): ready once the whole first pool
   * is booted; not ready from the moment a stop begins (the drain window, --drain-seconds).
   */
  | { type: 'readiness'; ready: boolean; reason: string }
  /** The boot timeout ran out: what did the app print while loading? */
  | { type: 'boot-report' }
  /**
   * --balance-connections: this worker holds more than `limit` busy connections (more than
   * its share); if it still does, pause accepting and close keep-alive connections until it
   * is down to `target`.
   */
  | { type: 'balance'; target: number; limit: number }
  /**
   * Sent right before the SIGTERM that drains the worker: why (the app's drain hook hears it;
   * WebSocket clients are closed with 1012 on a reload or recycle, 1001 on a stop).
   */
  | {
      type: 'leaving';
      why: 'reload' | 'recycle' | 'stop';
      /** Take no more work at once (a rolled-back canary): no queued connection, idle ones closed. */
      now?: boolean;
    }
  /** `ctl set`: settings changed on the running server; the worker applies what it can live. */
  | { type: 'settings'; changes: Partial<Settings> };

export const BOOT_ENV = 'WS_PROXY_KIT_INTERNAL_BOOT';

export interface ErrorInfo {
  message: string;
  stack?: string;
  code?: string;
}

export interface WorkerStats {
  requests: number;
  inflight: number;
  connections: number;
  /** --balance-connections: connections with a request within the last second, and upgraded ones. */
  busy?: number;
  rss: number;
  /** CPU time used by the worker (user + system), in seconds. */
  cpuSeconds?: number;
  /** Event-loop utilization since the previous heartbeat, 0..1: how busy the worker is. */
  elu?: number;
  /** 5xx answers so far. */
  serverErrors?: number;
}

export type WorkerMessage =
  | { type: 'ready'; appKind: string }
  | { type: 'boot-error'; error: ErrorInfo }
  /** `metrics` only when --metrics-bind is set (src/metrics/). */
  | ({ type: 'heartbeat'; metrics?: MetricsSnapshot } & WorkerStats)
  | { type: 'fatal'; reason: 'uncaughtException' | 'unhandledRejection'; error: ErrorInfo }
  /**
   * It stops accepting and finishes its requests (SIGTERM, SIGHUP, an uncaught error). Unless
   * the master asked for it, the master starts its replacement at once.
   */
  | { type: 'draining'; reason: string }
  /** Asks the arbiter for a replacement; the worker keeps serving until it is retired. */
  | { type: 'retire-me'; reason: 'max-requests' }
  /** The last lines the app wrote to stdout/stderr while booting. */
  | { type: 'boot-report'; lines: string[] }
  /** --balance-connections: the busy-connection count, sent as it changes (every 50 ms at most). */
  | { type: 'load'; busy: number };

/**
 * The default of an exhaustive `switch` over a message union: `m` has type `never` only when
 * every variant is handled. At run time (a message this side does not know) it is ignored.
 */
export function exhaustive(m: never): void {
  void m;
}

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}

/** Worker exit codes the arbiter understands. */
export const EXIT_BOOT_ERROR = 3;
