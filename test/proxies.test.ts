// Trusted proxies over real sockets with the real CLI: X-Forwarded-* from trusted and
// untrusted TCP peers (127.0.0.1 vs 127.0.0.2), UNIX peers, PROXY protocol v1/v2 on TCP
// and UNIX binds, bad PROXY headers, fetch handlers and an Express app with trust proxy.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  startServer,
  request,
  rawRequest,
  tempDir,
  freePort,
  cleanup,
  until,
  ROOT,
  type Target,
  type ServerProcess,
} from './helpers/server.js';

test.after.each(cleanup);

const LISTENER_APP = `
import { writeFileSync } from 'node:fs';
import http from 'node:http';
export default function app(req, res) {
  const url = new URL(req.url, 'http://x');
  // ?mark=FILE: tells the test the request is in the app.
  if (url.searchParams.get('mark')) writeFileSync(url.searchParams.get('mark'), 'in');
  const reply = () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ clientInfo: req.clientInfo, headers: req.headers, distinct: req.headersDistinct, raw: req.rawHeaders, remote: req.socket.remoteAddress ?? null, pid: process.pid }));
  };
  if (url.pathname === '/slow') setTimeout(reply, Number(url.searchParams.get('ms') ?? 500));
  else if (url.pathname === '/accessor') accessor(req, res);
  else reply();
}

// req.clientInfo is worked out when read (src/proxy/client-info.ts): what an app can do with it.
function accessor(req, res) {
  const ownBefore = Object.hasOwn(req, 'clientInfo');
  const first = req.clientInfo;
  const sameOnSecondRead = req.clientInfo === first;
  const other = new http.IncomingMessage(null); // not accepted by this worker
  const otherBefore = other.clientInfo;
  other.clientInfo = 'set by the app';
  req.clientInfo = { mine: true };
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ ownBefore, first, sameOnSecondRead, otherBefore: otherBefore ?? null, other: other.clientInfo, assigned: req.clientInfo }));
}
`;

const FETCH_APP = `
export default {
  async fetch(request, info) {
    const body = request.method === 'POST' ? await request.text() : null;
    return new Response(JSON.stringify({ url: request.url, clientInfo: info.clientInfo, body, incoming: Boolean(info.incoming) }), { headers: { 'content-type': 'application/json' } });
  },
};
`;

const EXPRESS_APP = `
import express from '${pathToFileURL(join(ROOT, 'node_modules/express/index.js')).href}';
const app = express();
app.set('trust proxy', 'loopback');
app.get('/', (req, res) => res.json({ ip: req.ip, protocol: req.protocol, xff: req.headers['x-forwarded-for'] ?? null, clientInfo: req.clientInfo }));
export default app;
`;

function writeApp(dir: string, name: string, source: string): string {
  const path = join(dir, name);
  writeFileSync(path, source);
  return path;
}

interface Exchange {
  text: string;
  closed: boolean;
}

/** A raw exchange: chunks written one after another, the answer collected until the server closes. */
const exchange = (target: Target, chunks: (string | Buffer)[]): Promise<Exchange> => rawRequest(target, chunks, 10_000);

/** Bodies of the HTTP/1.1 responses in a raw exchange (responses carry Content-Length). */
function bodies(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.1 ')) {
    const end = rest.indexOf('\r\n\r\n');
    const len = Number(/content-length: (\d+)/i.exec(rest.slice(0, end))?.[1] ?? NaN);
    out.push(JSON.parse(rest.slice(end + 4, end + 4 + len)) as Record<string, unknown>);
    rest = rest.slice(end + 4 + len);
  }
  return out;
}

const get = (path: string, extra = '', close = true): string =>
  `GET ${path} HTTP/1.1\r\nHost: app.test\r\n${extra}${close ? 'Connection: close\r\n' : ''}\r\n`;

function proxyV1(src: string, srcPort: number, family: 'TCP4' | 'TCP6' = 'TCP4'): string {
  return `PROXY ${family} ${src} ${family === 'TCP4' ? '127.0.0.1' : '::1'} ${srcPort} 8000\r\n`;
}

