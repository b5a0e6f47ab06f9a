// node:http servers on the inherited fds, with our limits, error handling, request ids,
// access log and the bookkeeping that graceful draining needs.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from '../log/logger.js';
import type { Settings } from '../config/settings.js';
import type { LoadedApp } from './app.js';
import type { AccessLog } from '../log/access.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { HealthResponder } from './health.js';
import { ForwardedTrust, compileAllowList, stripForwardingHeaders, type ClientInfo } from '../proxy/trust.js';
import { isUnixListener, peerOf } from '../proxy/peer.js';
import { provideClientInfo } from '../proxy/client-info.js';
import { removeFields } from '../http-fields.js';
// The PROXY protocol parsers (~3.5 MB) load only when --proxy-protocol is on.
import type { ProxyProtocolAcceptor } from '../proxy/proxy-protocol.js';
import { HeadScan, clientErrorStatus, guardBody, scanHead } from './request-checks.js';
import { answerError, rawErrorResponse, refuse } from './error-answers.js';
import { AcceptControl, closeGently } from './accept-control.js';

export interface ServeStats {
  requests: number;
  inflight: number;
  connections: number;
}

/** Which kind of listener a server accepts on: known once it listens. */
interface ListenerInfo {
  unix: boolean;
  /**
   * Whether every peer of this listener is trusted, when that is the same for all of them: a
   * UNIX socket without the PROXY protocol (forwardedAllowUnix). Otherwise undefined, and
   * each connection's peer is judged once.
   */
  trustsAll?: boolean;
}

/** node:http tracks each server's connections (for its timeouts) in a list under a private symbol. */
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
type TrackedSocket = Socket & { _httpMessage?: ServerResponse | null; server?: net.Server };

/**
 * At --worker-connections, a connection whose request head is still unfinished this long
 * after it began (no byte yet counts too) is answered 408 and closed to make room
 * (AcceptControl.evictStaleHeads). Proxies and real clients send a head at once: it arrives
 * with the connection's first segments, whatever the round trip.
 */
const STALE_HEAD_MS = 500;

// Request ids: a random per-process prefix and a counter — unique across workers and
// restarts like a UUID, at a fraction of randomUUID()'s cost on every request.
// (A decimal counter: number-to-decimal-string is the one V8 makes cheap.)
const ID_PREFIX = `${randomBytes(6).toString('hex')}-`;
let idCounter = 0;
function nextRequestId(): string {
  return ID_PREFIX + ++idCounter;
}

/**
 * The request (its response) or upgraded socket whose app code runs now, also in the timers
 * and promises that code starts: an uncaught exception or unhandled rejection can then name
 * the request it came from, and that request gets its 500 at once instead of hanging until
 * the graceful timeout (worker.ts). On Node 24 (and 22 with --experimental-async-context-frame,
 * which the arbiter passes) this is an async context frame, no async hook. enterWith, not
 * run: node:http calls the request handler inside a callback scope that restores the
 * previous frame when it returns, so one frame per request is enough (run() makes two:
 * about 1.7 k instructions more per request, measured with bench/worker-instructions.ts).
 */
const requestContext = new AsyncLocalStorage<ServerResponse | Duplex>();

/** The response or upgraded socket whose code is running now, if any (see requestContext). */
export function currentRequest(): ServerResponse | Duplex | undefined {
  return requestContext.getStore();
}

/** Header bytes node:http must accept so that our own, finer limits decide (see docs/hardening.md). */
export function maxHeaderSizeFor(s: Pick<Settings, 'limitRequestLine' | 'limitRequestFields' | 'limitRequestFieldSize'>): number {
  const line = s.limitRequestLine || 8190;
  const field = s.limitRequestFieldSize || 65536;
  return line + 2 + s.limitRequestFields * (field + 2) + 2;
}

