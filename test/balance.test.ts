// --balance-connections: the workers' open keep-alive connections stay even, measured with
// a client that keeps its connections open like nginx's upstream pool.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import http from 'node:http';
import { AcceptControl } from '../src/worker/accept-control.js';
import { Balancer, overShare, CALM_MS, MAX_SETTLE_MS, ORDER_INTERVAL_MS, SETTLE_MS } from '../src/arbiter/balance.js';
import { startServer, request, tempDir, cleanup, onCleanup, until, FIXTURES, type Target } from './helpers/server.js';
import { RawConnection } from './helpers/raw-socket.js';

test.after.each(cleanup);
const APP = join(FIXTURES, 'app.mjs');

test('overShare: who holds more than the mean + 10 % (and + 2; + 1 under a mean of 4), and the share to come down to', () => {
  const share = (counts: number[]) => {
    const { standing: _, ...rest } = overShare(counts);
    return rest;
  };
  assert.equal(share([]), { target: 0, limit: 0, over: [] });
  assert.equal(share([50]), { target: 0, limit: 0, over: [] });
  assert.equal(share([40, 0]), { target: 20, limit: 22, over: [0] });
  assert.equal(share([0, 40]), { target: 20, limit: 22, over: [1] });
  assert.equal(share([23, 17]), { target: 20, limit: 22, over: [0] });
  assert.equal(share([22, 18]), { target: 20, limit: 22, over: [] }, 'within mean + 2');
  assert.equal(share([3, 1]), { target: 2, limit: 3, over: [] }, 'nearly even small pools are left alone');
  assert.equal(share([4, 4, 0]), { target: 3, limit: 3, over: [0, 1] }, 'a worker just added gets some of a few busy connections');
  assert.equal(share([3, 0]), { target: 2, limit: 2, over: [0] });
  assert.equal(share([30, 30, 0]), { target: 20, limit: 22, over: [0, 1] });
  assert.equal(share([300, 290, 310]), { target: 300, limit: 330, over: [] }, 'within mean + 10 %');
  assert.equal(share([340, 290, 270]), { target: 300, limit: 330, over: [0] });
  // Standing: further over than three standard deviations of a random placement.
  assert.is(overShare([31, 19]).standing, 25 + 3 * 5, 'a walk of 50 connections stays under 40');
  assert.is(overShare([40, 0]).standing, 20 + 3 * Math.sqrt(20));
  assert.is(overShare([3, 0]).standing, 1.5 + 3 * Math.sqrt(1.5));
  // Whatever the counts, the least loaded worker is never told to stop accepting.
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 2000; i++) {
    const counts = Array.from({ length: 2 + Math.floor(rand() * 6) }, () => Math.floor(rand() * 200));
    const { over } = overShare(counts);
    const least = counts.indexOf(Math.min(...counts));
    assert.not.ok(over.includes(least), `counts ${counts.join(',')}`);
    assert.ok(over.length < counts.length);
  }
});

test('Balancer: a worker is told only once it stayed over its share for SETTLE_MS, then at most every ORDER_INTERVAL_MS', () => {
  let now = 1000;
  const worker = (connections: number) => ({
    stats: { busy: connections },
    orders: [] as number[],
    send(m: { target: number; limit: number }) {
      this.orders.push(m.target);
    },
  });
  const a = worker(40);
  const b = worker(0);
  const balancer = new Balancer(
    () => [a, b],
    () => now,
  );
  balancer.run();
  assert.equal(a.orders, [], 'not during a burst');
  now += SETTLE_MS - 1;
  balancer.run();
  assert.equal(a.orders, []);
  now += 1;
  balancer.run();
  assert.equal(a.orders, [20]);
  assert.equal(b.orders, []);
  now += ORDER_INTERVAL_MS - 1;
  balancer.run();
  assert.equal(a.orders, [20], 'not again so soon');
  now += 1;
  balancer.run();
  assert.equal(a.orders, [20, 20]);
  // Back within its share: the settle time starts over the next time it is over.
  a.stats.busy = 21;
  b.stats.busy = 19;
  now += 1000;
  balancer.run();
  a.stats.busy = 30;
  b.stats.busy = 10;
  balancer.run();
  assert.equal(a.orders, [20, 20]);
  now += SETTLE_MS;
  balancer.run();
  assert.equal(a.orders, [20, 20, 20]);
});

