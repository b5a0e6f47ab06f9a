// Health endpoints and drain-aware shutdown (src/worker/health.ts, --drain-seconds): a client
// that keeps opening new connections through the whole stop sees successes and a failing
// readiness during the drain window, then refused connections — and never a reset, even for
// connections the kernel had queued in the backlog when the stop came.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { startServer, request, tempDir, cleanup, FIXTURES, until, freePort } from './helpers/server.js';

test.after.each(cleanup);
const APP = join(FIXTURES, 'app.mjs');

/** An app whose /busy?ms= blocks the event loop, so connections pile up in the backlog. */
function busyApp(): string {
  const file = join(tempDir(), 'busy.mjs');
  writeFileSync(
    file,
    `export default function (req, res) {
  const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 0);
  const end = Date.now() + ms;
  while (Date.now() < end) {}
  res.end('ok ' + process.pid + '\\n');
}\n`,
  );
  return file;
}

type Outcome = { startedAt: number; endedAt: number; kind: 'ok' | 'status' | 'refused' | 'reset' | 'other'; detail: string };

/** Keeps opening one new connection per request until stopped; records every outcome. */
function keepConnecting(socketPath: string, path: string, concurrency: number) {
  const outcomes: Outcome[] = [];
  let stopped = false;
  const one = () =>
    new Promise<void>((resolve) => {
      const startedAt = Date.now();
      const done = (kind: Outcome['kind'], detail: string) => {
        outcomes.push({ startedAt, endedAt: Date.now(), kind, detail });
        resolve();
      };
      const req = http.get({ socketPath, path, agent: false, headers: { host: 'x' } }, (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode === 200 ? 'ok' : 'status', String(res.statusCode)));
        res.on('error', (err: NodeJS.ErrnoException) => done('reset', err.code ?? err.message));
      });
      req.setTimeout(30_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? err.message;
        // Refused = the server said no before any byte: the path is gone or nobody listens.
        if (code === 'ENOENT' || code === 'ECONNREFUSED') done('refused', code);
        else if (code === 'ECONNRESET' || code === 'EPIPE' || /socket hang up/.test(err.message)) done('reset', code);
        else done('other', code);
      });
    });
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopped) {
      await one();
      // Once refused, pace the loop: the server is gone, a tight loop only burns CPU.
      if (outcomes.at(-1)?.kind === 'refused') await new Promise((r) => setTimeout(r, 20));
    }
  });
  return {
    outcomes,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

function count(outcomes: Outcome[], kind: Outcome['kind']): number {
  return outcomes.filter((o) => o.kind === kind).length;
}

test('health and readiness paths are answered by the worker before the app; off by default', async () => {
  const sock = join(tempDir(), 'app.sock');
  const plain = startServer([APP, '-b', `unix:${sock}`]);
  await plain.ready();
  // Off by default: the app gets /ready (the fixture answers 200 "hello"-style, not "ready").
  const appAnswer = await request({ socketPath: sock }, '/ready');
  assert.not.match(appAnswer.body, /^ready/);
  await plain.stop();

  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2', '--health-path', '/healthz', '--ready-path', '/readyz']);
  await server.ready();
  const live = await request({ socketPath: sock }, '/healthz');
  assert.is(live.status, 200);
  assert.is(live.body, 'ok\n');
  // The arbiter's readiness message reaches the workers right after the "ready" line.
  await until(async () => (await request({ socketPath: sock }, '/readyz?probe=1')).status === 200, 10_000, 'readiness 200');
  const post = await request({ socketPath: sock }, '/readyz', { method: 'POST', body: 'x' });
  assert.is.not(post.body, 'ready\n', 'only GET/HEAD are health requests; others go to the app');
  await server.stop();
});

test('--health-bind serves only the health paths on a separate address the master binds', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const port = await freePort();
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2', '--health-bind', `127.0.0.1:${port}`]);
  await server.ready();
  const target = { host: '127.0.0.1', port };
  assert.is((await request(target, '/health')).status, 200);
  await until(async () => (await request(target, '/ready')).status === 200, 10_000, 'readiness 200 on the health bind');
  assert.is((await request(target, '/')).status, 404, 'the app is not served on the health bind');
  // The app bind does not answer the health paths unless asked to.
  assert.is.not((await request({ socketPath: sock }, '/ready')).body, 'ready\n');
  await server.stop();
});