export class HttpWorker {
  readonly servers: http.Server[] = [];
  private draining = false;
  private requests = 0;
  private readonly upgraded = new Set<Duplex>();
  private readonly headersTimeoutMs: number;
  /** Refilled by every request's head scan (requests are handled one at a time). */
  private readonly scan = new HeadScan();
  /** Trusted proxies (docs/proxies.md). */
  private readonly trust: ForwardedTrust;
  /** The listener each accepting server serves (node sets `socket.server`): for `req.clientInfo`. */
  private readonly listenerOf = new WeakMap<net.Server, ListenerInfo>();
  /**
   * Per TCP connection (or PROXY protocol one), whether its peer is trusted: judged on its
   * first request that has forwarding fields. A WeakMap, not a property on the socket: a
   * property added after node:http's code first saw the socket changes its hidden class.
   */
  private readonly trustedPeer = new WeakMap<Socket, boolean>();
  private readonly proxyAcceptors: ProxyProtocolAcceptor[] = [];
  /** When to accept: the --worker-connections cap and the master's balancing (accept-control.ts). */
  readonly acceptControl: AcceptControl;

  /** preRequest / postRequest server hooks; undefined (free) unless the config defines them. */
  preRequest?: (req: IncomingMessage) => void;
  postRequest?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Request metrics (--metrics-bind); undefined, and so free, when metrics are off. */
  metrics?: WorkerMetrics;
  /** --health-path / --ready-path (src/worker/health.ts); undefined, and so free, when off. */
  health?: HealthResponder;

  constructor(
    private readonly settings: Settings,
    private readonly app: LoadedApp,
    private readonly log: Logger,
    private readonly access: AccessLog | null,
  ) {
    this.headersTimeoutMs = settings.headersTimeout * 1000;
    this.trust = new ForwardedTrust(settings);
    this.acceptControl = new AcceptControl(settings.workerConnections);
    this.acceptControl.connections = { http: () => this.openConnections(), upgraded: () => this.upgraded.size };
    this.acceptControl.evictStaleHeads = () => this.evictStaleHeads();
    provideClientInfo((req) => this.clientInfoOf(req));
  }

  /**
   * Requests served, requests in progress and open connections, counted now. The open
   * connections and their current responses are read off node:http's own list, so that no
   * connection or request costs a listener or set entry of ours (see docs/performance.md).
   */
  get stats(): ServeStats {
    let inflight = 0;
    let connections = this.upgraded.size;
    for (const sock of this.openConnections()) {
      connections++;
      if (sock._httpMessage) inflight++;
    }
    return { requests: this.requests, inflight, connections };
  }

  /** The HTTP connections of every server, from node:http's private per-server list (node ≥ 18.2). */
  private *openConnections(): Generator<TrackedSocket> {
    for (const server of this.servers) {
      const list = connectionList(server);
      if (list) for (const parser of list.all()) if (parser.socket) yield parser.socket as TrackedSocket;
    }
  }

  /** At the cap: 408 for every connection whose head stayed unfinished for STALE_HEAD_MS; how many. */
  private evictStaleHeads(): number {
    let evicted = 0;
    for (const server of this.servers) {
      const list = connectionList(server);
      if (!list || typeof list.expired !== 'function') continue;
      for (const parser of list.expired(Math.min(STALE_HEAD_MS, this.headersTimeoutMs), 0)) {
        const sock = parser.socket;
        if (!sock || sock.destroyed) continue;
        this.acceptControl.evicting(sock);
        if (sock.writable) sock.write(rawErrorResponse(408));
        closeGently(sock);
        evicted++;
      }
    }
    if (evicted)
      this.log.debug(
        { evicted, max: this.settings.workerConnections },
        'at --worker-connections: closed connections whose request head stayed unfinished (408)',
      );
    return evicted;
  }

