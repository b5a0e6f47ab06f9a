// THE settings table. Each setting is declared once here; the CLI flags, the config
// file keys, the environment variables, `--print-config` and the README's settings
// reference are all derived from it (see load.ts, cli/main.ts, scripts/settings-doc.ts).
import { parseBind, type BindSpec } from '../listeners/bind-spec.js';
import { passedSockets } from '../listeners/systemd.js';
import { allowListEntries, compileAllowList, ALLOW_LIST_ACCEPTED } from '../proxy/trust.js';
import { compileAccessFormat } from '../log/access-format.js';

export type Section = 'Binding' | 'Workers' | 'HTTP' | 'Logging' | 'Process' | 'Proxy';

export interface SettingDef<N extends string = string, T = unknown> {
  /** camelCase name: the config-file key and the base of the flag and env var. */
  readonly name: N;
  readonly section: Section;
  readonly short?: string;
  /** 'boolean' flags take --x / --no-x; everything else takes a value. */
  readonly kind: 'boolean' | 'value' | 'list';
  /** Value used when nothing sets it; a function for defaults that depend on the env. */
  readonly default: T | ((env: NodeJS.ProcessEnv) => T);
  /** How the default reads in docs when it is computed. */
  readonly defaultDoc?: string;
  /** Extra environment variables read for this setting (lower precedence than ours). */
  readonly envAliases?: readonly string[];
  /** Human sentence naming what is accepted, used in errors and docs. */
  readonly accepted: string;
  /** Converts a raw value (string from CLI/env, anything from a config file). Throws on bad input. */
  readonly parse: (raw: unknown) => T;
  readonly doc: string;
  /** Only meaningful on the command line (not in config files or env). */
  readonly cliOnly?: boolean;
}

/** Thrown by parsers; a message, when there is one, says what exactly is wrong. */
export class InvalidValue extends Error {}

function def<const N extends string, T>(d: SettingDef<N, T>): SettingDef<N, T> {
  return d;
}

// ---- parsers --------------------------------------------------------------

function integer(min: number, max: number) {
  return (raw: unknown): number => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidValue();
    return n;
  };
}

/** A non-negative decimal number (seconds, megabytes) within bounds. */
function decimal(min: number, max: number) {
  return (raw: unknown): number => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidValue();
    return n;
  };
}

function bool(raw: unknown): boolean {
  if (typeof raw === 'boolean') return raw;
  if (typeof raw === 'string') {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  }
  throw new InvalidValue();
}

function text(raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') throw new InvalidValue();
  return raw;
}

function optionalText(raw: unknown): string | null {
  if (raw === null || raw === undefined || raw === '') return null;
  return text(raw);
}

/** --log-level as Gunicorn spells it. */
const GUNICORN_LEVELS: Record<string, string> = { warning: 'warn', critical: 'fatal' };

function oneOf<const V extends string>(values: readonly V[]) {
  return (raw: unknown): V => {
    if (typeof raw === 'string' && (values as readonly string[]).includes(raw.trim().toLowerCase())) {
      return raw.trim().toLowerCase() as V;
    }
    throw new InvalidValue();
  };
}

function fileMode(raw: unknown): number {
  let n = NaN;
  if (typeof raw === 'number') n = raw;
  else if (typeof raw === 'string' && /^\s*(0o?)?[0-7]{1,4}\s*$/.test(raw)) n = parseInt(raw.trim().replace(/^0o/, ''), 8);
  if (!Number.isInteger(n) || n < 0 || n > 0o7777) throw new InvalidValue();
  return n;
}

/** A list from a config array, or a comma/whitespace separated string (env). */
function list<T>(item: (raw: unknown) => T) {
  return (raw: unknown): T[] => {
    const items = Array.isArray(raw)
      ? raw
      : typeof raw === 'string'
        ? raw.split(/[\s,]+/).filter(Boolean)
        : (() => {
            throw new InvalidValue();
          })();
    return items.map(item);
  };
}