function proxyV2(src: [number, number, number, number], srcPort: number, command: 0 | 1 = 1): Buffer {
  const sig = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
  const body = command === 1 ? [...src, 127, 0, 0, 1, srcPort >> 8, srcPort & 255, 0x1f, 0x40] : [];
  return Buffer.from([...sig, 0x20 | command, command === 1 ? 0x11 : 0x00, 0, body.length, ...body]);
}

type Json = {
  clientInfo: Record<string, unknown>;
  headers: Record<string, string>;
  distinct: Record<string, string[]>;
  raw: string[];
  pid: number;
};

async function getJson(target: Target, path: string, headers: Record<string, string>): Promise<Json> {
  const r = await request(target, path, { headers });
  assert.is(r.status, 200, r.body);
  return JSON.parse(r.body) as Json;
}

const FORGED = {
  'x-forwarded-for': '203.0.113.7',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'shop.example',
  'x-real-ip': '203.0.113.7',
  'x-request-id': 'from-the-client',
};
const FORGED_RAW = 'X-Forwarded-For: 203.0.113.7\r\n';

async function accessLines(file: string, n: number): Promise<Record<string, unknown>[]> {
  const lines = await until(
    () => {
      if (!existsSync(file)) return null;
      const lines = readFileSync(file, 'utf8').trim().split('\n').filter(Boolean);
      return lines.length >= n ? lines.map((l) => JSON.parse(l) as Record<string, unknown>) : null;
    },
    15_000,
    `${n} access log lines`,
  );
  return lines!;
}

test('TCP: 127.0.0.1 is trusted, 127.0.0.2 is not; the access log shows the resolved client', async () => {
  const dir = tempDir();
  const app = writeApp(dir, 'app.mjs', LISTENER_APP);
  const accessLog = join(dir, 'access.log');
  const port = await freePort();
  const server = startServer([
    app,
    '-b',
    `127.0.0.1:${port}`,
    '--forwarded-allow-ips',
    '127.0.0.1',
    '--access-logfile',
    accessLog,
    '--log-level',
    'debug',
  ]);
  await server.ready();

  const trusted = await getJson({ port }, '/', FORGED);
  assert.equal(trusted.clientInfo, {
    address: '203.0.113.7',
    port: null,
    scheme: 'https',
    host: 'shop.example',
    trusted: true,
    source: 'x-forwarded-for',
  });
  assert.is(trusted.headers['x-forwarded-for'], '203.0.113.7', "a trusted proxy's headers reach the app");
  assert.is(trusted.headers['x-request-id'], 'from-the-client', 'a trusted proxy names the request');

  const untrusted = await getJson({ port, localAddress: '127.0.0.2' }, '/', FORGED);
  assert.is(untrusted.clientInfo.address, '127.0.0.2');
  assert.is(untrusted.clientInfo.trusted, false);
  assert.is(untrusted.clientInfo.scheme, 'http');
  assert.is(untrusted.clientInfo.host, `127.0.0.1:${port}`);
  for (const h of ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip']) {
    assert.not.ok(h in untrusted.headers, `${h} removed`);
    assert.not.ok(h in untrusted.distinct, `${h} removed from headersDistinct`);
  }
  assert.not.ok(
    untrusted.raw.some((name, i) => i % 2 === 0 && /^x-(forwarded|real)-/i.test(name)),
    'removed from rawHeaders',
  );
  assert.equal(untrusted.distinct.host, [`127.0.0.1:${port}`], 'headersDistinct still has the other fields');
  assert.match(untrusted.headers['x-request-id']!, /^[0-9a-f]{12}-[0-9a-z]+$/, 'a new request id, not the forged one');

  // Field names in any letter case are the same fields (here sent by a trusted peer).
  const mixed = await getJson({ port }, '/', {
    'X-FORWARDED-FOR': '198.51.100.9',
    'x-Forwarded-Proto': 'https',
    'X-Request-ID': 'mixed-case-id',
  });
  assert.is(mixed.clientInfo.address, '198.51.100.9');
  assert.is(mixed.clientInfo.scheme, 'https');
  assert.is(mixed.headers['x-request-id'], 'mixed-case-id');

  await server.waitForMsg(/forwarding headers from an untrusted peer removed/);
  const lines = await accessLines(accessLog, 3);
  assert.equal(
    lines.map((l) => l.remote),
    ['203.0.113.7', '127.0.0.2', '198.51.100.9'],
  );
  assert.is((await server.stop()).code, 0);
});

