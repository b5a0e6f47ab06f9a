// Who is the client? The trust decision for forwarding headers (docs/proxies.md).
// A connection's peer is trusted when its address is in forwardedAllowIps (or it came over
// a UNIX socket and forwardedAllowUnix is on). Only then do X-Forwarded-* / Forwarded say
// who the client is; from anyone else they are removed before the app runs.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import proxyAddr from 'proxy-addr';
import parseForwarded from 'forwarded-parse';
import { removeFields } from '../http-fields.js';

/** The resolved client of one request: `req.clientInfo` for listeners, `info.clientInfo` for fetch handlers. */
export interface ClientInfo {
  /** The client's IP address; null when the request came over a UNIX socket with no trusted forwarding information. */
  readonly address: string | null;
  /** The client's source port when known (socket, PROXY header, or a forwarded entry that carries one). */
  readonly port: number | null;
  /** The scheme the client used: from X-Forwarded-Proto / Forwarded proto= of a trusted peer, else this connection's. */
  readonly scheme: 'http' | 'https';
  /** host[:port] the client asked for: X-Forwarded-Host/-Port / Forwarded host= of a trusted peer, else the Host header. */
  readonly host: string | null;
  /** Whether the forwarding headers of this request were honoured (the peer is trusted). */
  readonly trusted: boolean;
  /** Where `address` came from. */
  readonly source: 'socket' | 'proxy-protocol' | 'x-forwarded-for' | 'forwarded';
}

/** A request as the app receives it from ws-proxy-kit. */
export type RequestWithClientInfo = IncomingMessage & { clientInfo: ClientInfo };

/** The connection's peer, after the PROXY protocol if any. */
export interface Peer {
  /** null for a UNIX socket peer, or when the address is unknown. */
  address: string | null;
  port: number | null;
  unix: boolean;
  source: 'socket' | 'proxy-protocol';
}

export interface TrustSettings {
  forwardedAllowIps: readonly string[];
  forwardedAllowUnix: boolean;
  forwardedHeader: 'x-forwarded-for' | 'forwarded';
  stripUntrustedForwarded: boolean;
}

export type AllowList = (address: string) => boolean;

/** Walking a chain longer than this stops here: no real deployment has 100 proxies. */
export const MAX_FORWARDED_HOPS = 100;

const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

export const ALLOW_LIST_ACCEPTED =
  'IPv4/IPv6 addresses and CIDR ranges (e.g. 127.0.0.1, ::1, 10.0.0.0/8, fd00::/8), the names loopback, linklocal, uniquelocal, or * for every address; separated by commas';

/** Splits a config value (array or comma/space separated string) into entries. */
export function allowListEntries(raw: unknown): string[] {
  const parts = Array.isArray(raw) ? raw : [raw];
  const out: string[] = [];
  for (const p of parts) {
    if (typeof p !== 'string') throw new TypeError(`not a string: ${String(p)}`);
    out.push(...p.split(/[\s,]+/).filter(Boolean));
  }
  return out;
}

/** Compiles an allow list; throws TypeError naming the bad entry. `*` trusts every address. */
export function compileAllowList(entries: readonly string[]): AllowList {
  if (entries.includes('*')) return () => true;
  if (entries.length === 0) return () => false;
  for (const e of entries) {
    // proxy-addr accepts "1.2.3.4/255.0.0.0" too; reject what it would silently misread.
    if (!NAMED_RANGES.has(e) && !/^[0-9a-fA-F:.]+(\/\d{1,3}|\/[\d.]+)?$/.test(e)) throw new TypeError(`invalid address or range: ${e}`);
    try {
      proxyAddr.compile(e);
    } catch {
      throw new TypeError(`invalid address or range: ${e}`);
    }
  }
  const trust = proxyAddr.compile([...entries]);
  return (address) => trust(address, 0);
}

/** Headers a client could forge to lie about itself or a proxy it never went through. */
export function isForwardingHeader(lowerName: string): boolean {
  return lowerName.startsWith('x-forwarded-') || lowerName === 'forwarded' || lowerName === 'x-real-ip' || lowerName === 'x-request-id';
}

/** Removes the forwarding headers from every view node:http gives the app. Returns the names removed. */
export function stripForwardingHeaders(req: IncomingMessage): string[] {
  return removeFields(req, isForwardingHeader);
}

