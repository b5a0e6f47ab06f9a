// Binary upgrade (SIGUSR2), as Gunicorn and nginx do it: the running master execs a new
// master that inherits the listening sockets, so new code (even a new Node) takes over
// without closing them. The old master keeps serving until told otherwise (WINCH, TERM).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import type { Listener } from '../listeners/bind.js';
import type { BindSpec } from '../listeners/bind-spec.js';
import type { Logger } from '../log/logger.js';
import type { Notifier } from '../notify/notifier.js';
import { exhaustive } from '../protocol.js';
import type { Pidfile } from './pidfile.js';

const UPGRADE_ENV = 'WS_PROXY_KIT_INTERNAL_UPGRADE';
/** Inherited sockets start at fd 3 in the new master, as with systemd. */
const FIRST_FD = 3;

interface InheritedListener {
  spec: BindSpec;
  address: string;
  createdPath: string | null;
  identity: { dev: number; ino: number } | null;
}

/** New master → old master, over the IPC channel spawnNewMaster opens. */
export type UpgradeMessage = { type: 'upgrade-ready'; pid: number };

function isUpgradeMessage(m: unknown): m is UpgradeMessage {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}

/**
 * The old master's side of USR2: the new master it started, while it runs, and whether it
 * took over (then our sockets and their files are its own).
 */
export class Upgrade {
  private newMaster: ChildProcess | null = null;
  /** A new master serves on our sockets: don't unlink them on exit. */
  handedOver = false;

  constructor(
    private readonly opts: {
      log: Logger;
      notifier: Notifier;
      pidfile: () => Pidfile | null;
      preExec: () => Promise<void>;
    },
  ) {}

  /** SIGUSR2: start a new master on our sockets; we keep serving until WINCH/TERM. */
  async start(listeners: readonly Listener[]): Promise<void> {
    const { log, notifier } = this.opts;
    if (this.newMaster) {
      log.warn({ newMasterPid: this.newMaster.pid }, 'upgrade already in progress: USR2 ignored');
      return;
    }
    const pidfile = this.opts.pidfile();
    pidfile?.moveAsideForUpgrade();
    await this.opts.preExec();
    const child = spawnNewMaster(listeners, { ...process.env, ...notifier.childEnv?.() });
    this.newMaster = child;
    log.info({ newMasterPid: child.pid }, 'upgrade: new master started on our sockets');
    child.on('message', (m: unknown) => {
      if (!isUpgradeMessage(m)) return;
      switch (m.type) {
        case 'upgrade-ready':
          this.handedOver = true;
          notifier.mainPid(child.pid!);
          log.info(
            { newMasterPid: child.pid },
            'upgrade: the new master is serving. Send WINCH to stop our workers, then TERM to stop this master.',
          );
          return;
        default:
          exhaustive(m.type);
      }
    });
    child.once('exit', (code, signal) => {
      if (this.newMaster !== child) return;
      this.newMaster = null;
      if (!this.handedOver) {
        log.error({ code, signal }, 'upgrade failed: the new master exited before serving; this master keeps serving');
        pidfile?.restore();
      } else {
        log.info({ code, signal }, 'the new master exited');
      }
    });
  }
}

/** Starts the new master with our sockets. It reports 'upgrade-ready' over IPC once serving. */
function spawnNewMaster(listeners: readonly Listener[], env: NodeJS.ProcessEnv): ChildProcess {
  const described: InheritedListener[] = listeners.map((l) => ({
    spec: l.spec,
    address: l.address,
    createdPath: l.createdPath,
    identity: l.identity,
  }));
  return spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ['inherit', 'inherit', 'inherit', ...listeners.map((l) => l.fd), 'ipc'],
    env: { ...env, [UPGRADE_ENV]: JSON.stringify(described) },
  });
}

/** In the new master: the listeners the old one handed over, or null when not an upgrade. */
export function inheritedListeners(env: NodeJS.ProcessEnv): Listener[] | null {
  const raw = env[UPGRADE_ENV];
  if (!raw) return null;
  delete env[UPGRADE_ENV];
  const described = JSON.parse(raw) as InheritedListener[];
  return described.map((d, i) => {
    const fd = FIRST_FD + i;
    return {
      ...d,
      fd,
      close: () => {
        try {
          closeSync(fd);
        } catch {
          // already closed
        }
      },
    };
  });
}

/** In the new master: tell the old one we are serving (it then hands over MAINPID). */
export function announceUpgradeReady(): void {
  if (process.send && process.connected) {
    const ready: UpgradeMessage = { type: 'upgrade-ready', pid: process.pid };
    process.send(ready, undefined, {}, () => process.disconnect());
  }
}
