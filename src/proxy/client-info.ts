// `req.clientInfo`, worked out when something first reads it. Working it out for every
// request cost a request from nginx (our site's forwarding fields) about 10 k instructions
// (parsing X-Forwarded-*, a new object), 14 % of what node:http spends on the whole request,
// paid whether or not the app looks, and most apps never do (docs/performance.md).
// The accessor sits on http.IncomingMessage.prototype: Express's, Koa's and Fastify's
// requests inherit from it (Express swaps a request's prototype for its own, which has
// IncomingMessage.prototype further up the chain).
import { IncomingMessage } from 'node:http';
import type { ClientInfo } from './trust.js';

/** The client of a request this worker serves; undefined for any other IncomingMessage (an http client's response). */
export type ClientInfoResolver = (req: IncomingMessage) => ClientInfo | undefined;

let resolver: ClientInfoResolver | null = null;

/** Makes `req.clientInfo` resolve through `resolve` (the worker's HttpWorker) from now on. */
export function provideClientInfo(resolve: ClientInfoResolver): void {
  if (resolver === null)
    Object.defineProperty(IncomingMessage.prototype, 'clientInfo', {
      configurable: true,
      enumerable: false,
      get: readClientInfo,
      set: setOwn,
    });
  resolver = resolve;
}

function readClientInfo(this: IncomingMessage): ClientInfo | undefined {
  const info = resolver?.(this);
  // Kept on the request: a second read costs nothing and sees the same answer.
  if (info !== undefined) setOwn.call(this, info);
  return info;
}

/** An app may assign its own value (an accessor without a setter would throw in strict mode). */
function setOwn(this: IncomingMessage, value: unknown): void {
  Object.defineProperty(this, 'clientInfo', { value, writable: true, configurable: true, enumerable: true });
}
