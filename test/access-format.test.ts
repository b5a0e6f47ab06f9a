// The access log: Gunicorn-style format strings (src/log/access-format.ts) and the JSON lines.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  compileAccessFormat,
  escapeLogValue,
  clfTime,
  AccessFormatError,
  GUNICORN_DEFAULT_FORMAT,
  type AccessEntry,
} from '../src/log/access-format.js';
import { loadConfig, ConfigError } from '../src/config/load.js';
import { startServer, request, rawRequest, tempDir, cleanup, until, FIXTURES } from './helpers/server.js';

test.after.each(cleanup);

function entry(
  opts: {
    method?: string;
    url?: string;
    headers?: Record<string, string>;
    status?: number;
    resHeaders?: Record<string, string | number | string[]>;
    address?: string | null;
    bodyBytes?: number;
    durationMs?: number;
  } = {},
): AccessEntry {
  const resHeaders = opts.resHeaders ?? {};
  const req = {
    method: opts.method ?? 'GET',
    url: opts.url ?? '/path?x=1',
    httpVersion: '1.1',
    headers: opts.headers ?? {},
    socket: { remoteAddress: '10.0.0.9' },
    clientInfo: opts.address === undefined ? { address: '203.0.113.7' } : { address: opts.address },
  } as unknown as IncomingMessage;
  const res = { statusCode: opts.status ?? 200, getHeader: (n: string) => resHeaders[n] } as unknown as ServerResponse;
  return { req, res, bodyBytes: opts.bodyBytes ?? 123, durationMs: opts.durationMs ?? 1534.5678 };
}

const fmt = (format: string, e: AccessEntry = entry()) => compileAccessFormat(format)(e);

test('each simple atom', () => {
  const e = entry({
    headers: {
      referer: 'https://ref.example/',
      'user-agent': 'curl/8.0',
      authorization: 'Basic ' + Buffer.from('alice:secret').toString('base64'),
    },
    status: 404,
  });
  const cases: [string, string | RegExp][] = [
    ['h', '203.0.113.7'],
    ['l', '-'],
    ['u', 'alice'],
    ['t', /^\[\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]$/],
    ['r', 'GET /path?x=1 HTTP/1.1'],
    ['m', 'GET'],
    ['U', '/path'],
    ['q', 'x=1'],
    ['H', 'HTTP/1.1'],
    ['s', '404'],
    ['B', '123'],
    ['b', '123'],
    ['f', 'https://ref.example/'],
    ['a', 'curl/8.0'],
    ['T', '1'],
    ['M', '1534'],
    ['D', '1534568'],
    ['L', '1.534568'],
    ['p', `<${process.pid}>`],
  ];
  for (const [atom, want] of cases) {
    const got = fmt(`%(${atom})s`, e);
    if (typeof want === 'string') assert.is(got, want, `%(${atom})s`);
    else assert.match(got, want, `%(${atom})s`);
  }
});

test('missing values are "-" as in Gunicorn; b is "-" for an empty body, B is 0', () => {
  const e = entry({ bodyBytes: 0, address: null });
  assert.is(fmt('%(u)s %(f)s %(a)s %(b)s %(B)s %(h)s %({x-nope}i)s %({x-nope}o)s', e), '- - - - 0 10.0.0.9 - -');
  assert.is(fmt('%(q)s|%(U)s', entry({ url: '/only' })), '|/only');
});

test('headers ({name}i, {name}o, case-insensitive), environment ({NAME}e), %% and conversions', () => {
  process.env.WSPK_TEST_VAR = 'from-env';
  const e = entry({
    headers: { 'x-request-id': 'req-42', host: 'app.example' },
    resHeaders: { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'], 'content-length': 12 },
  });
  assert.is(
    fmt('%({X-Request-Id}i)s %({Host}i)s %({Content-Type}o)s %({set-cookie}o)s %({content-length}o)s', e),
    'req-42 app.example text/plain a=1, b=2 12',
  );
  assert.is(fmt('%({WSPK_TEST_VAR}e)s %({WSPK_UNSET_VAR}e)s', e), 'from-env -');
  assert.is(fmt('100%% %(s)d', e), '100% 200');
});

test('Gunicorn default format renders a combined log line', () => {
  const e = entry({ method: 'POST', url: '/api', status: 201, headers: { 'user-agent': 'ua/1' } });
  assert.match(fmt(GUNICORN_DEFAULT_FORMAT, e), /^203\.0\.113\.7 - - \[[^\]]+\] "POST \/api HTTP\/1\.1" 201 123 "-" "ua\/1"$/);
});

