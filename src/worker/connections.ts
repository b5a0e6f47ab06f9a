// The worker's HTTP connections, read off the list node:http keeps of each server's
// connections (for its timeouts) under a private symbol: no connection or request costs a
// listener or set entry of ours (see docs/performance.md).
import type http from 'node:http';
import type net from 'node:net';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** An accepted socket as node:http and node:net leave it: its current response, its server. */
export type TrackedSocket = Socket & { _httpMessage?: ServerResponse | null; server?: net.Server };

/** node:http's per-server list of connections. */
interface ConnectionList {
  all(): { socket?: Socket | null }[];
  /**
   * The connections whose current head started more than headersMs ago and is unfinished
   * (or whose request started more than requestMs ago; 0 = not that), removed from the list
   * node's own timeout check walks: the caller closes them.
   */
  expired(headersMs: number, requestMs: number): { socket?: Socket | null }[];
}

let connectionListKey: symbol | undefined;
function connectionList(server: http.Server): ConnectionList | null {
  connectionListKey ??= Object.getOwnPropertySymbols(server).find((sym) => sym.description === 'http.server.connections');
  const list = connectionListKey ? (server as unknown as Record<symbol, ConnectionList | undefined>)[connectionListKey] : undefined;
  return list && typeof list.all === 'function' ? list : null;
}

/** The HTTP connections of every server, from node:http's private per-server list (node ≥ 18.2). */
export function* openConnections(servers: readonly http.Server[]): Generator<TrackedSocket> {
  for (const server of servers) {
    const list = connectionList(server);
    if (list) for (const parser of list.all()) if (parser.socket) yield parser.socket as TrackedSocket;
  }
}

/**
 * The connections whose current request head started more than `headersMs` ago and is still
 * unfinished, taken off node's list (its own timeout check no longer sees them): the caller
 * closes them.
 */
export function* expiredHeads(servers: readonly http.Server[], headersMs: number): Generator<Socket> {
  for (const server of servers) {
    const list = connectionList(server);
    if (!list || typeof list.expired !== 'function') continue;
    for (const parser of list.expired(headersMs, 0)) if (parser.socket) yield parser.socket;
  }
}