test('UNIX socket peers are trusted by default, and not with --forwarded-allow-unix false', async () => {
  const dir = tempDir();
  const app = writeApp(dir, 'app.mjs', LISTENER_APP);
  const sock = join(dir, 'app.sock');
  let server = startServer([app, '-b', `unix:${sock}`]);
  await server.ready();
  const trusted = await getJson({ socketPath: sock }, '/', FORGED);
  assert.is(trusted.clientInfo.address, '203.0.113.7');
  assert.is(trusted.clientInfo.scheme, 'https');
  const plain = await getJson({ socketPath: sock }, '/', {});
  assert.is(plain.clientInfo.address, null, 'no address for a UNIX peer without forwarding headers');
  assert.is(plain.clientInfo.trusted, true);
  assert.is((await server.stop()).code, 0);

  server = startServer([app, '-b', `unix:${sock}`, '--forwarded-allow-unix', 'false']);
  await server.ready();
  const untrusted = await getJson({ socketPath: sock }, '/', FORGED);
  assert.is(untrusted.clientInfo.trusted, false);
  assert.is(untrusted.clientInfo.address, null);
  assert.not.ok('x-forwarded-for' in untrusted.headers);
  assert.is((await server.stop()).code, 0);
});

test('req.clientInfo is worked out when read: the same object on a second read, assignable, absent on messages the worker did not accept', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const server = startServer([writeApp(dir, 'app.mjs', LISTENER_APP), '-b', `unix:${sock}`]);
  await server.ready();
  const r = await request({ socketPath: sock }, '/accessor', { headers: FORGED });
  assert.is(r.status, 200, r.body);
  const body = JSON.parse(r.body) as Record<string, unknown>;
  assert.is(body.ownBefore, false, 'nothing is stored on the request before something reads it');
  assert.equal(body.first, {
    address: '203.0.113.7',
    port: null,
    scheme: 'https',
    host: 'shop.example',
    trusted: true,
    source: 'x-forwarded-for',
  });
  assert.is(body.sameOnSecondRead, true);
  assert.is(body.otherBefore, null);
  assert.is(body.other, 'set by the app');
  assert.equal(body.assigned, { mine: true });
  assert.is((await server.stop()).code, 0);
});

test('fetch handler: info.clientInfo and a Request URL with the trusted scheme and host', async () => {
  const dir = tempDir();
  const app = writeApp(dir, 'fetch.mjs', FETCH_APP);
  const port = await freePort();
  const server = startServer([app, '-b', `127.0.0.1:${port}`]);
  await server.ready();
  const r = await request({ port }, '/path?q=1', { headers: FORGED });
  const body = JSON.parse(r.body) as { url: string; clientInfo: Record<string, unknown>; incoming: boolean };
  assert.is(body.url, 'https://shop.example/path?q=1');
  assert.is(body.clientInfo.address, '203.0.113.7');
  assert.ok(body.incoming, '@hono/node-server bindings are still there');
  // The rewritten Request still carries the body.
  const post = await request({ port }, '/upload', {
    method: 'POST',
    headers: { ...FORGED, 'content-type': 'text/plain' },
    body: 'hello body',
  });
  assert.is((JSON.parse(post.body) as { body: string }).body, 'hello body');
  const spoofed = JSON.parse((await request({ port, localAddress: '127.0.0.2' }, '/x', { headers: FORGED })).body) as {
    url: string;
    clientInfo: Record<string, unknown>;
  };
  assert.is(spoofed.url, `http://127.0.0.1:${port}/x`);
  assert.is(spoofed.clientInfo.address, '127.0.0.2');
  assert.is((await server.stop()).code, 0);
});

