// The answers the worker gives itself, not the app: requests over a limit, malformed or
// ambiguous ones (request-checks.ts), an app without a request handler, the app's own
// failures. One reason table, and the forms such an answer takes:
//  - answerError: on a response object whose head has not gone out, the status and its
//    reason, and the connection closes after it; once the head is out, the connection is cut;
//  - refuse: the same, and the rest of the request is not read (a body nobody will use);
//  - rawErrorResponse: the bytes of a whole answer, for a socket node:http gave us no
//    response object for (client errors, refused upgrades, evicted connections).
// Every one of them closes the connection.
import type { ServerResponse } from 'node:http';

const REASON = {
  400: 'Bad Request',
  408: 'Request Timeout',
  413: 'Content Too Large',
  414: 'URI Too Long',
  426: 'Upgrade Required',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  505: 'HTTP Version Not Supported',
} as const;

/** The statuses the worker answers itself. */
export type ErrorStatus = keyof typeof REASON;

/** Milliseconds a refused connection stays open after our answer, so the client can read it. */
const LINGER_MS = 2000;

/**
 * Answers `status` (text/plain, its reason) with `Connection: close`. If the response has
 * started, part of it is out: the only honest signal left is cutting the connection.
 */
export function answerError(res: ServerResponse, status: ErrorStatus, onSent?: () => void): void {
  if (res.headersSent || res.writableEnded) {
    res.destroy();
    return;
  }
  res.shouldKeepAlive = false;
  res.writeHead(status, { 'content-type': 'text/plain', connection: 'close' });
  res.end(`${REASON[status]}\n`, onSent);
}

/**
 * Answers `status` and closes the connection without reading the rest of the request
 * (a body nobody will use). If the response has started, only closing is left.
 */
export function refuse(res: ServerResponse, status: ErrorStatus): void {
  // A response queued behind a pipelined one has no socket yet: node:http sends it once the
  // one before is done, on the request's socket.
  const sock = res.socket ?? res.req.socket;
  answerError(res, status, () => {
    // Stop reading what is left of the request; give the client a moment to read our
    // answer (closing with unread data sends a reset that can destroy it), then close.
    sock.pause();
    const timer = setTimeout(() => sock.destroy(), LINGER_MS);
    timer.unref();
    sock.once('close', () => clearTimeout(timer));
  });
}

/** The bytes of a whole error response for a raw socket (node:http gave us no response object). */
export function rawErrorResponse(status: ErrorStatus): string {
  const text = REASON[status];
  return `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${text.length + 1}\r\nConnection: close\r\n\r\n${text}\n`;
}
