// Request checks that node:http's parser (llhttp) does not make, run on every request
// before the app sees it. Each closes a gap where RFC 9110/9112 forbid a request, or where
// a proxy in front of us could read the request differently from us (request smuggling,
// host confusion). What node already rejects itself is listed in docs/hardening.md.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { removeFields } from '../http-fields.js';
import { refuse, type ErrorStatus } from './error-answers.js';

/** The parts of a request the checks read (an IncomingMessage has them all). */
export interface RequestHead {
  method?: string;
  url?: string;
  httpVersionMajor: number;
  httpVersionMinor: number;
  rawHeaders: string[];
  /** node:http's object of the same fields: lower-case names, repeated ones joined with ", ". */
  headers: IncomingHttpHeaders;
}

/**
 * Fields that may appear once: their grammar has no list form, and node:http keeps the
 * first copy and drops the others while a proxy may have used the last (RFC 9110 5.3).
 * Content-Length and Transfer-Encoding duplicates node rejects itself.
 * Each has a bit, so one integer per request tracks which were seen (no Set per request).
 */
const SINGLETON_NAMES = [
  'host',
  'content-length',
  'content-type',
  'authorization',
  'proxy-authorization',
  'user-agent',
  'referer',
  'from',
  'if-modified-since',
  'if-unmodified-since',
  'if-range',
  'max-forwards',
  'range',
];

/** The names above by length, each with its bit. */
const SINGLETONS_BY_LENGTH: { lower: string; bit: number }[][] = [];
SINGLETON_NAMES.forEach((lower, i) => (SINGLETONS_BY_LENGTH[lower.length] ??= []).push({ lower, bit: 1 << i }));

/** name starts with the lower-case `lower`, ignoring ASCII case (no toLowerCase copy per field). */
function sameLower(name: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c |= 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** The bit of a field that may appear once, whatever its letter case; 0 for any other field. */
function singletonBit(name: string): number {
  const known = SINGLETONS_BY_LENGTH[name.length];
  if (known !== undefined) for (const f of known) if (sameLower(name, f.lower)) return f.bit;
  return 0;
}

/** Our request limits (0 = no limit), finer than node:http's one header-size cap. */
export interface HeadLimits {
  limitRequestLine: number;
  limitRequestFields: number;
  limitRequestFieldSize: number;
  limitRequestBody: number;
}

/**
 * What one pass over a request's head found. One object per server, refilled for every
 * request (read it before the next request is scanned): the common request allocates nothing.
 */
export class HeadScan {
  host: string | undefined = undefined;
  /** A Transfer-Encoding (chunked) body: its size and trailers are checked as it streams. */
  chunked = false;
  /** Any forwarding field (X-Forwarded-*, Forwarded, X-Real-IP, X-Request-Id) is present. */
  forwarding = false;
  /**
   * X-Request-Id, repeated fields joined with ", " as node:http does. (The other forwarding
   * fields are read from req.headers only when something asks who the client is.)
   */
  requestId: string | undefined = undefined;
}

/**
 * One pass over the request head: our limits, the checks node:http does not make, and the
 * fields the worker needs later (into `scan`). Returns 0 when the request may go to the app,
 * else the status to answer (the connection is then closed): 414/431 over a limit,
 * 400 malformed or ambiguous, 413 body over the limit, 501 a transfer coding we do not
 * implement, 505 a protocol version we do not serve.
 */
export function scanHead(req: RequestHead, limits: HeadLimits, scan: HeadScan): 0 | ErrorStatus {
  scan.host = scan.requestId = undefined;
  scan.chunked = scan.forwarding = false;
  return scanFields(req, limits, scan);
}

// Repeated names: each name goes to a slot by its length and its last two letters, case-blind
// (no collision among 60 common field names); a slot already taken in this request means a
// repeat or a collision, and only then are the names compared (repeatsSingleton). A slot is
// taken when it holds this request's generation: nothing is cleared between requests.
const SLOTS = 4096;
const slotGeneration = new Int32Array(SLOTS);
let generation = 0;

function slotOf(name: string): number {
  const n = name.length;
  return ((n * 31 + (name.charCodeAt(n - 1) | 32)) * 31 + (name.charCodeAt(n - 2) | 32)) & (SLOTS - 1);
}

/**
 * Whether a field that may appear once appears twice, whatever the letter case: the slow path,
 * after two names landed in one slot.
 */
function repeatsSingleton(raw: string[]): boolean {
  let seen = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const bit = singletonBit(raw[i]!);
    if (seen & bit) return true;
    seen |= bit;
  }
  return false;
}

