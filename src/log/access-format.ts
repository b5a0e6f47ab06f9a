// Gunicorn-compatible access log lines (--access-logformat): `%(h)s %(l)s %(u)s %(t)s "%(r)s" ...`.
// The format is compiled once into a list of parts; only the atoms it names are computed.
// Values are escaped as Apache/Gunicorn logs do, so a client cannot forge or break lines:
// `"` → `\"`, `\` → `\\`, control and non-ASCII bytes → `\xNN`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestWithClientInfo } from '../proxy/trust.js';

/** What one access log line is made from. */
export interface AccessEntry {
  req: IncomingMessage;
  res: ServerResponse;
  /** Response body bytes (headers excluded). */
  bodyBytes: number;
  durationMs: number;
}

/** Gunicorn's default format (Apache's "combined"). */
export const GUNICORN_DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"';

type Atom = (e: AccessEntry) => string;

const SIMPLE_ATOMS: Record<string, Atom> = {
  h: ({ req }) => escapeLogValue((req as Partial<RequestWithClientInfo>).clientInfo?.address ?? req.socket.remoteAddress ?? '-'),
  l: () => '-',
  u: ({ req }) => escapeLogValue(basicAuthUser(req.headers.authorization) ?? '-'),
  t: () => clfTime(Date.now()),
  r: ({ req }) => escapeLogValue(`${req.method} ${req.url} HTTP/${req.httpVersion}`),
  m: ({ req }) => escapeLogValue(req.method ?? '-'),
  U: ({ req }) => escapeLogValue(pathOf(req.url ?? '')),
  q: ({ req }) => escapeLogValue(queryOf(req.url ?? '')),
  H: ({ req }) => `HTTP/${req.httpVersion}`,
  s: ({ res }) => String(res.statusCode),
  B: ({ bodyBytes }) => String(bodyBytes),
  b: ({ bodyBytes }) => (bodyBytes > 0 ? String(bodyBytes) : '-'),
  f: ({ req }) => escapeLogValue(req.headers.referer ?? '-'),
  a: ({ req }) => escapeLogValue(req.headers['user-agent'] ?? '-'),
  T: ({ durationMs }) => String(Math.floor(durationMs / 1000)),
  M: ({ durationMs }) => String(Math.floor(durationMs)),
  D: ({ durationMs }) => String(Math.round(durationMs * 1000)),
  L: ({ durationMs }) => (durationMs / 1000).toFixed(6),
  p: () => `<${process.pid}>`,
};

/** The atom letters, for docs and error messages. */
export const ACCESS_FORMAT_ATOMS = Object.keys(SIMPLE_ATOMS);

export class AccessFormatError extends Error {}

/**
 * Compiles a format string. Throws AccessFormatError naming what is wrong (an unknown atom,
 * a stray %). `%%` is a literal percent sign.
 */
export function compileAccessFormat(format: string): (e: AccessEntry) => string {
  const parts: (string | Atom)[] = [];
  const re = /%(?:\(([^)]*)\)([sdif])|%)/g;
  let last = 0;
  for (let m = re.exec(format); m; m = re.exec(format)) {
    const literal = format.slice(last, m.index);
    checkNoStrayPercent(literal, format);
    parts.push(literal);
    parts.push(m[0] === '%%' ? '%' : atomFor(m[1]!, format));
    last = re.lastIndex;
  }
  const tail = format.slice(last);
  checkNoStrayPercent(tail, format);
  parts.push(tail);
  const compact = mergeLiterals(parts);
  return (e) => {
    let out = '';
    for (const p of compact) out += typeof p === 'string' ? p : p(e);
    return out;
  };
}

function atomFor(name: string, format: string): Atom {
  const simple = SIMPLE_ATOMS[name];
  if (simple) return simple;
  const braced = /^\{([^}]+)\}([ioe])$/.exec(name);
  if (braced) {
    const key = braced[1]!;
    const lower = key.toLowerCase();
    if (braced[2] === 'i') return ({ req }) => headerValue(req.headers[lower]);
    if (braced[2] === 'o') return ({ res }) => headerValue(res.getHeader(lower));
    return () => escapeLogValue(process.env[key] ?? process.env[key.toUpperCase()] ?? '-');
  }
  throw new AccessFormatError(
    `--access-logformat ${JSON.stringify(format)}: unknown atom %(${name})s. Use one of ${ACCESS_FORMAT_ATOMS.map((a) => `%(${a})s`).join(' ')}, %({header}i)s, %({header}o)s or %({VARIABLE}e)s (see docs/operations.md).`,
  );
}

function checkNoStrayPercent(literal: string, format: string): void {
  if (literal.includes('%')) {
    throw new AccessFormatError(
      `--access-logformat ${JSON.stringify(format)}: a % that is not an atom; write %% for a literal percent sign, %(NAME)s for an atom.`,
    );
  }
}

function mergeLiterals(parts: (string | Atom)[]): (string | Atom)[] {
  const out: (string | Atom)[] = [];
  for (const p of parts) {
    if (typeof p === 'string' && typeof out[out.length - 1] === 'string') out[out.length - 1] += p;
    else if (p !== '') out.push(p);
  }
  return out;
}

function headerValue(v: string | string[] | number | undefined): string {
  if (v === undefined) return '-';
  return escapeLogValue(Array.isArray(v) ? v.join(', ') : String(v));
}

const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Escapes a value for a log line: `"` and `\` get a backslash; control and non-ASCII bytes become \xNN. */
export function escapeLogValue(s: string): string {
  if (PLAIN.test(s)) return s; // the common case: nothing to do
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c >= 0x20 && c < 0x7f) out += ch;
    // node hands header and URL bytes over as latin1: one char per byte
    else if (c <= 0xff) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else for (const b of Buffer.from(ch, 'utf8')) out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function queryOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? '' : url.slice(q + 1);
}

/** The user of an `Authorization: Basic` header, as Gunicorn's %(u)s. */
function basicAuthUser(header: string | undefined): string | null {
  if (!header || !/^basic /i.test(header)) return null;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? null : decoded.slice(0, colon);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
let cachedSecond = -1;
let cachedTime = '';

/** `[10/Oct/2000:13:55:36 -0700]` in local time, as Gunicorn and Apache log it; cached per second. */
export function clfTime(nowMs: number): string {
  const second = Math.floor(nowMs / 1000);
  if (second === cachedSecond) return cachedTime;
  const d = new Date(second * 1000);
  const off = -d.getTimezoneOffset();
  const abs = Math.abs(off);
  const p2 = (n: number) => String(n).padStart(2, '0');
  cachedTime = `[${p2(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${off < 0 ? '-' : '+'}${p2(Math.floor(abs / 60))}${p2(abs % 60)}]`;
  cachedSecond = second;
  return cachedTime;
}