test('hostile values are escaped: quotes, backslashes, newlines, NUL, non-ASCII bytes', () => {
  assert.is(escapeLogValue('plain text/1.0'), 'plain text/1.0');
  assert.is(escapeLogValue('a"b\\c'), 'a\\"b\\\\c');
  assert.is(escapeLogValue('line1\nline2\r\x00\x1b[31m\x7f'), 'line1\\x0aline2\\x0d\\x00\\x1b[31m\\x7f');
  assert.is(escapeLogValue('caf\xc3\xa9'), 'caf\\xc3\\xa9'); // UTF-8 bytes as node hands them (latin1)
  assert.is(escapeLogValue('\u2028'), '\\xe2\\x80\\xa8');
  const e = entry({ url: '/x"y\n\x00z', headers: { 'user-agent': 'evil" agent\n127.0.0.1 - - [forged]\x00', referer: 'r"' } });
  const line = fmt(GUNICORN_DEFAULT_FORMAT, e);
  assert.not.match(line, /[\n\r\x00]/, 'no raw control characters');
  assert.ok(line.includes('"GET /x\\"y\\x0a\\x00z HTTP/1.1"'), line);
  assert.ok(line.includes('"evil\\" agent\\x0a127.0.0.1 - - [forged]\\x00"'), line);
  assert.ok(line.includes('"r\\""'), line);
  // Every quote that delimits a field is unescaped; every quote inside one is.
  assert.is(line.match(/(?<!\\)"/g)!.length, 6);
});

test('CLF time is cached per second and carries the offset', () => {
  const a = clfTime(Date.UTC(2024, 0, 2, 3, 4, 5, 100));
  assert.is(clfTime(Date.UTC(2024, 0, 2, 3, 4, 5, 900)), a);
  assert.match(a, /^\[0[12]\/Jan\/2024:\d{2}:04:05 [+-]\d{4}\]$/);
});

test('bad formats are refused with a sentence; the setting validates them', async () => {
  assert.throws(
    () => compileAccessFormat('%(z)s'),
    (err: Error) => err instanceof AccessFormatError && /unknown atom %\(z\)s/.test(err.message),
  );
  assert.throws(
    () => compileAccessFormat('100% done'),
    (err: Error) => /write %% for a literal percent/.test(err.message),
  );
  const dir = tempDir();
  try {
    await loadConfig({ cli: new Map(), env: { WS_PROXY_KIT_ACCESS_LOGFORMAT: '%(nope)s' }, cwd: dir });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.match((err as Error).message, /unknown atom/);
  }
});

function readLines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

test('integration: Gunicorn format with the resolved client, request id and escaped hostile values', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const log = join(dir, 'access.log');
  const format = `${GUNICORN_DEFAULT_FORMAT} %({x-request-id}i)s %(U)s %(q)s`;
  const server = startServer([
    join(FIXTURES, 'app.mjs'),
    '-b',
    `unix:${sock}`,
    '-w',
    '1',
    '--access-logfile',
    log,
    '--access-logformat',
    format,
  ]);
  await server.ready();
  await request({ socketPath: sock }, '/hello?a=1', {
    headers: { 'x-forwarded-for': '198.51.100.4', 'x-request-id': 'trace-abc', 'user-agent': 'test/1' },
  });
  // Bytes a client can send that node passes on: quotes, backslashes, high bytes in the UA; a quote in the path.
  const hostile = Buffer.concat([
    Buffer.from('GET /p"q HTTP/1.1\r\nHost: x\r\nUser-Agent: a"b\\c '),
    Buffer.from([0xff]),
    Buffer.from('\r\nConnection: close\r\n\r\n'),
  ]);
  const raw = await rawRequest({ socketPath: sock }, hostile);
  assert.match(raw.text, /^HTTP\/1\.1 200/);
  const lines = (await until(() => (readLines(log).length >= 2 ? readLines(log) : null), 10_000, 'two access log lines'))!;
  assert.match(lines[0]!, /^198\.51\.100\.4 - - \[[^\]]+\] "GET \/hello\?a=1 HTTP\/1\.1" 200 \d+ "-" "test\/1" trace-abc \/hello a=1$/);
  // No trusted forwarding on the second: a UNIX peer has no address; the request id was generated.
  assert.match(lines[1]!, /^- - - \[[^\]]+\] "GET \/p\\"q HTTP\/1\.1" 200 \d+ "-" "a\\"b\\\\c \\xff" [0-9a-f]{12}-[0-9a-z]+ \/p\\"q $/);
  await server.stop();
});

