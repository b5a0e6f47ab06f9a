// The end-to-end cases against real nginx, shared by every backend (host process,
// container): a backend only knows how to run nginx with a site; these cases generate the
// site with `ws-proxy-kit init`, run ws-proxy-kit on a UNIX socket and check the chain.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket from 'ws';
import { onCleanup, request, ROOT, runCli, startServer, until, type ServerProcess, type Target } from '../test/helpers/server.js';
import { testWithTool } from '../test/helpers/tools.js';
import { lookupGid } from '../src/deploy/proxy-access.js';
// @ts-expect-error: a plain .mjs fixture without types
import { downloadChunk } from './fixtures/app.mjs';

/** How a backend runs nginx. The app and its socket are on this machine; socketDir is shared. */
export interface NginxBackend {
  readonly name: string;
  /** Why this backend cannot run here (a missing tool, not root), or null when it can. */
  missing(): Promise<string | null> | string | null;
  /**
   * Starts nginx with `siteConfig` (the site `init` generated; it reaches the app at a socket
   * inside `socketDir`, which must be visible to nginx at the same path) and resolves once
   * nginx accepts connections. nginx's workers run as `proxyUser` (www-data).
   */
  start(siteConfig: string, socketDir: string): Promise<void>;
  stop(): Promise<void>;
  /** nginx's HTTP listener as seen from this machine, e.g. http://127.0.0.1:41234 */
  url(): string;
  /** The users nginx's worker processes run as. */
  workerUsers(): Promise<string[]>;
}

export const PROXY_USER = 'www-data';

/** Replaces the site's `listen 80` lines with one address (backends pick a free port). */
export function listenOn(site: string, address: string): string {
  let replaced = false;
  const out = site.replace(/^([ \t]*)listen (?:80|\[::\]:80);[ \t]*\n/gm, (_m, indent: string) => {
    if (replaced) return '';
    replaced = true;
    return `${indent}listen ${address};\n`;
  });
  if (!replaced) throw new Error('the site has no "listen 80;" line to replace');
  return out;
}

interface Context {
  dir: string;
  socketDir: string;
  socketPath: string;
  appDir: string;
  configPath: string;
  initOutput: string;
  server: ServerProcess;
  nginx: Target;
}

function startApp(ctx: Pick<Context, 'appDir' | 'configPath'>): ServerProcess {
  return startServer(['--config', ctx.configPath], { cwd: ctx.appDir });
}

type Counts = Record<string, number>;

/** Resolves once every worker that logged "worker draining" has exited. */
function earlierWorkersGone(server: ServerProcess): Promise<boolean> {
  return until(
    () => {
      const draining = new Set(server.logs.filter((l) => l.msg === 'worker draining').map((l) => l.pid));
      for (const l of server.logs)
        if (typeof l.msg === 'string' && l.msg.startsWith('worker exited')) draining.delete(l.workerPid as number);
      return draining.size === 0;
    },
    30_000,
    'workers of earlier cases to finish draining',
  );
}

/** Bounded load through nginx: `concurrency` loops of GET path until `during` resolves and `minMs` passed. */
async function loadDuring(target: Target, path: string, concurrency: number, minMs: number, during: () => Promise<void>): Promise<Counts> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const counts: Counts = {};
  let stop = false;
  const one = () =>
    new Promise<string>((resolve) => {
      const req = http.get({ host: target.host, port: target.port, path, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(String(res.statusCode)));
        res.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
      });
      req.setTimeout(20_000, () => req.destroy(new Error('timeout')));
      req.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
    });
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stop) {
      const s = await one();
      counts[s] = (counts[s] ?? 0) + 1;
    }
  });
  const started = Date.now();
  try {
    await during();
    const left = minMs - (Date.now() - started);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  } catch (err) {
    throw new Error(`${(err as Error).message}\n(statuses so far: ${JSON.stringify(counts)})`, { cause: err });
  } finally {
    stop = true;
    await Promise.all(loops);
    agent.destroy();
  }
  return counts;
}

function total(c: Counts): number {
  return Object.values(c).reduce((a, b) => a + b, 0);
}

