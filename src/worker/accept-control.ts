// When this worker accepts new connections. All workers poll the same listening sockets and
// the kernel gives a new connection to whichever asks first, so open-connection counts drift
// apart: a burst of keep-alive connections (nginx opening its upstream pool, a load
// generator) can land on one worker and stay there for hours. Two tools fix that:
//  - pausing: stop polling the listening sockets for a moment, so the kernel hands new
//    connections to the other workers (at --worker-connections, or when the master says this
//    worker holds more than its share);
//  - shedding: answer the next few keep-alive requests with `Connection: close`, so those
//    clients reconnect, to another worker while this one is paused.
// The master compares the counts the workers report here (src/arbiter/balance.ts): of busy
// connections, those that received bytes (or were accepted) within the last second. A
// proxy's pool holds idle connections too: nginx reuses its most recently used one first,
// so the rest sit idle, and a worker holding many of those serves fewer requests, not more.
// Upgraded connections (WebSockets) always count: they are load whether or not bytes pass.
import type net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** The listening handle's libuv stream calls (node's Pipe/TCP wrap). */
interface ListenHandle {
  readStart(): number;
  readStop(): number;
}

/** libuv's UV_EALREADY: already polling. */
const UV_EALREADY = -114;
/**
 * After an order from the master, the worker accepts nothing for this long, then the order
 * lapses (a lost or late message never leaves a worker paused). Not less: the clients of
 * the connections it closes reconnect at once, and a worker that accepts again as soon as
 * its count is down gets many of them back (the kernel hands a connection to whichever
 * worker asks first, and this one is awake).
 */
const BALANCE_PAUSE_MS = 250;
/** While paused, how soon the count is looked at again: from 1 ms, doubling up to this. */
const MAX_POLL_MS = 25;
/** How often, at most, the count is reported while connections come and go. */
const REPORT_MS = 50;
/** ... and per this many HTTP connections, REPORT_MS more: a look walks them all. */
const CONNECTIONS_PER_TICK = 1000;

/** How long a connection closed from our side stays half-open (closeGently()). */
const LINGER_MS = 1000;
/** A connection is busy while it received bytes, or was accepted, within this window. */
const BUSY_WINDOW_MS = 1000;
/**
 * A connection younger than this is not closed to move it: it may be one that was just
 * moved here, or part of a burst still being counted, and its client would pay a second
 * reconnection for nothing.
 */
export const SHED_MIN_AGE_MS = 500;

/** What the busy count saw of a socket: its bytesRead then, when that last changed, and when it was first seen. */
interface Seen {
  bytes: number;
  at: number;
  born: number;
}

/** The worker's connections, for the busy count (HttpWorker: node:http's list and the upgraded ones). */
export interface ConnectionSource {
  http(): Iterable<net.Socket>;
  upgraded(): number;
}

/** What an AcceptControl works with besides its cap; each one is optional. */
export interface AcceptControlOptions {
  /** Where the busy count looks; without it, every open connection counts as busy. */
  connections?: ConnectionSource;
  /**
   * At the cap: closes the connections whose request head has stayed unfinished too long
   * (HttpWorker), marking each with evicting(); returns how many. A client that has not
   * finished its head must not keep out the ones that would (slowloris).
   */
  evictStaleHeads?: () => number;
  /** Sends the busy-connection count to the master; unset when balancing is off. */
  reportTo?: (busy: number) => void;
  /** Connections younger than this are never shed (default SHED_MIN_AGE_MS). */
  shedMinAgeMs?: number;
}

export class AcceptControl {
  private readonly servers: net.Server[] = [];
  private readonly handles: ListenHandle[] = [];
  private stopped = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private pollMs = 1;
  private paused = false;
  /** A master's order: stay paused until then (BALANCE_PAUSE_MS). */
  private balanceUntil = 0;
  private reportTimer: NodeJS.Timeout | null = null;
  private lastReported = -1;
  /** The count at the last report tick, reported or not. */
  private lastSeen = -1;
  /**
   * Per socket, written when the busy count looks (not per request). A WeakMap, not
   * properties on the sockets: adding properties to a socket well after node:http's hot
   * code first saw it changes its hidden class, and that code deoptimizes and recompiles.
   */
  private readonly seen = new WeakMap<net.Socket, Seen>();
  /** Did the last busy count see a connection receive bytes (or a new one)? */
  private sawActivity = false;
  /** The report ticks' interval: REPORT_MS, longer with many connections to walk. */
  private tickMs = REPORT_MS;
  /** Shed connections not closed yet. */
  private leavingCount = 0;
  /**
   * Connections picked to close (shed()), from the pick on: a count made while their
   * answers are still going out must not count them, or a second order closes them twice.
   */
  private readonly leaving = new WeakSet<net.Socket>();
  /** Connections accepted so far on the servers in charge (HttpWorker's drain watches it too). */
  accepts = 0;
  /** The next responses that close their connection (read by HttpWorker on each request). */
  closeNext = 0;
  /** Connections closed so far to move them to another worker (a metric). */
  shedTotal = 0;
  private readonly evictStaleHeads: (() => number) | undefined;
  private readonly reportTo: ((busy: number) => void) | undefined;
  private readonly connections: ConnectionSource | undefined;
  private readonly shedMinAgeMs: number;