test('integration: without a format the access log is one JSON object per line', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const log = join(dir, 'access.log');
  const server = startServer([join(FIXTURES, 'app.mjs'), '-b', `unix:${sock}`, '-w', '1', '--access-logfile', log]);
  await server.ready();
  await request({ socketPath: sock }, '/a?b=c', { headers: { 'user-agent': 'quote " and \\ backslash', 'x-request-id': 'rid-1' } });
  await request({ socketPath: sock }, '/throw', { method: 'POST', body: 'x' });
  await rawRequest(
    { socketPath: sock },
    Buffer.concat([
      Buffer.from('GET /n"x HTTP/1.1\r\nHost: x\r\nUser-Agent: '),
      Buffer.from([0xe9]),
      Buffer.from('\r\nConnection: close\r\n\r\n'),
    ]),
  );
  const lines = (await until(() => (readLines(log).length >= 3 ? readLines(log) : null), 10_000, 'three access log lines'))!;
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.is(parsed.length, 3);
  assert.is(parsed[0]!.path, '/a?b=c');
  assert.is(parsed[0]!.user_agent, 'quote " and \\ backslash');
  assert.is(parsed[0]!.request_id, 'rid-1');
  assert.is(parsed[1]!.method, 'POST');
  assert.is(parsed[1]!.status, 500);
  assert.is(parsed[2]!.path, '/n"x');
  for (const p of parsed)
    for (const k of ['time', 'remote', 'method', 'path', 'status', 'bytes', 'duration_ms', 'request_id', 'pid', 'worker'])
      assert.ok(k in p, `field ${k}`);
  // The line is written by hand (src/log/access.ts): it must be exactly what JSON.stringify makes.
  lines.forEach((l, i) => assert.is(l, JSON.stringify(parsed[i])));
  await server.stop();
});

test('the JSON line is the text JSON.stringify makes, also for hostile values', async () => {
  const { createAccessLog } = await import('../src/log/access.js');
  const file = join(tempDir(), 'access.log');
  const log = createAccessLog(file, 3);
  const req = (over: Record<string, unknown>) =>
    ({ socket: {}, method: 'GET', url: '/', httpVersion: '1.1', headers: {}, ...over }) as unknown as IncomingMessage;
  const res = (over: Record<string, unknown>) =>
    ({ _header: 'HTTP/1.1 200 OK\r\n\r\n', statusCode: 200, writableFinished: true, ...over }) as unknown as ServerResponse;
  log.write(
    req({
      clientInfo: { address: '10.0.0.1' },
      url: '/a"b\\c\u2028\u0001',
      headers: { referer: 'http://x/"y"', 'user-agent': 'ü\tagent' },
    }),
    res({}),
    'id"1',
    1.23456,
    100,
  );
  log.write(
    req({ socket: { remoteAddress: '127.0.0.1' }, method: 'POST', httpVersion: '1.0' }),
    res({ _header: null, statusCode: 500, writableFinished: false }),
    '',
    0,
    0,
  );
  log.write(req({ clientInfo: { address: null }, headers: { 'user-agent': '' } }), res({ statusCode: 204 }), 'x', 12.3456789, 5);
  log.flush();
  const lines = (await until(() => (readLines(file).length >= 3 ? readLines(file) : null), 5000, 'three lines'))!;
  assert.is(lines.length, 3);
  for (const l of lines) assert.is(l, JSON.stringify(JSON.parse(l)));
  const first = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(
    { ...first, time: 'T', pid: 0 },
    {
      time: 'T',
      remote: '10.0.0.1',
      method: 'GET',
      path: '/a"b\\c\u2028\u0001',
      protocol: 'HTTP/1.1',
      status: 200,
      bytes: 81,
      duration_ms: 1.235,
      request_id: 'id"1',
      referer: 'http://x/"y"',
      user_agent: 'ü\tagent',
      completed: true,
      pid: 0,
      worker: 3,
    },
  );
  assert.equal(Object.keys(JSON.parse(lines[1]!) as object).slice(0, 2), ['time', 'remote']);
  assert.is((JSON.parse(lines[1]!) as { remote: string }).remote, '127.0.0.1');
  assert.is((JSON.parse(lines[2]!) as { remote: string }).remote, 'unix');
  assert.match(first.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test.run();
