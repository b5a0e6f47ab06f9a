// e2e, host backend: Debian's nginx as a foreground process in a temporary prefix (never
// /etc), its workers running as www-data as in production, in front of ws-proxy-kit on a
// UNIX socket. The cases are shared with the containers backend (nginx-cases.ts).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import { cleanup, freePort, until } from '../test/helpers/server.js';
import { hasCommand } from '../test/helpers/tools.js';
import { nginxMainConf } from '../src/deploy/nginx-site.js';
import { listenOn, PROXY_USER, registerNginxCases, type NginxBackend } from './nginx-cases.js';

class HostNginx implements NginxBackend {
  readonly name = 'host';
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private prefix = '';
  private port = 0;
  private stderr = '';

  missing(): string | null {
    if (!hasCommand('nginx', ['-v'])) return 'nginx is not installed (apt-get install nginx)';
    if (process.getuid?.() !== 0) return `needs root: nginx's workers run as ${PROXY_USER}, as in production`;
    if (spawnSync('id', [PROXY_USER]).status !== 0) return `user ${PROXY_USER} does not exist (Debian's nginx package creates it)`;
    return null;
  }

  async start(siteConfig: string, _socketDir: string): Promise<void> {
    this.prefix = mkdtempSync(join(tmpdir(), 'wspk-e2e-host-nginx-'));
    chmodSync(this.prefix, 0o755); // www-data writes its temp files (uploads, buffered responses) here
    this.port = await freePort();
    const siteFile = join(this.prefix, 'site.conf');
    writeFileSync(siteFile, listenOn(siteConfig, `127.0.0.1:${this.port}`));
    const conf = join(this.prefix, 'nginx.conf');
    writeFileSync(conf, nginxMainConf(this.prefix, siteFile, { user: PROXY_USER, workerProcesses: 2 }));
    const child = spawn('nginx', ['-p', this.prefix + '/', '-c', conf, '-e', join(this.prefix, 'error.log'), '-g', 'daemon off;'], {
      // Not detached: nginx stays in the test's process group, which the test runner kills
      // as a whole if the file times out.
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    process.once('exit', () => child.kill('SIGKILL'));
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let gone = false;
    void this.exited.then(() => (gone = true));
    await until(
      async () => {
        if (gone) throw new Error(`nginx exited: ${this.stderr}${this.errorLog()}`);
        return new Promise<boolean>((resolve) => {
          const s = net.connect(this.port, '127.0.0.1', () => {
            s.end();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        });
      },
      15_000,
      'nginx accepting connections',
    );
  }

  private errorLog(): string {
    try {
      return readFileSync(join(this.prefix, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGQUIT'); // graceful: workers finish, the master removes its pid file
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.prefix, { recursive: true, force: true });
  }

  url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async workerUsers(): Promise<string[]> {
    const master = this.child!.pid!;
    const users: string[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let status: string;
      try {
        status = readFileSync(`/proc/${entry}/status`, 'utf8');
      } catch {
        continue; // exited meanwhile
      }
      if (/^PPid:\s+(\d+)/m.exec(status)?.[1] !== String(master)) continue;
      if (!/^Name:\s+nginx/m.test(status)) continue;
      const uid = /^Uid:\s+(\d+)/m.exec(status)![1]!;
      users.push(spawnSync('id', ['-nu', uid], { encoding: 'utf8' }).stdout.trim() || uid);
    }
    return users;
  }
}

test.after(cleanup);
await registerNginxCases(test, new HostNginx());
test.run();
