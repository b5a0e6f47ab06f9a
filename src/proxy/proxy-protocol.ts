// PROXY protocol v1/v2 (HAProxy, nginx stream, load balancers): the header a TCP proxy sends
// before any HTTP, saying who the client is. We accept each connection ourselves, read the
// header (bounded in time and size), then hand the socket to the http.Server.
// Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
import net, { type Socket } from 'node:net';
import pp from 'proxy-protocol-js';
import ipaddr from 'ipaddr.js';
import { normalizeAddress, type AllowList, type Peer } from './trust.js';
import type { Logger } from '../log/logger.js';

export type ProxyProtocolMode = 'off' | 'v1' | 'v2' | 'auto';

/** v1 lines are at most 107 bytes (spec, 2.1). */
const V1_MAX = 107;
/** v2: 16-byte preamble plus addresses and TLVs; we take at most this much in all. */
export const V2_MAX = 16 + 4096;
const V1_SIGNATURE = Buffer.from('PROXY ');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

export type HeaderResult =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string }
  /** `peer` null: LOCAL (v2) or UNKNOWN (v1), the connection speaks for itself (health checks). */
  | { kind: 'ok'; version: 1 | 2; peer: Peer | null; length: number };

function startsLike(buf: Buffer, sig: Buffer): boolean {
  const n = Math.min(buf.length, sig.length);
  return buf.subarray(0, n).equals(sig.subarray(0, n));
}

/** Parses the PROXY header at the start of `buf`, or says more bytes are needed. */
export function parseProxyHeader(buf: Buffer, mode: Exclude<ProxyProtocolMode, 'off'>): HeaderResult {
  const v1 = mode !== 'v2' && startsLike(buf, V1_SIGNATURE);
  const v2 = mode !== 'v1' && startsLike(buf, V2_SIGNATURE);
  if (!v1 && !v2) return { kind: 'invalid', reason: `no PROXY protocol ${mode === 'auto' ? '' : mode + ' '}header` };
  if (v1) return parseV1(buf);
  return parseV2(buf);
}

function parseV1(buf: Buffer): HeaderResult {
  const end = buf.subarray(0, V1_MAX).indexOf('\r\n');
  if (end < 0) return buf.length >= V1_MAX ? { kind: 'invalid', reason: 'PROXY v1 line longer than 107 bytes' } : { kind: 'incomplete' };
  const line = buf.subarray(0, end + 2).toString('latin1');
  const length = end + 2;
  if (/^PROXY UNKNOWN[ \r]/.test(line)) return { kind: 'ok', version: 1, peer: null, length };
  let parsed: InstanceType<typeof pp.V1ProxyProtocol>;
  try {
    parsed = pp.V1ProxyProtocol.parse(line);
  } catch {
    return { kind: 'invalid', reason: 'malformed PROXY v1 line' };
  }
  const family = parsed.inetProtocol === 'TCP4' ? 4 : 6;
  const { ipAddress, port } = parsed.source;
  if (net.isIP(ipAddress) !== family || net.isIP(parsed.destination.ipAddress) !== family)
    return { kind: 'invalid', reason: 'bad address in PROXY v1 line' };
  if (!(port >= 0 && port <= 65535)) return { kind: 'invalid', reason: 'bad port in PROXY v1 line' };
  return { kind: 'ok', version: 1, peer: { address: normalizeAddress(ipAddress), port, unix: false, source: 'proxy-protocol' }, length };
}

function parseV2(buf: Buffer): HeaderResult {
  if (buf.length < 16) return { kind: 'incomplete' };
  const length = 16 + buf.readUInt16BE(14);
  if (length > V2_MAX) return { kind: 'invalid', reason: `PROXY v2 header of ${length} bytes is over our limit of ${V2_MAX}` };
  if (buf.length < length) return { kind: 'incomplete' };
  let parsed: InstanceType<typeof pp.V2ProxyProtocol>;
  try {
    // The library reads everything after the addresses as TLVs: give it only the header.
    parsed = pp.V2ProxyProtocol.parse(new Uint8Array(buf.subarray(0, length)));
  } catch (err) {
    return { kind: 'invalid', reason: `malformed PROXY v2 header (${(err as { message?: string }).message ?? 'parse error'})` };
  }
  if (parsed.command === pp.Command.LOCAL) return { kind: 'ok', version: 2, peer: null, length };
  const a = parsed.proxyAddress;
  if (a instanceof pp.IPv4ProxyAddress) {
    return {
      kind: 'ok',
      version: 2,
      peer: { address: a.sourceAddress.address.join('.'), port: a.sourcePort, unix: false, source: 'proxy-protocol' },
      length,
    };
  }
  if (a instanceof pp.IPv6ProxyAddress) {
    const address = normalizeAddress(ipaddr.fromByteArray([...a.sourceAddress.address]).toString());
    return { kind: 'ok', version: 2, peer: { address, port: a.sourcePort, unix: false, source: 'proxy-protocol' }, length };
  }
  if (a instanceof pp.UnixProxyAddress)
    return { kind: 'ok', version: 2, peer: { address: null, port: null, unix: true, source: 'proxy-protocol' }, length };
  // AF_UNSPEC with PROXY: the proxy does not know; the connection speaks for itself.
  return { kind: 'ok', version: 2, peer: null, length };
}

