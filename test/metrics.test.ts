// Prometheus metrics (--metrics-bind) against the real CLI: counters match the requests made,
// survive worker deaths, and restarts are counted by reason.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { restartReason } from '../src/metrics/master-metrics.js';
import { startServer, request, tempDir, cleanup, until, freePort, isAlive, FIXTURES, type ServerProcess } from './helpers/server.js';

test.after.each(cleanup);

type Samples = Map<string, number>;

/** Parses the Prometheus text format into `name{a="1",b="2"}` (labels sorted) → value. */
function parseMetrics(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels = m[2] ? [...m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort() : [];
    out.set(labels.length ? `${m[1]}{${labels.join(',')}}` : m[1]!, Number(m[3]));
  }
  return out;
}

/** Samples of one metric, keyed by their label text. */
function series(s: Samples, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of s) {
    if (k === name) out[''] = v;
    else if (k.startsWith(`${name}{`)) out[k.slice(name.length + 1, -1)] = v;
  }
  return out;
}

async function scrape(port: number): Promise<Samples> {
  const r = await request({ port }, '/metrics');
  assert.is(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return parseMetrics(r.body);
}

/** Scrapes until pred holds (workers report about once a second), with a deadline. */
async function scrapeUntil(port: number, pred: (s: Samples) => boolean, timeoutMs: number, what: string): Promise<Samples> {
  let last: Samples = new Map();
  await until(async () => pred((last = await scrape(port))), timeoutMs, what);
  return last;
}

const total = (s: Samples) => Object.values(series(s, 'http_requests_total')).reduce((a, b) => a + b, 0);

async function startWithMetrics(extra: string[] = []): Promise<{ server: ServerProcess; sock: string; port: number }> {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const port = await freePort();
  const server = startServer([join(FIXTURES, 'app.mjs'), '-b', `unix:${sock}`, '-w', '2', '--metrics-bind', `127.0.0.1:${port}`, ...extra]);
  await server.ready();
  return { server, sock, port };
}

test('counters match the requests made; histogram count equals requests; pool gauges', async () => {
  const { server, sock, port } = await startWithMetrics();
  const before = await scrape(port);
  assert.is(total(before), 0);
  assert.is(before.get('http_request_duration_seconds_count'), 0, 'the families are listed before any request');
  const t = { socketPath: sock };
  const plan: [method: string, path: string, times: number][] = [
    ['GET', '/', 6],
    ['POST', '/upload', 3],
    ['HEAD', '/', 2],
    ['POST', '/throw', 2],
    ['GET', `/${'x'.repeat(5000)}`, 1], // over --limit-request-line: 414
    ['PROPFIND', '/', 2],
    ['DELETE', '/', 1],
  ];
  for (const [method, path, times] of plan) {
    for (let i = 0; i < times; i++) await request(t, path, { method, ...(method === 'POST' ? { body: 'data' } : {}) });
  }
  const made = plan.reduce((n, p) => n + p[2], 0);
  // Workers report with their heartbeat (about once a second): poll with a deadline.
  const s = await scrapeUntil(port, (x) => total(x) === made, 15_000, `http_requests_total to reach ${made}`);
  assert.equal(series(s, 'http_requests_total'), {
    'method="GET",status_class="2xx"': 6,
    'method="POST",status_class="2xx"': 3,
    'method="HEAD",status_class="2xx"': 2,
    'method="POST",status_class="5xx"': 2,
    'method="GET",status_class="4xx"': 1,
    'method="OTHER",status_class="2xx"': 2,
    'method="DELETE",status_class="2xx"': 1,
  });
  assert.is(s.get('http_request_duration_seconds_count'), made);
  assert.is(s.get('http_request_duration_seconds_bucket{le="+Inf"}'), made);
  assert.ok(s.get('http_request_duration_seconds_sum')! > 0);
  assert.is(s.get('http_requests_in_flight'), 0);
  assert.is(s.get('ws_proxy_kit_workers{state="ready"}'), 2);
  const busy = series(s, 'ws_proxy_kit_worker_busy');
  assert.is(Object.keys(busy).length, 2, 'one busy/idle series per worker');
  assert.ok(
    Object.values(busy).every((v) => v === 0),
    'idle after the requests',
  );
  assert.is(Object.keys(series(s, 'ws_proxy_kit_worker_heartbeat_age_seconds')).length, 2);
  assert.ok(Object.values(series(s, 'ws_proxy_kit_worker_resident_memory_bytes')).every((v) => v > 1e6));
  assert.ok(Object.values(series(s, 'ws_proxy_kit_worker_cpu_seconds_total')).every((v) => v > 0));
  assert.ok(s.get('process_resident_memory_bytes')! > 1e6, 'master process metrics');
  // Not a metrics path; not a scrape method.
  assert.is((await request({ port }, '/nope')).status, 404);
  assert.is((await request({ port }, '/metrics', { method: 'POST' })).status, 405);
  await server.stop();
});

test('a killed worker: totals do not go down; restarts counted as crash', async () => {
  const { server, sock, port } = await startWithMetrics();
  for (let i = 0; i < 10; i++) await request({ socketPath: sock }, '/');
  const s1 = await scrapeUntil(port, (x) => total(x) === 10, 15_000, 'the 10 requests to be reported');
  const pids = Object.keys(series(s1, 'ws_proxy_kit_worker_busy')).map((k) => Number(/pid="(\d+)"/.exec(k)![1]));
  const victim = pids[0]!;
  process.kill(victim, 'SIGKILL');
  await until(() => !isAlive(victim), 10_000, 'the worker to die');
  const s2 = await scrapeUntil(
    port,
    (x) => x.get('ws_proxy_kit_worker_restarts_total{reason="crash"}') === 1,
    15_000,
    'the crash to be counted',
  );
  assert.is(total(s2), 10, "the dead worker's requests are still counted");
  assert.is(s2.get('http_request_duration_seconds_count'), 10);
  assert.ok(
    !Object.keys(series(s2, 'ws_proxy_kit_worker_busy')).some((k) => k.includes(`pid="${victim}"`)),
    'the dead worker has no series',
  );
  // Its replacement serves; the totals keep growing from where they were.
  await server.waitForMsg(
    /worker spawned/,
    10_000,
    server.logs.findIndex((l) => l.msg === 'worker exited unexpectedly'),
  );
  for (let i = 0; i < 4; i++) await request({ socketPath: sock }, '/');
  const s3 = await scrapeUntil(port, (x) => total(x) === 14, 15_000, 'the 4 more requests to be reported');
  for (const reason of ['timeout', 'max-requests', 'memory', 'reload', 'boot-failure', 'manual', 'other'])
    assert.is(s3.get(`ws_proxy_kit_worker_restarts_total{reason="${reason}"}`), 0, reason);
  await server.stop();
});

test("max-requests recycling: counted as max-requests; the retired worker's last requests are kept", async () => {
  const { server, sock, port } = await startWithMetrics(['--max-requests', '5', '--max-requests-jitter', '0']);
  for (let i = 0; i < 12; i++) await request({ socketPath: sock }, '/');
  const s = await scrapeUntil(
    port,
    (x) => (x.get('ws_proxy_kit_worker_restarts_total{reason="max-requests"}') ?? 0) >= 1 && total(x) === 12,
    20_000,
    'a max-requests restart and all 12 requests counted',
  );
  assert.is(s.get('ws_proxy_kit_worker_restarts_total{reason="crash"}'), 0);
  assert.is(s.get('http_request_duration_seconds_count'), 12);
  await server.stop();
});

test("restart reasons from the arbiter's exit descriptions (WorkerProcess.describeExit)", () => {
  const table: [string, string | null][] = [
    ['crashed', 'crash'],
    ['uncaught error', 'crash'],
    ['exited', 'crash'],
    ['killed by SIGKILL', 'crash'],
    ['killed: timeout', 'timeout'],
    ['max requests reached', 'max-requests'],
    ['memory: RSS 600 MB above --max-worker-memory 512', 'memory'],
    ['replaced by reload', 'reload'],
    ['killed: reload aborted', 'reload'],
    ['failed to boot', 'boot-failure'],
    ['killed: boot timeout', 'boot-failure'],
    ['server stopping', null],
    ['server quitting', null],
    ['killed: graceful timeout', null],
    ['pool shrunk (TTOU)', null],
    ['stopped by WINCH', null],
    ['stopped by ctl', 'manual'],
    ['something new', 'other'],
  ];
  for (const [description, reason] of table) assert.is(restartReason(description), reason, description);
});

test('--metrics-bind refuses what it cannot serve, with a sentence', async () => {
  const dir = tempDir();
  const bad = startServer([join(FIXTURES, 'app.mjs'), '-b', `unix:${join(dir, 'a.sock')}`, '--metrics-bind', 'fd://3']);
  const { code } = await bad.exited;
  assert.is.not(code, 0);
  assert.match(bad.stderrText, /metrics endpoint takes HOST:PORT or unix:PATH/);
});

test.run();
