// The control socket: a UNIX stream socket (mode 0600) on which `ws-proxy-kit ctl` sends one
// JSON line {command, args} and gets one JSON line back. A request is parsed here (with the
// command table, control.ts), so a bad one never reaches the master's loop; a good one goes
// through the arbiter's event queue and acts exactly like the signal. Only the file
// permissions guard it.
import net from 'node:net';
import { unlinkSync, lstatSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Settings } from '../config/settings.js';
import type { Logger } from '../log/logger.js';
import { probeUnixSocket } from '../listeners/bind.js';
import { parseControlRequest, type ControlCall, type ControlReply, type ControlRequest } from './control.js';

/** Where the control socket lives: next to the first UNIX bind, the pidfile, or in the runtime dir. */
export function controlSocketPath(
  s: Pick<Settings, 'controlSocket' | 'bind' | 'pid'>,
  env: NodeJS.ProcessEnv = process.env,
): string | null {
  if (s.controlSocket === 'off') return null;
  if (s.controlSocket !== 'auto') return s.controlSocket;
  const unix = s.bind.find((b) => b.kind === 'unix');
  if (unix && unix.kind === 'unix') return join(dirname(unix.path), `${basename(unix.path, extname(unix.path))}.ctl`);
  if (s.pid) return join(dirname(s.pid), `${basename(s.pid, extname(s.pid))}.ctl`);
  const tcp = s.bind.find((b) => b.kind === 'tcp');
  const tag = tcp && tcp.kind === 'tcp' ? String(tcp.port) : 'default';
  return join(env.XDG_RUNTIME_DIR || tmpdir(), `ws-proxy-kit-${tag}.ctl`);
}

export class ControlServer {
  private server: net.Server | null = null;

  constructor(
    readonly path: string,
    private readonly handle: (call: ControlCall) => Promise<ControlReply>,
    private readonly log: Logger,
  ) {}

  async listen(): Promise<void> {
    try {
      if (lstatSync(this.path).isSocket()) {
        if ((await probeUnixSocket(this.path)) === 'live') throw new Error(`another server answers on the control socket ${this.path}`);
        unlinkSync(this.path);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const server = net.createServer((sock) => this.serve(sock));
    // umask, not chmod afterwards: the socket is never reachable with looser permissions.
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => resolve());
      });
    } finally {
      process.umask(old);
    }
    server.on('error', (err) => this.log.warn({ err: err.message }, 'control socket error'));
    this.server = server;
  }

  private serve(sock: net.Socket): void {
    let buf = '';
    sock.setEncoding('utf8');
    sock.setTimeout(10_000, () => sock.destroy());
    sock.on('error', () => {});
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 64 * 1024) return sock.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      sock.pause();
      void this.answer(line).then((reply) => sock.end(JSON.stringify(reply) + '\n'));
    });
  }

  private async answer(line: string): Promise<ControlReply> {
    let req: ControlRequest;
    try {
      const parsed = JSON.parse(line) as Partial<ControlRequest>;
      if (typeof parsed.command !== 'string' || (parsed.args !== undefined && !Array.isArray(parsed.args))) throw new Error('bad shape');
      req = { command: parsed.command, args: (parsed.args ?? []).map(String) };
    } catch {
      return { ok: false, error: 'bad request: send one JSON line {"command": "...", "args": [...]}' };
    }
    try {
      return await this.handle(parseControlRequest(req));
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  }

  close(): void {
    if (!this.server) return;
    this.server.close();
    this.server = null;
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

/** Client side: one request, one reply. */
export function sendControl(path: string, req: ControlRequest, timeoutMs = 30_000): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let buf = '';
    sock.setEncoding('utf8');
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error(`no answer from ${path} within ${timeoutMs / 1000} s`)));
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d: string) => (buf += d));
    sock.on('error', reject);
    sock.on('close', () => {
      try {
        resolve(JSON.parse(buf) as ControlReply);
      } catch {
        reject(new Error(`the server closed the control connection without an answer`));
      }
    });
  });
}