// Per-socket peers live in peer.ts (light: loaded by every worker); this module, with its
// parsers, is loaded only when --proxy-protocol is on.
export { rememberPeer, peerOf, isUnixListener } from './peer.js';
import { rememberPeer, isUnixListener } from './peer.js';

// ---- accepting ----------------------------------------------------------------

export interface ProxyAcceptorOptions {
  mode: Exclude<ProxyProtocolMode, 'off'>;
  /** Peers allowed to send a PROXY header (UNIX peers always are: the socket file's mode decides). */
  allow: AllowList;
  /** Known to be a UNIX socket bind (else found out from the socket once listening). */
  unixListener: boolean;
  timeoutMs: number;
  log: Logger;
  /** Receives the socket once its header is read: the bytes after the header are back in it. */
  onReady: (socket: Socket) => void;
}

/** A net.Server on an inherited fd that reads the PROXY header of each connection. */
export class ProxyProtocolAcceptor {
  readonly server: net.Server;
  private readonly pending = new Set<Socket>();

  private unixListener: boolean;

  constructor(private readonly opts: ProxyAcceptorOptions) {
    this.unixListener = opts.unixListener;
    this.server = net.createServer({ pauseOnConnect: false }, (sock) => this.accept(sock));
  }

  listen(fd: number, backlog: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      // The backlog as an argument: node ignores `backlog` in the options of an fd listen.
      this.server.listen({ fd }, backlog, () => {
        this.server.off('error', reject);
        this.unixListener ||= isUnixListener(this.server);
        this.server.on('error', (err) => this.opts.log.error({ err }, 'PROXY protocol listener error'));
        resolve();
      });
    });
  }

  private accept(sock: Socket): void {
    const o = this.opts;
    const unixListener = this.unixListener;
    const remote = unixListener ? 'unix' : (sock.remoteAddress ?? 'unknown');
    sock.on('error', () => {}); // a reset during the header is the peer's business; never crash
    if (!unixListener && !(sock.remoteAddress && o.allow(normalizeAddress(sock.remoteAddress)))) {
      o.log.warn({ remote }, 'PROXY protocol: connection from a peer not in proxyAllowIps closed');
      sock.destroy();
      return;
    }
    this.pending.add(sock);
    let buf: Buffer = Buffer.alloc(0);
    const done = (): void => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('end', onEnd);
      this.pending.delete(sock);
    };
    const fail = (reason: string): void => {
      done();
      o.log.warn({ remote, reason }, 'PROXY protocol: bad or missing header, connection closed');
      sock.destroy();
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const r = parseProxyHeader(buf, o.mode);
      if (r.kind === 'incomplete') {
        if (buf.length > V2_MAX) fail('PROXY header too long');
        return;
      }
      if (r.kind === 'invalid') return fail(r.reason);
      done();
      // Order matters: pause so that nothing flows before node:http listens, then put back
      // what followed the header, hand over, and let the bytes flow to the HTTP parser.
      sock.pause();
      if (r.peer) rememberPeer(sock, r.peer);
      if (buf.length > r.length) sock.unshift(buf.subarray(r.length));
      o.onReady(sock);
      sock.resume();
    };
    const onEnd = (): void => fail('connection ended before the PROXY header');
    const timer = setTimeout(() => fail(`no complete PROXY header within ${o.timeoutMs} ms`), o.timeoutMs);
    sock.on('data', onData);
    sock.on('end', onEnd);
  }

  /** Stops accepting; resolves when every connection it accepted has closed. */
  close(): Promise<void> {
    for (const sock of this.pending) sock.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Destroys connections still waiting for their header (quick stop). */
  destroyPending(): void {
    for (const sock of this.pending) sock.destroy();
    if (this.server.listening) this.server.close();
  }
}

/** A listening server on a UNIX socket? (fd:// and systemd binds do not say; the socket does.) */
