// Opens the listening sockets in the master. Sockets are bound and put in the listening
// state here, then handed to the workers as inherited fds, which accept. From the moment a
// socket is reachable (its file appears, its port is bound) connections queue in its
// backlog, also while the first workers load the app and while none are left (as
// Gunicorn's arbiter listens itself). The master never polls them, so it never accepts.
import net from 'node:net';
import { lstatSync, unlinkSync, chmodSync, chownSync, fstatSync, statSync, existsSync, renameSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
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
  backlog: number;
  socketMode: number;
  socketUser: string | null;
  socketGroup: string | null;
}

interface RawServerHandle {
  fd: number;
  close(cb?: () => void): void;
}

// net._createServerHandle binds without listening: exactly what the master needs. It is
// the function node:cluster's primary uses for the same purpose.
const createServerHandle = (
  net as unknown as {
    _createServerHandle(
      address: string | null,
      port: number,
      addressType: number,
      fd: number | undefined,
      flags: number,
    ): RawServerHandle | number;
  }
)._createServerHandle;

function systemError(errno: number): string {
  try {
    return getSystemErrorName(errno);
  } catch {
    return `errno ${errno}`;
  }
}

/**
 * Puts a bound socket in the listening state without ever accepting on it: a net.Server
 * takes the fd and listens (libuv then starts polling it), and polling stops before the
 * event loop runs again (uv_read_start then uv_read_stop on the listening stream, as
 * src/worker/accept-control.ts pauses a worker). The server owns the fd from then on:
 * closing it closes the socket. The bind handle is kept and never closed (that would close
 * the same fd twice); when listen() fails, node has already closed the fd.
 */
async function listenWithoutAccepting(bound: RawServerHandle, backlog: number): Promise<net.Server> {
  const server = new net.Server();
  const listening = new Promise<void>((resolvePromise, reject) => {
    server.once('listening', resolvePromise);
    server.once('error', reject);
  });
  // The backlog as an argument: node ignores `backlog` in the options of an fd listen.
  server.listen({ fd: bound.fd }, backlog);
  const handle = (server as unknown as { _handle?: { readStart(): number; readStop(): number } | null })._handle;
  if (handle) {
    handle.readStart();
    handle.readStop();
  }
  keptBindHandles.add(bound);
  await listening;
  return server;
}
/** Bind handles whose fd a listening server took over (see listenWithoutAccepting). */
const keptBindHandles = new Set<RawServerHandle>();

/** Why a bind or listen failed, in words. */
function bindFailure(name: string): string {
  if (name === 'EADDRINUSE') return 'the address is already in use by another process';
  if (name === 'EACCES') return 'permission denied (ports below 1024 need privileges)';
  if (name === 'EADDRNOTAVAIL') return 'no interface has this address';
  return name;
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

/** A UNIX bind whose directory is missing cannot be served: the error serving and `check` give. */
export function checkBindDirectory(spec: BindSpec): void {
  if (spec.kind !== 'unix') return;
  const dir = dirname(resolve(spec.path));
  if (!existsSync(dir)) {
    throw new BindError(
      `unix:${spec.path}: the directory ${dir} does not exist. Create it (systemd: RuntimeDirectory=) or choose another path.`,
    );
  }
}

async function openUnix(spec: Extract<BindSpec, { kind: 'unix' }>, opts: BindOptions, log: Logger): Promise<Listener> {
  checkBindDirectory(spec);
  const path = resolve(spec.path);
  const dir = dirname(path);
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
  // Bound under a temporary name, given its mode and owner, put in the listening state, and
  // only then renamed into place: from the moment the path exists it has its permissions
  // and accepts connections into its backlog (a connect never meets ECONNREFUSED there).
  const staging = join(dir, `.${basename(path)}.${process.pid}`);
  const bindPath = Buffer.byteLength(staging) <= 107 ? staging : path;
  const handle = createServerHandle(bindPath, -1, -1, undefined, 0);
  if (typeof handle === 'number') throw new BindError(`unix:${spec.path}: cannot bind (${systemError(handle)}).`);
  let server: net.Server;
  try {
    chmodSync(bindPath, opts.socketMode);
    if (opts.socketUser !== null || opts.socketGroup !== null) {
      const uid = opts.socketUser !== null ? resolveId('user', opts.socketUser) : -1;
      const gid = opts.socketGroup !== null ? resolveId('group', opts.socketGroup) : -1;
      chownSync(bindPath, uid, gid);
    }
  } catch (err) {
    handle.close();
    unlinkQuietly(bindPath);
    if (err instanceof BindError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new BindError(
      `unix:${spec.path}: cannot set the socket's mode or owner (${e.code ?? e.message}). Changing the owner needs root.`,
    );
  }
  try {
    server = await listenWithoutAccepting(handle, opts.backlog);
  } catch (err) {
    unlinkQuietly(bindPath);
    throw new BindError(`unix:${spec.path}: cannot listen (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}).`);
  }
  if (bindPath !== path) renameSync(bindPath, path);
  const st = statSync(path);
  return {
    spec,
    fd: handle.fd,
    address: `unix:${path}`,
    createdPath: path,
    identity: { dev: st.dev, ino: st.ino },
    close: () => server.close(),
  };
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

async function openTcp(spec: Extract<BindSpec, { kind: 'tcp' }>, opts: BindOptions): Promise<Listener> {
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
  if (typeof handle === 'number') throw new BindError(`${spec.text}: cannot bind: ${bindFailure(systemError(handle))}.`);
  // libuv delays EADDRINUSE from bind() until listen(), which comes next.
  let server: net.Server;
  try {
    server = await listenWithoutAccepting(handle, opts.backlog);
  } catch (err) {
    throw new BindError(`${spec.text}: cannot bind: ${bindFailure((err as NodeJS.ErrnoException).code ?? (err as Error).message)}.`);
  }
  const bound = server.address() as net.AddressInfo | null;
  if (!bound || !bound.port || (spec.port !== 0 && bound.port !== spec.port)) {
    server.close();
    throw new BindError(`${spec.text}: cannot bind: the address is already in use by another process.`);
  }
  return {
    spec,
    fd: handle.fd,
    address: formatBind({ ...spec, host: address, port: bound.port }),
    createdPath: null,
    identity: null,
    close: () => server.close(),
  };
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
export async function openListeners(
  specs: readonly BindSpec[],
  opts: BindOptions,
  log: Logger,
  env: NodeJS.ProcessEnv,
): Promise<Listener[]> {
  const opened: Listener[] = [];
  try {
    for (const spec of specs) {
      if (spec.kind === 'unix') opened.push(await openUnix(spec, opts, log));
      else if (spec.kind === 'tcp') opened.push(await openTcp(spec, opts));
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
    // The listening server holds the fd, not the bind handle (which would unlink a path it
    // bound): closing never removes a socket file; only the identity check below does.
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