/** Registers the cases on `suite` for `backend`; each reports skipped (or fails under CI) when it is missing. */
export async function registerNginxCases(suite: Test, backend: NginxBackend): Promise<void> {
  const missing = await backend.missing();
  const ctx = {} as Context;
  const t = (title: string, fn: () => Promise<void>) => testWithTool(suite, `[${backend.name}] ${title}`, missing, fn);

  suite.before(async () => {
    if (missing !== null) return;
    ctx.dir = mkdtempSync(join(tmpdir(), 'wspk-e2e-nginx-'));
    onCleanup(() => rmSync(ctx.dir, { recursive: true, force: true }));
    chmodSync(ctx.dir, 0o755);
    // As in production (/run/NAME): the socket's directory is searchable by nginx's group only.
    ctx.socketDir = join(ctx.dir, 'run');
    mkdirSync(ctx.socketDir);
    const proxyGid = lookupGid(PROXY_USER);
    if (proxyGid === null) throw new Error(`group ${PROXY_USER} not found`);
    chownSync(ctx.socketDir, 0, proxyGid);
    chmodSync(ctx.socketDir, 0o750);
    ctx.socketPath = join(ctx.socketDir, 'app.sock');
    ctx.appDir = join(ctx.dir, 'app');
    mkdirSync(ctx.appDir);
    writeFileSync(join(ctx.appDir, 'package.json'), JSON.stringify({ name: 'e2e-app', private: true }));
    const init = await runCli(
      [
        'init',
        '--name',
        'e2e',
        '--app',
        join(ROOT, 'e2e/fixtures/app.mjs'),
        '--socket',
        ctx.socketPath,
        '--workers',
        '2',
        '--client-max-body-size',
        '64m',
        '--server-name',
        'e2e.test',
      ],
      { cwd: ctx.appDir, timeoutMs: 60_000 },
    );
    ctx.initOutput = init.stdout + init.stderr;
    if (init.code !== 0) throw new Error(`ws-proxy-kit init failed (${init.code}):\n${ctx.initOutput}`);
    ctx.configPath = join(ctx.appDir, 'deploy/ws-proxy-kit.config.mjs');
    ctx.server = startApp(ctx);
    await ctx.server.ready(30_000);
    await backend.start(readFileSync(join(ctx.appDir, 'deploy/e2e.nginx.conf'), 'utf8'), ctx.socketDir);
    onCleanup(() => backend.stop());
    const url = new URL(backend.url());
    ctx.nginx = { host: url.hostname, port: Number(url.port) };
  });

  t('init generated files that nginx -t accepts', async () => {
    assert.match(ctx.initOutput, /nginx -t: ok/);
    assert.match(ctx.initOutput, /wrote .*e2e\.nginx\.conf/);
    assert.match(ctx.initOutput, /systemctl enable --now e2e\.socket/);
  });

  t('requests reach the app with the client address, scheme, host and port (X-Forwarded-*)', async () => {
    // From 127.0.0.2 (any 127/8 address is loopback on Linux), with a forged X-Forwarded-For.
    const r = await request({ ...ctx.nginx, localAddress: '127.0.0.2' }, '/headers', {
      headers: { host: 'e2e.test', 'x-forwarded-for': '6.6.6.6' },
    });
    assert.is(r.status, 200);
    const seen = JSON.parse(r.body) as { headers: Record<string, string> };
    assert.is(seen.headers['x-forwarded-for'], '127.0.0.2', 'the client address, the forged one dropped');
    assert.is(seen.headers['x-real-ip'], '127.0.0.2');
    assert.is(seen.headers['x-forwarded-proto'], 'http');
    assert.is(seen.headers['x-forwarded-host'], 'e2e.test');
    assert.is(seen.headers.host, 'e2e.test');
    assert.ok(seen.headers['x-forwarded-port'], 'X-Forwarded-Port is set');
    assert.match(seen.headers['x-request-id'] ?? '', /^[0-9a-f]{32}$/, "nginx's $request_id");
    assert.is(seen.headers.connection, undefined, 'no Connection: close to the app (keepalive)');
  });

  t('upstream keep-alive: 100 requests use far fewer connections to the app', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const r = await request(ctx.nginx, '/conn');
      assert.is(r.status, 200);
      ids.add(r.body);
    }
    console.log(`  [${backend.name}] 100 requests through nginx used ${ids.size} upstream connection(s)`);
    assert.ok(ids.size <= 10, `expected reused connections, got ${ids.size} distinct for 100 requests`);
  });

  t('a WebSocket echo works through nginx', async () => {
    const ws = new WebSocket(`ws://${ctx.nginx.host}:${ctx.nginx.port}/echo`);
    onCleanup(() => ws.terminate());
    let server = '';
    ws.once('upgrade', (res) => (server = String(res.headers.server)));
    // 'open' follows 'upgrade' in the same tick: listen for both up front.
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    assert.match(server, /nginx/, 'the handshake went through nginx');
    const reply = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send('through nginx');
    assert.is(await reply, 'through nginx');
    ws.close();
  });

  t('200 WebSocket clients across a reload: each hears 1012 and reconnects to a new worker', async () => {
    const url = `ws://${ctx.nginx.host}:${ctx.nginx.port}/echo`;
    const open = (): Promise<{ ws: WebSocket; pid: number; code: Promise<number> }> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        onCleanup(() => ws.terminate());
        const code = new Promise<number>((r) => ws.once('close', (c: number) => r(c)));
        ws.once('error', reject);
        ws.once('open', () => ws.send('pid'));
        ws.once('message', (d: Buffer) => resolve({ ws, pid: Number(d.toString().split(' ')[1]), code }));
      });
    const clients: Awaited<ReturnType<typeof open>>[] = [];
    for (let i = 0; i < 200; i += 50) clients.push(...(await Promise.all(Array.from({ length: 50 }, open))));
    const oldPids = new Set(clients.map((c) => c.pid));
    const after = ctx.server.logs.length;
    ctx.server.signal('SIGHUP');
    const codes = await Promise.all(clients.map((c) => c.code));
    await ctx.server.waitForMsg(/^reload complete/, 30_000, after);
    const again: Awaited<ReturnType<typeof open>>[] = [];
    for (let i = 0; i < 200; i += 50) again.push(...(await Promise.all(Array.from({ length: 50 }, open))));
    const counted = codes.reduce<Record<number, number>>((a, c) => ({ ...a, [c]: (a[c] ?? 0) + 1 }), {});
    console.log(
      `  [${backend.name}] 200 WebSocket clients across a reload: close codes ${JSON.stringify(counted)}; reconnected to ${new Set(again.map((c) => c.pid)).size} new workers`,
    );
    assert.equal(counted, { 1012: 200 }, 'every client got a 1012 close frame');
    assert.ok(
      again.every((c) => !oldPids.has(c.pid)),
      'every client reconnected to a new-generation worker',
    );
    for (const c of again) c.ws.close();
  });

  t('a 20 MB upload arrives intact (sha256)', async () => {
    const body = randomBytes(20 * 1024 * 1024);
    const r = await request(ctx.nginx, '/upload', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/octet-stream' },
      timeoutMs: 60_000,
    });
    assert.is(r.status, 200, r.body.slice(0, 300));
    assert.equal(JSON.parse(r.body), { bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') });
  });

  t('a 32 MiB streamed download arrives intact (sha256)', async () => {
    const chunks = 512;
    const expected = createHash('sha256');
    for (let i = 0; i < chunks; i++) expected.update(downloadChunk(i) as Buffer);
    const got = await new Promise<{ status: number; bytes: number; sha256: string }>((resolve, reject) => {
      const req = http.get({ ...ctx.nginx, path: `/download?chunks=${chunks}` }, (res) => {
        const h = createHash('sha256');
        let bytes = 0;
        res.on('data', (d: Buffer) => {
          bytes += d.length;
          h.update(d);
        });
        res.on('end', () => resolve({ status: res.statusCode!, bytes, sha256: h.digest('hex') }));
        res.on('error', reject);
      });
      req.setTimeout(60_000, () => req.destroy(new Error('download timed out')));
      req.on('error', reject);
    });
    assert.equal(got, { status: 200, bytes: chunks * 65536, sha256: expected.digest('hex') });
  });

  t(`nginx's workers run as ${PROXY_USER} and can connect; a socket they cannot open gives the 503 page`, async () => {
    const users = await backend.workerUsers();
    assert.ok(users.length > 0 && users.every((u) => u === PROXY_USER), `nginx workers run as ${users.join(', ')}`);
    const check = await runCli(['check', '--config', ctx.configPath, '--proxy-user', PROXY_USER], { cwd: ctx.appDir });
    assert.is(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, new RegExp(`${PROXY_USER} can connect`));
    // Take the group's write bit away: new connections from nginx must now fail (pooled
    // ones live on, so ask for more at once than the pool holds), and check must say so.
    chmodSync(ctx.socketPath, 0o600);
    try {
      const replies = await Promise.all(Array.from({ length: 24 }, () => request(ctx.nginx, '/slow?ms=300')));
      const statuses = replies.map((r) => r.status);
      assert.ok(statuses.includes(503), `expected 503s from refused connections, got ${statuses.join(',')}`);
      assert.ok(
        statuses.every((s) => s === 200 || s === 503),
        statuses.join(','),
      );
      const denied = await runCli(['check', '--config', ctx.configPath, '--proxy-user', PROXY_USER], { cwd: ctx.appDir });
      assert.is(denied.code, 1);
      assert.match(denied.stdout, /cannot connect/);
    } finally {
      chmodSync(ctx.socketPath, 0o660);
    }
    assert.is((await request(ctx.nginx, '/')).status, 200);
  });

  t('a HUP reload under load through nginx gives zero 502s', async () => {
    const counts = await loadDuring(ctx.nginx, '/slow?ms=5', 6, 3000, async () => {
      await new Promise((r) => setTimeout(r, 500));
      const after = ctx.server.logs.length;
      ctx.server.signal('SIGHUP');
      await ctx.server.waitForMsg(/^reload complete/, 60_000, after);
    });
    console.log(`  [${backend.name}] HUP reload under load: ${JSON.stringify(counts)}`);
    assert.ok(total(counts) > 50, 'the load ran');
    assert.equal(Object.keys(counts), ['200'], 'every response was a 200');
  });

  t('a worker crash under load through nginx gives zero 502s', async () => {
    // Workers retired by an earlier case (the HUP reload) may still be draining nginx's
    // keep-alive connections; a /crash that lands on one never crashes it (it exits first).
    await earlierWorkersGone(ctx.server);
    const counts = await loadDuring(ctx.nginx, '/slow?ms=5', 6, 3000, async () => {
      await new Promise((r) => setTimeout(r, 500));
      const after = ctx.server.logs.length;
      const r = await request(ctx.nginx, '/crash', { timeoutMs: 30_000 });
      assert.is(r.status, 200, `/crash answered ${r.status}: ${r.body.slice(0, 200)}`);
      await ctx.server.waitForMsg(/^worker exited unexpectedly/, 60_000, after);
      await ctx.server.waitForMsg(/^worker spawned/, 60_000, after);
    });
    console.log(`  [${backend.name}] worker crash under load: ${JSON.stringify(counts)}`);
    assert.ok(total(counts) > 50, 'the load ran');
    assert.equal(Object.keys(counts), ['200'], 'every response was a 200');
  });

  t('an async throw in a request under load through nginx: that request gets a 500, every other one a 200', async () => {
    await earlierWorkersGone(ctx.server);
    const thrown: { status?: number; ms?: number } = {};
    const counts = await loadDuring(ctx.nginx, '/slow?ms=5', 6, 3000, async () => {
      await new Promise((r) => setTimeout(r, 500));
      const after = ctx.server.logs.length;
      const t0 = Date.now();
      const r = await request(ctx.nginx, '/throw-later', { timeoutMs: 30_000 });
      thrown.status = r.status;
      thrown.ms = Date.now() - t0;
      // The failing worker closes its idle upstream connections: nginx retries on another.
      await ctx.server.waitForMsg(/^worker exited unexpectedly/, 60_000, after);
    });
    console.log(
      `  [${backend.name}] async throw under load: the throwing request ${JSON.stringify(thrown)}; the load ${JSON.stringify(counts)}`,
    );
    assert.equal([thrown.status, (thrown.ms ?? Infinity) < 1000], [500, true]);
    assert.ok(total(counts) > 50, 'the load ran');
    assert.equal(Object.keys(counts), ['200'], 'every other response was a 200');
  });

  t('with the app stopped nginx answers the 503 page; after a restart it serves again', async () => {
    const stopped = await ctx.server.stop('SIGTERM');
    assert.is(stopped.code, 0);
    const down = await request(ctx.nginx, '/');
    assert.is(down.status, 503);
    assert.is(down.headers['retry-after'], '5');
    assert.match(down.body, /Service unavailable/);
    ctx.server = startApp(ctx);
    await ctx.server.ready(30_000);
    const up = await until(
      async () => {
        const r = await request(ctx.nginx, '/');
        return r.status === 200 ? r : null;
      },
      15_000,
      'nginx serving again',
    );
    assert.match(up!.body, /^ok \d+/);
  });
}
