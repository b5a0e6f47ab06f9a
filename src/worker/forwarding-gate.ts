// Trusted proxies on the worker's connections (docs/proxies.md): forwarding fields from a
// peer we do not trust are removed before the app reads anything, and `req.clientInfo`
// (src/proxy/client-info.ts) is worked out from what is left when something reads it.
import type net from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../log/logger.js';
import { ForwardedTrust, stripForwardingHeaders, type ClientInfo, type TrustSettings } from '../proxy/trust.js';
import { peerOf } from '../proxy/peer.js';
import { provideClientInfo } from '../proxy/client-info.js';
import { removeFields } from '../http-fields.js';
import type { HeadScan } from './request-checks.js';
import type { TrackedSocket } from './connections.js';

/** Which kind of listener a server accepts on: known once it listens. */
export interface ListenerInfo {
  unix: boolean;
  /**
   * Whether every peer of this listener is trusted, when that is the same for all of them: a
   * UNIX socket without the PROXY protocol (forwardedAllowUnix). Otherwise undefined, and
   * each connection's peer is judged once.
   */
  trustsAll?: boolean;
}

export class ForwardingGate {
  private trust: ForwardedTrust;
  private readonly stripUntrusted: boolean;
  /** The listener each accepting server serves (node sets `socket.server`): for `req.clientInfo`. */
  private readonly listenerOf = new WeakMap<net.Server, ListenerInfo>();
  /**
   * Per TCP connection (or PROXY protocol one), whether its peer is trusted: judged on its
   * first request that has forwarding fields. A WeakMap, not a property on the socket: a
   * property added after node:http's code first saw the socket changes its hidden class.
   */
  private trustedPeer = new WeakMap<Socket, boolean>();

  constructor(
    settings: TrustSettings,
    private readonly log: Logger,
  ) {
    this.trust = new ForwardedTrust(settings);
    this.stripUntrusted = settings.stripUntrustedForwarded;
    provideClientInfo((req) => this.clientInfoOf(req));
  }

  /** `ctl set forwardedAllowIps`: the new list, for every peer judged from now on. */
  retrust(settings: TrustSettings): void {
    this.trust = new ForwardedTrust(settings);
    this.trustedPeer = new WeakMap();
  }

  /** The connections `server` accepts come from `listener`. */
  serves(server: net.Server, listener: ListenerInfo): void {
    this.listenerOf.set(server, listener);
  }

  /**
   * Decided before the app reads anything, for a request whose head scan found forwarding
   * fields (HeadScan.forwarding): from a peer we do not trust they are removed. Returns the
   * request id a trusted proxy sent, if any.
   */
  identify(req: IncomingMessage, listener: ListenerInfo, scan: HeadScan): string | undefined {
    const sock = req.socket;
    if (this.peerTrusted(sock, listener)) return scan.requestId;
    if (this.stripUntrusted) {
      const removed = stripForwardingHeaders(req);
      this.log.debug({ removed, peer: peerOf(sock, listener.unix).address ?? 'unix' }, 'forwarding headers from an untrusted peer removed');
    } else if (scan.requestId !== undefined) {
      removeFields(req, (name) => name === 'x-request-id'); // only a trusted proxy names the request
    }
    return undefined;
  }

  /** May this connection's peer tell us who the client is (forwardedAllowIps / forwardedAllowUnix)? */
  private peerTrusted(sock: Socket, listener: ListenerInfo): boolean {
    if (listener.trustsAll !== undefined) return listener.trustsAll;
    let trusted = this.trustedPeer.get(sock);
    if (trusted === undefined) {
      trusted = this.trust.trusts(peerOf(sock, listener.unix));
      this.trustedPeer.set(sock, trusted);
    }
    return trusted;
  }

  /** `req.clientInfo`: undefined for a message this worker did not accept. */
  private clientInfoOf(req: IncomingMessage): ClientInfo | undefined {
    const sock = req.socket as TrackedSocket | null | undefined;
    const listener = sock?.server ? this.listenerOf.get(sock.server) : undefined;
    if (!sock || !listener) return undefined;
    return this.trust.clientOfRequest(req, peerOf(sock, listener.unix), this.peerTrusted(sock, listener));
  }
}
