// node:http servers on the inherited fds, with our limits, error handling, request ids,
// access log and the bookkeeping that graceful draining needs.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log/logger.js';
import type { Settings } from '../config/settings.js';
import type { LoadedApp } from './app.js';
import type { AccessLog } from '../log/access.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { HealthResponder } from './health.js';
import { compileAllowList } from '../proxy/trust.js';
import { isUnixListener } from '../proxy/peer.js';
// The PROXY protocol parsers (~3.5 MB) load only when --proxy-protocol is on.
import type { ProxyProtocolAcceptor } from '../proxy/proxy-protocol.js';
import { HeadScan, clientErrorStatus, guardBody, scanHead } from './request-checks.js';
import { answerError, rawErrorResponse, refuse } from './error-answers.js';
import { AcceptControl, closeGently } from './accept-control.js';
import { expiredHeads, openConnections, type TrackedSocket } from './connections.js';
import { ForwardingGate, type ListenerInfo } from './forwarding-gate.js';
import { RequestMark, requestContext } from './request-context.js';
import { nextRequestId } from './request-id.js';

export interface ServeStats {
  requests: number;
  inflight: number;
  connections: number;
}

/**
 * At --worker-connections, a connection whose request head is still unfinished this long
 * after it began (no byte yet counts too) is answered 408 and closed to make room
 * (AcceptControl.evictStaleHeads). Proxies and real clients send a head at once: it arrives
 * with the connection's first segments, whatever the round trip.
 */
const STALE_HEAD_MS = 500;

/** Header bytes node:http must accept so that our own, finer limits decide (see docs/hardening.md). */
function maxHeaderSizeFor(s: Pick<Settings, 'limitRequestLine' | 'limitRequestFields' | 'limitRequestFieldSize'>): number {
  const line = s.limitRequestLine || 8190;
  const field = s.limitRequestFieldSize || 65536;
  return line + 2 + s.limitRequestFields * (field + 2) + 2;
}

/** What an HttpWorker serves with: the optional parts are left out (undefined) when off. */
export interface HttpWorkerOptions {
  settings: Settings;
  app: LoadedApp;
  log: Logger;
  /** --access-logfile. */
  access?: AccessLog;
  /** Request metrics (--metrics-bind). */
  metrics?: WorkerMetrics;
  /** --health-path / --ready-path on the app binds (src/worker/health.ts). */
  health?: HealthResponder;
  /** The preRequest / postRequest server hooks, when the config defines them. */
  preRequest?: (req: IncomingMessage) => void;
  postRequest?: (req: IncomingMessage, res: ServerResponse) => void;
  /** --balance-connections: sends the busy-connection count to the master (AcceptControl). */
  reportLoad?: (busy: number) => void;
}

export class HttpWorker {
  private readonly servers: http.Server[] = [];
  private draining = false;
  private requests = 0;
  private readonly upgraded = new Set<Duplex>();
  private readonly headersTimeoutMs: number;
  /** Refilled by every request's head scan (requests are handled one at a time). */
  private readonly scan = new HeadScan();
  /** Trusted proxies (docs/proxies.md). */
  private readonly forwarding: ForwardingGate;
  private readonly proxyAcceptors: ProxyProtocolAcceptor[] = [];
  /** When to accept: the --worker-connections cap and the master's balancing (accept-control.ts). */
  readonly acceptControl: AcceptControl;

  private readonly settings: Settings;
  private readonly app: LoadedApp;
  private readonly log: Logger;
  // The optional features (HttpWorkerOptions): undefined, and so free, when off.
  private access: AccessLog | undefined;
  private readonly metrics: WorkerMetrics | undefined;
  private readonly health: HealthResponder | undefined;
  private readonly preRequest: ((req: IncomingMessage) => void) | undefined;
  private readonly postRequest: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;

  constructor(opts: HttpWorkerOptions) {
    this.settings = opts.settings;
    this.app = opts.app;
    this.log = opts.log;
    this.access = opts.access;
    this.metrics = opts.metrics;
    this.health = opts.health;
    this.preRequest = opts.preRequest;
    this.postRequest = opts.postRequest;
    this.headersTimeoutMs = opts.settings.headersTimeout * 1000;
    this.forwarding = new ForwardingGate(opts.settings, opts.log);
    this.acceptControl = new AcceptControl(opts.settings.workerConnections, {
      connections: { http: () => openConnections(this.servers), upgraded: () => this.upgraded.size },
      evictStaleHeads: () => this.evictStaleHeads(),
      reportTo: opts.reportLoad,
    });
  }

