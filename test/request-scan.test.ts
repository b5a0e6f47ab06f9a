// The one pass over a request head that every request goes through (src/worker/request-checks.ts):
// limits, RFC checks and the fields the worker reads later, with names in any letter case.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { HeadScan, scanHead, type HeadLimits } from '../src/worker/request-checks.js';
import { isForwardingHeader } from '../src/proxy/trust.js';

const LIMITS: HeadLimits = { limitRequestLine: 4094, limitRequestFields: 100, limitRequestFieldSize: 8190, limitRequestBody: 0 };
const NO_LIMITS: HeadLimits = { limitRequestLine: 0, limitRequestFields: 0, limitRequestFieldSize: 0, limitRequestBody: 0 };

/** The status of a request head with no limits but the body limit given. */
function requestCheckStatus(req: Parameters<typeof scanHead>[0], limitRequestBody = 0): number {
  return scanHead(req, { ...NO_LIMITS, limitRequestBody }, new HeadScan());
}

/** req.headers as node:http builds it from the raw list (its own code: repeats dropped or joined). */
function nodeHeaders(rawHeaders: string[]): IncomingMessage['headers'] {
  const msg = new IncomingMessage(null as unknown as Socket) as IncomingMessage & { _addHeaderLines(raw: string[], n: number): void };
  msg._addHeaderLines(rawHeaders, rawHeaders.length);
  return msg.headers;
}

function head(rawHeaders: string[], extra: { method?: string; url?: string; minor?: number; major?: number } = {}) {
  return {
    headers: nodeHeaders(rawHeaders),
    method: extra.method ?? 'GET',
    url: extra.url ?? '/',
    httpVersionMajor: extra.major ?? 1,
    httpVersionMinor: extra.minor ?? 1,
    rawHeaders,
  };
}

/** Whether the scan flags a forwarding field in a request with Host and one field `name`. */
function flagsForwarding(name: string): boolean {
  const scan = new HeadScan();
  scanHead(head(['Host', 'a', name, 'v']), LIMITS, scan);
  return scan.forwarding;
}

test('a plain request passes and records its Host', () => {
  const scan = new HeadScan();
  assert.is(scanHead(head(['Host', 'example.com', 'Accept', '*/*']), LIMITS, scan), 0);
  assert.is(scan.host, 'example.com');
  assert.is(scan.forwarding, false);
  assert.is(scan.chunked, false);
});

test('repeated singletons are 400 whatever the letter case', () => {
  for (const [a, b] of [
    ['Host', 'host'],
    ['host', 'hOsT'],
    ['User-Agent', 'USER-AGENT'],
    ['Content-Type', 'content-TYPE'],
    ['If-Unmodified-Since', 'if-unmodified-since'],
    ['Proxy-Authorization', 'proxy-authorization'],
  ] as const) {
    assert.is(requestCheckStatus(head([a, 'x', b, 'y'])), 400, `${a} + ${b}`);
  }
  // A repeated list field is fine.
  assert.is(requestCheckStatus(head(['Host', 'a', 'Accept', 'x', 'accept', 'y'])), 0);
});

test('forwarding fields are found in any letter case, repeated request ids joined as node:http does', () => {
  const scan = new HeadScan();
  const status = scanHead(
    head([
      'Host',
      'a',
      'X-FORWARDED-FOR',
      '1.1.1.1',
      'x-forwarded-for',
      '2.2.2.2',
      'x-Forwarded-Proto',
      'https',
      'FORWARDED',
      'for=3.3.3.3',
      'X-Request-ID',
      'first',
      'x-request-id',
      'second',
      'X-Forwarded-Port',
      '8443',
      'X-Forwarded-Host',
      'shop',
    ]),
    LIMITS,
    scan,
  );
  assert.is(status, 0);
  assert.is(scan.forwarding, true);
  assert.is(scan.requestId, 'first, second', 'joined, as req.headers has it');
});