test('Express with app.set("trust proxy") keeps working', async () => {
  const dir = tempDir();
  const app = writeApp(dir, 'express.mjs', EXPRESS_APP);
  const port = await freePort();
  const server = startServer([app, '-b', `127.0.0.1:${port}`]);
  await server.ready();
  const viaProxy = JSON.parse((await request({ port }, '/', { headers: FORGED })).body) as Record<string, unknown>;
  assert.is(viaProxy.ip, '203.0.113.7');
  assert.is(viaProxy.protocol, 'https');
  assert.is((viaProxy.clientInfo as Record<string, unknown>).address, '203.0.113.7');
  const direct = JSON.parse((await request({ port, localAddress: '127.0.0.2' }, '/', { headers: FORGED })).body) as Record<string, unknown>;
  assert.is(direct.ip, '127.0.0.2', 'Express trusts 127.0.0.2 (loopback) but the forged header never reached it');
  assert.is(direct.protocol, 'http');
  assert.is(direct.xff, null);
  assert.is((await server.stop()).code, 0);
});

const UPGRADE_APP = `
export default {
  request(req, res) { res.end('plain'); },
  upgrade(req, socket) {
    const body = JSON.stringify({ clientInfo: req.clientInfo, headers: req.headers });
    socket.end('HTTP/1.1 200 OK\\r\\nContent-Length: ' + Buffer.byteLength(body) + '\\r\\nConnection: close\\r\\n\\r\\n' + body);
  },
};
`;

test('upgrade requests (WebSocket) are resolved the same way', async () => {
  const dir = tempDir();
  const app = writeApp(dir, 'upgrade.mjs', UPGRADE_APP);
  const port = await freePort();
  const server = startServer([app, '-b', `127.0.0.1:${port}`]);
  await server.ready();
  const upgrade = get('/ws', 'Upgrade: websocket\r\nConnection: Upgrade\r\n' + FORGED_RAW, false);
  const [trusted] = bodies((await exchange({ port }, [upgrade])).text) as Json[];
  assert.is(trusted!.clientInfo.address, '203.0.113.7');
  const [untrusted] = bodies((await exchange({ port, localAddress: '127.0.0.2' }, [upgrade])).text) as Json[];
  assert.is(untrusted!.clientInfo.address, '127.0.0.2');
  assert.not.ok('x-forwarded-for' in untrusted!.headers);
  assert.is((await server.stop()).code, 0);
});

async function startProxyProtocolServer(extra: string[] = []): Promise<{ server: ServerProcess; tcp: Target; unix: Target; dir: string }> {
  const dir = tempDir();
  const app = writeApp(dir, 'app.mjs', LISTENER_APP);
  const sock = join(dir, 'pp.sock');
  const port = await freePort();
  const server = startServer([
    app,
    '-b',
    `unix:${sock}`,
    '-b',
    `127.0.0.1:${port}`,
    '--proxy-protocol',
    'auto',
    '--proxy-allow-ips',
    '127.0.0.1',
    '--headers-timeout',
    '1',
    ...extra,
  ]);
  await server.ready();
  return { server, tcp: { port }, unix: { socketPath: sock }, dir };
}

test('PROXY protocol v1 and v2 on TCP and UNIX binds: the header names the client', async () => {
  const { server, tcp, unix } = await startProxyProtocolServer();
  for (const [name, target] of [
    ['tcp', tcp],
    ['unix', unix],
  ] as const) {
    const v1 = await exchange(target, [proxyV1('198.51.100.20', 40001) + get('/')]);
    const [b1] = bodies(v1.text) as Json[];
    assert.equal(
      b1!.clientInfo,
      { address: '198.51.100.20', port: 40001, scheme: 'http', host: 'app.test', trusted: false, source: 'proxy-protocol' },
      `${name} v1`,
    );

    const v6 = bodies((await exchange(target, [proxyV1('2001:db8::20', 40002, 'TCP6') + get('/')])).text) as Json[];
    assert.is(v6[0]!.clientInfo.address, '2001:db8::20', `${name} v1 TCP6`);

    // v2, with the header and the request in separate writes, and two requests on one connection.
    const v2 = await exchange(target, [proxyV2([198, 51, 100, 21], 40003), get('/', FORGED_RAW, false), get('/')]);
    const b2 = bodies(v2.text) as Json[];
    assert.is(b2.length, 2, `${name} v2 keep-alive: ${v2.text.slice(0, 300)}`);
    for (const b of b2) assert.is(b.clientInfo.address, '198.51.100.21');
    assert.not.ok('x-forwarded-for' in b2[0]!.headers, 'the PROXY client is not a trusted proxy: its X-Forwarded-For is removed');

    // LOCAL (health checks): the connection speaks for itself.
    const local = bodies((await exchange(target, [Buffer.concat([proxyV2([0, 0, 0, 0], 0, 0), Buffer.from(get('/'))])])).text) as Json[];
    assert.is(local[0]!.clientInfo.address, name === 'tcp' ? '127.0.0.1' : null, `${name} LOCAL`);
  }
  assert.is((await server.stop()).code, 0);
});

