// sd_notify(3) for the arbiter: READY, RELOADING (+MONOTONIC_USEC), STOPPING, STATUS,
// MAINPID and WATCHDOG messages to the datagram socket systemd names in NOTIFY_SOCKET.
//
// Transport: a path socket is written with node-unix-socket's DgramSocket (Node has no
// UNIX datagram sockets). An abstract socket ("@name") cannot be addressed by that
// library, so each message is then handed to systemd-notify(1) instead. That has a
// NotifyAccess= cost: systemd-notify sends on behalf of its parent (us) only when it may
// forge the sender's credentials, i.e. as root; as another user the message comes from
// systemd-notify's own short-lived pid and systemd drops it under NotifyAccess=main
// (use NotifyAccess=all there). --pid= is not passed: it would add MAINPID= to every
// message. --no-block is: without it systemd-notify (246+) follows each message with a
// BARRIER=1 and waits up to 5 s for the receiver to close the fd it passed, which only
// systemd does; against anything else every message took 5 s and was followed by an
// ERRNO=110 message (found by test/sd-notify.test.ts). systemd gives services a path
// socket (/run/systemd/notify), so the fallback matters only for other supervisors.
// systemd-notify is also the transport where node-unix-socket's native build cannot load
// (no build for this platform, such as arm64 or musl): the library is imported only here,
// when the notifier is created, and a failure to load it is not fatal.
import { execFile } from 'node:child_process';
import type { DgramSocket } from 'node-unix-socket';
import type { Logger } from '../log/logger.js';
import type { Notifier } from './notifier.js';

export interface SdNotifyConfig {
  /** NOTIFY_SOCKET: an absolute path or "@abstract-name". */
  socket: string;
  /** WATCHDOG_USEC, when systemd expects pings from this process; else null. */
  watchdogUsec: number | null;
}

/**
 * Reads NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID and removes them from `env`, so the
 * workers (and anything they start) never talk to systemd in our name.
 */
export function takeNotifyEnv(env: NodeJS.ProcessEnv, pid = process.pid): SdNotifyConfig | null {
  const socket = env.NOTIFY_SOCKET;
  const usec = Number(env.WATCHDOG_USEC);
  // WATCHDOG_PID names the process systemd expects pings from; the variable may have been
  // inherited from a parent it was meant for.
  const forUs = env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === String(pid);
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  delete env.WATCHDOG_PID;
  if (!socket) return null;
  return { socket, watchdogUsec: forUs && Number.isInteger(usec) && usec > 0 ? usec : null };
}

/** CLOCK_MONOTONIC in µs: process.hrtime is CLOCK_MONOTONIC on Linux, as systemd wants. */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

type Send = (message: string, done: (err: Error | undefined) => void) => void;

/** node-unix-socket's datagram socket class, when its native build loads here. */
export type DatagramSockets = typeof DgramSocket;

/** Loads node-unix-socket; null (with why) where its native build is missing or broken. */
export async function loadDatagramSockets(): Promise<{ sockets: DatagramSockets | null; why?: string }> {
  try {
    return { sockets: (await import('node-unix-socket')).DgramSocket };
  } catch (err) {
    return { sockets: null, why: (err as Error).message.split('\n')[0] };
  }
}

function datagramTransport(Sockets: DatagramSockets, path: string): { send: Send; close(): void } {
  const socket = new Sockets();
  socket.on('error', () => {
    // failures are reported through the send callbacks
  });
  return {
    send(message, done) {
      const buf = Buffer.from(message);
      try {
        socket.sendTo(buf, 0, buf.length, path, done);
      } catch (err) {
        done(err as Error);
      }
    },
    close: () => socket.close(),
  };
}

function systemdNotifyTransport(socket: string): { send: Send; close(): void } {
  // One systemd-notify at a time, so messages arrive in the order they were sent.
  let chain: Promise<void> = Promise.resolve();
  return {
    send(message, done) {
      chain = chain.then(
        () =>
          new Promise<void>((resolve) => {
            // Spawned directly (no shell) so its parent pid, the one it reports, is ours.
            execFile(
              'systemd-notify',
              ['--no-block', ...message.split('\n')],
              { env: { ...process.env, NOTIFY_SOCKET: socket }, timeout: 5000 },
              (err) => {
                done(err ?? undefined);
                resolve();
              },
            );
          }),
      );
    },
    close() {},
  };
}