/** "1.2.3.4", "1.2.3.4:80", "[::1]:80", "::1" → address and port; null when not an IP. */
export function parseHop(value: string): { address: string; port: number | null } | null {
  let v = value.trim();
  if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1);
  let port: number | null = null;
  if (v.startsWith('[')) {
    const end = v.indexOf(']');
    if (end < 0) return null;
    const rest = v.slice(end + 1);
    if (rest !== '') {
      if (!/^:\d{1,5}$/.test(rest)) return null;
      port = Number(rest.slice(1));
    }
    v = v.slice(1, end);
  } else if (/^[\d.]+:\d{1,5}$/.test(v)) {
    const colon = v.lastIndexOf(':');
    port = Number(v.slice(colon + 1));
    v = v.slice(0, colon);
  }
  if (port !== null && (port < 1 || port > 65535)) port = null;
  return isIP(v) ? { address: normalizeAddress(v), port } : null;
}

/** IPv4-mapped IPv6 (what a dual-stack socket reports) → plain IPv4. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

const HOST_RE = /^(?:[A-Za-z0-9._~!$&'()*+;=%-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

function firstListValue(s: string | undefined): string | null {
  if (!s) return null;
  const first = s.split(',', 1)[0]!.trim();
  return first === '' ? null : first;
}

function schemeOf(v: string | null | undefined): 'http' | 'https' | null {
  const s = v?.trim().toLowerCase();
  return s === 'https' || s === 'http' ? s : null;
}

function validHost(v: string | null | undefined): string | null {
  const s = v?.trim();
  return s && s.length <= 255 && HOST_RE.test(s) ? s : null;
}

function withPort(host: string, port: string | null, scheme: 'http' | 'https'): string {
  if (!port || !/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return host;
  const bare = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  const isDefault = (scheme === 'https' && port === '443') || (scheme === 'http' && port === '80');
  return isDefault ? bare : `${bare}:${port}`;
}

/** Last `max` comma-separated entries of a header, without splitting a huge string whole. */
function lastEntries(value: string, max: number): string[] {
  const out: string[] = [];
  let end = value.length;
  while (out.length < max) {
    const comma = value.lastIndexOf(',', end - 1);
    out.push(value.slice(comma + 1, end));
    if (comma < 0) break;
    end = comma;
  }
  return out; // right-most first
}

interface Hop {
  address: string;
  port: number | null;
  /** Forwarded element parameters (proto, host), for the RFC 7239 chain. */
  params?: Record<string, string>;
}

/**
 * Walks the chain from the right: every hop that is a trusted proxy passes on to the next
 * one to the left; the first address that is not trusted is the client. An entry that is not
 * an IP (garbage, "unknown", an obfuscated name) ends the walk at the last good hop.
 * `credible` is the left-most entry written by a trusted proxy (its proto/host count).
 */
function walk(peer: Hop, hops: Hop[] | null, allow: AllowList): { hop: Hop; fromHeader: boolean; credible: Hop | null } {
  // The peer itself is trusted (the caller checked); each later hop passes on only if trusted.
  let current = peer;
  let fromHeader = false;
  let credible: Hop | null = null;
  for (const next of hops ?? []) {
    if (fromHeader && !allow(current.address)) break;
    credible = next;
    if (!next.address) break;
    current = next;
    fromHeader = true;
  }
  return { hop: current, fromHeader, credible };
}

export class ForwardedTrust {
  readonly allow: AllowList;

  constructor(private readonly settings: TrustSettings) {
    this.allow = compileAllowList(settings.forwardedAllowIps);
  }

  /** Is this peer allowed to tell us who the client is? */
  trusts(peer: Peer): boolean {
    return peer.unix ? this.settings.forwardedAllowUnix : peer.address !== null && this.allow(peer.address);
  }

  /**
   * Resolves the client of a request. From an untrusted peer the forwarding headers are
   * removed (when stripUntrustedForwarded) and the peer is the client.
   * `onStrip` hears which headers were removed (for a debug log line).
   */
  resolve(req: IncomingMessage, peer: Peer, onStrip?: (removed: string[]) => void): ClientInfo {
    const trusted = this.trusts(peer);
    if (!trusted && this.settings.stripUntrustedForwarded) {
      const removed = stripForwardingHeaders(req);
      if (removed.length && onStrip) onStrip(removed);
    }
    return this.clientOfRequest(req, peer, trusted);
  }

  /**
   * The client of a request whose forwarding fields were already dealt with (those of an
   * untrusted peer removed or to be ignored): read off `req.headers`.
   */
  clientOfRequest(req: IncomingMessage, peer: Peer, trusted: boolean): ClientInfo {
    const h = req.headers;
    const fields: ForwardingFields | null = trusted
      ? {
          xForwardedFor: listText(h['x-forwarded-for']),
          xForwardedProto: listText(h['x-forwarded-proto']),
          xForwardedHost: listText(h['x-forwarded-host']),
          xForwardedPort: listText(h['x-forwarded-port']),
          forwarded: listText(h.forwarded),
        }
      : null;
    return this.clientOf(peer, trusted, socketScheme(req.socket), h.host ?? null, fields);
  }