test('Balancer: counts that walk at random (orders that reverse) are left alone longer, up to MAX_SETTLE_MS; a calm period starts over', () => {
  let now = 1000;
  const worker = () => ({
    stats: { busy: 25 },
    orders: 0,
    send() {
      this.orders++;
    },
  });
  const a = worker();
  const b = worker();
  const balancer = new Balancer(
    () => [a, b],
    () => now,
  );
  /** `over` holds 31 against 19 from now on; how long until it is told. */
  const timeToOrder = (over: typeof a): number => {
    const under = over === a ? b : a;
    a.stats.busy = b.stats.busy = 25; // even first: the time over starts now
    balancer.run();
    over.stats.busy = 31;
    under.stats.busy = 19;
    const before = over.orders;
    const start = now;
    for (;;) {
      balancer.run();
      if (over.orders > before) return now - start;
      now += 10;
      assert.ok(now - start <= MAX_SETTLE_MS + ORDER_INTERVAL_MS, 'told in the end');
    }
  };
  assert.is(timeToOrder(a), SETTLE_MS, 'the first imbalance: told after SETTLE_MS');
  now += 1000;
  assert.is(timeToOrder(b), 2 * SETTLE_MS, 'a reversal: twice as long');
  now += 1000;
  assert.is(timeToOrder(a), 4 * SETTLE_MS);
  now += 1000;
  assert.is(timeToOrder(a), 4 * SETTLE_MS, 'the same worker again (the move fell short): no longer');
  for (let i = 0; i < 10; i++) {
    now += 1000;
    timeToOrder(i % 2 === 0 ? b : a);
  }
  now += 1000;
  assert.is(timeToOrder(b), MAX_SETTLE_MS, 'never longer than MAX_SETTLE_MS');
  // A burst that lands on one worker is further over than a walk goes: moved at once.
  now += 1000;
  a.stats.busy = b.stats.busy = 25;
  balancer.run();
  a.stats.busy = 50;
  b.stats.busy = 0;
  const before = a.orders;
  const start = now;
  while (a.orders === before) {
    balancer.run();
    now += 10;
  }
  assert.is(now - 10 - start, SETTLE_MS, 'a standing imbalance (50/0) waits SETTLE_MS only');
  now += CALM_MS;
  assert.is(timeToOrder(a), SETTLE_MS, 'after a calm period, an imbalance is news again');
});

/**
 * Keep-alive connections used in turns, like a proxy's upstream pool: a connection the
 * server closes with `Connection: close` is replaced by a new one. Any other close, or a
 * request left unanswered, fails the test.
 */
class Pool {
  private conns: RawConnection[] = [];
  closedByServer = 0;

  constructor(
    private readonly target: Target,
    size: number,
  ) {
    for (let i = 0; i < size; i++) this.conns.push(new RawConnection(target));
  }

  close(): void {
    for (const c of this.conns) c.destroy();
  }

  /** The pool's connections the server has not closed. */
  open(): number {
    return this.conns.filter((c) => !c.closed).length;
  }

  /** One request on every connection; resolves with how many each worker (pid) answered. */
  async round(): Promise<Map<number, number>> {
    const pids = await Promise.all(this.conns.map((_, i) => this.get(i)));
    const by = new Map<number, number>();
    for (const pid of pids) by.set(pid, (by.get(pid) ?? 0) + 1);
    return by;
  }

  private async get(i: number): Promise<number> {
    const c = await this.conns[i]!.ready();
    const from = c.text.length;
    await c.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    const reply = await nextReply(c, from);
    const pid = Number(/\r\n\r\nok (\d+)\n/.exec(reply)![1]);
    if (/\r\nconnection: close\r\n/i.test(reply)) {
      assert.ok(await c.waitClosed(5000), 'closed after Connection: close');
      this.closedByServer++;
      this.conns[i] = new RawConnection(this.target);
    } else {
      assert.not.ok(c.closed, 'a keep-alive connection was closed without Connection: close');
    }
    return pid;
  }
}