export class SdNotifier implements Notifier {
  private readonly transport: { send: Send; close(): void };
  private warned = false;
  private lastStatus: string | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private withheld = false;
  private closed = false;
  /** After a USR2 hand-over another process is the service: we stay silent. */
  private handedOver = false;

  /** @param sockets node-unix-socket's DgramSocket; null: every message goes through systemd-notify. */
  constructor(
    readonly config: SdNotifyConfig,
    private readonly log: Logger,
    sockets: DatagramSockets | null,
  ) {
    this.transport =
      config.socket.startsWith('@') || sockets === null ? systemdNotifyTransport(config.socket) : datagramTransport(sockets, config.socket);
  }

  /** Sends one notification (lines joined by \n); failures are logged once, never thrown. */
  send(...lines: string[]): void {
    if (this.closed || this.handedOver) return;
    this.transport.send(lines.join('\n'), (err) => {
      if (!err || this.warned) return;
      this.warned = true;
      this.log.warn(
        { notifySocket: this.config.socket, err: err.message },
        `cannot send to systemd's notify socket ${this.config.socket} (${err.message}); carrying on without it. systemd will not see readiness or status; check NOTIFY_SOCKET and the unit's NotifyAccess=.`,
      );
    });
  }

  ready(status: string): void {
    this.lastStatus = status;
    this.send('READY=1', `STATUS=${status}`);
  }

  reloading(): void {
    this.lastStatus = 'reloading';
    this.send('RELOADING=1', `MONOTONIC_USEC=${monotonicUsec()}`, 'STATUS=reloading');
  }

  stopping(): void {
    this.lastStatus = 'stopping';
    this.send('STOPPING=1', 'STATUS=stopping');
  }

  status(text: string): void {
    if (text === this.lastStatus) return;
    this.lastStatus = text;
    this.send(`STATUS=${text}`);
  }

  /** USR2 upgrade: tells systemd that `pid` is the service's main process from now on. */
  mainPid(pid: number): void {
    this.send(`MAINPID=${pid}`);
    if (pid === process.pid) return;
    // The new master speaks for the service from now on; our STOPPING=1, STATUS= or
    // pings would be about a process systemd no longer follows.
    this.handedOver = true;
    if (this.watchdog) clearInterval(this.watchdog);
  }

  startWatchdog(healthy: () => boolean): void {
    const usec = this.config.watchdogUsec;
    if (usec === null || this.watchdog) return;
    const intervalMs = Math.max(1, Math.floor(usec / 2000));
    const ping = (): void => {
      if (healthy()) {
        if (this.withheld) this.log.info('watchdog: the worker pool is healthy again; pinging systemd');
        this.withheld = false;
        this.send('WATCHDOG=1');
      } else if (!this.withheld) {
        this.withheld = true;
        this.log.warn({ watchdogSec: usec / 1e6 }, 'watchdog: no worker is answering; withholding systemd watchdog pings until one does');
      }
    };
    ping();
    this.watchdog = setInterval(ping, intervalMs);
    this.watchdog.unref();
    this.log.debug({ intervalMs }, 'systemd watchdog pings started');
  }

  /**
   * What a USR2 successor needs to keep notifying systemd (we removed these from our own
   * environment). WATCHDOG_PID is left out: the successor pings once systemd follows it.
   */
  childEnv(): Record<string, string> {
    return {
      NOTIFY_SOCKET: this.config.socket,
      ...(this.config.watchdogUsec !== null ? { WATCHDOG_USEC: String(this.config.watchdogUsec) } : {}),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    // Let queued datagrams leave before the socket goes.
    setImmediate(() => this.transport.close());
  }
}

/** The notifier for this process, or null when systemd did not ask for notifications. */
export async function createSdNotifier(env: NodeJS.ProcessEnv, log: Logger): Promise<SdNotifier | null> {
  const config = takeNotifyEnv(env);
  if (!config) return null;
  log.debug({ notifySocket: config.socket, watchdogUsec: config.watchdogUsec }, 'systemd notify socket found');
  let sockets: DatagramSockets | null = null;
  if (!config.socket.startsWith('@')) {
    const loaded = await loadDatagramSockets();
    sockets = loaded.sockets;
    if (!sockets) log.info({ why: loaded.why }, 'node-unix-socket cannot load on this platform: notifying systemd through systemd-notify');
  }
  return new SdNotifier(config, log, sockets);
}