function bindList(raw: unknown): BindSpec[] {
  const parsed = list((v) => {
    try {
      return parseBind(String(v));
    } catch (err) {
      throw new InvalidValue(err instanceof Error ? err.message : '');
    }
  })(raw);
  if (parsed.length === 0) throw new InvalidValue();
  return parsed;
}

/** PORT (Heroku-style) sets the default bind; a PORT that is not a port is an error, not ignored. */
function portFromEnv(env: NodeJS.ProcessEnv): number {
  const raw = env.PORT;
  if (raw === undefined || raw.trim() === '') return 8000;
  const port = /^\s*\d{1,5}\s*$/.test(raw) ? Number(raw) : NaN;
  if (port >= 1 && port <= 65535) return port;
  throw new InvalidValue(
    `PORT is ${JSON.stringify(raw)} in the environment, which is not a TCP port (an integer from 1 to 65535). PORT sets the default bind 127.0.0.1:$PORT: fix or unset PORT, or give --bind.`,
  );
}

/** Trusted-proxy allow lists: every entry is checked now, so a typo fails at startup. */
function allowList(raw: unknown): string[] {
  try {
    const entries = allowListEntries(raw);
    compileAllowList(entries);
    return entries;
  } catch {
    throw new InvalidValue();
  }
}

function proxyProtocolMode(raw: unknown): 'off' | 'v1' | 'v2' | 'auto' {
  if (raw === true) return 'auto';
  if (raw === false) return 'off';
  const v = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
  if (v === 'off' || v === 'v1' || v === 'v2' || v === 'auto') return v;
  if (['true', 'on', 'yes', '1'].includes(v)) return 'auto';
  if (['false', 'no', '0'].includes(v)) return 'off';
  throw new InvalidValue();
}