test('SIGTERM with --drain-seconds: serving and 503 on /ready during the window, then refused; nothing reset', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const server = startServer([
    busyApp(),
    '-b',
    `unix:${sock}`,
    '-w',
    '2',
    '--drain-seconds',
    '2',
    '--ready-path',
    '/ready',
    '--health-path',
    '/health',
    '--graceful-timeout',
    '10',
  ]);
  await server.ready();
  await until(async () => (await request({ socketPath: sock }, '/ready')).status === 200, 10_000, 'ready');
  const client = keepConnecting(sock, '/?ms=2', 6);
  await until(() => count(client.outcomes, 'ok') >= 20, 20_000, 'load running');

  const termAt = Date.now();
  server.signal('SIGTERM');
  const readyDuringDrain = await until(
    async () => {
      const r = await request({ socketPath: sock }, '/ready');
      return r.status === 503 ? r : null;
    },
    10_000,
    '/ready to answer 503',
  );
  assert.match(readyDuringDrain!.body, /not ready/);
  assert.is((await request({ socketPath: sock }, '/health')).status, 200, 'still alive while draining');
  const overLine = await server.waitForMsg(/^drain window over/, 20_000);
  const overAt = Date.parse(String(overLine.time));
  const exit = await server.exited;
  assert.is(exit.code, 0);
  const exitedAt = Date.now();
  // Keep connecting a while after the exit: those must be refused (the path is gone), not reset.
  await until(
    () => client.outcomes.filter((o) => o.startedAt > exitedAt && o.kind === 'refused').length >= 6,
    10_000,
    'refusals after the stop',
  );
  await client.stop();

  const o = client.outcomes;
  const inWindow = o.filter((x) => x.startedAt > termAt + 200 && x.endedAt < overAt - 200);
  const after = o.filter((x) => x.startedAt > exitedAt);
  const summary = {
    total: o.length,
    ok: count(o, 'ok'),
    refused: count(o, 'refused'),
    reset: count(o, 'reset'),
    other: count(o, 'other'),
    status: count(o, 'status'),
    okInWindow: count(inWindow, 'ok'),
  };
  console.log('drain window:', JSON.stringify(summary));
  assert.is(summary.reset, 0, `connections reset: ${JSON.stringify(o.filter((x) => x.kind === 'reset').slice(0, 5))}`);
  assert.is(summary.other, 0, JSON.stringify(o.filter((x) => x.kind === 'other').slice(0, 5)));
  assert.is(summary.status, 0);
  assert.ok(
    inWindow.length > 0 && inWindow.every((x) => x.kind === 'ok'),
    `requests in the drain window all succeed: ${JSON.stringify(inWindow.filter((x) => x.kind !== 'ok').slice(0, 5))}`,
  );
  assert.ok(after.length > 0 && after.every((x) => x.kind === 'refused'), 'after the stop: refused');
});

test('a planned stop resets no connection queued in the backlog (busy workers, many connecting clients)', async () => {
  const sock = join(tempDir(), 'app.sock');
  // One worker whose event loop is busy 20 ms per request, 24 clients: ~23 connections wait
  // in the kernel's queue at any moment, including the moment the stop comes.
  const server = startServer([busyApp(), '-b', `unix:${sock}`, '-w', '1', '--graceful-timeout', '20']);
  await server.ready();
  const client = keepConnecting(sock, '/?ms=20', 24);
  await until(() => count(client.outcomes, 'ok') >= 30, 30_000, 'load running');
  const termAt = Date.now();
  server.signal('SIGTERM');
  const exit = await server.exited;
  assert.is(exit.code, 0);
  const exitedAt = Date.now();
  await until(() => client.outcomes.filter((o) => o.startedAt > exitedAt).length >= 6, 10_000, 'attempts after the stop');
  await client.stop();
  const o = client.outcomes;
  // Connections opened before the TERM and answered after it: they were queued or in progress when the stop came.
  const queuedAtStop = o.filter((x) => x.startedAt < termAt && x.endedAt > termAt && x.kind === 'ok').length;
  const summary = {
    total: o.length,
    ok: count(o, 'ok'),
    refused: count(o, 'refused'),
    reset: count(o, 'reset'),
    other: count(o, 'other'),
    queuedAtStopServed: queuedAtStop,
  };
  console.log('backlog at stop:', JSON.stringify(summary));
  assert.ok(queuedAtStop >= 2, `connections were waiting when the stop came (${queuedAtStop})`);
  assert.is(summary.reset, 0, `connections reset: ${JSON.stringify(o.filter((x) => x.kind === 'reset').slice(0, 5))}`);
  assert.is(summary.other, 0, JSON.stringify(o.filter((x) => x.kind === 'other').slice(0, 5)));
});

test.run();
