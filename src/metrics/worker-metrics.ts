// Request metrics kept by a worker (only when --metrics-bind is set), sent to the master
// with each heartbeat. The request path only bumps numbers in typed arrays (~10 ns); the
// prom-client JSON shape is built once per heartbeat. prom-client's own Counter.inc /
// Histogram.observe cost ~1 µs per request (they hash label objects): measured, see
// docs/operations.md. The master aggregates the snapshots with prom-client.

/** One sample, as in prom-client's JSON: histograms name their _bucket/_sum/_count samples. */
export interface SnapshotValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** One metric, as in prom-client's JSON (`type` is the text-format type name). */
export interface SnapshotMetric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum';
  values: SnapshotValue[];
}

/** What a worker sends: the same shape as prom-client's `registry.getMetricsAsJSON()`. */
export type MetricsSnapshot = SnapshotMetric[];

/** Methods counted by name; anything else (WebDAV, custom verbs) is counted as OTHER. */
export const KNOWN_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'] as const;
const METHOD_LABELS = [...KNOWN_METHODS, 'OTHER'];
const OTHER = KNOWN_METHODS.length;
const METHOD_INDEX: Record<string, number> = Object.assign(
  Object.create(null) as Record<string, number>,
  Object.fromEntries(KNOWN_METHODS.map((m, i) => [m, i])),
);
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'];

/** Upper bounds of http_request_duration_seconds (prom-client's default buckets). */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BUCKETS_MS = DURATION_BUCKETS.map((s) => s * 1000);

export const WORKER_METRIC_NAMES = {
  requests: 'http_requests_total',
  duration: 'http_request_duration_seconds',
  inflight: 'http_requests_in_flight',
  connections: 'http_open_connections',
  moved: 'ws_proxy_kit_connections_moved_total',
} as const;

export class WorkerMetrics {
  /** Request counts by [method][status class], flattened. */
  private readonly requests = new Float64Array(METHOD_LABELS.length * STATUS_CLASSES.length);
  /** Non-cumulative bucket counts; the last cell is +Inf. */
  private readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  private durationSumMs = 0;
  private count = 0;

  /** Called once per finished (or aborted) response. */
  observe(method: string | undefined, status: number, durationMs: number): void {
    const m = (method === undefined ? undefined : METHOD_INDEX[method]) ?? OTHER;
    let c = ((status / 100) | 0) - 1;
    if (c < 0 || c > 4) c = 4; // node refuses statuses outside 100-999; 6xx-9xx are odd server answers
    this.requests[m * 5 + c]!++;
    let b = 0;
    while (b < BUCKETS_MS.length && durationMs > BUCKETS_MS[b]!) b++;
    this.buckets[b]!++;
    this.durationSumMs += durationMs;
    this.count++;
  }

  /** The heartbeat payload: cumulative counters since this worker started, plus its gauges. */
  snapshot(gauges: { inflight: number; connections: number; moved?: number }): MetricsSnapshot {
    const requestValues: SnapshotValue[] = [];
    for (let m = 0; m < METHOD_LABELS.length; m++) {
      for (let c = 0; c < STATUS_CLASSES.length; c++) {
        const n = this.requests[m * 5 + c]!;
        if (n > 0) requestValues.push({ value: n, labels: { method: METHOD_LABELS[m]!, status_class: STATUS_CLASSES[c]! } });
      }
    }
    const durationValues: SnapshotValue[] = [];
    let cumulative = 0;
    for (let b = 0; b < DURATION_BUCKETS.length; b++) {
      cumulative += this.buckets[b]!;
      durationValues.push({
        metricName: `${WORKER_METRIC_NAMES.duration}_bucket`,
        value: cumulative,
        labels: { le: DURATION_BUCKETS[b]! },
      });
    }
    durationValues.push(
      { metricName: `${WORKER_METRIC_NAMES.duration}_bucket`, value: this.count, labels: { le: '+Inf' } },
      { metricName: `${WORKER_METRIC_NAMES.duration}_sum`, value: this.durationSumMs / 1000, labels: {} },
      { metricName: `${WORKER_METRIC_NAMES.duration}_count`, value: this.count, labels: {} },
    );
    return [
      {
        name: WORKER_METRIC_NAMES.requests,
        help: 'HTTP requests answered, by method and status class.',
        type: 'counter',
        aggregator: 'sum',
        values: requestValues,
      },
      {
        name: WORKER_METRIC_NAMES.duration,
        help: 'Time from request headers to the end of the response, in seconds.',
        type: 'histogram',
        aggregator: 'sum',
        values: durationValues,
      },
      {
        name: WORKER_METRIC_NAMES.inflight,
        help: 'Requests being handled now, all workers.',
        type: 'gauge',
        aggregator: 'sum',
        values: [{ value: gauges.inflight, labels: {} }],
      },
      {
        name: WORKER_METRIC_NAMES.connections,
        help: 'Open client connections, all workers.',
        type: 'gauge',
        aggregator: 'sum',
        values: [{ value: gauges.connections, labels: {} }],
      },
      {
        name: WORKER_METRIC_NAMES.moved,
        help: 'Keep-alive connections closed after an answer to move them to another worker (--balance-connections).',
        type: 'counter',
        aggregator: 'sum',
        values: [{ value: gauges.moved ?? 0, labels: {} }],
      },
    ];
  }
}
