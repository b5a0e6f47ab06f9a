// Server logs through pino: JSON lines by default, pretty when stderr is a terminal or
// --log-format pretty. File destinations can be reopened (SIGUSR1, for logrotate).
import { pino, type Logger, type DestinationStream } from 'pino';
import { createRequire } from 'node:module';
import type PinoPretty from 'pino-pretty';

// pino-pretty only when pretty output is asked for: JSON-only processes never pay for it.
const loadPretty = (): typeof PinoPretty => createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;

export type { Logger };

export interface LogOptions {
  logLevel: string;
  logFormat: 'auto' | 'json' | 'pretty';
  errorLogfile: string;
}

type Reopenable = { reopen(file?: string): void; flushSync(): void };
const reopenables: Reopenable[] = [];

/** Opens a destination ('-' = the given fd) and remembers it for reopenLogFiles(). */
export function openDestination(file: string, fd: 1 | 2, sync: boolean): DestinationStream & Reopenable {
  // No minLength: asynchronous writes already batch under load, and a quiet server's lines
  // must reach the file now (tail -f, log shippers), not once 4 KiB have piled up.
  const dest = pino.destination(file === '-' ? { dest: fd, sync } : { dest: file, append: true, mkdir: true, sync });
  if (file !== '-') reopenables.push(dest as unknown as Reopenable);
  return dest as unknown as DestinationStream & Reopenable;
}

/** Reopens every file destination: logrotate renames the file, then we start a new one. */
export function reopenLogFiles(): void {
  for (const d of reopenables) d.reopen();
}

export function flushLogs(): void {
  for (const d of reopenables) {
    try {
      d.flushSync();
    } catch {
      // nothing left to flush, or the file is gone: never fail an exit over it
    }
  }
}

export function resolvedFormat(opts: LogOptions): 'json' | 'pretty' {
  if (opts.logFormat !== 'auto') return opts.logFormat;
  return opts.errorLogfile === '-' && process.stderr.isTTY ? 'pretty' : 'json';
}

export function createLogger(opts: LogOptions, base: Record<string, unknown>): Logger {
  const format = resolvedFormat(opts);
  const options = {
    level: opts.logLevel,
    base: { pid: process.pid, ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (format === 'pretty') {
    const destination = openDestination(opts.errorLogfile, 2, true);
    const stream = loadPretty()({
      // https://no-color.org: any non-empty NO_COLOR turns colour off.
      colorize: opts.errorLogfile === '-' && Boolean(process.stderr.isTTY) && !process.env.NO_COLOR,
      destination,
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'hostname',
      // One line per event; an error's stack only for the unexpected ones.
      singleLine: true,
      errorLikeObjectKeys: [],
      // A prettifier that returns undefined drops the field from the line.
      customPrettifiers: { err: prettyError as (value: unknown) => string },
    });
    return pino(options, stream);
  }
  return pino(options, openDestination(opts.errorLogfile, 2, true));
}

/**
 * An error in a human-readable log: a mistake we expected (its code starts with EWSPK_: a
 * missing socket directory, an app module that is not there...) is said by the line's
 * message, which tells what to do, so its stack is left out; the JSON log keeps it. Anything
 * else gets its stack, indented under the line.
 */
function prettyError(err: unknown): string | undefined {
  const e = err as { code?: unknown; stack?: unknown; message?: unknown } | null;
  if (typeof e?.code === 'string' && e.code.startsWith('EWSPK_')) return undefined;
  return String(e?.stack ?? e?.message ?? err);
}

/** Message and stack of anything thrown, for logging and IPC. */
export function errorInfo(err: unknown): { message: string; stack?: string; code?: string } {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return { message: err.message, ...(err.stack ? { stack: err.stack } : {}), ...(code ? { code } : {}) };
  }
  return { message: String(err) };
}
