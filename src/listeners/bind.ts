// Opens the listening sockets in the master. Sockets are bound here and handed to the
// workers as inherited fds; the workers call listen() and accept. The master never polls
// them, so it never accepts a connection itself.
import net from 'node:net';
import { lstatSync, unlinkSync, chmodSync, chownSync, fstatSync, statSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { lookup } from 'node:dns/promises';
import { execFileSync } from 'node:child_process';
import { getSystemErrorName } from 'node:util';
import { formatBind, type BindSpec } from './bind-spec.js';
import type { Logger } from '../log/logger.js';
import { systemdListeners, unixSocketPath, type SystemdSocket } from './systemd.js';

export class BindError extends Error {
  readonly code = 'EWSPK_BIND';
  readonly exitCode = 1;
}

export interface Listener {
  spec: BindSpec;
  fd: number;
  /** "unix:/run/app.sock", "127.0.0.1:8000", "fd://3" */
  address: string;
  /** The socket file we created (and so remove on a clean exit). */
  createdPath: string | null;
  /** dev/ino of the socket file we created, so we never remove one that replaced it. */
  identity: { dev: number; ino: number } | null;
  close(): void;
}

export interface BindOptions {
  socketMode: number;
  socketUser: string | null;
  socketGroup: string | null;
}

interface RawServerHandle {
  fd: number;
  getsockname?(out: { address?: string; port?: number }): number;
  close(cb?: () => void): void;
}

// net._createServerHandle binds without listening: exactly what the master needs. It is
// the function node:cluster's primary uses for the same purpose.
const createServerHandle = (net as unknown as {
  _createServerHandle(address: string | null, port: number, addressType: number, fd: number | undefined, flags: number): RawServerHandle | number;
})._createServerHandle;

function systemError(errno: number): string {
  try {
    return getSystemErrorName(errno);
  } catch {
    return `errno ${errno}`;
  }
}

/** Resolves a user or group name (or number) through NSS, like chown(1) would. */
export function resolveId(kind: 'user' | 'group', value: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  try {
    const line = execFileSync('getent', [kind === 'user' ? 'passwd' : 'group', value], { encoding: 'utf8' });
    const id = Number(line.split(':')[2]);
    if (Number.isInteger(id)) return id;
  } catch {
    // falls through to the error below
  }
  throw new BindError(`socket${kind === 'user' ? 'User' : 'Group'}: no ${kind} named "${value}" on this system.`);
}

/** Is something accepting connections on this socket file? */
export function probeUnixSocket(path: string): Promise<'live' | 'stale'> {
  return new Promise((resolvePromise, reject) => {
    const sock = net.connect({ path });
    const timer = setTimeout(() => {
      // Bound and listening but nobody accepts within a second: still somebody's socket.
      sock.destroy();
      resolvePromise('live');
    }, 1000);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolvePromise('live');
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED') resolvePromise('stale');
      else reject(new BindError(`unix:${path}: cannot check the existing socket file (${err.code ?? err.message}).`));
    });
  });
}

