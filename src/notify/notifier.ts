// What the arbiter tells its supervisor about its state. The systemd implementation
// (sd-notify.ts) speaks sd_notify(3); without NOTIFY_SOCKET the no-op one is used.
export interface Notifier {
  /** All workers are up (boot, or the end of a reload). */
  ready(status: string): void;
  /** A reload starts (SIGHUP, or systemd's notify-reload). */
  reloading(): void;
  /** Shutdown begins. */
  stopping(): void;
  /** A one-line status for `systemctl status`. */
  status(text: string): void;
  /** A new main process took over (USR2 upgrade). */
  mainPid(pid: number): void;
  /** Starts the watchdog pings; they are sent only while healthy() is true. */
  startWatchdog(healthy: () => boolean): void;
  close(): void;
  /** Environment a new master (USR2 upgrade) needs to keep notifying (e.g. NOTIFY_SOCKET). */
  childEnv?(): NodeJS.ProcessEnv;
}

export const noopNotifier: Notifier = {
  ready() {},
  reloading() {},
  stopping() {},
  status() {},
  mainPid() {},
  startWatchdog() {},
  close() {},
};