/** Any X-Forwarded-* field besides the four looked up in node:http's headers object. */
function hasOtherForwardingField(raw: string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length >= 12 && (name.charCodeAt(0) | 32) === 0x78 && name.charCodeAt(11) === 45 && sameLower(name, 'x-forwarded-'))
      return true;
  }
  return false;
}

function scanFields(req: RequestHead, limits: HeadLimits, scan: HeadScan): 0 | ErrorStatus {
  // request line = METHOD SP target SP HTTP/x.y
  if (limits.limitRequestLine && (req.method?.length ?? 0) + (req.url?.length ?? 0) + 10 > limits.limitRequestLine) return 414;
  const raw = req.rawHeaders;
  if (limits.limitRequestFields && raw.length / 2 > limits.limitRequestFields) return 431;
  const fieldSize = limits.limitRequestFieldSize;
  if (++generation === 0x7fffffff) {
    generation = 1;
    slotGeneration.fill(0);
  }
  let sharedSlot = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // The line "Name: value" and its CRLF, as Gunicorn counts it (len(line) + 2 > limit).
    if (fieldSize && name.length + raw[i + 1]!.length + 4 > fieldSize) return 431;
    const slot = slotOf(name);
    if (slotGeneration[slot] === generation) sharedSlot = true;
    else slotGeneration[slot] = generation;
  }
  // The fields themselves from the object node:http built from the same list for every
  // request (lower-case names, repeats joined with ", "): looking a name up there costs a
  // fraction of comparing every raw name with the names we look for.
  const h = req.headers;
  const transferEncoding = h['transfer-encoding'];
  const contentLength = h['content-length'];
  const requestId = h['x-request-id'] as string | undefined; // node joins a field it does not know
  scan.host = h.host;
  scan.requestId = requestId;
  // The fields isForwardingHeader (src/proxy/trust.ts) strips from an untrusted peer; a test
  // holds the two lists together.
  scan.forwarding =
    requestId !== undefined ||
    h['x-forwarded-for'] !== undefined ||
    h['x-forwarded-proto'] !== undefined ||
    h['x-forwarded-host'] !== undefined ||
    h['x-forwarded-port'] !== undefined ||
    h.forwarded !== undefined ||
    h['x-real-ip'] !== undefined ||
    hasOtherForwardingField(raw);
  const duplicate = sharedSlot && repeatsSingleton(raw);

  // node parses HTTP/0.9 ("GET /") and HTTP/2.0 request lines and hands them over as such.
  if (req.httpVersionMajor !== 1) return 505;
  if (duplicate) return 400;
  if (transferEncoding !== undefined) {
    // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing (1.0 proxies ignore it).
    if (req.httpVersionMinor === 0) return 400;
    const codings = transferEncoding
      .split(',')
      .map((c) => c.trim().toLowerCase())
      .filter((c) => c !== '');
    if (codings.length === 0) return 400;
    // node accepts "gzip, chunked" and hands the app a still-gzipped body: we implement only chunked.
    if (codings.some((c) => c !== 'chunked')) return 501;
    if (codings.length > 1) return 400;
    scan.chunked = true;
  }
  if (contentLength !== undefined && limits.limitRequestBody > 0 && Number(contentLength) > limits.limitRequestBody) return 413;

  const host = scan.host;
  if (host !== undefined && host !== lastValidHost) {
    if (!HOST_RE.test(host)) return 400;
    lastValidHost = host; // nearly every request names the same host: test it once
  }
  return targetStatus(req.method ?? '', req.url ?? '', host);
}

let lastValidHost = 'localhost';

