// systemd socket activation: LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES (sd_listen_fds(3)).
// Passed sockets start at fd 3. We never unlink a socket file systemd created.
import { fstatSync } from 'node:fs';

export const SD_LISTEN_FDS_START = 3;

export interface SystemdSocket {
  fd: number;
  name: string;
}

/** The sockets systemd passed to this very process, or [] when not socket-activated. */
export function passedSockets(env: NodeJS.ProcessEnv, pid = process.pid): SystemdSocket[] {
  const count = Number(env.LISTEN_FDS);
  if (!env.LISTEN_FDS || !Number.isInteger(count) || count <= 0) return [];
  // LISTEN_PID guards against variables inherited by a process they were not meant for.
  if (env.LISTEN_PID !== undefined && env.LISTEN_PID !== String(pid)) return [];
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  const out: SystemdSocket[] = [];
  for (let i = 0; i < count; i++) out.push({ fd: SD_LISTEN_FDS_START + i, name: names[i] || 'unknown' });
  return out;
}

/** The passed sockets a `--bind systemd[:NAME]` selects. */
export function systemdListeners(env: NodeJS.ProcessEnv, name: string | null): SystemdSocket[] {
  const all = passedSockets(env);
  if (all.length === 0) {
    throw Object.assign(new Error(`--bind systemd${name ? ':' + name : ''}: no sockets were passed by systemd (LISTEN_FDS/LISTEN_PID are not set for this process).`), {
      code: 'EWSPK_BIND',
      exitCode: 1,
    });
  }
  const chosen = name === null ? all : all.filter((s) => s.name === name);
  if (chosen.length === 0) {
    throw Object.assign(new Error(`--bind systemd:${name}: systemd passed no socket named "${name}" (it passed: ${all.map((s) => s.name).join(', ')}).`), {
      code: 'EWSPK_BIND',
      exitCode: 1,
    });
  }
  for (const s of chosen) {
    if (!fstatSync(s.fd).isSocket()) throw Object.assign(new Error(`systemd passed fd ${s.fd} but it is not a socket.`), { code: 'EWSPK_BIND', exitCode: 1 });
  }
  return chosen;
}

/** Removes the activation variables so children don't believe the sockets are theirs. */
export function forgetActivationEnv(env: NodeJS.ProcessEnv): void {
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
}
