// Which request's code is running now, for the worker's uncaught-error handler.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * The request (its response) or upgraded socket whose app code runs now, also in the timers
 * and promises that code starts: an uncaught exception or unhandled rejection can then name
 * the request it came from, and that request gets its 500 at once instead of hanging until
 * the graceful timeout. On Node 24 (and 22 with --experimental-async-context-frame,
 * which the arbiter passes) this is an async context frame, no async hook. enterWith, not
 * run: node:http calls the request handler inside a callback scope that restores the
 * previous frame when it returns, so one frame per request is enough (run() makes two:
 * about 1.7 k instructions more per request, measured with bench/worker-instructions.ts).
 */
export const requestContext = new AsyncLocalStorage<ServerResponse | Duplex>();

/** The response or upgraded socket whose code is running now, if any (see requestContext). */
export function currentRequest(): ServerResponse | Duplex | undefined {
  return requestContext.getStore();
}