test('PROXY protocol: missing, malformed, slow or not-allowed headers close the connection; the worker lives on', async () => {
  const { server, tcp, unix } = await startProxyProtocolServer();
  const pid = (JSON.parse((await exchange(tcp, [proxyV1('198.51.100.1', 1) + get('/')])).text.split('\r\n\r\n')[1]!) as Json).pid;
  let logged = server.logs.length;
  const cases: [string, Target, (string | Buffer)[], RegExp][] = [
    ['plain HTTP, no header', tcp, [get('/')], /bad or missing header/],
    ['plain HTTP on UNIX', unix, [get('/')], /bad or missing header/],
    ['garbage v1', tcp, ['PROXY TCP4 nonsense here\r\n' + get('/')], /bad or missing header/],
    ['v1 line too long', tcp, ['PROXY TCP4 ' + '9'.repeat(200)], /bad or missing header/],
    [
      'v2 bad version',
      tcp,
      [Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x31, 0x11, 0, 12, ...Array(12).fill(1)])],
      /bad or missing header/,
    ],
    ['half a header, then silence (headers timeout 1 s)', tcp, ['PROXY TCP4 198.51'], /bad or missing header/],
    [
      'from a peer not in proxyAllowIps',
      { ...tcp, localAddress: '127.0.0.2' },
      [proxyV1('198.51.100.2', 2) + get('/')],
      /not in proxyAllowIps/,
    ],
    ['empty connection', tcp, [], /bad or missing header/],
  ];
  for (const [name, target, chunks, re] of cases) {
    const r = name === 'empty connection' ? await closeRightAway(target) : await exchange(target, chunks);
    assert.ok(r.closed, `${name}: closed`);
    assert.is(r.text, '', `${name}: no HTTP answer`);
    await server.waitForMsg(re, 15_000, logged);
    logged = server.logs.length;
  }
  const after = await exchange(tcp, [proxyV1('198.51.100.3', 3) + get('/')]);
  const [b] = bodies(after.text) as Json[];
  assert.is(b!.pid, pid, 'the same worker still answers');
  assert.is(b!.clientInfo.address, '198.51.100.3');
  assert.is(server.workerPids().length, 1, 'no worker was replaced');
  assert.is((await server.stop()).code, 0);
});

function closeRightAway(target: Target): Promise<Exchange> {
  return new Promise((resolve) => {
    const sock = net.connect({ port: target.port!, host: '127.0.0.1' });
    sock.on('error', () => {});
    sock.on('connect', () => sock.end());
    let text = '';
    sock.on('data', (d: Buffer) => (text += d.toString('latin1')));
    sock.on('close', () => resolve({ text, closed: true }));
  });
}

test('PROXY protocol: a graceful stop lets an in-flight request finish', async () => {
  const { server, tcp, dir } = await startProxyProtocolServer();
  const mark = join(dir, 'in-app');
  const pending = exchange(tcp, [proxyV1('198.51.100.9', 9) + get(`/slow?ms=1500&mark=${encodeURIComponent(mark)}`)]);
  await until(() => existsSync(mark), 10_000, 'the slow request to reach the app');
  server.signal('SIGTERM');
  const r = await pending;
  assert.match(r.text, /^HTTP\/1\.1 200/, r.text);
  assert.is((bodies(r.text)[0] as Json).clientInfo.address, '198.51.100.9');
  assert.is((await server.exited).code, 0);
});

test.run();