async function openUnix(spec: Extract<BindSpec, { kind: 'unix' }>, opts: BindOptions, log: Logger): Promise<Listener> {
  const path = resolve(spec.path);
  const dir = dirname(path);
  if (!existsSync(dir)) {
    throw new BindError(`unix:${spec.path}: the directory ${dir} does not exist. Create it (systemd: RuntimeDirectory=) or choose another path.`);
  }
  let existing: ReturnType<typeof lstatSync> | undefined;
  try {
    existing = lstatSync(path);
  } catch {
    existing = undefined;
  }
  if (existing) {
    if (!existing.isSocket()) throw new BindError(`unix:${spec.path}: the path exists and is not a socket; refusing to replace it.`);
    if ((await probeUnixSocket(path)) === 'live') {
      throw new BindError(`unix:${spec.path}: another server is listening on this socket. Stop it first, or choose another path.`);
    }
    log.info({ path }, 'removing stale socket file left by a server that is gone');
    unlinkSync(path);
  }
  const handle = createServerHandle(path, -1, -1, undefined, 0);
  if (typeof handle === 'number') throw new BindError(`unix:${spec.path}: cannot bind (${systemError(handle)}).`);
  try {
    chmodSync(path, opts.socketMode);
    if (opts.socketUser !== null || opts.socketGroup !== null) {
      const uid = opts.socketUser !== null ? resolveId('user', opts.socketUser) : -1;
      const gid = opts.socketGroup !== null ? resolveId('group', opts.socketGroup) : -1;
      chownSync(path, uid, gid);
    }
  } catch (err) {
    handle.close();
    unlinkSync(path);
    if (err instanceof BindError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new BindError(`unix:${spec.path}: cannot set the socket's mode or owner (${e.code ?? e.message}). Changing the owner needs root.`);
  }
  const st = statSync(path);
  return {
    spec,
    fd: handle.fd,
    address: `unix:${path}`,
    createdPath: path,
    identity: { dev: st.dev, ino: st.ino },
    close: () => handle.close(),
  };
}

async function openTcp(spec: Extract<BindSpec, { kind: 'tcp' }>): Promise<Listener> {
  let address = spec.host;
  let family = net.isIP(address);
  if (family === 0) {
    try {
      const found = await lookup(address);
      address = found.address;
      family = found.family;
    } catch {
      throw new BindError(`${spec.text}: cannot resolve the host "${spec.host}".`);
    }
  }
  const handle = createServerHandle(address, spec.port, family, undefined, 0);
  if (typeof handle === 'number') {
    const name = systemError(handle);
    const why =
      name === 'EADDRINUSE'
        ? 'the address is already in use by another process'
        : name === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : name === 'EADDRNOTAVAIL'
            ? 'no interface has this address'
            : name;
    throw new BindError(`${spec.text}: cannot bind: ${why}.`);
  }
  // libuv delays EADDRINUSE from bind() until listen(); the workers would then listen on
  // a random port. Ask the socket where it is bound instead.
  const bound: { address?: string; port?: number } = {};
  const err = handle.getsockname?.(bound);
  if (err || !bound.port || (spec.port !== 0 && bound.port !== spec.port)) {
    handle.close();
    throw new BindError(`${spec.text}: cannot bind: the address is already in use by another process.`);
  }
  return { spec, fd: handle.fd, address: formatBind({ ...spec, host: address, port: bound.port }), createdPath: null, identity: null, close: () => handle.close() };
}

function openInheritedFd(spec: Extract<BindSpec, { kind: 'fd' }>): Listener {
  let isSocket = false;
  try {
    isSocket = fstatSync(spec.fd).isSocket();
  } catch {
    throw new BindError(`${spec.text}: file descriptor ${spec.fd} is not open in this process.`);
  }
  if (!isSocket) throw new BindError(`${spec.text}: file descriptor ${spec.fd} is not a socket.`);
  return { spec, fd: spec.fd, address: spec.text, createdPath: null, identity: null, close: () => {} };
}

function fromSystemd(sock: SystemdSocket, spec: BindSpec): Listener {
  // A UNIX socket is shown (and flagged to the workers) as unix:PATH; systemd owns its file.
  const path = unixSocketPath(sock.fd);
  const address = path ? `unix:${path} (systemd:${sock.name}, fd ${sock.fd})` : `systemd:${sock.name}(fd ${sock.fd})`;
  return { spec, fd: sock.fd, address, createdPath: null, identity: null, close: () => {} };
}

/** Opens every bind, or closes what it opened and throws. */
export async function openListeners(specs: readonly BindSpec[], opts: BindOptions, log: Logger, env: NodeJS.ProcessEnv): Promise<Listener[]> {
  const opened: Listener[] = [];
  try {
    for (const spec of specs) {
      if (spec.kind === 'unix') opened.push(await openUnix(spec, opts, log));
      else if (spec.kind === 'tcp') opened.push(await openTcp(spec));
      else if (spec.kind === 'fd') opened.push(openInheritedFd(spec));
      else {
        const socks = systemdListeners(env, spec.name);
        for (const s of socks) opened.push(fromSystemd(s, spec));
      }
    }
    return opened;
  } catch (err) {
    closeListeners(opened);
    throw err;
  }
}

/** Closes the sockets and removes the socket files this process created (if still ours). */
export function closeListeners(listeners: readonly Listener[], opts: { unlink?: boolean } = {}): void {
  for (const l of listeners) {
    // Closing a bound pipe handle makes libuv unlink its path: when the socket was handed
    // to a new master (upgrade), leave the fd to the process exit instead.
    if (opts.unlink === false && l.createdPath) continue;
    try {
      l.close();
    } catch {
      // already closed
    }
    if (opts.unlink === false || !l.createdPath || !l.identity) continue;
    try {
      const st = lstatSync(l.createdPath);
      if (st.dev === l.identity.dev && st.ino === l.identity.ino) unlinkSync(l.createdPath);
    } catch {
      // already gone
    }
  }
}
