// Unit tables for the trust decision (src/proxy/trust.ts) and the PROXY header parser.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { IncomingMessage } from 'node:http';
import {
  ForwardedTrust,
  compileAllowList,
  trustedUrl,
  MAX_FORWARDED_HOPS,
  type ClientInfo,
  type Peer,
  type TrustSettings,
} from '../src/proxy/trust.js';
import { parseProxyHeader } from '../src/proxy/proxy-protocol.js';
import { loadConfig, ConfigError } from '../src/config/load.js';
import { tempDir, cleanup } from './helpers/server.js';

test.after.each(cleanup);

const LOOPBACK: TrustSettings = {
  forwardedAllowIps: ['127.0.0.1', '::1'],
  forwardedAllowUnix: true,
  forwardedHeader: 'x-forwarded-for',
  stripUntrustedForwarded: true,
};

function fakeRequest(headers: Record<string, string>): IncomingMessage {
  const lower: Record<string, string> = {};
  const raw: string[] = [];
  for (const [k, v] of Object.entries(headers)) {
    lower[k.toLowerCase()] = v;
    raw.push(k, v);
  }
  return { socket: {}, headers: lower, rawHeaders: raw } as unknown as IncomingMessage;
}

const tcp = (address: string, port = 40000): Peer => ({ address, port, unix: false, source: 'socket' });
const unix: Peer = { address: null, port: null, unix: true, source: 'socket' };

interface Row {
  name: string;
  settings?: Partial<TrustSettings>;
  peer: Peer;
  headers: Record<string, string>;
  expect: Partial<ClientInfo>;
}

