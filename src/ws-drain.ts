// `import { closeWebSockets } from 'ws-proxy-kit/ws'`: the drain hook for an app that serves
// WebSockets with the `ws` package. When its worker drains, the clients are asked to leave
// with a close frame: 1012 (service restart) on a reload or recycle, so they reconnect at
// once (to the new workers), 1001 (going away) on a stop. The closes are spread over the
// window the worker gives (--ws-drain-seconds), so that thousands of clients do not all
// reconnect in the same millisecond. A client still open at --graceful-timeout is cut.
//
//   const wss = new WebSocketServer({ noServer: true });
//   export default { request, upgrade, drain: closeWebSockets(wss) };

/** What `ws`'s WebSocketServer offers that this needs (its `clients`, with clientTracking on, the default). */
export interface WebSocketClients {
  clients: Set<{ readyState: number; close(code?: number, reason?: string): void; once(event: 'close', fn: () => void): unknown }>;
}

import type { DrainInfo } from './worker/app.js';

export type { DrainInfo };

/** `ws`'s WebSocket.OPEN. */
const OPEN = 1;

/** The close code a client hears when its worker drains for `reason`. */
export function closeCodeFor(reason: DrainInfo['reason']): 1001 | 1012 {
  return reason === 'stop' ? 1001 : 1012;
}

/** A drain hook closing `wss`'s clients over the window; it resolves once they are all closed. */
export function closeWebSockets(wss: WebSocketClients): (info: DrainInfo) => Promise<void> {
  return (info) =>
    new Promise<void>((resolve) => {
      const clients = [...wss.clients].filter((ws) => ws.readyState === OPEN);
      if (clients.length === 0) return resolve();
      const code = closeCodeFor(info.reason);
      const text = code === 1001 ? 'server going away' : 'server restarting: reconnect';
      let open = clients.length;
      clients.forEach((ws, i) => {
        ws.once('close', () => --open === 0 && resolve());
        // Evenly over the window, each at a random point of its slice.
        const at = (info.windowMs * (i + Math.random())) / clients.length;
        setTimeout(() => ws.readyState === OPEN && ws.close(code, text), at).unref();
      });
    });
}