/** The whole 200 response that arrives on c after offset `from`. */
async function nextReply(c: RawConnection, from: number, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reply = c.text.slice(from);
    if (/^HTTP\/1\.1 200 [^]*?\r\n\r\nok \d+\n/.test(reply)) return reply;
    if (c.closed) throw new Error(`closed before a reply: ${JSON.stringify(reply)}`);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no reply in ${timeoutMs} ms: ${JSON.stringify(reply)}`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      c.sock.once('data', () => (clearTimeout(timer), resolve()));
      void c.closedAt.then(() => (clearTimeout(timer), resolve()));
    });
  }
}

/**
 * One worker serving `size` keep-alive connections (and `idle` more that served one request
 * each), then a second worker (SIGTTIN), ready; metrics on a socket in `dir`.
 */
async function scaledUpPool(args: string[], size = 24, idle = 0) {
  const dir = tempDir();
  const sock = join(dir, 'b.sock');
  const server = startServer([
    APP,
    '-b',
    `unix:${sock}`,
    '-w',
    '1',
    '--keep-alive',
    '60',
    '--log-level',
    'debug',
    '--metrics-bind',
    `unix:${join(dir, 'metrics.sock')}`,
    ...args,
  ]);
  await server.ready();
  const idlePool = new Pool({ socketPath: sock }, idle);
  if (idle) await idlePool.round();
  const pool = new Pool({ socketPath: sock }, size);
  const first = await pool.round();
  assert.equal([...first.values()], [size], `one worker serves all ${size} connections`);
  server.signal('SIGTTIN');
  await until(() => server.logs.filter((l) => l.msg === 'worker ready').length === 2, 15_000, 'the second worker ready');
  return { server, pool, idlePool, dir };
}

/** One sample of the Prometheus text on a UNIX socket. */
async function metric(sock: string, name: string): Promise<number | undefined> {
  const r = await request({ socketPath: sock }, '/metrics');
  const line = r.body.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/**
 * Rounds until both workers answer at least `min` of the pool's requests, then: no worker
 * more than `max`, and 10 more rounds close at most `closedAfter` connections (settled).
 * Returns how many the server had closed when the spread was reached.
 */
async function spreadsAndSettles(pool: Pool, what: string, min: number, max: number, closedAfter: number): Promise<number> {
  const spread = await until(
    async () => {
      const by = await pool.round();
      return by.size === 2 && Math.min(...by.values()) >= min ? by : null;
    },
    15_000,
    what,
  );
  assert.ok(spread && Math.max(...spread.values()) <= max, `split ${[...spread!.values()].join('/')}`);
  const closed = pool.closedByServer;
  for (let i = 0; i < 10; i++) await pool.round();
  assert.ok(pool.closedByServer - closed <= closedAfter, `closed after settling: ${pool.closedByServer - closed}`);
  return closed;
}

test('after a scale-up, keep-alive connections move to the new worker until both hold about half', async () => {
  const { server, pool, dir } = await scaledUpPool([]);
  const moved = await spreadsAndSettles(pool, 'the 24 connections spread over both workers', 10, 14, 2);
  assert.ok(moved >= 10, `connections closed to move them: ${moved}`);
  // Every move is counted (the workers report with their heartbeat, once a second).
  const counted = await until(
    async () => ((await metric(join(dir, 'metrics.sock'), 'ws_proxy_kit_connections_moved_total')) === pool.closedByServer ? true : null),
    10_000,
    'the moves counted in the metrics',
  );
  assert.ok(counted);
  pool.close();
  await server.stop();
});

test("idle connections do not count (a proxy pool's spares): the busy ones spread, the idle ones stay open", async () => {
  // As behind nginx: its upstream pool holds more connections than it uses at once, and it
  // reuses the most recently used first. 16 spares on the first worker are not its load.
  const { server, pool, idlePool } = await scaledUpPool([], 8, 16);
  // Counting open connections, 24 against 0, the first worker would have closed all 8 busy
  // ones (it never sees a request on the idle ones), and moved every request away.
  await spreadsAndSettles(pool, 'the 8 busy connections spread over both workers', 3, 5, 1);
  const last = await pool.round();
  assert.ok(Math.min(...last.values()) >= 3 && last.size === 2, `requests per worker ${[...last.values()].join('/')}`);
  assert.is(idlePool.open(), 16, 'the idle connections are left alone');
  pool.close();
  idlePool.close();
  await server.stop();
});

test('--no-balance-connections: the connections stay where they were accepted', async () => {
  const { server, pool } = await scaledUpPool(['--no-balance-connections']);
  // Long enough for the master's heartbeats to act, if it would (one a second).
  const deadline = Date.now() + 2500;
  let by = new Map<number, number>();
  while (Date.now() < deadline) by = await pool.round();
  assert.equal([...by.values()], [24]);
  assert.is(pool.closedByServer, 0);
  pool.close();
  await server.stop();
});

/**
 * A plain node:http server that offers each request to `control.shed`, as HttpWorker does,
 * then answers with `answer`. Records the requests it ran.
 */
async function shedServer(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void, shedMinAgeMs = 0) {
  const control = new AcceptControl(0, { shedMinAgeMs });
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (control.closeNext !== 0) control.shed(req, res);
    answer(req, res);
  });
  const sock = join(tempDir(), 'shed.sock');
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  onCleanup(() => void server.close());
  return { control, seen, sock };
}

test('a shed connection: `Connection: close`, then FIN; a request sent after it is never run and the client sees no reset', async () => {
  const { control, seen, sock } = await shedServer((_req, res) => res.end('done'));
  const c = await new RawConnection({ socketPath: sock }).ready();
  await c.write('GET /first HTTP/1.1\r\nHost: a\r\n\r\n');
  await c.waitFor(/done$/);
  control.closeNext = 1;
  // Like a load generator: the next request goes out as soon as the answer is in, in the
  // same 'data' event, before the FIN that follows is read.
  c.sock.on('data', () => {
    if (/done[^]*done$/.test(c.text) && !c.text.includes('POST'))
      c.sock.write('POST /third HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n');
  });
  await c.write('GET /second HTTP/1.1\r\nHost: a\r\n\r\n');
  await c.waitFor(/done[^]*done$/);
  assert.match(c.text.slice(c.text.indexOf('HTTP/1.1', 10)), /\r\nConnection: close\r\n/i);
  assert.is(control.closeNext, 0);
  assert.ok(await c.waitClosed(5000), 'the server closes the connection');
  assert.is(c.error, null, 'no reset or broken pipe on the client');
  assert.equal(seen, ['GET /first', 'GET /second'], 'the request sent after Connection: close was never run');
  assert.equal(c.statuses(), [200, 200]);
});

test('a connection opened less than SHED_MIN_AGE_MS ago is not closed to move it; a later response on it is', async () => {
  const { control, seen, sock } = await shedServer((_req, res) => res.end('done'), 300);
  control.closeNext = 1;
  const c = await new RawConnection({ socketPath: sock }).ready();
  const opened = performance.now();
  await c.write('GET /young HTTP/1.1\r\nHost: a\r\n\r\n');
  await c.waitFor(/done$/);
  assert.not.match(c.text, /connection: close/i, 'a new connection stays open');
  assert.is(control.closeNext, 1, 'the close waits for an older connection');
  await until(() => performance.now() - opened > 320 || null, 2000, 'the connection to age');
  await c.write('GET /old HTTP/1.1\r\nHost: a\r\n\r\n');
  await c.waitFor(/done[^]*done$/);
  assert.match(c.text.slice(c.text.lastIndexOf('HTTP/1.1 ')), /connection: close/i);
  assert.ok(await c.waitClosed(5000));
  assert.is(control.closeNext, 0);
  assert.equal(seen, ['GET /young', 'GET /old']);
});

test('a request with another pipelined behind it does not close the connection (both are answered); a later one does', async () => {
  // The second request is parsed while the first waits for its answer.
  const { control, seen, sock } = await shedServer((req, res) => setTimeout(() => res.end(`done ${req.url}`), 20));
  control.closeNext = 1;
  const c = await new RawConnection({ socketPath: sock }).ready();
  await c.write('GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n');
  await c.waitFor(/done \/a[^]*done \/b$/);
  assert.equal(c.statuses(), [200, 200]);
  assert.not.match(c.text, /connection: close/i, 'not closed with a request behind it');
  assert.is(control.closeNext, 1, 'the close waits for a later request');
  await c.write('GET /c HTTP/1.1\r\nHost: a\r\n\r\n');
  await c.waitFor(/done \/c$/);
  assert.match(c.text.slice(c.text.lastIndexOf('HTTP/1.1 ')), /connection: close/i);
  assert.ok(await c.waitClosed(5000));
  assert.is(c.error, null);
  assert.is(control.closeNext, 0);
  assert.equal(seen, ['GET /a', 'POST /b', 'GET /c']);
});

test.run();
