// Who is on the other end of a connection: the socket's own peer, or the client a PROXY
// protocol header named (remembered per socket). Kept apart from proxy-protocol.ts so that
// workers without --proxy-protocol never load its parsers.
import type net from 'node:net';
import type { Socket } from 'node:net';
import { normalizeAddress, type Peer } from './trust.js';

const peers = new WeakMap<Socket, Peer>();

/** Remembers the peer of a connection (PROXY header, or which kind of listener accepted it). */
export function rememberPeer(socket: Socket, peer: Peer): void {
  peers.set(socket, peer);
}

/** The peer to judge a request by: the PROXY header's source, else the socket's own address. */
export function peerOf(socket: Socket, unixListener: boolean): Peer {
  const known = peers.get(socket);
  if (known) return known;
  if (unixListener) return { address: null, port: null, unix: true, source: 'socket' };
  const address = socket.remoteAddress;
  return { address: address ? normalizeAddress(address) : null, port: socket.remotePort ?? null, unix: false, source: 'socket' };
}

export function isUnixListener(server: net.Server): boolean {
  const address = server.address();
  return address === null || typeof address === 'string';
}
