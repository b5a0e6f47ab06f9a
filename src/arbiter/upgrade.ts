// Binary upgrade (SIGUSR2), as Gunicorn and nginx do it: the running master execs a new
// master that inherits the listening sockets, so new code (even a new Node) takes over
// without closing them. The old master keeps serving until told otherwise (WINCH, TERM).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import type { Listener } from '../listeners/bind.js';
import type { BindSpec } from '../listeners/bind-spec.js';

export const UPGRADE_ENV = 'WS_PROXY_KIT_INTERNAL_UPGRADE';
/** Inherited sockets start at fd 3 in the new master, as with systemd. */
const FIRST_FD = 3;

interface InheritedListener {
  spec: BindSpec;
  address: string;
  createdPath: string | null;
  identity: { dev: number; ino: number } | null;
}

/** Starts the new master with our sockets. It reports 'upgrade-ready' over IPC once serving. */
export function spawnNewMaster(listeners: readonly Listener[], env: NodeJS.ProcessEnv): ChildProcess {
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
    process.send({ type: 'upgrade-ready', pid: process.pid }, undefined, {}, () => process.disconnect());
  }
}
