// Settings table, section Logging: the server log and the access log.
import { def } from './definition.js';
import { accessLogFormat, logLevel, oneOf, optionalText, text } from './parsers.js';

export const loggingSettings = [
  def({
    name: 'logLevel',
    section: 'Logging',
    kind: 'value',
    default: 'info' as 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal',
    accepted: "one of trace, debug, info, warn, error, fatal (Gunicorn's warning and critical too)",
    parse: logLevel,
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
    doc: 'Where the access log goes (one JSON line per request, or see --access-logformat).',
  }),
  def({
    name: 'accessLogformat',
    section: 'Logging',
    kind: 'value',
    default: null as string | null,
    defaultDoc: 'empty: one JSON object per line',
    accepted:
      'a Gunicorn access log format, e.g. \'%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"\' (atoms in docs/operations.md)',
    parse: accessLogFormat,
    doc: "Access log lines in Gunicorn's format-string syntax instead of JSON; `%({x-request-id}i)s` is the request id.",
  }),
];
