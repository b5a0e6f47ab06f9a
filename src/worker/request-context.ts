// Which request's code is running now, for the worker's uncaught-error handler.
import { AsyncLocalStorage } from 'node:async_hooks';
import { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TrackedSocket } from './connections.js';

/**
 * What a request's async context holds: its connection and its id, not the request itself.
 * Every timer, promise and write the request's code starts keeps the context it was started
 * in, and node:http arms a connection's keep-alive timer from within the request that just
 * ended; a context holding the response would keep that response, its request and their
 * fields alive until the connection's next request. Enough of them outlive a young-generation
 * collection that V8 grows that generation and promotes them: a plain node:http server that
 * only did `enterWith(res)` went from no full collection in 400 000 keep-alive requests to
 * two (and 40 % of the scavenges), this mark from none to none.
 */
export class RequestMark {
  constructor(
    readonly socket: TrackedSocket,
    readonly id: string,
  ) {}
}

/**
 * The mark of the request whose app code runs now, also in the timers and promises that code
 * starts, or an upgraded socket: an uncaught exception or unhandled rejection can then name
 * the request it came from, and that request gets its 500 at once instead of hanging until
 * the graceful timeout. On Node 24 (and 22 with --experimental-async-context-frame,
 * which the arbiter passes) this is an async context frame, no async hook. enterWith, not
 * run: node:http calls the request handler inside a callback scope that restores the
 * previous frame when it returns, so one frame per request is enough (run() makes two:
 * about 1.7 k instructions more per request, measured with bench/worker-instructions.ts).
 */
export const requestContext = new AsyncLocalStorage<RequestMark | Duplex>();

/** What the running code belongs to (see requestContext); every field optional. */
export interface RunningRequest {
  /** The request's id, also when it has been answered already. */
  requestId?: string;
  /** Its response, while it is still being answered. */
  response?: ServerResponse;
  /** An upgraded connection (a WebSocket) whose code this is. */
  upgraded?: Duplex;
}

/**
 * The request whose code is running now, if any. Its response is the one its connection
 * is answering now, when that one carries the mark's id: a response already sent is gone
 * from the connection. A pipelined request answered behind an earlier one on the same
 * connection is named by its id only (nginx does not pipeline to its upstreams).
 */
export function currentRequest(): RunningRequest | undefined {
  const store = requestContext.getStore();
  if (store === undefined) return undefined;
  if (!(store instanceof RequestMark)) return { upgraded: store };
  const res = store.socket._httpMessage;
  const response = res instanceof ServerResponse && res.req?.headers['x-request-id'] === store.id ? res : undefined;
  return { requestId: store.id, response };
}