  /** @param cap --worker-connections; 0 = no cap. */
  constructor(
    private readonly cap: number,
    opts: AcceptControlOptions = {},
  ) {
    this.evictStaleHeads = opts.evictStaleHeads;
    this.reportTo = opts.reportTo;
    this.connections = opts.connections;
    this.shedMinAgeMs = opts.shedMinAgeMs ?? SHED_MIN_AGE_MS;
  }

  /**
   * Takes charge of a server listening on an inherited fd. libuv starts a listening stream
   * without its "reading" flag, so uv_read_stop would be a no-op; uv_read_start sets the flag
   * (the socket was already being polled) and from then on stop/start pause and resume
   * accepting. Returns false when the handle can't be paused: it is then never paused.
   */
  add(server: net.Server): boolean {
    this.servers.push(server);
    server.on('connection', () => this.accepted());
    const h = (server as unknown as { _handle?: Partial<ListenHandle> | null })._handle;
    if (!h || typeof h.readStart !== 'function' || typeof h.readStop !== 'function') return false;
    const rc = h.readStart.call(h);
    if (rc !== 0 && rc !== UV_EALREADY) return false;
    this.handles.push(h as ListenHandle);
    return true;
  }

  /** Open connections on the servers in charge (node:net's own count: upgraded ones included). */
  count(): number {
    let n = -this.leavingCount;
    for (const s of this.servers) n += (s as unknown as { _connections?: number })._connections ?? 0;
    return n;
  }

  /**
   * Busy connections: those that received bytes (or were new) within BUSY_WINDOW_MS, and
   * every upgraded one. Activity is seen here, by comparing each socket's bytesRead with
   * the last look, so requests pay nothing for it; the report ticks look every REPORT_MS
   * while anything happens, the heartbeat once a second otherwise (and restarts the ticks).
   */
  busy(): number {
    if (!this.connections) return this.count();
    const now = performance.now();
    let n = this.connections.upgraded();
    let activity = false;
    let walked = 0;
    for (const s of this.connections.http()) {
      walked++;
      if (this.leaving.has(s)) continue;
      const bytes = s.bytesRead;
      const seen = this.seen.get(s);
      if (seen === undefined) {
        this.seen.set(s, { bytes, at: now, born: now });
        activity = true;
      } else if (seen.bytes !== bytes) {
        seen.bytes = bytes;
        seen.at = now;
        activity = true;
      }
      if (now - (seen?.at ?? now) < BUSY_WINDOW_MS) n++;
    }
    this.sawActivity = activity;
    this.tickMs = REPORT_MS * Math.max(1, Math.ceil(walked / CONNECTIONS_PER_TICK));
    if (activity) this.tickSoon();
    return n;
  }

  /**
   * The master: this worker holds more than `limit` busy connections, its share being
   * `target`. If the count now agrees, come down to the share. Returns how many it closes.
   */
  order(target: number, limit: number): number {
    // Still paused by the last order: the master's counts were made while connections moved.
    if (this.stopped || performance.now() < this.balanceUntil) return 0;
    const open = this.busy();
    this.report(open);
    if (open <= limit) return 0;
    this.balanceUntil = performance.now() + BALANCE_PAUSE_MS;
    // Responses, not connections, are counted: under load each connection has one request
    // at a time, so the next responses are on as many different connections.
    this.closeNext = open - target;
    this.pause();
    return this.closeNext;
  }

  /**
   * This response closes its connection: the worker holds more than its share, and the
   * client reconnects, to another worker while this one is paused. Not on a connection
   * opened less than shedMinAgeMs ago (a later response on an older one closes instead).
   * Decided again when the head goes out: if the client has pipelined another request
   * behind this one, node:http would run it and its answer would never leave, so that
   * connection stays open.
   */
  shed(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket as net.Socket & { destroySoon(): void; parser?: { incoming?: unknown } | null };
    if (this.young(socket)) return;
    const keepAlive = res.shouldKeepAlive;
    this.closeNext--;
    res.shouldKeepAlive = false; // `Connection: close`; node:http then calls destroySoon()
    this.markLeaving(socket, true);
    const writeHead = res.writeHead;
    // res.end() without writeHead() goes through writeHead() too (_implicitHeader).
    res.writeHead = ((...args: unknown[]) => {
      res.writeHead = writeHead;
      const pipelined = socket.parser != null && socket.parser.incoming !== req;
      if (pipelined && !this.stopped) {
        res.shouldKeepAlive = keepAlive;
        this.closeNext++;
        this.markLeaving(socket, false);
      } else {
        this.shedTotal++;
        socket.destroySoon = () => this.linger(socket);
      }
      return (writeHead as (...a: unknown[]) => ServerResponse).apply(res, args);
    }) as typeof res.writeHead;
  }