test('X-Real-IP and any other X-Forwarded-* field count as forwarding fields', () => {
  for (const name of [
    'X-Real-IP',
    'x-real-ip',
    'X-REAL-IP',
    'x-ReAl-iP',
    'X-Forwarded-Client-Cert',
    'x-forwarded-server',
    'X-FORWARDED-SSL',
    'X-Forwarded-',
  ])
    assert.is(flagsForwarding(name), true, name);
  for (const name of ['X-Forwarded', 'x-forwardedfor', 'Accept-Encoding', 'Connection']) assert.is(flagsForwarding(name), false, name);
});

test('each known name is found in its usual spellings and in odd ones; common and object-like names are nothing', () => {
  // The fields are read from node's headers object and repeats found by slot: whatever the
  // spelling, a known name must be found, and a name that is only an object's property is nothing.
  for (const name of ['host', 'Host', 'HOST']) {
    const scan = new HeadScan();
    assert.is(scanHead(head([name, 'v']), LIMITS, scan), 0, name);
    assert.equal([scan.host, scan.forwarding], ['v', false], name);
  }
  for (const name of [
    'x-forwarded-for',
    'X-Forwarded-For',
    'X-FORWARDED-FOR',
    'x-forwarded-proto',
    'X-Forwarded-Proto',
    'x-forwarded-host',
    'X-Forwarded-Host',
    'x-forwarded-port',
    'X-Forwarded-Port',
    'forwarded',
    'Forwarded',
    'x-request-id',
    'X-Request-Id',
    'X-REQUEST-ID',
  ]) {
    const scan = new HeadScan();
    assert.is(scanHead(head(['Host', 'a', name, 'v']), LIMITS, scan), 0, name);
    assert.is(scan.forwarding, true, name);
    assert.is(scan.requestId, name.toLowerCase() === 'x-request-id' ? 'v' : undefined, name);
  }
  for (const name of ['Transfer-Encoding', 'transfer-encoding', 'TRANSFER-ENCODING']) {
    const scan = new HeadScan();
    assert.is(scanHead(head(['Host', 'a', name, 'chunked']), LIMITS, scan), 0, name);
    assert.is(scan.chunked, true, name);
  }
  for (const [a, b] of [
    ['Content-Length', 'content-length'],
    ['Range', 'RANGE'],
    ['Max-Forwards', 'max-forwards'],
    ['From', 'from'],
  ] as const) {
    assert.is(requestCheckStatus(head(['Host', 'a', a, '1', b, '1'])), 400, `${a} + ${b}`);
  }
  for (const name of [
    'Connection',
    'CONNECTION',
    'Accept',
    'Cookie',
    'X-Requested-With',
    'TE',
    'constructor',
    '__proto__',
    'toString',
    'hasOwnProperty',
    '0',
    'length',
  ]) {
    const scan = new HeadScan();
    assert.is(scanHead(head(['Host', 'a', name, 'v', name, 'w']), LIMITS, scan), 0, name);
    assert.is(scan.forwarding, false, name);
  }
});

test('repeats are found by slot: names that only share a slot are no repeat, a repeat behind one is', () => {
  // "Post" and "Host" share a slot (same length, same last two letters): compared, not equal.
  assert.is(requestCheckStatus(head(['Post', '1', 'Host', 'a'])), 0);
  assert.is(requestCheckStatus(head(['Post', '1', 'Host', 'a', 'host', 'b'])), 400, 'the repeated Host after the shared slot');
  assert.is(requestCheckStatus(head(['Post', '1', 'Host', 'a', 'POST', '2'])), 0, 'a repeated field that may repeat');
  // Many requests in a row: a slot taken by an earlier request is free in the next one.
  const scan = new HeadScan();
  for (let i = 0; i < 1000; i++) assert.is(scanHead(head(['Host', 'a', 'Content-Type', 't']), LIMITS, scan), 0);
});