  /** Creates one server per fd and starts accepting. Resolves when all listen. */
  async listen(listeners: { fd: number; address: string; unix?: boolean }[]): Promise<void> {
    const s = this.settings;
    const checkInterval = Math.max(250, Math.min(30_000, (Math.min(s.headersTimeout, s.requestTimeout || Infinity) * 1000) / 4));
    for (const l of listeners) {
      const server = http.createServer({
        maxHeaderSize: maxHeaderSizeFor(s),
        requestTimeout: s.requestTimeout * 1000,
        headersTimeout: this.headersTimeoutMs,
        keepAliveTimeout: s.keepAlive * 1000,
        connectionsCheckingInterval: checkInterval,
        requireHostHeader: true,
      });
      // Node silently drops headers past maxHeadersCount; one over our limit lets us answer 431.
      server.maxHeadersCount = s.limitRequestFields + 1;
      // At the cap the worker stops accepting (accept-control.ts); node's own cap, which
      // accepts and closes (event 'drop'), only backs that up. See docs/hardening.md.
      if (s.workerConnections) server.maxConnections = s.workerConnections;
      server.on('drop', () => this.log.debug({ max: s.workerConnections }, 'connection dropped: --worker-connections reached'));
      server.keepAliveTimeout = s.keepAlive * 1000;
      if (s.keepAlive === 0) server.keepAliveTimeout = 1; // closes right after the response
      // Trusted proxies: connections over a UNIX socket have no address.
      const listener: ListenerInfo = { unix: Boolean(l.unix) };
      this.listenerOf.set(server, listener);
      server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, listener));
      server.on('clientError', (err: NodeJS.ErrnoException, sock: Duplex) => this.onClientError(err, sock));
      if (this.app.upgrade) {
        const upgrade = this.app.upgrade;
        server.on('upgrade', (req: IncomingMessage, sock: Duplex, head: Buffer) => {
          const refused = scanHead(req, this.settings, this.scan);
          if (refused) {
            sock.end(rawErrorResponse(refused));
            return;
          }
          this.upgraded.add(sock);
          sock.once('close', () => this.upgraded.delete(sock));
          try {
            this.identify(req, listener);
            requestContext.enterWith(sock);
            upgrade(req, sock, head);
          } catch (err) {
            this.log.error({ err, url: req.url }, 'app error in upgrade handler');
            sock.destroy();
          }
        });
      }
      if (s.proxyProtocol !== 'off') {
        listener.unix = await this.listenProxyProtocol(server, l, listener);
        this.servers.push(server);
        continue;
      }
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd: l.fd, backlog: s.backlog }, () => {
          listener.unix ||= isUnixListener(server);
          if (listener.unix) listener.trustsAll = this.settings.forwardedAllowUnix;
          server.off('error', reject);
          server.on('error', (err) => this.log.error({ err, address: l.address }, 'server error'));
          if (!this.acceptControl.add(server))
            this.log.debug({ address: l.address }, 'this listener cannot pause accepting: no cap or balancing on it');
          resolve();
        });
      });
      this.servers.push(server);
    }
  }

  /**
   * PROXY protocol: our own net.Server accepts on the fd and reads the header, then node:http
   * gets the socket. Resolves whether the bind is a UNIX socket.
   */
  private async listenProxyProtocol(
    server: http.Server,
    l: { fd: number; address: string; unix?: boolean },
    listener: ListenerInfo,
  ): Promise<boolean> {
    const s = this.settings;
    const { ProxyProtocolAcceptor } = await import('../proxy/proxy-protocol.js');
    const acceptor = new ProxyProtocolAcceptor({
      mode: s.proxyProtocol as Exclude<typeof s.proxyProtocol, 'off'>,
      allow: compileAllowList(s.proxyAllowIps),
      unixListener: Boolean(l.unix),
      timeoutMs: this.headersTimeoutMs,
      log: this.log,
      onReady: (sock) => server.emit('connection', sock),
    });
    if (s.workerConnections) acceptor.server.maxConnections = s.workerConnections;
    await acceptor.listen(l.fd, s.backlog);
    this.listenerOf.set(acceptor.server, listener); // its sockets' `server`
    if (!this.acceptControl.add(acceptor.server))
      this.log.debug({ address: l.address }, 'this listener cannot pause accepting: no cap or balancing on it');
    // node:http starts tracking connections (header/request timeouts, closing idle ones) on
    // 'listening'; this server never listens itself, so it is told.
    server.emit('listening');
    this.proxyAcceptors.push(acceptor);
    return isUnixListener(acceptor.server) || Boolean(l.unix);
  }

  /**
   * Trusted proxies (docs/proxies.md), decided before the app reads anything: forwarding
   * fields from a peer we do not trust are removed. Reads the head scan of this request;
   * returns the request id a trusted proxy sent, if any. Who the client is (`req.clientInfo`)
   * is worked out from what is left only when something reads it (clientInfoOf).
   */
  private identify(req: IncomingMessage, listener: ListenerInfo): string | undefined {
    const scan = this.scan;
    if (!scan.forwarding) return undefined;
    const sock = req.socket;
    if (this.peerTrusted(sock, listener)) return scan.requestId;
    if (this.settings.stripUntrustedForwarded) {
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

  /** `req.clientInfo` (src/proxy/client-info.ts): undefined for a message this worker did not accept. */
  private clientInfoOf(req: IncomingMessage): ClientInfo | undefined {
    const sock = req.socket as TrackedSocket | null | undefined;
    const listener = sock?.server ? this.listenerOf.get(sock.server) : undefined;
    if (!sock || !listener) return undefined;
    return this.trust.clientOfRequest(req, peerOf(sock, listener.unix), this.peerTrusted(sock, listener));
  }

  private onClientError(err: NodeJS.ErrnoException, sock: Duplex): void {
    // Malformed requests and timeouts: answer when we still can, then close. The app never sees them.
    this.log.debug({ code: err.code, reason: err.message }, 'bad request from client');
    // Mid-body errors (bad chunk): the app has the request; if its response has not started, answer like node does.
    if (!sock.writable || (sock as Socket & { _httpMessage?: ServerResponse })._httpMessage?.headersSent) {
      sock.destroy();
      return;
    }
    sock.end(rawErrorResponse(clientErrorStatus(err)));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, listener: ListenerInfo): void {
    if (this.health !== undefined && this.health.answer(req, res)) return;
    this.requests++;
    // Limits, the RFC checks node:http does not make, and the fields used below: one pass.
    const status = scanHead(req, this.settings, this.scan);
    let requestId = this.identify(req, listener);
    if (requestId === undefined || requestId === '' || requestId.length > 200) {
      requestId = nextRequestId();
      req.headers['x-request-id'] = requestId;
    }
    if (this.draining) res.shouldKeepAlive = false;
    // Only what is switched on watches the response end (no listener per request otherwise).
    if (this.access !== null || this.metrics !== undefined || this.postRequest !== undefined) this.watchResponse(req, res, requestId);

    if (status !== 0) {
      if (status === 414 || status === 431) {
        this.log.debug({ status, url: req.url?.slice(0, 200), requestId }, 'request over a limit');
        answerError(res, status);
      } else {
        // Requests node:http lets through that RFC 9110/9112 forbid or a proxy could read differently.
        this.log.debug({ status, method: req.method, url: req.url?.slice(0, 200), requestId }, 'request refused: malformed or ambiguous');
        refuse(res, status);
      }
      return;
    }
    if (this.scan.chunked)
      guardBody(req, res, this.settings.limitRequestBody, (what) =>
        this.log.debug({ requestId, what }, 'request refused while reading its body'),
      );
    if (this.preRequest) this.preRequest(req);
    // More than this worker's share of connections: this one may close after its answer.
    if (this.acceptControl.closeNext !== 0 && !this.draining) this.acceptControl.shed(req, res);
    const handler = this.app.request;
    if (!handler) {
      answerError(res, 426);
      return;
    }
    try {
      requestContext.enterWith(res);
      const result = handler(req, res) as Promise<unknown> | undefined;
      if (result && typeof result.then === 'function') result.then(undefined, (err: unknown) => this.appError(err, req, res, requestId));
    } catch (err) {
      this.appError(err, req, res, requestId);
    }
  }

  /** The postRequest hook, metrics and the access log hear of the response when it ends. */
  private watchResponse(req: IncomingMessage, res: ServerResponse, requestId: string): void {
    const start = performance.now();
    const sock = req.socket;
    const written = sock.bytesWritten;
    res.once('close', () => {
      if (this.postRequest) this.postRequest(req, res);
      if (this.metrics) this.metrics.observe(req.method, res.statusCode, performance.now() - start);
      if (this.access) this.access.write(req, res, requestId, performance.now() - start, sock.bytesWritten - written);
    });
  }

  private appError(err: unknown, req: IncomingMessage, res: ServerResponse, requestId: string): void {
    this.log.error({ err, requestId, method: req.method, url: req.url }, 'app error: answered 500');
    answerError(res, 500);
  }

  /**
   * Stops accepting and lets in-flight requests finish; resolves when every connection is gone.
   * Idle keep-alive connections are not cut at once: a request may already be on the wire
   * (cutting it would reset the client — a lost request). Each one gets `Connection: close`
   * on its next response, or ends at the keep-alive timeout, which a proxy reaches first.
   *
   * `abandon` (after an uncaught error, when this process is no longer trusted): the
   * listeners close at once without taking what is queued (the master and the other workers
   * hold the same sockets, so the queue stays for them), and connections without a request
   * in progress (idle keep-alive ones, unfinished heads) are closed now, so that none waits
   * here for a worker that takes no more work. A proxy retries a request it sent on a
   * kept-alive connection that closed (nginx does, even with one upstream server).
   */
  drain(onListenersClosed?: () => void, opts: { abandon?: boolean } = {}): Promise<void> {
    this.draining = true;
    this.acceptControl.stop();
    for (const sock of this.openConnections()) {
      const res = sock._httpMessage;
      if (res) {
        if (!res.headersSent) res.shouldKeepAlive = false;
      } else if (opts.abandon) {
        closeGently(sock);
      }
    }
    return (opts.abandon ? Promise.resolve() : this.acceptQueued()).then(() => {
      // net.Server's close, not http.Server's: the latter also drops idle keep-alive sockets.
      const closed = this.servers.map((s) => new Promise<void>((resolve) => net.Server.prototype.close.call(s, () => resolve())));
      closed.push(...this.proxyAcceptors.map((a) => a.close())); // PROXY protocol binds: the acceptor counts the connections
      onListenersClosed?.();
      return Promise.all(closed).then(() => undefined);
    });
  }

  /**
   * Accepts what the kernel already queued before closing: closing the last fd of a listening
   * socket resets its backlog. On a planned stop the master has already closed its fds and
   * unlinked UNIX paths, so nothing new can queue. libuv accepts one connection per loop
   * iteration here, so: go round until a whole iteration accepted nothing.
   */
  private async acceptQueued(): Promise<void> {
    // Bounded: on a reload the socket stays open in the master and the new workers, and a
    // steady stream of new TCP connections must not keep an old worker accepting until its
    // graceful timeout cuts what it is serving. Half of that timeout, 5 s at most, leaves
    // the other half for what it accepted.
    const until = performance.now() + Math.min(5000, (this.settings.gracefulTimeout * 1000) / 2);
    while (performance.now() < until) {
      const before = this.acceptControl.accepts;
      await new Promise<void>((r) => setImmediate(() => setImmediate(r)));
      if (this.acceptControl.accepts === before) return;
    }
  }

  /** Closes everything now (quick stop, or the graceful timeout ran out). */
  closeAll(): void {
    this.draining = true;
    for (const s of this.servers) {
      if (s.listening) s.close();
      s.closeAllConnections();
    }
    for (const sock of this.upgraded) sock.destroy();
    for (const a of this.proxyAcceptors) a.destroyPending();
  }
}
