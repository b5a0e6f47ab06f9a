// systemd socket activation: LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES (sd_listen_fds(3)).
// Passed sockets start at fd 3. We never unlink a socket file systemd created: these
// listeners have no createdPath, so closeListeners leaves the file alone.
import { fstatSync, readFileSync, readlinkSync } from 'node:fs';

export const SD_LISTEN_FDS_START = 3;

export interface SystemdSocket {
  fd: number;
  name: string;
}

/** What systemd passed to this process, kept after the variables leave the environment. */
let remembered: SystemdSocket[] | null = null;

function bindError(message: string): Error {
  return Object.assign(new Error(message), { code: 'EWSPK_BIND', exitCode: 1 });
}

/** The sockets systemd passed to this very process, or [] when not socket-activated. */
export function passedSockets(env: NodeJS.ProcessEnv, pid = process.pid): SystemdSocket[] {
  // After forgetActivationEnv the variables are gone but the fds are still ours (a reload
  // re-reads the settings and must come to the same default bind).
  if (env.LISTEN_FDS === undefined && remembered !== null && env === process.env) return remembered;
  const count = Number(env.LISTEN_FDS);
  if (!env.LISTEN_FDS || !Number.isInteger(count) || count <= 0) return [];
  // As sd_listen_fds(3): without a LISTEN_PID naming us, the variables were inherited by a
  // process they were not meant for.
  if (env.LISTEN_PID !== String(pid)) return [];
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  const out: SystemdSocket[] = [];
  for (let i = 0; i < count; i++) out.push({ fd: SD_LISTEN_FDS_START + i, name: names[i] || 'unknown' });
  return out;
}

/** The passed sockets a `--bind systemd[:NAME]` selects. */
export function systemdListeners(env: NodeJS.ProcessEnv, name: string | null): SystemdSocket[] {
  const all = passedSockets(env);
  const bind = `--bind systemd${name ? ':' + name : ''}`;
  if (all.length === 0) {
    const why =
      env.LISTEN_FDS && env.LISTEN_PID !== String(process.pid)
        ? `LISTEN_FDS is set but LISTEN_PID (${env.LISTEN_PID ?? 'unset'}) is not this process (${process.pid}); start ws-proxy-kit with exec so it keeps the pid systemd started`
        : 'LISTEN_FDS/LISTEN_PID are not set for this process; start it from a .socket unit (or systemd-socket-activate)';
    throw bindError(`${bind}: no sockets were passed by systemd (${why}).`);
  }
  const chosen = name === null ? all : all.filter((s) => s.name === name);
  if (chosen.length === 0) {
    throw bindError(
      `${bind}: systemd passed no socket named "${name}" (it passed: ${all.map((s) => s.name).join(', ')}). Set FileDescriptorName= in the .socket unit.`,
    );
  }
  for (const s of chosen) {
    let isSocket = false;
    try {
      isSocket = fstatSync(s.fd).isSocket();
    } catch {
      throw bindError(`${bind}: LISTEN_FDS says fd ${s.fd} was passed, but it is not open in this process.`);
    }
    if (!isSocket) throw bindError(`${bind}: systemd passed fd ${s.fd} but it is not a socket.`);
  }
  return chosen;
}

/**
 * The path a passed UNIX socket is bound to ("@name" for abstract ones), or null for other
 * sockets. Linux only: matches the fd's inode against /proc/net/unix.
 */
export function unixSocketPath(fd: number): string | null {
  try {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
    if (!m) return null;
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[6] === m[1]) return cols[7] ?? null;
    }
  } catch {
    // not Linux, or /proc is not mounted: the caller shows the fd instead
  }
  return null;
}

/** Removes the activation variables so children don't believe the sockets are theirs. */
export function forgetActivationEnv(env: NodeJS.ProcessEnv): void {
  if (env === process.env && env.LISTEN_FDS !== undefined) remembered = passedSockets(env);
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
}