test('the scan flags a forwarding field exactly where the trust code strips one (isForwardingHeader)', () => {
  // Two lists of the same fields: the scan's fast lookups and the predicate stripping uses.
  for (const name of [
    'X-Forwarded-For',
    'x-forwarded-proto',
    'X-Forwarded-Host',
    'X-Forwarded-Port',
    'X-Forwarded-Prefix',
    'X-FORWARDED-SSL',
    'Forwarded',
    'X-Real-IP',
    'X-Request-Id',
    'X-Forwarded',
    'X-Original-Forwarded-For',
    'Forwarded-For',
    'X-Real-Host',
    'X-Request',
    'Via',
    'Accept',
  ])
    assert.is(flagsForwarding(name), isForwardingHeader(name.toLowerCase()), name);
});

test('the scan object is refilled: nothing leaks from one request to the next', () => {
  const scan = new HeadScan();
  scanHead(head(['Host', 'a', 'X-Forwarded-For', '1.1.1.1', 'X-Request-Id', 'r', 'Transfer-Encoding', 'chunked']), LIMITS, scan);
  assert.is(scan.chunked, true);
  scanHead(head(['Host', 'b']), LIMITS, scan);
  assert.equal([scan.host, scan.forwarding, scan.requestId, scan.chunked], ['b', false, undefined, false]);
});

test('limits: request line 414, field count and field size 431, checked before the RFC checks', () => {
  const scan = new HeadScan();
  assert.is(scanHead(head(['Host', 'a'], { url: `/${'x'.repeat(5000)}` }), LIMITS, scan), 414);
  const many = Array.from({ length: 101 }, (_, i) => [`X-F${i}`, 'v']).flat();
  assert.is(scanHead(head(many), LIMITS, scan), 431);
  assert.is(
    scanHead(head(['Host', 'a', 'Host', 'b', 'Cookie', 'c'.repeat(9000)]), LIMITS, scan),
    431,
    'an oversized field wins over a repeated Host',
  );
  // As Gunicorn: the line "Name: value" plus its CRLF against the limit (8190).
  const line = (n: number) => head(['Host', 'a', 'X-Big', 'v'.repeat(n - 'X-Big: '.length)]);
  assert.is(scanHead(line(8188), LIMITS, scan), 0, 'a line of 8188 bytes + CRLF is at the limit');
  assert.is(scanHead(line(8189), LIMITS, scan), 431, 'a line of 8189 bytes + CRLF is over it');
  assert.is(scanHead(head(['Host', 'a', 'Host', 'b'], { major: 2, minor: 0 }), LIMITS, scan), 505, 'the version before a repeated field');
});

test('Transfer-Encoding: chunked only, never in HTTP/1.0; Content-Length over the body limit is 413', () => {
  const scan = new HeadScan();
  assert.is(scanHead(head(['Host', 'a', 'TRANSFER-ENCODING', 'chunked']), LIMITS, scan), 0);
  assert.is(scan.chunked, true);
  assert.is(requestCheckStatus(head(['Host', 'a', 'Transfer-Encoding', 'gzip, chunked'])), 501);
  assert.is(requestCheckStatus(head(['Host', 'a', 'Transfer-Encoding', 'chunked'], { minor: 0 })), 400);
  assert.is(requestCheckStatus(head(['Host', 'a', 'Transfer-Encoding', 'chunked', 'transfer-encoding', 'chunked'])), 400);
  assert.is(requestCheckStatus(head(['Host', 'a', 'Content-Length', '11']), 10), 413);
  assert.is(requestCheckStatus(head(['Host', 'a', 'Content-Length', '10']), 10), 0);
});

test('Host: a bad one is 400 even right after a good one was seen', () => {
  assert.is(requestCheckStatus(head(['Host', 'good.example'])), 0);
  assert.is(requestCheckStatus(head(['Host', 'bad host'])), 400);
  assert.is(requestCheckStatus(head(['Host', 'good.example'])), 0);
  assert.is(requestCheckStatus(head(['Host', 'good.example/'])), 400);
});

test.run();
