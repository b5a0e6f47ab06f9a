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

export function createAccessLog(file: string, worker: number, format: string | null = null): AccessLog {
  // Asynchronous and buffered: the access log is on every request's path.
  const dest = openDestination(file, 1, false);
  const formatLine = format ? compileAccessFormat(format) : null;
  return {
    write(req, res, requestId, durationMs, wireBytes) {
      const header = (res as ServerResponse & { _header?: string | null })._header;
      if (formatLine) {
        const bodyBytes = Math.max(0, wireBytes - (header ? Buffer.byteLength(header) : 0));
        dest.write(formatLine({ req, res, bodyBytes, durationMs }) + '\n');
        return;
      }
      const line = {
        time: new Date().toISOString(),
        // The resolved client (docs/proxies.md), not the proxy in front of us.
        remote: (req as Partial<RequestWithClientInfo>).clientInfo?.address ?? req.socket.remoteAddress ?? 'unix',
        method: req.method,
        path: req.url,
        protocol: `HTTP/${req.httpVersion}`,
        status: res.statusCode,
        bytes: Math.max(0, wireBytes - (header ? Buffer.byteLength(header) : 0)),
        duration_ms: Math.round(durationMs * 1000) / 1000,
        request_id: requestId,
        referer: req.headers.referer ?? null,
        user_agent: req.headers['user-agent'] ?? null,
        completed: res.writableFinished,
        pid: process.pid,
        worker,
      };
      dest.write(JSON.stringify(line) + '\n');
    },
    flush() {
      try {
        dest.flushSync();
      } catch {
        // not ready yet / closed: nothing to do at exit
      }
    },
  };
}