// RFC 3986 host: IP-literal / IPv4address / reg-name, then an optional port.
const HOST_RE = /^(?:\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;

/** Request-target forms (RFC 9112 3.2) and whether this method may use them. */
function targetStatus(method: string, url: string, host: string | undefined): 0 | 400 {
  if (url === '*') return method === 'OPTIONS' ? 0 : 400;
  // A fragment is never part of a request-target.
  if (url.includes('#')) return 400;
  if (url.startsWith('/')) return 0;
  // absolute-form: node passes any scheme and authority; the Host header then disagrees
  // with what the proxy routed on. Accept http(s) whose authority is the Host field.
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?]*)/.exec(url);
  if (!m) return 400;
  const scheme = m[1]!.toLowerCase();
  const authority = m[2]!;
  if (scheme !== 'http' && scheme !== 'https') return 400;
  if (authority === '' || authority.includes('@')) return 400;
  if (host === undefined || host.toLowerCase() !== authority.toLowerCase()) return 400;
  return 0;
}

/**
 * Fields a sender must not put in trailers (RFC 9110 6.5.1): framing, routing, request
 * modifiers, authentication and content metadata. node hands trailers to the app as sent.
 */
const FORBIDDEN_TRAILERS = new Set([
  'transfer-encoding',
  'content-length',
  'host',
  'te',
  'trailer',
  'connection',
  'keep-alive',
  'upgrade',
  'expect',
  'max-forwards',
  'cache-control',
  'pragma',
  'range',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'if-range',
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'content-type',
  'content-encoding',
  'content-range',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-real-ip',
]);

/**
 * Watches a request's body as it streams: counts bytes against limitRequestBody (chunked
 * bodies have no Content-Length to check up front) and drops trailer fields that must not
 * be trailers before the app reads them. Call before the app runs, so this runs first, and
 * only for chunked bodies (HeadScan.chunked): Content-Length bodies were checked up front
 * and cannot carry trailers.
 */
export function guardBody(req: IncomingMessage, res: ServerResponse, limitRequestBody: number, onViolation: (what: string) => void): void {
  let received = 0;
  let over = false;
  const push = req.push.bind(req);
  req.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (over) return false;
    if (chunk === null) {
      stripTrailers(req, res, onViolation);
      return push(chunk, encoding);
    }
    received += (chunk as Buffer).length;
    if (limitRequestBody > 0 && received > limitRequestBody) {
      over = true;
      onViolation('body over --limit-request-body');
      refuse(res, 413);
      return false;
    }
    return push(chunk, encoding);
  };
}

function stripTrailers(req: IncomingMessage, res: ServerResponse, onViolation: (what: string) => void): void {
  const dropped = removeFields(req, (name) => FORBIDDEN_TRAILERS.has(name), 'trailers');
  if (dropped.length === 0) return;
  // A client that sends these is broken or probing: no more requests on this connection.
  res.shouldKeepAlive = false;
  onViolation(`forbidden trailer fields dropped: ${dropped.join(', ')}`);
}

/** Status for a node:http clientError code (a request node refused before the app). */
export function clientErrorStatus(err: NodeJS.ErrnoException & { reason?: string; rawPacket?: Buffer; bytesParsed?: number }): ErrorStatus {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      // No line break before the point of overflow: still in the request line, so the target
      // is what is too long. (A single header longer than a read chunk would also look so.)
      return err.rawPacket && !err.rawPacket.subarray(0, err.bytesParsed ?? err.rawPacket.length).includes(10) ? 414 : 431;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADER_TIMEOUT':
      return 408;
    case 'HPE_INVALID_VERSION':
      // "HTTP/1.2", "HTTP/3.0": well formed, not ours. "HTTP/1.x" or a bad line end: malformed.
      return /invalid (http|major) version/i.test(err.reason ?? err.message) ? 505 : 400;
    case 'HPE_PAUSED_H2_UPGRADE':
      return 505; // the HTTP/2 connection preface
    case 'HPE_INVALID_METHOD':
      // A well-formed method token node does not know is 501 (RFC 9110 9.1); garbage is 400.
      return err.rawPacket && /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ /.test(err.rawPacket.toString('latin1', 0, 64)) ? 501 : 400;
    case 'HPE_INVALID_TRANSFER_ENCODING':
      // "Request has invalid `Transfer-Encoding`": a coding other than chunked (gzip, identity).
      return /^request has invalid/i.test(err.reason ?? err.message) ? 501 : 400;
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return 413;
    default:
      return 400;
  }
}
