// The access log: one JSON line per request (fields in docs/operations.md), or a
// Gunicorn-style line when --access-logformat is set (access-format.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { openDestination } from './logger.js';
import { compileAccessFormat } from './access-format.js';
import type { RequestWithClientInfo } from '../proxy/trust.js';

export interface AccessLog {
  write(req: IncomingMessage, res: ServerResponse, requestId: string, durationMs: number, wireBytes: number): void;
  flush(): void;
}

const json = JSON.stringify as (s: string) => string;

// Many requests end in the same millisecond: the time text is made once per millisecond.
let lastMs = 0;
let lastIso = '';
function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

export function createAccessLog(file: string, worker: number, format: string | null = null): AccessLog {
  // Asynchronous: the access log is on every request's path.
  const dest = openDestination(file, 1, false);
  const formatLine = format ? compileAccessFormat(format) : null;
  // The lines of one event-loop turn go out in one write. A write per line cost a trip
  // through libuv's thread pool per request, most of what the access log cost
  // (docs/performance.md); a quiet server's line still goes out in the turn it was made.
  let pending = '';
  const writePending = (): void => {
    const lines = pending;
    pending = '';
    dest.write(lines);
  };
  const emit = (line: string): void => {
    if (pending === '') setImmediate(writePending);
    pending += line;
  };
  return {
    write(req, res, requestId, durationMs, wireBytes) {
      const header = (res as ServerResponse & { _header?: string | null })._header;
      if (formatLine) {
        const bodyBytes = Math.max(0, wireBytes - (header ? Buffer.byteLength(header) : 0));
        emit(formatLine({ req, res, bodyBytes, durationMs }) + '\n');
        return;
      }
      // Written out by hand: JSON.stringify of the object and toISOString() per request were
      // half of what a line cost. The same text as JSON.stringify({ time, remote, ... }).
      const referer = req.headers.referer;
      const userAgent = req.headers['user-agent'];
      emit(
        `{"time":"${isoNow()}","remote":${json((req as Partial<RequestWithClientInfo>).clientInfo?.address ?? req.socket.remoteAddress ?? 'unix')}` +
          `,"method":${json(req.method ?? '')},"path":${json(req.url ?? '')},"protocol":${json(`HTTP/${req.httpVersion}`)}` +
          `,"status":${res.statusCode},"bytes":${Math.max(0, wireBytes - (header ? Buffer.byteLength(header) : 0))}` +
          `,"duration_ms":${Math.round(durationMs * 1000) / 1000},"request_id":${json(requestId)}` +
          `,"referer":${referer === undefined ? 'null' : json(referer)},"user_agent":${userAgent === undefined ? 'null' : json(userAgent)}` +
          `,"completed":${res.writableFinished},"pid":${process.pid},"worker":${worker}}\n`,
      );
    },
    flush() {
      if (pending !== '') writePending();
      try {
        dest.flushSync();
      } catch {
        // not ready yet / closed: nothing to do at exit
      }
    },
  };
}
