// The one pass over a request head that every request goes through (src/worker/request-checks.ts):
// limits, RFC checks and the fields the worker reads later, with names in any letter case.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HeadScan, scanHead, type HeadLimits } from '../src/worker/request-checks.js';

const LIMITS: HeadLimits = { limitRequestLine: 4094, limitRequestFields: 100, limitRequestFieldSize: 8190, limitRequestBody: 0 };
const NO_LIMITS: HeadLimits = { limitRequestLine: 0, limitRequestFields: 0, limitRequestFieldSize: 0, limitRequestBody: 0 };

/** The status of a request head with no limits but the body limit given. */
function requestCheckStatus(req: Parameters<typeof scanHead>[0], limitRequestBody = 0): number {
  return scanHead(req, { ...NO_LIMITS, limitRequestBody }, new HeadScan());
}

function head(rawHeaders: string[], extra: { method?: string; url?: string; minor?: number; major?: number } = {}) {
  return {
    method: extra.method ?? 'GET',
    url: extra.url ?? '/',
    httpVersionMajor: extra.major ?? 1,
    httpVersionMinor: extra.minor ?? 1,
    rawHeaders,
  };
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

test('forwarding fields are found in any letter case, repeated ones joined as node:http does', () => {
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
  assert.is(scan.xForwardedFor, '1.1.1.1, 2.2.2.2');
  assert.is(scan.xForwardedProto, 'https');
  assert.is(scan.forwarded, 'for=3.3.3.3');
  assert.is(scan.requestId, 'first, second', 'joined, as req.headers has it');
  assert.is(scan.xForwardedPort, '8443');
  assert.is(scan.xForwardedHost, 'shop');
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
  ]) {
    const scan = new HeadScan();
    scanHead(head(['Host', 'a', name, 'v']), LIMITS, scan);
    assert.is(scan.forwarding, true, name);
  }
  for (const name of ['X-Forwarded', 'x-forwardedfor', 'Accept-Encoding', 'Connection']) {
    const scan = new HeadScan();
    scanHead(head(['Host', 'a', name, 'v']), LIMITS, scan);
    assert.is(scan.forwarding, false, name);
  }
});

test('the scan object is refilled: nothing leaks from one request to the next', () => {
  const scan = new HeadScan();
  scanHead(head(['Host', 'a', 'X-Forwarded-For', '1.1.1.1', 'Transfer-Encoding', 'chunked']), LIMITS, scan);
  assert.is(scan.chunked, true);
  scanHead(head(['Host', 'b']), LIMITS, scan);
  assert.equal([scan.host, scan.forwarding, scan.xForwardedFor, scan.chunked], ['b', false, undefined, false]);
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
