// Load generators: autocannon straight on the UNIX socket, wrk through nginx.
import autocannon from 'autocannon';
import net from 'node:net';
import { createRequire } from 'node:module';
import { start } from './procs.js';

// autocannon 9 bug, fixed here for every engine alike: when the server closes a keep-alive
// connection after a `Connection: close` response (ws-proxy-kit does when it moves
// connections between workers, any server does when draining), autocannon has already sent
// its next request on it, reconnects, and keeps that unanswered request in its queue. From
// then on each response on that client is matched with the request before it, and every
// later latency of the client is a whole request too long (the slow shape's p99 doubled).
// Forget what the closed connection left unanswered, as autocannon's own reconnects
// (timeouts, reconnectRate) do.
const AutocannonClient = createRequire(import.meta.url)('autocannon/lib/httpClient.js') as {
  prototype: { _connect(): void; conn?: unknown; pipelinedRequests: { clear(): void } };
};
const connect = AutocannonClient.prototype._connect;
AutocannonClient.prototype._connect = function (this: typeof AutocannonClient.prototype) {
  if (this.conn) this.pipelinedRequests.clear();
  connect.call(this);
};

export type Shape = 'keepalive' | 'keepalive50' | 'churn' | 'slow' | 'spare';
/** The shapes a run measures unless --shapes names others. */
export const SHAPES: Shape[] = ['keepalive', 'keepalive50', 'churn', 'slow'];
/** Run only when named: `spare`, keep-alive with a proxy pool larger than the load needs. */
export const EXTRA_SHAPES: Shape[] = ['spare'];

/**
 * Connections and path per shape (same numbers on both paths). `pool`: through nginx, the
 * connections of the unmeasured warm-up that opens nginx's upstream pool, when more than
 * the measured load uses. `spare` is a proxy at a quarter of its pool's peak: nginx reuses
 * its most recently used connections, and the other 48 sit idle in its pool.
 */
export const SHAPE_LOAD: Record<Shape, { connections: number; path: string; closeEach: boolean; pool?: number }> = {
  keepalive: { connections: 64, path: '/', closeEach: false },
  // A client pool that does not divide evenly among 2 workers' accept races: where
  // connection balancing has to decide whether to act.
  keepalive50: { connections: 50, path: '/', closeEach: false },
  churn: { connections: 32, path: '/', closeEach: true },
  slow: { connections: 256, path: '/slow', closeEach: false },
  spare: { connections: 16, path: '/', closeEach: false, pool: 64 },
};

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  requests: number;
}

/** Straight on the socket: autocannon, except churn (autocannon counts every server close as an error). */
export async function autocannonLoad(socketPath: string, shape: Shape, durationS: number): Promise<LoadResult> {
  const load = SHAPE_LOAD[shape];
  if (load.closeEach) return churnLoad(socketPath, load.connections, load.path, durationS);
  const result = await autocannon({
    url: `http://localhost${load.path}`,
    socketPath,
    connections: load.connections,
    duration: durationS,
    headers: load.closeEach ? { connection: 'close' } : {},
    timeout: 10,
  });
  return {
    rps: result.requests.total / durationS,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    requests: result.requests.total,
  };
}

/** wrk (one thread per core) against nginx; churn goes to nginx's server without upstream keepalive. */
export async function wrkLoad(
  url: string,
  shape: Shape,
  durationS: number,
  threads: number,
  connections = SHAPE_LOAD[shape].connections,
): Promise<LoadResult> {
  const load = SHAPE_LOAD[shape];
  const p = start('wrk', 'wrk', [
    `-t${threads}`,
    `-c${connections}`,
    `-d${durationS}s`,
    '--timeout',
    '10s',
    '--latency',
    `${url}${load.path}`,
  ]);
  await p.exited;
  if (p.child.exitCode !== 0) throw new Error(`wrk failed (exit ${p.child.exitCode}):\n${p.text}`);
  return parseWrk(p.text, durationS);
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n;
}

export function parseWrk(text: string, durationS: number): LoadResult {
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    return m ? toMs(m[1]!, m[2]!) : NaN;
  };
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(text);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const requests = total ? Number(total[1]) : 0;
  const seconds = total ? toMs(total[2]!, total[3]!) / 1000 : durationS;
  // wrk counts a peer closing an idle keep-alive connection as a read error; those are not failed requests,
  // but we report them: behind nginx there should be none.
  const errors = (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  return { rps: requests / seconds, p50: pct('50'), p99: pct('99'), errors, requests };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN;
}

/**
 * What nginx/proxy-params.conf (the site of `ws-proxy-kit init`) sets on every proxied request,
 * spelled as nginx sends them (as the proxy_set_header lines write them; values as nginx would
 * fill them in).
 */
export const PROXY_HEADERS: Record<string, string> = {
  'X-Forwarded-For': '203.0.113.7',
  'X-Real-IP': '203.0.113.7',
  'X-Forwarded-Proto': 'https',
  'X-Forwarded-Host': 'example.com',
  'X-Forwarded-Port': '443',
  'X-Request-Id': '5f0c6e2b9a4d4c1e8f3a7b6d2c1e0f9a',
};

/**
 * Connection churn: `concurrency` loops, each opening a connection, sending one request with
 * `Connection: close`, reading the response to the server's close, and starting over, for
 * durationS seconds or until maxRequests have been sent. Latency is from connect() to the
 * response's last byte. `asNginx`: the request nginx sends upstream without keepalive
 * (HTTP/1.0, the init site's fields), instead of a bare HTTP/1.1 one.
 */
export function churnLoad(
  socketPath: string,
  concurrency: number,
  path: string,
  durationS: number,
  maxRequests = Infinity,
  asNginx = false,
): Promise<LoadResult> {
  const request = asNginx
    ? `GET ${path} HTTP/1.0\r\nHost: example.com\r\n${Object.entries(PROXY_HEADERS)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}Connection: close\r\n\r\n`
    : `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`;
  const latencies: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  const end = t0 + durationS * 1000;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const started = performance.now();
      const sock = net.connect(socketPath);
      let head = '';
      sock.setEncoding('latin1');
      sock.on('connect', () => sock.write(request));
      sock.on('data', (d: string) => {
        if (head.length < 16) head += d;
      });
      sock.setTimeout(10_000, () => sock.destroy(new Error('timeout')));
      sock.on('error', () => {});
      sock.on('close', (hadError) => {
        if (!hadError && head.startsWith('HTTP/1.1 200')) latencies.push(performance.now() - started);
        else errors++;
        resolve();
      });
    });
  let sent = 0;
  const loop = async () => {
    while (performance.now() < end && sent++ < maxRequests) await one();
  };
  return Promise.all(Array.from({ length: concurrency }, loop)).then(() => {
    const seconds = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    return {
      rps: latencies.length / seconds,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      errors,
      requests: latencies.length,
    };
  });
}