const rows: Row[] = [
  // spoofing from untrusted peers
  {
    name: 'untrusted peer: XFF ignored',
    peer: tcp('203.0.113.9'),
    headers: { host: 'app', 'x-forwarded-for': '1.2.3.4' },
    expect: { address: '203.0.113.9', trusted: false, source: 'socket' },
  },
  {
    name: 'untrusted peer: proto/host ignored',
    peer: tcp('203.0.113.9'),
    headers: { host: 'app', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' },
    expect: { scheme: 'http', host: 'app' },
  },
  {
    name: 'untrusted peer: Forwarded ignored',
    settings: { forwardedHeader: 'forwarded' },
    peer: tcp('203.0.113.9'),
    headers: { forwarded: 'for=1.2.3.4;proto=https' },
    expect: { address: '203.0.113.9', scheme: 'http', trusted: false },
  },
  {
    name: '127.0.0.2 is not 127.0.0.1',
    peer: tcp('127.0.0.2'),
    headers: { 'x-forwarded-for': '1.2.3.4' },
    expect: { address: '127.0.0.2', trusted: false },
  },
  {
    name: 'UNIX peer not trusted when forwardedAllowUnix is off',
    settings: { forwardedAllowUnix: false },
    peer: unix,
    headers: { 'x-forwarded-for': '1.2.3.4' },
    expect: { address: null, trusted: false },
  },
  // trusted single proxy
  {
    name: 'trusted peer: client from XFF',
    peer: tcp('127.0.0.1'),
    headers: { 'x-forwarded-for': '198.51.100.7' },
    expect: { address: '198.51.100.7', port: null, trusted: true, source: 'x-forwarded-for' },
  },
  {
    name: 'client-forged entry left of the real one',
    peer: tcp('127.0.0.1'),
    headers: { 'x-forwarded-for': '6.6.6.6, 198.51.100.7' },
    expect: { address: '198.51.100.7' },
  },
  {
    name: 'trusted UNIX peer: client from XFF',
    peer: unix,
    headers: { 'x-forwarded-for': '198.51.100.7' },
    expect: { address: '198.51.100.7', trusted: true },
  },
  {
    name: 'trusted peer without XFF: the peer',
    peer: tcp('127.0.0.1', 5000),
    headers: {},
    expect: { address: '127.0.0.1', port: 5000, trusted: true, source: 'socket' },
  },
  {
    name: 'PROXY-protocol peer keeps its source',
    peer: { address: '127.0.0.1', port: 7, unix: false, source: 'proxy-protocol' },
    headers: {},
    expect: { source: 'proxy-protocol', port: 7 },
  },
  // multiple proxies
  {
    name: 'chain of trusted proxies',
    settings: { forwardedAllowIps: ['127.0.0.1', '10.0.0.0/8'] },
    peer: tcp('127.0.0.1'),
    headers: { 'x-forwarded-for': '198.51.100.7, 10.0.0.2, 10.0.0.3' },
    expect: { address: '198.51.100.7' },
  },
  {
    name: 'chain stops at the first untrusted hop',
    settings: { forwardedAllowIps: ['127.0.0.1', '10.0.0.0/8'] },
    peer: tcp('127.0.0.1'),
    headers: { 'x-forwarded-for': '198.51.100.7, 192.0.2.1, 10.0.0.3' },
    expect: { address: '192.0.2.1' },
  },
  {
    name: 'all hops trusted: the left-most',
    settings: { forwardedAllowIps: ['*'] },
    peer: tcp('203.0.113.1'),
    headers: { 'x-forwarded-for': '10.0.0.1, 10.0.0.2' },
    expect: { address: '10.0.0.1' },
  },
  // IPv6
  { name: 'IPv6 peer and client', peer: tcp('::1'), headers: { 'x-forwarded-for': '2001:db8::7' }, expect: { address: '2001:db8::7' } },
  {
    name: 'bracketed IPv6 with port',
    peer: tcp('::1'),
    headers: { 'x-forwarded-for': '[2001:db8::7]:4711' },
    expect: { address: '2001:db8::7', port: 4711 },
  },
  {
    name: 'IPv4 with port',
    peer: tcp('127.0.0.1'),
    headers: { 'x-forwarded-for': '198.51.100.7:4711' },
    expect: { address: '198.51.100.7', port: 4711 },
  },
  {
    name: 'IPv6 CIDR allow list',
    settings: { forwardedAllowIps: ['fd00::/8'] },
    peer: tcp('fd12::1'),
    headers: { 'x-forwarded-for': '2001:db8::7' },
    expect: { address: '2001:db8::7' },
  },
  {
    name: 'IPv6 CIDR does not cover other IPv6',
    settings: { forwardedAllowIps: ['fd00::/8'] },
    peer: tcp('2001:db8::2'),
    headers: { 'x-forwarded-for': '2001:db8::7' },
    expect: { address: '2001:db8::2', trusted: false },
  },
  {
    name: 'IPv4-mapped client normalised',
    peer: tcp('127.0.0.1'),
    headers: { 'x-forwarded-for': '::ffff:198.51.100.7' },
    expect: { address: '198.51.100.7' },
  },
  // malformed
  {
    name: 'garbage XFF: the peer',
    peer: tcp('127.0.0.1'),
    headers: { 'x-forwarded-for': 'not-an-ip' },
    expect: { address: '127.0.0.1', source: 'socket' },
  },
  {
    name: 'garbage behind a good hop: the good hop',
    peer: tcp('127.0.0.1'),
    headers: { 'x-forwarded-for': '<script>, 127.0.0.1' },
    expect: { address: '127.0.0.1' },
  },
  { name: 'empty XFF', peer: tcp('127.0.0.1'), headers: { 'x-forwarded-for': '' }, expect: { address: '127.0.0.1' } },
  { name: 'only commas and spaces', peer: tcp('127.0.0.1'), headers: { 'x-forwarded-for': ' , ,, ' }, expect: { address: '127.0.0.1' } },
  {
    name: 'port out of range is dropped',
    peer: tcp('127.0.0.1'),
    headers: { 'x-forwarded-for': '198.51.100.7:99999' },
    expect: { address: '198.51.100.7', port: null },
  },
  { name: 'unclosed bracket', peer: tcp('::1'), headers: { 'x-forwarded-for': '[2001:db8::7' }, expect: { address: '::1' } },
  // scheme, host, port
  { name: 'X-Forwarded-Proto https', peer: tcp('127.0.0.1'), headers: { 'x-forwarded-proto': 'HTTPS' }, expect: { scheme: 'https' } },
  {
    name: 'X-Forwarded-Proto list: the first',
    peer: tcp('127.0.0.1'),
    headers: { 'x-forwarded-proto': 'https, http' },
    expect: { scheme: 'https' },
  },
  { name: 'X-Forwarded-Proto garbage', peer: tcp('127.0.0.1'), headers: { 'x-forwarded-proto': 'javascript' }, expect: { scheme: 'http' } },
  {
    name: 'X-Forwarded-Host and -Port',
    peer: tcp('127.0.0.1'),
    headers: { host: 'upstream', 'x-forwarded-host': 'example.com', 'x-forwarded-port': '8443', 'x-forwarded-proto': 'https' },
    expect: { host: 'example.com:8443' },
  },
  {
    name: 'default port dropped',
    peer: tcp('127.0.0.1'),
    headers: { host: 'upstream', 'x-forwarded-host': 'example.com:8080', 'x-forwarded-port': '443', 'x-forwarded-proto': 'https' },
    expect: { host: 'example.com' },
  },
  {
    name: 'X-Forwarded-Host with a path is refused',
    peer: tcp('127.0.0.1'),
    headers: { host: 'upstream', 'x-forwarded-host': 'evil.example/x' },
    expect: { host: 'upstream' },
  },
  {
    name: 'X-Forwarded-Port garbage ignored',
    peer: tcp('127.0.0.1'),
    headers: { host: 'upstream:8000', 'x-forwarded-port': 'abc' },
    expect: { host: 'upstream:8000' },
  },
  // RFC 7239
  {
    name: 'Forwarded: for, proto, host',
    settings: { forwardedHeader: 'forwarded' },
    peer: tcp('127.0.0.1'),
    headers: { forwarded: 'for=192.0.2.60;proto=https;host=example.com' },
    expect: { address: '192.0.2.60', scheme: 'https', host: 'example.com', source: 'forwarded' },
  },
  {
    name: 'Forwarded: quoted IPv6 with port',
    settings: { forwardedHeader: 'forwarded' },
    peer: tcp('::1'),
    headers: { forwarded: 'for="[2001:db8:cafe::17]:4711"' },
    expect: { address: '2001:db8:cafe::17', port: 4711 },
  },
  {
    name: 'Forwarded: forged element left of the real one',
    settings: { forwardedHeader: 'forwarded' },
    peer: tcp('127.0.0.1'),
    headers: { forwarded: 'for=6.6.6.6;proto=https, for=198.51.100.7;proto=http' },
    expect: { address: '198.51.100.7', scheme: 'http' },
  },
  {
    name: 'Forwarded: for=unknown keeps the proxy, proto counts',
    settings: { forwardedHeader: 'forwarded' },
    peer: tcp('127.0.0.1'),
    headers: { forwarded: 'for=unknown;proto=https' },
    expect: { address: '127.0.0.1', scheme: 'https' },
  },
  {
    name: 'Forwarded: obfuscated identifier',
    settings: { forwardedHeader: 'forwarded' },
    peer: tcp('127.0.0.1'),
    headers: { forwarded: 'for=_hidden' },
    expect: { address: '127.0.0.1' },
  },
  {
    name: 'Forwarded: malformed',
    settings: { forwardedHeader: 'forwarded' },
    peer: tcp('127.0.0.1'),
    headers: { forwarded: 'for=1.2.3.4;;;proto="https' },
    expect: { address: '127.0.0.1', scheme: 'http' },
  },
  {
    name: 'Forwarded mode ignores XFF',
    settings: { forwardedHeader: 'forwarded' },
    peer: tcp('127.0.0.1'),
    headers: { 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'https' },
    expect: { address: '127.0.0.1', scheme: 'http' },
  },
];

for (const row of rows) {
  test(`trust table: ${row.name}`, () => {
    const trust = new ForwardedTrust({ ...LOOPBACK, ...row.settings });
    const info = trust.resolve(fakeRequest(row.headers), row.peer);
    for (const [k, v] of Object.entries(row.expect)) assert.equal(info[k as keyof ClientInfo], v, `${k} of ${JSON.stringify(info)}`);
  });
}

test('untrusted peer: forwarding headers are removed from headers and rawHeaders, others kept', () => {
  const trust = new ForwardedTrust(LOOPBACK);
  const req = fakeRequest({
    Host: 'app',
    'X-Forwarded-For': '1.2.3.4',
    'x-forwarded-proto': 'https',
    'X-Forwarded-Prefix': '/x',
    Forwarded: 'for=1.2.3.4',
    'X-Real-IP': '1.2.3.4',
    'X-Request-Id': 'forged',
    Accept: '*/*',
  });
  let removed: string[] = [];
  trust.resolve(req, tcp('203.0.113.9'), (r) => (removed = r));
  assert.equal(Object.keys(req.headers).sort(), ['accept', 'host']);
  assert.equal(req.rawHeaders, ['Host', 'app', 'Accept', '*/*']);
  assert.equal(removed.sort(), ['forwarded', 'x-forwarded-for', 'x-forwarded-prefix', 'x-forwarded-proto', 'x-real-ip', 'x-request-id']);
});

test('untrusted peer with stripUntrustedForwarded off: headers stay, still not believed', () => {
  const trust = new ForwardedTrust({ ...LOOPBACK, stripUntrustedForwarded: false });
  const req = fakeRequest({ 'x-forwarded-for': '1.2.3.4' });
  const info = trust.resolve(req, tcp('203.0.113.9'));
  assert.equal(info.address, '203.0.113.9');
  assert.equal(req.headers['x-forwarded-for'], '1.2.3.4');
});

test('trusted peer: headers are left for the app (Express trust proxy keeps working)', () => {
  const trust = new ForwardedTrust(LOOPBACK);
  const req = fakeRequest({ 'x-forwarded-for': '1.2.3.4', 'x-request-id': 'abc' });
  trust.resolve(req, tcp('127.0.0.1'));
  assert.equal(req.headers['x-forwarded-for'], '1.2.3.4');
  assert.equal(req.headers['x-request-id'], 'abc');
});

test('1000 hops: bounded walk, sane answers', () => {
  const hops = Array.from({ length: 1000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.1`);
  const xff = hops.join(', ');
  // Everything trusted: the walk stops after MAX_FORWARDED_HOPS entries from the right.
  const all = new ForwardedTrust({ ...LOOPBACK, forwardedAllowIps: ['*'] }).resolve(
    fakeRequest({ 'x-forwarded-for': xff }),
    tcp('127.0.0.1'),
  );
  assert.equal(all.address, hops[1000 - MAX_FORWARDED_HOPS]);
  // Only loopback trusted: the right-most entry is the client.
  const lo = new ForwardedTrust(LOOPBACK).resolve(fakeRequest({ 'x-forwarded-for': xff }), tcp('127.0.0.1'));
  assert.equal(lo.address, hops[999]);
  // The same in RFC 7239 form.
  const fwd = hops.map((h) => `for=${h}`).join(', ');
  const f = new ForwardedTrust({ ...LOOPBACK, forwardedAllowIps: ['*'], forwardedHeader: 'forwarded' }).resolve(
    fakeRequest({ forwarded: fwd }),
    tcp('127.0.0.1'),
  );
  assert.equal(f.address, hops[1000 - MAX_FORWARDED_HOPS]);
  // 1000 garbage hops: nothing believed past the peer.
  const g = new ForwardedTrust(LOOPBACK).resolve(fakeRequest({ 'x-forwarded-for': Array(1000).fill('x').join(',') }), tcp('127.0.0.1'));
  assert.equal(g.address, '127.0.0.1');
});

test('allow lists: good entries compile, bad ones name themselves', () => {
  const allow = compileAllowList(['127.0.0.1', '10.0.0.0/8', 'fd00::/8', 'loopback', '192.168.0.0/255.255.0.0']);
  assert.ok(allow('10.1.2.3'));
  assert.ok(allow('fd00::5'));
  assert.ok(allow('127.9.9.9'), 'loopback is 127.0.0.0/8');
  assert.ok(allow('192.168.4.4'));
  assert.not.ok(allow('11.0.0.1'));
  assert.not.ok(allow('garbage'));
  assert.not.ok(allow(''));
  assert.ok(compileAllowList(['*'])('203.0.113.1'));
  assert.not.ok(compileAllowList([])('127.0.0.1'));
  for (const bad of ['10.0.0.0/33', '::1/129', '300.1.1.1', 'localhost', '10.0.0.1/0', '1.2.3.4/abc', '-']) {
    assert.throws(
      () => compileAllowList([bad]),
      (e: Error) => e.message.includes(bad),
      bad,
    );
  }
});

test('invalid CIDR in config: ConfigError naming the setting and what is accepted', async () => {
  const cwd = tempDir();
  const cases: [Parameters<typeof loadConfig>[0], RegExp][] = [
    [
      {
        cli: new Map([
          ['forwardedAllowIps', { value: ['127.0.0.1,10.0.0.0/33'], source: { origin: 'command line', where: '--forwarded-allow-ips' } }],
        ]),
        env: {},
        cwd,
      },
      /forwardedAllowIps \(--forwarded-allow-ips\).*10\.0\.0\.0\/33.*CIDR/,
    ],
    [
      { cli: new Map(), env: { FORWARDED_ALLOW_IPS: '127.0.0.1, nonsense' }, cwd },
      /forwardedAllowIps \(FORWARDED_ALLOW_IPS\).*nonsense.*CIDR/,
    ],
    [{ cli: new Map(), env: { WS_PROXY_KIT_PROXY_ALLOW_IPS: '::1/200' }, cwd }, /proxyAllowIps \(WS_PROXY_KIT_PROXY_ALLOW_IPS\).*CIDR/],
    [{ cli: new Map(), env: { WS_PROXY_KIT_PROXY_PROTOCOL: 'v3' }, cwd }, /proxyProtocol.*off, v1, v2 or auto/],
    [{ cli: new Map(), env: { WS_PROXY_KIT_FORWARDED_HEADER: 'x-real-ip' }, cwd }, /forwardedHeader.*x-forwarded-for/],
  ];
  for (const [opts, re] of cases) {
    try {
      await loadConfig(opts);
      assert.unreachable('should have thrown');
    } catch (err) {
      assert.instance(err, ConfigError);
      assert.match((err as Error).message, re);
    }
  }
  const ok = await loadConfig({ cli: new Map(), env: { FORWARDED_ALLOW_IPS: '10.0.0.0/8, fd00::/8 *' }, cwd });
  assert.equal(ok.settings.forwardedAllowIps, ['10.0.0.0/8', 'fd00::/8', '*']);
  const defaults = await loadConfig({ cli: new Map(), env: {}, cwd });
  assert.equal(defaults.settings.forwardedAllowIps, ['127.0.0.1', '::1']);
  assert.equal(defaults.settings.proxyProtocol, 'off');
  assert.equal(defaults.settings.forwardedAllowUnix, true);
  assert.equal((await loadConfig({ cli: new Map(), env: { WS_PROXY_KIT_PROXY_PROTOCOL: 'true' }, cwd })).settings.proxyProtocol, 'auto');
});

test('fetch URL: trusted scheme and host replace the socket view, paths stay paths', () => {
  const info = (o: Partial<ClientInfo>): ClientInfo => ({
    address: '1.2.3.4',
    port: null,
    scheme: 'https',
    host: 'example.com',
    trusted: true,
    source: 'x-forwarded-for',
    ...o,
  });
  assert.is(trustedUrl('http://upstream/a?b=1', info({})), 'https://example.com/a?b=1');
  assert.is(trustedUrl('https://example.com/a', info({})), null);
  assert.is(trustedUrl('http://upstream//evil.example/x', info({})), 'https://example.com//evil.example/x');
  assert.is(trustedUrl('http://upstream/a', info({ trusted: false })), null);
  assert.is(trustedUrl('http://upstream/a', info({ host: null })), null);
});

// PROXY protocol header parsing (the socket handling is in proxies.test.ts)
const V2_SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
function v2(command: number, family: number, body: number[]): Buffer {
  return Buffer.from([...V2_SIG, 0x20 | command, family, body.length >> 8, body.length & 255, ...body]);
}
const v4body = [203, 0, 113, 7, 127, 0, 0, 1, 0x15, 0xb3, 0, 80];

const headerRows: [string, Buffer, 'v1' | 'v2' | 'auto', string | null][] = [
  ['v1 TCP4', Buffer.from('PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n'), 'auto', '203.0.113.7:5555'],
  ['v1 TCP6', Buffer.from('PROXY TCP6 2001:db8::7 ::1 5555 80\r\n'), 'v1', '2001:db8::7:5555'],
  ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n'), 'auto', 'local'],
  ['v1 family mismatch', Buffer.from('PROXY TCP4 2001:db8::7 ::1 5555 80\r\n'), 'auto', 'invalid'],
  ['v1 garbage address', Buffer.from('PROXY TCP4 a.b.c.d 127.0.0.1 5555 80\r\n'), 'auto', 'invalid'],
  ['v1 too long', Buffer.from('PROXY TCP4 ' + '1'.repeat(120)), 'auto', 'invalid'],
  ['v1 incomplete', Buffer.from('PROXY TCP4 203.0'), 'auto', 'incomplete'],
  ['v1 refused in v2 mode', Buffer.from('PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n'), 'v2', 'invalid'],
  ['HTTP instead of PROXY', Buffer.from('GET / HTTP/1.1\r\n'), 'auto', 'invalid'],
  ['empty so far', Buffer.alloc(0), 'auto', 'incomplete'],
  ['v2 PROXY IPv4', v2(1, 0x11, v4body), 'v2', '203.0.113.7:5555'],
  ['v2 with TLVs', v2(1, 0x11, [...v4body, 0x04, 0, 2, 9, 9]), 'auto', '203.0.113.7:5555'],
  [
    'v2 PROXY IPv6',
    v2(1, 0x21, [0x20, 1, 0x0d, 0xb8, ...Array(11).fill(0), 7, ...Array(15).fill(0), 1, 0x15, 0xb3, 0, 80]),
    'auto',
    '2001:db8::7:5555',
  ],
  ['v2 LOCAL', v2(0, 0x00, []), 'v2', 'local'],
  ['v2 bad version', Buffer.from([...V2_SIG, 0x31, 0x11, 0, 12, ...v4body]), 'v2', 'invalid'],
  ['v2 length too short for family', v2(1, 0x11, [1, 2, 3]), 'v2', 'invalid'],
  ['v2 over our size limit', Buffer.from([...V2_SIG, 0x21, 0x11, 0xff, 0xff]), 'v2', 'invalid'],
  ['v2 incomplete', v2(1, 0x11, v4body).subarray(0, 20), 'v2', 'incomplete'],
  ['v2 refused in v1 mode', v2(1, 0x11, v4body), 'v1', 'invalid'],
];

for (const [name, buf, mode, expected] of headerRows) {
  test(`PROXY header: ${name}`, () => {
    const r = parseProxyHeader(buf, mode);
    const got = r.kind === 'ok' ? (r.peer ? `${r.peer.address}:${r.peer.port}` : 'local') : r.kind;
    assert.is(got, expected);
    if (r.kind === 'ok') assert.ok(r.length <= buf.length);
  });
}

test('PROXY header: bytes after the header are not consumed', () => {
  const head = Buffer.from('PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n');
  const r = parseProxyHeader(Buffer.concat([head, Buffer.from('GET / HTTP/1.1\r\n')]), 'auto');
  assert.is(r.kind === 'ok' && r.length, head.length);
  const h2 = v2(1, 0x11, v4body);
  const r2 = parseProxyHeader(Buffer.concat([h2, Buffer.from('GET')]), 'auto');
  assert.is(r2.kind === 'ok' && r2.length, h2.length);
});

test.run();