  /**
   * The client, from whether the peer is trusted (see trusts()), the connection's own
   * scheme, the Host field, and the forwarding fields (null when there are none to read).
   */
  clientOf(peer: Peer, trusted: boolean, scheme: 'http' | 'https', host: string | null, fields: ForwardingFields | null): ClientInfo {
    if (!trusted) return { address: peer.address, port: peer.port, scheme, host, trusted: false, source: peer.source };
    if (fields === null) return { address: peer.address, port: peer.port, scheme, host, trusted: true, source: peer.source };
    return this.settings.forwardedHeader === 'forwarded'
      ? this.fromForwarded(peer, scheme, host, fields)
      : this.fromXForwarded(peer, scheme, host, fields);
  }

  private fromXForwarded(peer: Peer, ownScheme: 'http' | 'https', ownHost: string | null, fields: ForwardingFields): ClientInfo {
    const xff = fields.xForwardedFor;
    let hops: Hop[] | null = null;
    if (xff) hops = lastEntries(xff, MAX_FORWARDED_HOPS).map((e) => parseHop(e) ?? { address: '', port: null });
    const start: Hop = { address: peer.address ?? '', port: peer.port };
    const { hop, fromHeader } = walk(start, hops, this.allow);
    const scheme = schemeOf(firstListValue(fields.xForwardedProto)) ?? ownScheme;
    let host = validHost(firstListValue(fields.xForwardedHost)) ?? ownHost;
    if (host) host = withPort(host, firstListValue(fields.xForwardedPort), scheme);
    return trustedClient(peer, fromHeader ? hop : null, scheme, host, 'x-forwarded-for');
  }

  private fromForwarded(peer: Peer, ownScheme: 'http' | 'https', ownHost: string | null, fields: ForwardingFields): ClientInfo {
    const header = fields.forwarded;
    let hops: Hop[] | null = null;
    if (header) {
      try {
        // forwarded-parse is strict (RFC 7239 grammar): a malformed header gives no information.
        const elements = parseForwarded(lastEntries(header, MAX_FORWARDED_HOPS).reverse().join(',').trimStart());
        hops = elements.reverse().map((params) => ({ ...(parseHop(params.for ?? '') ?? { address: '', port: null }), params }));
      } catch {
        hops = null;
      }
    }
    const start: Hop = { address: peer.address ?? '', port: peer.port };
    const { hop, fromHeader, credible } = walk(start, hops, this.allow);
    const scheme = schemeOf(credible?.params?.proto) ?? ownScheme;
    const host = validHost(credible?.params?.host) ?? ownHost;
    return trustedClient(peer, fromHeader ? hop : null, scheme, host, 'forwarded');
  }
}

/** The forwarding fields of a request, each as node:http joins repeated fields (", "). */
export interface ForwardingFields {
  xForwardedFor?: string | undefined;
  xForwardedProto?: string | undefined;
  xForwardedHost?: string | undefined;
  xForwardedPort?: string | undefined;
  forwarded?: string | undefined;
}

function listText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/** The scheme of the connection itself. */
export function socketScheme(socket: IncomingMessage['socket']): 'http' | 'https' {
  return (socket as TLSSocket).encrypted ? 'https' : 'http';
}

/** The client of a trusted peer: the hop a forwarding header named, or the peer itself. */
function trustedClient(
  peer: Peer,
  hop: Hop | null,
  scheme: ClientInfo['scheme'],
  host: ClientInfo['host'],
  header: 'x-forwarded-for' | 'forwarded',
): ClientInfo {
  return {
    address: hop ? hop.address : peer.address,
    port: hop ? hop.port : peer.port,
    scheme,
    host,
    trusted: true,
    source: hop ? header : peer.source,
  };
}

/**
 * The URL of a fetch handler's Request as the client asked for it (trusted scheme and host),
 * or null when the URL already says so.
 */
export function trustedUrl(url: string, info: ClientInfo): string | null {
  if (!info.trusted || !info.host) return null;
  const origin = `${info.scheme}://${info.host}`;
  if (url.startsWith(origin) && url[origin.length] === '/') return null;
  try {
    const u = new URL(url);
    // Joined as text: a path like //evil.example must stay a path, not become a host.
    const href = new URL(origin + u.pathname + u.search).href;
    return href === url ? null : href;
  } catch {
    return null;
  }
}