  /**
   * Requests served, requests in progress and open connections, counted now. The open
   * connections and their current responses are read off node:http's own list, so that no
   * connection or request costs a listener or set entry of ours (see docs/performance.md).
   */
  get stats(): ServeStats {
    let inflight = 0;
    let connections = this.upgraded.size;
    for (const sock of openConnections(this.servers)) {
      connections++;
      if (sock._httpMessage) inflight++;
    }
    return { requests: this.requests, inflight, connections };
  }

  /** At the cap: 408 for every connection whose head stayed unfinished for STALE_HEAD_MS; how many. */
  private evictStaleHeads(): number {
    let evicted = 0;
    for (const sock of expiredHeads(this.servers, Math.min(STALE_HEAD_MS, this.headersTimeoutMs))) {
      if (sock.destroyed) continue;
      this.acceptControl.evicting(sock);
      if (sock.writable) sock.write(rawErrorResponse(408));
      closeGently(sock);
      evicted++;
    }
    if (evicted)
      this.log.debug(
        { evicted, max: this.settings.workerConnections },
        'at --worker-connections: closed connections whose request head stayed unfinished (408)',
      );
    return evicted;
  }

  /** `ctl set accessLogfile`: the access log from now on (undefined: none). */
  useAccessLog(access: AccessLog | undefined): void {
    this.access = access;
  }

  /**
   * `ctl set`: what the servers took at start is set again. The limits and timeouts read per
   * request come from the settings object, which the caller has already changed.
   */
  applySettings(changes: Partial<Settings>): void {
    const s = this.settings;
    for (const server of this.servers) {
      if ('keepAlive' in changes) server.keepAliveTimeout = s.keepAlive === 0 ? 1 : s.keepAlive * 1000;
      if ('limitRequestFields' in changes) server.maxHeadersCount = s.limitRequestFields + 1;
    }
    if ('forwardedAllowIps' in changes) this.forwarding.retrust(s);
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
      this.forwarding.serves(server, listener);
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
            if (this.scan.forwarding) this.forwarding.identify(req, listener, this.scan);
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
        // The backlog as an argument: node ignores `backlog` in the options of an fd listen.
        server.listen({ fd: l.fd }, s.backlog, () => {
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
    this.forwarding.serves(acceptor.server, listener); // its sockets' `server`
    if (!this.acceptControl.add(acceptor.server))
      this.log.debug({ address: l.address }, 'this listener cannot pause accepting: no cap or balancing on it');
    // node:http starts tracking connections (header/request timeouts, closing idle ones) on
    // 'listening'; this server never listens itself, so it is told.
    server.emit('listening');
    this.proxyAcceptors.push(acceptor);
    return isUnixListener(acceptor.server) || Boolean(l.unix);
  }

  private onClientError(err: NodeJS.ErrnoException, sock: Duplex): void {
    // Malformed requests and timeouts: answer when we still can, then close. The app never sees them.
    this.log.debug({ code: err.code, reason: err.message }, 'bad request from client');
    // Mid-body errors (bad chunk): the app has the request; if its response has not started, answer like node does.
    if (!sock.writable || (sock as TrackedSocket)._httpMessage?.headersSent) {
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
    let requestId = this.scan.forwarding ? this.forwarding.identify(req, listener, this.scan) : undefined;
    if (requestId === undefined || requestId === '' || requestId.length > 200) {
      requestId = nextRequestId();
      req.headers['x-request-id'] = requestId;
    }
    if (this.draining) res.shouldKeepAlive = false;
    // Only what is switched on watches the response end (no listener per request otherwise).
    if (this.access !== undefined || this.metrics !== undefined || this.postRequest !== undefined) this.watchResponse(req, res, requestId);

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
      requestContext.enterWith(new RequestMark(req.socket, requestId));
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
   * hold the same sockets, so the queue stays for them), and kept-alive connections idle
   * after an answer are closed now, so that none waits here for a worker that takes no more
   * work. A proxy retries a request it sent on a kept-alive connection that closed (nginx
   * does, even with one upstream server). A connection not answered yet is not closed: its
   * client has likely sent its request already, and no client retries a new connection.
   */
  drain(onListenersClosed?: () => void, opts: { abandon?: boolean } = {}): Promise<void> {
    this.draining = true;
    this.acceptControl.stop();
    for (const sock of openConnections(this.servers)) {
      const res = sock._httpMessage;
      if (res) {
        if (!res.headersSent) res.shouldKeepAlive = false;
      } else if (opts.abandon && sock.bytesWritten > 0) {
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
