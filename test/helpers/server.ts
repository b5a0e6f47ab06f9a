// Starts the real CLI as a child process in its own process group and follows its logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { jsonLines } from '../../scripts/json-lines.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(ROOT, 'dist/cli/main.js');
export const FIXTURES = join(ROOT, 'test/fixtures');

export type LogLine = Record<string, unknown> & { msg?: string; level?: number; pid?: number };

const cleanups: (() => void | Promise<void>)[] = [];

/** Runs everything registered with onCleanup (call from test.after / after.each). */
export async function cleanup(): Promise<void> {
  while (cleanups.length) {
    try {
      await cleanups.pop()!();
    } catch {
      // best effort: the next cleanups still run
    }
  }
}
export function onCleanup(fn: () => void | Promise<void>): void {
  cleanups.push(fn);
}
process.on('exit', () => {
  for (const s of running) s.killGroup();
});

export function tempDir(prefix = 'wspk-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const running = new Set<ServerProcess>();

export class ServerProcess {
  readonly logs: LogLine[] = [];
  stdout = '';
  stderrText = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(readonly child: ChildProcess) {
    running.add(this);
    const lines = jsonLines((parsed) => {
      this.logs.push(parsed);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(parsed)) return true;
        w.resolve(parsed);
        return false;
      });
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderrText += chunk;
      lines(chunk);
    });
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => (this.stdout += chunk));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        running.delete(this);
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first log line (past or future) matching pred. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 15_000, what = 'log line'): Promise<LogLine> {
    const found = this.logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; log so far:\n${this.stderrText.slice(-4000)}`));
      }, timeoutMs);
      const waiter = {
        pred,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      this.waiters.push(waiter);
      void this.exited.then(() => {
        if (this.waiters.includes(waiter)) {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(
            new Error(`server exited (${JSON.stringify(this.exitInfo)}) while waiting for ${what}; log:\n${this.stderrText.slice(-4000)}`),
          );
        }
      });
    });
  }

  /** Waits for a log line whose msg matches, counting only lines after `after` lines. */
  waitForMsg(re: RegExp, timeoutMs = 15_000, after = 0): Promise<LogLine> {
    return this.waitForLog(
      (l) => this.logs.indexOf(l) >= after && typeof l.msg === 'string' && re.test(l.msg),
      timeoutMs,
      `a log line matching ${re}`,
    );
  }

  ready(timeoutMs = 15_000): Promise<LogLine> {
    return this.waitForMsg(/^ready/, timeoutMs);
  }

  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(this.pid, sig);
    } catch {
      // gone
    }
  }

  async stop(sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 40_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exitInfo) return this.exitInfo;
    this.signal(sig);
    const timer = setTimeout(() => this.killGroup(), timeoutMs);
    const info = await this.exited;
    clearTimeout(timer);
    return info;
  }

  killGroup(): void {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // group gone
    }
  }

  /** pids of workers the master logged as spawned */
  workerPids(): number[] {
    return this.logs.filter((l) => l.msg === 'worker spawned').map((l) => l.workerPid as number);
  }
}

export function startServer(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; stdio?: unknown[] } = {}): ServerProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  // Tests must not inherit a developer's settings.
  for (const k of Object.keys(env)) if (k.startsWith('WS_PROXY_KIT_') && !(opts.env && k in opts.env)) delete env[k];
  if (!(opts.env && 'WEB_CONCURRENCY' in opts.env)) delete env.WEB_CONCURRENCY;
  if (!(opts.env && 'PORT' in opts.env)) delete env.PORT;
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...env, WS_PROXY_KIT_LOG_FORMAT: env.WS_PROXY_KIT_LOG_FORMAT ?? 'json' },
    stdio: (opts.stdio as never) ?? ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  return followProcess(child);
}

/** Follows a server started some other way (under systemd-socket-activate, ip netns exec, a
 * shell with a ulimit...): parses its logs, and kills its process group at cleanup. It must
 * have been spawned with detached: true and piped stdout/stderr. */
export function followProcess(child: ChildProcess): ServerProcess {
  const server = new ServerProcess(child);
  onCleanup(async () => {
    if (!server.exitInfo) {
      server.killGroup();
      await server.exited;
    }
  });
  return server;
}

/** Runs the CLI to completion (for commands that exit: check, --print-config, errors). */
export function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const server = startServer(args, opts);
  const timer = setTimeout(() => server.killGroup(), opts.timeoutMs ?? 20_000);
  return server.exited.then(({ code }) => {
    clearTimeout(timer);
    return { code, stdout: server.stdout, stderr: server.stderrText };
  });
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface Target {
  socketPath?: string;
  host?: string;
  port?: number;
  localAddress?: string;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(
  target: Target,
  path = '/',
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...(target.socketPath ? { socketPath: target.socketPath } : { host: target.host ?? '127.0.0.1', port: target.port }),
        ...(target.localAddress ? { localAddress: target.localAddress } : {}),
        path,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error(`request ${path} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Sends raw bytes (one buffer, or chunks written one after another) and collects everything
 * the server writes until it closes (or the timeout).
 */
export function rawRequest(
  target: Target,
  data: string | Buffer | (string | Buffer)[],
  timeoutMs = 5000,
): Promise<{ text: string; closed: boolean }> {
  const chunks = Array.isArray(data) ? data : [data];
  return new Promise((resolve) => {
    const sock = target.socketPath
      ? net.connect(target.socketPath)
      : net.connect({
          port: target.port!,
          host: target.host ?? '127.0.0.1',
          ...(target.localAddress ? { localAddress: target.localAddress } : {}),
        });
    let text = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ text, closed: false });
    }, timeoutMs);
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (text += d));
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    sock.on('error', () => {});
    const writeNext = (i: number): void => {
      if (i < chunks.length) sock.write(chunks[i]!, () => setImmediate(() => writeNext(i + 1)));
    };
    sock.once('connect', () => writeNext(0));
  });
}

/** Polls until fn returns a truthy value or the deadline passes. */
export async function until<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition', intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
