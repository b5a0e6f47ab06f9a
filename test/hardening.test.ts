// Hostile clients over real sockets: malformed and ambiguous requests, exact limits, slow
// clients, connection caps, the fd limit, backpressure. After each, the worker still serves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  startServer,
  request,
  tempDir,
  cleanup,
  onCleanup,
  until,
  isAlive,
  ServerProcess,
  CLI,
  FIXTURES,
  type Target,
  followProcess,
} from './helpers/server.js';
import { RawConnection, sendRaw } from './helpers/raw-socket.js';

test.after.each(cleanup);

const APP = join(FIXTURES, 'hardening-app.mjs');

async function serve(args: string[]): Promise<{ server: ServerProcess; target: Target }> {
  const sock = join(tempDir(), 'h.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, ...args]);
  await server.ready();
  return { server, target: { socketPath: sock } };
}

/** How many requests the (single) worker's app has seen so far. */
async function appSeen(target: Target): Promise<number> {
  return Number((await request(target, '/seen')).body);
}

async function assertStillServing(server: ServerProcess, target: Target): Promise<void> {
  const r = await request(target, '/');
  assert.equal(r.status, 200);
  assert.ok(isAlive(server.pid), 'master alive');
  assert.equal(server.workerPids().length, 1, 'no worker was replaced');
  assert.not.ok(
    server.logs.some((l) => l.msg === 'worker exited unexpectedly' || l.level === 60),
    'no worker crash in the log',
  );
}

const h = (lines: string[], body = ''): string => lines.join('\r\n') + '\r\n\r\n' + body;

// [name, raw request, expected status] — each must be answered and closed; the app never sees it.
const REFUSED: [string, string, number][] = [
  // gaps node:http leaves, closed by request-checks.ts
  ['repeated Host', h(['GET / HTTP/1.1', 'Host: a', 'Host: b']), 400],
  ['repeated Host, other case', h(['GET / HTTP/1.1', 'Host: a', 'host: a']), 400],
  ['repeated Content-Type', h(['POST / HTTP/1.1', 'Host: a', 'Content-Type: a/b', 'Content-Type: c/d', 'Content-Length: 0']), 400],
  ['repeated Authorization', h(['GET / HTTP/1.1', 'Host: a', 'Authorization: a', 'Authorization: b']), 400],
  ['Transfer-Encoding in HTTP/1.0', h(['POST /body HTTP/1.0', 'Host: a', 'Transfer-Encoding: chunked'], '1\r\nx\r\n0\r\n\r\n'), 400],
  ['gzip, chunked transfer coding', h(['POST /body HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip, chunked'], '0\r\n\r\n'), 501],
  ['empty Transfer-Encoding', h(['POST /body HTTP/1.1', 'Host: a', 'Transfer-Encoding:']), 400],
  ['asterisk-form with GET', h(['GET * HTTP/1.1', 'Host: a']), 400],
  ['absolute-form, Host disagrees', h(['GET http://b/x HTTP/1.1', 'Host: a']), 400],
  ['absolute-form, not http(s)', h(['GET ftp://a/x HTTP/1.1', 'Host: a']), 400],
  ['absolute-form with userinfo', h(['GET http://u@a/x HTTP/1.1', 'Host: a']), 400],
  ['fragment in the target', h(['GET /a#b HTTP/1.1', 'Host: a']), 400],
  ['invalid Host', h(['GET / HTTP/1.1', 'Host: a b']), 400],
  ['Host with userinfo', h(['GET / HTTP/1.1', 'Host: u@a']), 400],
  ['Host with a bad port', h(['GET / HTTP/1.1', 'Host: a:8x']), 400],
  ['HTTP/2.0 request line', h(['GET / HTTP/2.0', 'Host: a']), 505],
  ['HTTP/0.9 request line', 'GET /\r\n\r\n', 505],
  // node:http refuses these itself; we map its error codes to the right status
  ['HTTP/1.2', h(['GET / HTTP/1.2', 'Host: a']), 505],
  ['HTTP/3.0', h(['GET / HTTP/3.0', 'Host: a']), 505],
  ['HTTP/2 connection preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 505],
  ['HTTP/1.x', h(['GET / HTTP/1.x', 'Host: a']), 400],
  ['unknown method', h(['FOO / HTTP/1.1', 'Host: a']), 501],
  ['binary garbage (TLS hello)', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + 'x'.repeat(40), 400],
  ['HTTP/1.1 without Host', h(['GET / HTTP/1.1']), 400],
  ['duplicate Content-Length', h(['POST /body HTTP/1.1', 'Host: a', 'Content-Length: 1', 'Content-Length: 1'], 'x'), 400],
  ['Content-Length list', h(['POST /body HTTP/1.1', 'Host: a', 'Content-Length: 1, 1'], 'x'), 400],
  [
    'Content-Length with Transfer-Encoding',
    h(['POST /body HTTP/1.1', 'Host: a', 'Content-Length: 3', 'Transfer-Encoding: chunked'], '0\r\n\r\n'),
    400,
  ],
  ['gzip transfer coding', h(['POST /body HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip'], 'abc'), 501],
  ['chunked applied twice', h(['POST /body HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked, chunked'], '0\r\n\r\n'), 400],
  ['authority-form with GET', h(['GET example.com:80 HTTP/1.1', 'Host: a']), 400],
  ['obsolete line folding', h(['GET / HTTP/1.1', 'Host: a', 'X-A: b', ' c']), 400],
  ['bare LF line ends', 'GET / HTTP/1.1\nHost: a\n\n', 400],
  ['bare CR in a value', h(['GET / HTTP/1.1', 'Host: a', 'X-A: b\rc']), 400],
  ['NUL in a value', h(['GET / HTTP/1.1', 'Host: a', 'X-A: b\x00c']), 400],
  ['invalid header name', h(['GET / HTTP/1.1', 'Host: a', 'X(A): b']), 400],
  ['space before the colon', h(['GET / HTTP/1.1', 'Host : a']), 400],
  ['whitespace before the first field', h(['GET / HTTP/1.1', ' Host: a']), 400],
  ['space in the target', h(['GET /a b HTTP/1.1', 'Host: a']), 400],
];

// Framing errors inside a chunked body: node has handed the request head to the app by then.
// The client still gets 400 and a closed connection; the app's body stream is aborted.
const BODY_ERRORS: [string, string, number][] = [
  ['bad chunk size', h(['POST /body HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], 'zz\r\nx\r\n0\r\n\r\n'), 400],
  ['chunk size overflow', h(['POST /body HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], 'ffffffffffffffffff\r\nx\r\n0\r\n\r\n'), 400],
  ['bare LF after a chunk size', h(['POST /body HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], '1\nx\n0\n\n'), 400],
  [
    'Content-Length in the trailers',
    h(['POST /body HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], '1\r\nx\r\n0\r\nContent-Length: 5\r\n\r\n'),
    400,
  ],
];

test('malformed and ambiguous requests: the right 4xx/5xx, connection closed, app never called, worker keeps serving', async () => {
  const { server, target } = await serve([]);
  const before = await appSeen(target);
  const wrong: string[] = [];
  for (const [name, raw, status] of REFUSED) {
    const r = await sendRaw(target, raw);
    if (r.status !== status || !r.closed) wrong.push(`${name}: got ${r.status} closed=${r.closed}, want ${status} closed`);
  }
  assert.equal(wrong, []);
  assert.equal(await appSeen(target), before + 1, 'the app saw none of the refused requests');
  await assertStillServing(server, target);
});

test('framing errors inside a chunked body: 400, connection closed, the app never answers, worker keeps serving', async () => {
  const { server, target } = await serve([]);
  const wrong: string[] = [];
  for (const [name, raw, status] of BODY_ERRORS) {
    const r = await sendRaw(target, raw);
    if (r.status !== status || !r.closed || r.text.includes('"bytes"'))
      wrong.push(`${name}: got ${r.status} closed=${r.closed} ${JSON.stringify(r.text.slice(0, 80))}`);
  }
  assert.equal(wrong, []);
  await assertStillServing(server, target);
});

test('upgrade requests get the same checks before the upgrade handler of the app', async () => {
  const sock = join(tempDir(), 'u.sock');
  const server = startServer([`${APP}:withUpgrade`, '-b', `unix:${sock}`]);
  await server.ready();
  const target = { socketPath: sock };
  const upgrade = (extra: string[]) => h(['GET /ws HTTP/1.1', 'Host: a', ...extra, 'Connection: Upgrade', 'Upgrade: test']);
  const bad = await sendRaw(target, upgrade(['Host: b']));
  assert.equal([bad.status, bad.closed], [400, true]);
  assert.not.match(bad.text, /upgraded/);
  const good = await sendRaw(target, upgrade([]));
  assert.equal(good.status, 101);
  assert.match(good.text, /upgraded$/);
  await assertStillServing(server, target);
});

test('CONNECT is closed without reaching the app', async () => {
  const { server, target } = await serve([]);
  const before = await appSeen(target);
  const r = await sendRaw(target, h(['CONNECT a:443 HTTP/1.1', 'Host: a:443']));
  assert.ok(r.closed);
  assert.equal(await appSeen(target), before + 1);
  await assertStillServing(server, target);
});

test('forbidden trailer fields are dropped before the app reads them, allowed ones pass', async () => {
  const { server, target } = await serve([]);
  const bad = await sendRaw(
    target,
    h(['POST /body HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], '1\r\nx\r\n0\r\nHost: evil\r\nX-Sum: 1\r\n\r\n'),
  );
  assert.equal(bad.status, 200);
  const body = JSON.parse(bad.text.split('\r\n\r\n')[1]!) as { bytes: number; trailers: Record<string, string>; host: string };
  assert.equal(
    body,
    { bytes: 1, trailers: { 'x-sum': '1' }, trailersDistinct: { 'x-sum': ['1'] }, rawTrailers: ['X-Sum', '1'], host: 'a' },
    'every view of the trailers agrees',
  );
  assert.ok(bad.closed, 'a client sending forbidden trailers gets no more requests on that connection');
  const good = await sendRaw(
    target,
    h(['POST /body HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Trailer: X-Sum'], '3\r\nabc\r\n0\r\nX-Sum: 3\r\n\r\n'),
  );
  assert.equal(good.status, 200);
  assert.match(good.text, /"trailers":\{"x-sum":"3"\},"trailersDistinct":\{"x-sum":\["3"\]\}/);
  assert.not.ok(good.closed, 'a valid chunked request keeps the connection');
  await assertStillServing(server, target);
});

test('valid edge cases: pipelining, Expect: 100-continue, OPTIONS *, absolute-form, HTTP/1.0 without Host', async () => {
  const { server, target } = await serve([]);
  const pipe = await new RawConnection(target).ready();
  await pipe.write(
    h(['GET /1 HTTP/1.1', 'Host: a']) +
      h(['POST /body HTTP/1.1', 'Host: a', 'Content-Length: 3'], 'abc') +
      h(['GET /3 HTTP/1.1', 'Host: a']),
  );
  await pipe.waitFor(/ok GET \/3 /);
  assert.equal(pipe.statuses(), [200, 200, 200]);
  assert.match(pipe.text, /ok GET \/1 [\s\S]*"bytes":3[\s\S]*ok GET \/3 /);
  assert.not.ok(pipe.closed);

  const cont = await new RawConnection(target).ready();
  await cont.write(h(['POST /body HTTP/1.1', 'Host: a', 'Expect: 100-continue', 'Content-Length: 5']));
  await cont.waitFor(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
  await cont.write('hello');
  await cont.waitFor(/"bytes":5/);
  assert.equal(cont.statuses(), [100, 200]);

  const options = await sendRaw(target, h(['OPTIONS * HTTP/1.1', 'Host: a']));
  assert.equal([options.status, options.closed], [200, false]);
  const absolute = await sendRaw(target, h(['GET http://a:80/x?y HTTP/1.1', 'Host: a:80']));
  assert.equal([absolute.status, absolute.closed], [200, false]);
  const http10 = await sendRaw(target, 'GET / HTTP/1.0\r\n\r\n');
  assert.equal(http10.status, 200);
  await assertStillServing(server, target);
});

test('a refused request pipelined behind a good one is answered too, then the connection closes', async () => {
  const { server, target } = await serve([]);
  const c = await new RawConnection(target).ready();
  await c.write(h(['GET /first HTTP/1.1', 'Host: a']) + h(['GET /second HTTP/1.1', 'Host: a', 'Host: b']));
  assert.ok(await c.waitClosed(5000), 'closed after the refusal');
  assert.equal(c.statuses(), [200, 400]);
  assert.ok(isAlive(server.pid));
});

test('limits match their settings exactly: one under passes, one over is refused', async () => {
  const { server, target } = await serve([
    '--limit-request-line',
    '100',
    '--limit-request-fields',
    '5',
    '--limit-request-field-size',
    '50',
    '--limit-request-body',
    '10',
  ]);
  // request line = "GET " + target + " HTTP/1.1" = target + 13 bytes
  const line = (n: number) => h([`GET /${'a'.repeat(n - 14)} HTTP/1.1`, 'Host: a']);
  assert.equal((await sendRaw(target, line(100))).status, 200);
  const longLine = await sendRaw(target, line(101));
  assert.equal([longLine.status, longLine.closed], [414, true]);

  const fields = (n: number) => h(['GET / HTTP/1.1', 'Host: a', ...Array.from({ length: n - 1 }, (_, i) => `X-${i}: v`)]);
  assert.equal((await sendRaw(target, fields(5))).status, 200);
  const tooMany = await sendRaw(target, fields(6));
  assert.equal([tooMany.status, tooMany.closed], [431, true]);

  // The line "X-Big: value" (n bytes) and its CRLF count, as in Gunicorn: n + 2 against 50.
  const field = (n: number) => h(['GET / HTTP/1.1', 'Host: a', `X-Big: ${'v'.repeat(n - 7)}`]);
  assert.equal((await sendRaw(target, field(48))).status, 200);
  const tooBig = await sendRaw(target, field(49));
  assert.equal([tooBig.status, tooBig.closed], [431, true]);

  const sized = (n: number) => h(['POST /body HTTP/1.1', 'Host: a', `Content-Length: ${n}`], 'b'.repeat(n));
  const atLimit = await sendRaw(target, sized(10));
  assert.equal(atLimit.status, 200);
  assert.match(atLimit.text, /"bytes":10/);
  const overLimit = await sendRaw(target, sized(11));
  assert.equal([overLimit.status, overLimit.closed], [413, true]);

  const chunked = (n: number) =>
    h(['POST /body HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], `${n.toString(16)}\r\n${'c'.repeat(n)}\r\n0\r\n\r\n`);
  const chunkedAt = await sendRaw(target, chunked(10));
  assert.equal(chunkedAt.status, 200);
  assert.match(chunkedAt.text, /"bytes":10/);
  const chunkedOver = await sendRaw(target, chunked(11));
  assert.equal([chunkedOver.status, chunkedOver.closed], [413, true]);

  // A huge Content-Length is refused before any of the body is read.
  const huge = await new RawConnection(target).ready();
  await huge.write(h(['POST /body HTTP/1.1', 'Host: a', 'Content-Length: 1000000000']));
  await huge.waitFor(/^HTTP\/1\.1 413 /);
  assert.ok(await huge.waitClosed());

  // Past what node:http buffers for headers at all: node's own overflow, mapped to 414 / 431.
  const overflowLine = await sendRaw(target, h([`GET /${'a'.repeat(2000)} HTTP/1.1`, 'Host: a']));
  assert.equal([overflowLine.status, overflowLine.closed], [414, true]);
  const overflowHeaders = await sendRaw(target, fields(40));
  assert.equal([overflowHeaders.status, overflowHeaders.closed], [431, true]);
  await assertStillServing(server, target);
});

test('default limits: a URL up to --limit-request-line and --limit-request-fields headers are served', async () => {
  const { server, target } = await serve([]);
  const url = `/${'u'.repeat(4094 - 14)}`;
  const long = await sendRaw(target, h([`GET ${url} HTTP/1.1`, 'Host: a']));
  assert.equal(long.status, 200);
  assert.ok(long.text.includes(url));
  const many = await sendRaw(
    target,
    h(['GET / HTTP/1.1', 'Host: a', ...Array.from({ length: 99 }, (_, i) => `X-Field-${i}: ${'v'.repeat(100)}`)]),
  );
  assert.equal(many.status, 200);
  await assertStillServing(server, target);
});

test('slow clients: slowloris cut at --headers-timeout (408), dribbled body at --request-timeout, idle keep-alive at --keep-alive; others served meanwhile', async () => {
  const { server, target } = await serve(['--headers-timeout', '1', '--request-timeout', '2', '--keep-alive', '1']);

  const loris = await new RawConnection(target).ready();
  await loris.write('GET / HTTP/1.1\r\nHost: a\r\n');
  const body = await new RawConnection(target).ready();
  await body.write(h(['POST /body HTTP/1.1', 'Host: a', 'Content-Length: 1000']));
  let dribbling = true;
  const dribble = (async () => {
    for (let i = 0; dribbling && i < 200; i++) {
      await loris.write(`X-${i}: y\r\n`);
      await body.write('z');
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  onCleanup(() => {
    dribbling = false;
  });
  // Served while both are dribbling.
  assert.equal((await request(target, '/')).status, 200);
  assert.ok(await loris.waitClosed(15_000), 'slowloris cut');
  assert.equal(loris.statuses(), [408]);
  assert.ok(await body.waitClosed(15_000), 'dribbled body cut');
  assert.equal(body.statuses(), [408], 'the app never answered the dribbled body');
  dribbling = false;
  await dribble;

  const idle = await new RawConnection(target).ready();
  await idle.write(h(['GET / HTTP/1.1', 'Host: a']));
  await idle.waitFor(/ok GET/);
  assert.ok(await idle.waitClosed(15_000), 'idle keep-alive connection closed');
  assert.equal(idle.statuses(), [200]);
  assert.equal((await request(target, '/')).status, 200);
  assert.ok(isAlive(server.pid));
});

test('--worker-connections: at the cap the worker stops accepting; a new connection waits in the queue and is served when a slot frees', async () => {
  const { server, target } = await serve(['--worker-connections', '3', '--headers-timeout', '60', '--log-level', 'debug']);
  const held: RawConnection[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await new RawConnection(target).ready();
    await c.write(h(['GET / HTTP/1.1', 'Host: a']));
    await c.waitFor(/ok GET/);
    held.push(c);
  }
  // connect() succeeds (the kernel queues the connection) but nobody accepts it yet.
  const extra = await new RawConnection(target).ready();
  await extra.write(h(['GET /extra HTTP/1.1', 'Host: a']));
  const answered = await extra.waitFor(/HTTP\/1\.1/, 700).then(
    () => true,
    () => false,
  );
  assert.not.ok(answered, 'no answer while the worker is at its cap');
  assert.not.ok(extra.closed, 'the connection past the cap waits; it is not closed');
  held.pop()!.destroy();
  await extra.waitFor(/ok GET \/extra/);
  assert.equal(extra.statuses(), [200]);
  assert.not.ok(
    server.logs.some((l) => l.msg === 'connection dropped: --worker-connections reached'),
    'nothing was accepted and dropped',
  );
  assert.ok(isAlive(server.pid));
  assert.equal(server.workerPids().length, 1);
});

test('--worker-connections with 2 workers: a worker at its cap leaves new connections to the other one', async () => {
  const { server, target } = await serve(['-w', '2', '--worker-connections', '2', '--headers-timeout', '60']);
  await until(() => server.workerPids().length === 2, 10_000, 'two workers');
  const conns = await Promise.all([0, 1, 2, 3].map(() => new RawConnection(target).ready()));
  await Promise.all(conns.map((c) => c.write(h(['GET / HTTP/1.1', 'Host: a']))));
  const pids = await Promise.all(conns.map(async (c) => Number(/ok GET \/ (\d+)/.exec(await c.waitFor(/ok GET \/ \d+/))![1])));
  const by = new Map<number, number>();
  for (const pid of pids) by.set(pid, (by.get(pid) ?? 0) + 1);
  assert.equal([...by.values()], [2, 2], `connections per worker: ${[...by.values()].join('/')}`);
  assert.ok(isAlive(server.pid));
});

test('EMFILE at the OS fd limit is logged and survived', async () => {
  const sock = join(tempDir(), 'fd.sock');
  const child = spawn('bash', ['-c', `ulimit -n 64; exec "${process.execPath}" "${CLI}" "${APP}" -b unix:${sock} --worker-connections 0`], {
    env: { ...process.env, WS_PROXY_KIT_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const server = followProcess(child);
  await server.ready();
  const target = { socketPath: sock };
  const conns: RawConnection[] = [];
  for (let i = 0; i < 90; i++) {
    const c = new RawConnection(target);
    void c.write('GET / HTTP/1.1\r\n');
    conns.push(c);
  }
  await server.waitForLog((l) => JSON.stringify(l).includes('EMFILE'), 15_000, 'an EMFILE log line');
  for (const c of conns) c.destroy();
  const ok = await until(
    () =>
      request(target, '/').then(
        (x) => x.status === 200,
        () => false,
      ),
    15_000,
    'the worker to serve again',
  );
  assert.ok(ok);
  assert.ok(isAlive(server.pid));
  assert.equal(server.workerPids().length, 1, 'the worker was not replaced');
});

function vmRssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

test('backpressure: a slow reader of a 200 MB stream does not make the worker buffer it', async () => {
  const { server, target } = await serve([]);
  const workerPid = server.workerPids()[0]!;
  assert.equal((await request(target, '/')).status, 200);
  const baseline = vmRssBytes(workerPid);
  let maxRss = baseline;
  const sampler = setInterval(() => (maxRss = Math.max(maxRss, vmRssBytes(workerPid))), 50);
  onCleanup(() => clearInterval(sampler));

  const c = await new RawConnection(target).ready();
  c.sock.setEncoding('latin1');
  let received = 0;
  c.sock.removeAllListeners('data');
  c.sock.on('data', (d: string) => (received += d.length));
  await c.write(h(['GET /stream?mb=200 HTTP/1.1', 'Host: a']));
  // Slow: read in short bursts with pauses; the app would fill memory in well under a second.
  const total = 200 * 1024 * 1024;
  const deadline = Date.now() + 120_000;
  while (received < total && Date.now() < deadline && !c.closed) {
    c.sock.pause();
    await new Promise((r) => setTimeout(r, 20));
    c.sock.resume();
    await new Promise((r) => setTimeout(r, 5));
  }
  clearInterval(sampler);
  assert.ok(received > total, `read the whole stream (${received} bytes)`);
  const grew = maxRss - baseline;
  console.log(
    `backpressure: worker RSS ${Math.round(baseline / 2 ** 20)} MiB -> max ${Math.round(maxRss / 2 ** 20)} MiB while streaming 200 MiB`,
  );
  // Garbage from the app's fresh buffers waits for GC (about 35 MiB seen); buffering it all would be 200 MiB.
  assert.ok(grew < 96 * 2 ** 20, `worker RSS grew ${Math.round(grew / 2 ** 20)} MiB streaming 200 MiB to a slow reader`);
  await assertStillServing(server, target);

  // Control: the same measurement does see an app that ignores write()'s return value.
  const careless = await new RawConnection(target).ready();
  careless.sock.pause();
  await careless.write(h(['GET /stream?mb=200&ignore=1 HTTP/1.1', 'Host: a']));
  const before = vmRssBytes(workerPid);
  const seen = await until(() => vmRssBytes(workerPid) - before > 128 * 2 ** 20, 30_000, 'the careless stream to show in RSS').catch(
    () => false,
  );
  careless.destroy();
  assert.ok(seen, 'RSS measurement detects buffering (control case)');
});

test.run();