function urlPath(raw: unknown): string | null {
  if (raw === null || raw === undefined || raw === '') return null;
  if (typeof raw !== 'string' || !/^\/[^\s?#]*$/.test(raw)) throw new InvalidValue();
  return raw;
}

/** A side endpoint's address (metrics, health): TCP or UNIX only, kept as text (parsed again where it is opened). */
function endpointAddress(what: string) {
  return (raw: unknown): string | null => {
    if (raw === null || raw === undefined || raw === '') return null;
    let spec: BindSpec;
    try {
      spec = parseBind(String(raw));
    } catch (err) {
      throw new InvalidValue(err instanceof Error ? err.message : '');
    }
    if (spec.kind !== 'tcp' && spec.kind !== 'unix')
      throw new InvalidValue(`"${spec.text}": the ${what} endpoint takes HOST:PORT or unix:PATH`);
    return spec.text;
  };
}

// ---- the table --------------------------------------------------------------

export const settingsTable = [
  def({
    name: 'app',
    section: 'Process',
    kind: 'value',
    default: null as string | null,
    accepted: 'a module path, optionally followed by :exportName (e.g. app.mjs or dist/server.js:handler)',
    parse: optionalText,
    doc: 'The application module (also the first positional argument). The export is a request listener, a `{ fetch }` handler or `{ request, upgrade }`.',
  }),
  def({
    name: 'config',
    section: 'Process',
    short: 'c',
    kind: 'value',
    default: null as string | null,
    defaultDoc: './ws-proxy-kit.config.{mjs,js,cjs,json} if present',
    accepted: 'a path to a .mjs, .js, .cjs or .json file',
    parse: optionalText,
    doc: 'Configuration file. Its default export is an object whose keys are the setting names of this table.',
    cliOnly: true,
  }),
  def({
    name: 'bind',
    section: 'Binding',
    short: 'b',
    kind: 'list',
    default: (env) => (passedSockets(env).length > 0 ? [parseBind('systemd')] : [parseBind(`127.0.0.1:${portFromEnv(env)}`)]),
    defaultDoc: 'the sockets systemd passed, if any; else 127.0.0.1:8000 (127.0.0.1:$PORT when PORT is set)',
    accepted: 'unix:PATH, HOST:PORT, [IPv6]:PORT, fd://N, systemd or systemd:NAME; repeat the flag for several',
    parse: bindList,
    doc: 'Where to listen. Repeat for several binds; all workers serve all of them.',
  }),
  def({
    name: 'backlog',
    section: 'Binding',
    kind: 'value',
    default: 2048,
    accepted: 'an integer from 1 to 65535 (the kernel caps it at net.core.somaxconn)',
    parse: integer(1, 65535),
    doc: 'Length of the listen queue: connections waiting while every worker is busy or restarting.',
  }),
  def({
    name: 'socketMode',
    section: 'Binding',
    kind: 'value',
    default: 0o660,
    defaultDoc: '0660',
    accepted: 'an octal file mode such as 0660 or 0600 (no more than 4 octal digits)',
    parse: fileMode,
    doc: 'Permissions of UNIX socket files. 0660 lets a proxy user in the socket group connect and nobody else.',
  }),
  def({
    name: 'socketUser',
    section: 'Binding',
    kind: 'value',
    default: null as string | null,
    accepted: 'a user name or numeric uid',
    parse: optionalText,
    doc: 'Owner of UNIX socket files (needs privileges to change).',
  }),
  def({
    name: 'socketGroup',
    section: 'Binding',
    kind: 'value',
    default: null as string | null,
    accepted: 'a group name or numeric gid',
    parse: optionalText,
    doc: "Group of UNIX socket files: the proxy's group (e.g. www-data) so that nginx can connect.",
  }),
  def({
    name: 'workers',
    section: 'Workers',
    short: 'w',
    kind: 'value',
    default: 1,
    envAliases: ['WEB_CONCURRENCY'],
    accepted: 'an integer from 1 to 1024',
    parse: integer(1, 1024),
    doc: 'Number of worker processes. One or two per core is a good start.',
  }),
  def({
    name: 'timeout',
    section: 'Workers',
    short: 't',
    kind: 'value',
    default: 30,
    accepted: 'a number of seconds from 0 to 86400 (0 disables)',
    parse: decimal(0, 86400),
    doc: 'A worker whose event loop is blocked longer than this is killed and replaced. 0 disables.',
  }),
  def({
    name: 'gracefulTimeout',
    section: 'Workers',
    kind: 'value',
    default: 30,
    accepted: 'a number of seconds from 0 to 86400',
    parse: decimal(0, 86400),
    doc: 'On a graceful stop or reload, how long workers may finish in-flight requests before they are killed.',
  }),
  def({
    name: 'drainSeconds',
    section: 'Workers',
    kind: 'value',
    default: 0,
    accepted: 'a number of seconds from 0 to 3600',
    parse: decimal(0, 3600),
    doc: 'On SIGTERM, readiness fails at once but every listener keeps serving this long (load balancers stop sending first); then the graceful stop.',
  }),
  def({
    name: 'maxRequests',
    section: 'Workers',
    kind: 'value',
    default: 0,
    accepted: 'an integer from 0 (never) to 1000000000',
    parse: integer(0, 1_000_000_000),
    doc: 'Recycle a worker after this many requests (its replacement is ready before it stops). 0 disables.',
  }),
  def({
    name: 'maxRequestsJitter',
    section: 'Workers',
    kind: 'value',
    default: 0,
    accepted: 'an integer from 0 to 1000000000',
    parse: integer(0, 1_000_000_000),
    doc: 'Add a random 0..N to max-requests per worker, so workers do not all recycle at once.',
  }),
  def({
    name: 'maxWorkerMemory',
    section: 'Workers',
    kind: 'value',
    default: 0,
    accepted: 'a number of megabytes from 0 (no limit) to 1048576',
    parse: decimal(0, 1_048_576),
    doc: 'Recycle a worker (gracefully) whose RSS stays above this many MB for 3 heartbeats in a row. 0 disables.',
  }),
  def({
    name: 'reload',
    section: 'Workers',
    kind: 'boolean',
    default: false,
    accepted: 'true or false',
    parse: bool,
    doc: "Development: watch the app's files (not node_modules) and reload the workers gracefully on change.",
  }),
  def({
    name: 'balanceConnections',
    section: 'Workers',
    kind: 'boolean',
    default: true,
    accepted: 'true or false',
    parse: bool,
    doc: "Keep the workers' busy connections even (those that received a request within the last second, and upgraded ones; a proxy pool's idle spares do not count): a worker holding more than its share (over the mean by 10 % and by 2, for 100 ms) stops accepting for 250 ms and answers its surplus keep-alive connections with `Connection: close`, so they reconnect to another worker (docs/decisions.md).",
  }),
  def({
    name: 'hangStacks',
    section: 'Workers',
    kind: 'boolean',
    default: true,
    accepted: 'true or false',
    parse: bool,
    doc: 'Before a worker is killed for --timeout or --boot-timeout, log the JavaScript stack it is stuck in, read by a watchdog thread inside the worker (no inspector port is opened). The thread costs each worker about 15-19 MB of RSS; --no-hang-stacks saves it.',
  }),
  def({
    name: 'bootTimeout',
    section: 'Workers',
    kind: 'value',
    default: 60,
    accepted: 'a number of seconds from 1 to 86400',
    parse: decimal(1, 86400),
    doc: 'A worker that has not loaded the app and started accepting within this time is killed.',
  }),
  def({
    name: 'keepAlive',
    section: 'HTTP',
    kind: 'value',
    default: 5,
    accepted: 'a number of seconds from 0 to 3600 (0 closes connections after each response)',
    parse: decimal(0, 3600),
    doc: "Idle keep-alive timeout. Keep it above the proxy's upstream keepalive_timeout so the proxy, not us, closes idle connections.",
  }),
  def({
    name: 'headersTimeout',
    section: 'HTTP',
    kind: 'value',
    default: 10,
    accepted: 'a number of seconds from 1 to 3600',
    parse: decimal(1, 3600),
    doc: 'Time a client has to send the complete request headers (cuts slowloris clients).',
  }),
  def({
    name: 'requestTimeout',
    section: 'HTTP',
    kind: 'value',
    default: 300,
    accepted: 'a number of seconds from 0 to 86400 (0 disables)',
    parse: decimal(0, 86400),
    doc: 'Time a client has to send the whole request, body included.',
  }),
  def({
    name: 'limitRequestLine',
    section: 'HTTP',
    kind: 'value',
    default: 4094,
    accepted: 'an integer from 0 (no limit of our own) to 8190',
    parse: integer(0, 8190),
    doc: 'Longest request line (method, target and version) in bytes; longer gets 414.',
  }),
  def({
    name: 'limitRequestFields',
    section: 'HTTP',
    kind: 'value',
    default: 100,
    accepted: 'an integer from 1 to 32768',
    parse: integer(1, 32768),
    doc: 'Most header fields in a request; more gets 431.',
  }),
  def({
    name: 'limitRequestFieldSize',
    section: 'HTTP',
    kind: 'value',
    default: 8190,
    accepted: 'an integer from 0 (no limit of our own) to 65536',
    parse: integer(0, 65536),
    doc: 'Longest header field line in bytes, counted as Gunicorn does: "Name: value" and its CRLF; longer gets 431.',
  }),
  def({
    name: 'limitRequestBody',
    section: 'HTTP',
    kind: 'value',
    default: 0,
    defaultDoc: '0 (off)',
    accepted: 'an integer number of bytes from 0 (no limit) to 2^53-1',
    parse: integer(0, Number.MAX_SAFE_INTEGER),
    doc: 'Largest request body in bytes; larger gets 413 and the connection is closed without reading the rest (Content-Length up front, chunked bodies as they stream).',
  }),
  def({
    name: 'workerConnections',
    section: 'HTTP',
    kind: 'value',
    default: 1000,
    accepted: 'an integer from 0 (no cap) to 1000000',
    parse: integer(0, 1_000_000),
    doc: 'Most concurrent connections per worker; at the cap the worker stops accepting, and new connections wait in the listen queue for another worker or a free slot (see docs/hardening.md). Keep it under the fd limit (ulimit -n).',
  }),
  def({
    name: 'forwardedAllowIps',
    section: 'Proxy',
    kind: 'list',
    default: ['127.0.0.1', '::1'],
    envAliases: ['FORWARDED_ALLOW_IPS'],
    accepted: ALLOW_LIST_ACCEPTED,
    parse: allowList,
    doc: 'Peers trusted to say who the client is (X-Forwarded-*, Forwarded). From anyone else those headers are ignored. See docs/proxies.md.',
  }),
  def({
    name: 'forwardedAllowUnix',
    section: 'Proxy',
    kind: 'boolean',
    default: true,
    accepted: 'true or false',
    parse: bool,
    doc: "Trust peers on UNIX socket binds: only processes allowed by the socket file's permissions can connect.",
  }),
  def({
    name: 'forwardedHeader',
    section: 'Proxy',
    kind: 'value',
    default: 'x-forwarded-for' as 'x-forwarded-for' | 'forwarded',
    accepted: 'x-forwarded-for (with X-Forwarded-Proto/-Host/-Port) or forwarded (RFC 7239)',
    parse: oneOf(['x-forwarded-for', 'forwarded']),
    doc: 'Which headers of a trusted peer give the client address, scheme and host.',
  }),
  def({
    name: 'stripUntrustedForwarded',
    section: 'Proxy',
    kind: 'boolean',
    default: true,
    accepted: 'true or false',
    parse: bool,
    doc: 'Remove X-Forwarded-*, Forwarded, X-Real-IP and X-Request-Id sent by an untrusted peer before the app sees the request.',
  }),
  def({
    name: 'proxyProtocol',
    section: 'Proxy',
    kind: 'value',
    default: 'off' as 'off' | 'v1' | 'v2' | 'auto',
    accepted: 'off, v1, v2 or auto (either version; true means auto)',
    parse: proxyProtocolMode,
    doc: 'Require a PROXY protocol header (HAProxy, nginx stream, load balancers) at the start of every connection on every bind.',
  }),
  def({
    name: 'proxyAllowIps',
    section: 'Proxy',
    kind: 'list',
    default: ['127.0.0.1', '::1'],
    accepted: ALLOW_LIST_ACCEPTED,
    parse: allowList,
    doc: 'Peers allowed to send a PROXY protocol header; others are disconnected. UNIX socket peers always are.',
  }),
  def({
    name: 'logLevel',
    section: 'Logging',
    kind: 'value',
    default: 'info' as 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal',
    accepted: "one of trace, debug, info, warn, error, fatal (Gunicorn's warning and critical too)",
    parse: (raw: unknown) =>
      oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal'])(GUNICORN_LEVELS[String(raw).trim().toLowerCase()] ?? raw),
    doc: "Minimum level of the error log. Gunicorn's names are accepted: warning is warn, critical is fatal.",
  }),
  def({
    name: 'logFormat',
    section: 'Logging',
    kind: 'value',
    default: 'auto' as 'auto' | 'json' | 'pretty',
    accepted: 'one of auto, json, pretty',
    parse: oneOf(['auto', 'json', 'pretty']),
    doc: 'JSON lines, or human-readable lines; auto is pretty when stderr is a terminal.',
  }),
  def({
    name: 'errorLogfile',
    section: 'Logging',
    kind: 'value',
    default: '-',
    accepted: 'a file path, or - for stderr',
    parse: text,
    doc: 'Where the server log goes.',
  }),
  def({
    name: 'accessLogfile',
    section: 'Logging',
    kind: 'value',
    default: null as string | null,
    defaultDoc: 'off',
    accepted: 'a file path, or - for stdout',
    parse: optionalText,
    doc: 'Where the access log goes (one JSON line per request, or see --access-logformat). Off by default.',
  }),
  def({
    name: 'accessLogformat',
    section: 'Logging',
    kind: 'value',
    default: null as string | null,
    defaultDoc: 'empty: one JSON object per line',
    accepted:
      'a Gunicorn access log format, e.g. \'%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"\' (atoms in docs/operations.md)',
    parse: (raw: unknown) => {
      if (raw === null || raw === undefined || raw === '') return null;
      if (typeof raw !== 'string') throw new InvalidValue();
      try {
        compileAccessFormat(raw);
      } catch (err) {
        throw new InvalidValue((err as Error).message);
      }
      return raw;
    },
    doc: "Access log lines in Gunicorn's format-string syntax instead of JSON; `%({x-request-id}i)s` is the request id.",
  }),
  def({
    name: 'metricsBind',
    section: 'Process',
    kind: 'value',
    default: null as string | null,
    defaultDoc: 'off',
    accepted: 'HOST:PORT, [IPv6]:PORT or unix:PATH',
    parse: endpointAddress('metrics'),
    doc: 'Serve Prometheus metrics (GET /metrics) from the master on this address. Off by default.',
  }),
  def({
    name: 'healthPath',
    section: 'Process',
    kind: 'value',
    default: null as string | null,
    defaultDoc: 'off (/health on --health-bind)',
    accepted: 'a URL path starting with /, e.g. /health',
    parse: urlPath,
    doc: 'Liveness: the worker itself answers GET on this path with 200 while its event loop runs, before the app sees it.',
  }),
  def({
    name: 'readyPath',
    section: 'Process',
    kind: 'value',
    default: null as string | null,
    defaultDoc: 'off (/ready on --health-bind)',
    accepted: 'a URL path starting with /, e.g. /ready',
    parse: urlPath,
    doc: 'Readiness: the worker answers 200 once the whole pool is booted, 503 while booting or draining (SIGTERM, --drain-seconds).',
  }),
  def({
    name: 'healthBind',
    section: 'Process',
    kind: 'value',
    default: null as string | null,
    defaultDoc: 'off',
    accepted: 'HOST:PORT, [IPv6]:PORT or unix:PATH',
    parse: endpointAddress('health'),
    doc: 'Also answer the health paths (only those) on this separate address: the master binds it, every worker serves it.',
  }),
  def({
    name: 'pid',
    section: 'Process',
    short: 'p',
    kind: 'value',
    default: null as string | null,
    accepted: 'a file path',
    parse: optionalText,
    doc: 'Write the master pid to this file; removed on exit.',
  }),
  def({
    name: 'chdir',
    section: 'Process',
    kind: 'value',
    default: null as string | null,
    accepted: 'a directory path',
    parse: optionalText,
    doc: 'Change to this directory before loading the app.',
  }),
  def({
    name: 'import',
    section: 'Process',
    kind: 'list',
    default: [] as string[],
    accepted: 'module specifiers, e.g. tsx',
    parse: list(text),
    doc: 'Modules preloaded in workers with `node --import` (e.g. `tsx` to run a TypeScript app).',
  }),
  def({
    name: 'controlSocket',
    section: 'Process',
    kind: 'value',
    default: 'auto' as string,
    defaultDoc: 'auto: NAME.ctl next to the first UNIX bind NAME.sock (else next to the pidfile, else in $XDG_RUNTIME_DIR or /tmp)',
    accepted: 'a socket path, auto, or off (also --no-control-socket)',
    parse: (raw: unknown) => {
      if (raw === false) return 'off';
      const v = text(raw).trim();
      return v === 'off' || v === 'false' || v === 'none' ? 'off' : v;
    },
    doc: 'UNIX socket (mode 0600) for `ws-proxy-kit ctl`. Only its file permissions guard it.',
  }),
  def({
    name: 'printConfig',
    section: 'Process',
    kind: 'boolean',
    default: false,
    accepted: 'true or false',
    parse: bool,
    doc: 'Print the effective settings with where each came from, and exit.',
    cliOnly: true,
  }),
] as const;

type Table = (typeof settingsTable)[number];
export type SettingName = Table['name'];
export type Settings = { [S in Table as S['name']]: ReturnType<S['parse']> };

export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

export function envName(name: string): string {
  return 'WS_PROXY_KIT_' + name.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

export function defaultOf(setting: SettingDef, env: NodeJS.ProcessEnv): unknown {
  return typeof setting.default === 'function' ? (setting.default as (e: NodeJS.ProcessEnv) => unknown)(env) : setting.default;
}

export const settingsByName: ReadonlyMap<string, SettingDef> = new Map(settingsTable.map((s) => [s.name, s as SettingDef]));