  /** Opened (first seen) less than shedMinAgeMs ago? A socket not seen yet is seen now. */
  private young(socket: net.Socket): boolean {
    if (this.shedMinAgeMs <= 0) return false;
    const now = performance.now();
    const seen = this.seen.get(socket);
    if (seen !== undefined) return now - seen.born < this.shedMinAgeMs;
    this.seen.set(socket, { bytes: socket.bytesRead, at: now, born: now });
    return true;
  }

  /**
   * Closing right after the `Connection: close` response races a client that sends its next
   * request before it reads ours (load generators do): that request would reach a closed
   * socket and the client see a reset, an error. Instead: send our FIN, stop reading (a
   * request that arrives anyway is never parsed, so never run), and close a moment later,
   * when the client has long seen the FIN and gone. Meanwhile it no longer counts as open.
   */
  private linger(socket: net.Socket): void {
    closeGently(socket);
  }

  /** A connection evictStaleHeads() is closing: from now on it no longer counts towards the cap. */
  evicting(socket: net.Socket): void {
    this.markLeaving(socket, true);
  }

  private markLeaving(socket: net.Socket, leaving: boolean): void {
    if (leaving === this.leaving.has(socket)) return;
    if (leaving) {
      this.leaving.add(socket);
      this.leavingCount++;
      socket.once('close', () => this.markLeaving(socket, false));
    } else {
      this.leaving.delete(socket);
      this.leavingCount--;
    }
    // node's own cap (the backstop that accepts and drops) must not count the connections
    // on their way out either: the room they leave is for the next ones.
    if (this.cap > 0) for (const s of this.servers) s.maxConnections = this.cap + this.leavingCount;
  }

  /** Draining: accept what is queued, then the listeners close; no more pausing. */
  stop(): void {
    this.stopped = true;
    this.closeNext = 0;
    this.resume();
    if (this.reportTimer) clearTimeout(this.reportTimer);
  }

  private accepted(): void {
    this.accepts++;
    if (this.cap > 0 && !this.paused && !this.stopped && this.count() >= this.cap && !this.evictAtCap()) this.pause();
    this.tickSoon();
  }

  /** At the cap: room made by closing stale request heads? */
  private evictAtCap(): boolean {
    return (this.evictStaleHeads?.() ?? 0) > 0 && this.count() < this.cap;
  }

  private tickSoon(): void {
    if (this.reportTo && this.reportTimer === null && !this.stopped) this.reportTimer = setTimeout(this.reportTick, this.tickMs).unref();
  }

  /**
   * While bytes or connections come: report the busy count when it moved, every REPORT_MS
   * at most. Stops once a look saw no activity and the count held still (a busy count
   * still falling as connections go idle keeps it going).
   */
  private readonly reportTick = (): void => {
    const open = this.busy(); // the timer is still set: busy() starts no other
    this.reportTimer = null;
    const moving = this.sawActivity || open !== this.lastSeen;
    this.lastSeen = open;
    this.report(open);
    if (moving) this.tickSoon();
  };

  private report(open: number): void {
    // The master acts on a worker 10 % (and 2) over the mean: smaller moves need no message
    // (under connection churn the count moves all the time).
    if (!this.reportTo || Math.abs(open - this.lastReported) < Math.max(2, this.lastReported * 0.05)) return;
    this.lastReported = open;
    this.reportTo(open);
  }

  /** Why to stay paused now, if at all. */
  private holdReason(): 'cap' | 'balance' | null {
    if (this.stopped) return null;
    if (this.cap > 0 && this.count() >= this.cap) return 'cap';
    if (performance.now() < this.balanceUntil) return 'balance';
    return null;
  }

  private pause(): void {
    if (this.paused || this.handles.length === 0) return;
    for (const h of this.handles) h.readStop();
    this.paused = true;
    this.pollMs = 1;
    this.pollTimer = setTimeout(this.poll, this.pollMs);
  }

  private readonly poll = (): void => {
    this.pollTimer = null;
    const hold = this.holdReason();
    if (hold === null || (hold === 'cap' && this.evictAtCap() && this.holdReason() === null)) {
      this.resume();
      return;
    }
    this.pollMs = Math.min(MAX_POLL_MS, this.pollMs * 2);
    this.pollTimer = setTimeout(this.poll, this.pollMs);
  };

  private resume(): void {
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
    if (!this.paused) return;
    this.paused = false;
    this.closeNext = 0;
    for (const h of this.handles) h.readStart();
  }
}

/**
 * Closes a connection from our side without losing what the client still sends: our FIN
 * first, reading stops (a request that arrives anyway is never parsed, so never run), and
 * the socket is destroyed a moment later, when the client has long seen the FIN and gone.
 */
export function closeGently(socket: net.Socket): void {
  socket.end();
  socket.pause();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}
