// The `init --target hosts` recipe on three "hosts" made of network namespaces: each runs
// ws-proxy-kit on TCP with its generated config, and the host's nginx (foreground, temp
// prefix) runs in a "proxy" namespace with the generated upstream. The test reaches nginx
// over a UNIX socket (namespaces do not separate the file system), so every address of the
// test range 10.231.0.0/24 exists only inside the namespaces this test makes — and deletes,
// with their veth pairs, even when it fails.
//
// - a planned stop of one host (drain window, then graceful stop) under load loses nothing;
// - a hard kill of one host loses at most its in-flight non-idempotent requests (nginx
//   replays idempotent ones), and nginx fails over to the others.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, onCleanup, tempDir, until, ServerProcess, CLI, ROOT, FIXTURES, followProcess } from '../test/helpers/server.js';
import { hasCommand, testWithTool } from '../test/helpers/tools.js';
import { nginxMainConf } from '../src/deploy/nginx-site.js';
import { renderHostsFiles, type HostsOptions } from '../src/deploy/hosts.js';
import { PROXY_USER } from './nginx-cases.js';

test.after.each(cleanup);

const TAG = `wspk${process.pid % 100000}`;
const PROXY_NS = `${TAG}p`;
const HOSTS = [1, 2, 3].map((i) => ({ ns: `${TAG}h${i}`, address: `10.231.0.${i + 1}`, bind: `10.231.0.${i + 1}:8000` }));
const PROXY_ADDRESS = '10.231.0.1';

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}

/** Why namespaces cannot be made here, or null. */
function netnsMissing(): string | null {
  if (!hasCommand('ip', ['-V'])) return 'iproute2 is not installed (apt-get install iproute2)';
  if (!hasCommand('nginx', ['-v'])) return 'nginx is not installed (apt-get install nginx)';
  if (process.getuid?.() !== 0) return '`ip netns` needs root';
  const probe = `${TAG}probe`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `\`ip netns add\` is not permitted here: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return null;
}

/** The proxy namespace with a bridge, one namespace per host, a veth pair from each to the bridge. */
function makeNetwork(): void {
  // Registered first, so it runs last: after the processes inside are gone.
  onCleanup(() => {
    for (const ns of [PROXY_NS, ...HOSTS.map((h) => h.ns)]) spawnSync('ip', ['netns', 'del', ns]); // takes its veth ends along
  });
  ip('netns', 'add', PROXY_NS);
  ip('-n', PROXY_NS, 'link', 'set', 'lo', 'up');
  ip('-n', PROXY_NS, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', PROXY_NS, 'addr', 'add', `${PROXY_ADDRESS}/24`, 'dev', 'br0');
  ip('-n', PROXY_NS, 'link', 'set', 'br0', 'up');
  for (const [i, h] of HOSTS.entries()) {
    ip('netns', 'add', h.ns);
    ip('-n', h.ns, 'link', 'set', 'lo', 'up');
    // Both ends are created inside namespaces: nothing appears in the machine's own.
    ip('-n', PROXY_NS, 'link', 'add', `v${i + 1}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns);
    ip('-n', PROXY_NS, 'link', 'set', `v${i + 1}`, 'master', 'br0', 'up');
    ip('-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0');
    ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
  }
}

/** ws-proxy-kit inside a host's namespace, with the config file `init --target hosts` generated. */
function startHost(ns: string, configFile: string): ServerProcess {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, 'serve', '--config', configFile], {
    cwd: ROOT,
    env: { ...process.env, WS_PROXY_KIT_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const server = followProcess(child);
  return server;
}

function startNginx(dir: string, site: string, socket: string): { child: ChildProcess; errorLog: () => string } {
  const prefix = join(dir, 'nginx');
  mkdirSync(prefix);
  chmodSync(dir, 0o755);
  chmodSync(prefix, 0o755);
  const siteFile = join(prefix, 'site.conf');
  let replaced = false;
  writeFileSync(
    siteFile,
    site.replace(/^([ \t]*)listen (?:80|\[::\]:80);[ \t]*\n/gm, (_m, indent: string) => {
      if (replaced) return '';
      replaced = true;
      return `${indent}listen unix:${socket};\n`;
    }),
  );
  assert.ok(replaced, 'the generated site listens on 80');
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(conf, nginxMainConf(prefix, siteFile, { user: PROXY_USER, workerProcesses: 2 }));
  const child = spawn(
    'ip',
    ['netns', 'exec', PROXY_NS, 'nginx', '-p', prefix + '/', '-c', conf, '-e', join(prefix, 'error.log'), '-g', 'daemon off;'],
    { stdio: 'ignore', detached: true },
  );
  onCleanup(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGQUIT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  return { child, errorLog: () => readFileSync(join(prefix, 'error.log'), 'utf8') };
}

interface Tally {
  sent: number;
  ok: number;
  failed: number;
  byBody: Record<string, number>;
  failures: { at: number; what: string }[];
}

/** `concurrency` loops of METHOD path through nginx's socket, new connection each; counts outcomes. */
function load(socketPath: string, method: 'GET' | 'POST', path: string, concurrency: number) {
  const t: Tally = { sent: 0, ok: 0, failed: 0, byBody: {}, failures: [] };
  let stopped = false;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const one = () =>
    new Promise<void>((resolve) => {
      t.sent++;
      const req = http.request({ socketPath, path, method, agent, headers: { host: 'shop' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          if (res.statusCode === 200) {
            t.ok++;
            const pid = body.trim().split(' ').pop()!;
            t.byBody[pid] = (t.byBody[pid] ?? 0) + 1;
          } else {
            t.failed++;
            t.failures.push({ at: Date.now(), what: `status ${res.statusCode}` });
          }
          resolve();
        });
      });
      req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => {
        t.failed++;
        t.failures.push({ at: Date.now(), what: err.code ?? err.message });
        resolve();
      });
      req.end(method === 'POST' ? 'x=1' : undefined);
    });
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopped) await one();
  });
  return {
    t,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
      agent.destroy();
      return t;
    },
  };
}

/** Network, three hosts and nginx, all from the generated files. */
async function setUp(drainSeconds: number) {
  makeNetwork();
  const dir = tempDir('wspk-e2e-multihost-');
  const o: HostsOptions = {
    name: 'shop',
    app: join(FIXTURES, 'app.mjs'),
    workingDirectory: ROOT,
    user: 'shop',
    group: 'shop',
    proxyGroup: 'www-data',
    socketPath: '/run/shop/app.sock',
    workers: 2,
    gracefulTimeout: 15,
    timeout: 30,
    keepAlive: 5,
    serverName: '_',
    tls: false,
    nodePath: process.execPath,
    cliPath: CLI,
    configPath: '/etc/shop/ws-proxy-kit.config.mjs',
    clientMaxBodySize: '10m',
    hosts: HOSTS.map((h) => h.bind),
    proxyAddress: PROXY_ADDRESS,
    drainSeconds,
  };
  const files = renderHostsFiles(o);
  const servers = HOSTS.map((h) => {
    const config = files.find((f) => f.name === `host-${h.address}-8000/ws-proxy-kit.config.mjs`)!;
    const file = join(dir, `${h.ns}.config.mjs`);
    writeFileSync(file, config.content);
    return startHost(h.ns, file);
  });
  for (const s of servers) await s.ready(30_000);
  const socket = join(dir, 'nginx.sock');
  const nginx = startNginx(dir, files[0]!.content, socket);
  await until(
    async () => {
      const r = await new Promise<number>((resolve) => {
        const req = http.get({ socketPath: socket, path: '/', headers: { host: 'shop' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', () => resolve(0));
      });
      return r === 200;
    },
    20_000,
    'nginx answering through the upstream',
  );
  return { servers, socket, nginx };
}

const missing = netnsMissing();

testWithTool(test, 'hosts: a planned stop of one host (drain, then stop) under load loses zero requests', missing, async () => {
  const { servers, socket, nginx } = await setUp(2);
  const gets = load(socket, 'GET', '/slow?ms=20', 6);
  const posts = load(socket, 'POST', '/slow?ms=20', 2);
  await until(() => gets.t.ok >= 60, 30_000, 'load running');
  const stopped = servers[0]!;
  const termAt = Date.now();
  stopped.signal('SIGTERM');
  const exit = await stopped.exited;
  const stopMs = Date.now() - termAt;
  const okAt = gets.t.ok + posts.t.ok;
  await until(() => gets.t.ok + posts.t.ok >= okAt + 60, 30_000, 'load after the stop');
  const [g, p] = [await gets.stop(), await posts.stop()];
  const log = nginx.errorLog();
  console.log(
    `  [multi-host] planned stop (${stopMs} ms, drain 2 s): GET ${g.ok}/${g.sent} ok, POST ${p.ok}/${p.sent} ok; ` +
      `nginx: upstream resets ${(log.match(/reset by peer/g) ?? []).length}, refused connects ${(log.match(/Connection refused/g) ?? []).length} (retried elsewhere)`,
  );
  assert.is(exit.code, 0);
  assert.ok(stopMs >= 2000, 'the host drained before stopping');
  assert.is(g.failed, 0, JSON.stringify(g.failures.slice(0, 5)));
  assert.is(p.failed, 0, `POSTs (never replayed by nginx) all succeed: ${JSON.stringify(p.failures.slice(0, 5))}`);
});

testWithTool(test, 'hosts: a host killed hard loses only its in-flight requests; nginx fails over', missing, async () => {
  const { servers, socket, nginx } = await setUp(0);
  const POST_CONCURRENCY = 6;
  const gets = load(socket, 'GET', '/slow?ms=200', 6);
  const posts = load(socket, 'POST', '/slow?ms=400', POST_CONCURRENCY);
  await until(() => gets.t.ok >= 30 && posts.t.ok >= 12, 30_000, 'load running');
  const killed = servers[1]!;
  const killAt = Date.now();
  killed.killGroup(); // master and workers, SIGKILL: nothing drains
  await killed.exited;
  const okAt = gets.t.ok + posts.t.ok;
  await until(() => gets.t.ok + posts.t.ok >= okAt + 40, 30_000, 'load after the kill');
  const [g, p] = [await gets.stop(), await posts.stop()];
  const lateFailures = [...g.failures, ...p.failures].filter((f) => f.at > killAt + 3000);
  const log = nginx.errorLog();
  console.log(
    `  [multi-host] hard kill: GET ${g.ok}/${g.sent} ok (${g.failed} failed), POST ${p.ok}/${p.sent} ok (${p.failed} failed, at most ${POST_CONCURRENCY} in flight); ` +
      `nginx: "prematurely closed"/reset ${(log.match(/prematurely closed|reset by peer/g) ?? []).length}, refused ${(log.match(/Connection refused/g) ?? []).length}`,
  );
  // Idempotent requests in flight on the dead host are replayed by nginx on another one.
  assert.is(g.failed, 0, JSON.stringify(g.failures.slice(0, 5)));
  // POSTs are not replayed once sent: only those in flight on the killed host can fail.
  assert.ok(p.failed <= POST_CONCURRENCY, `POST failures ${p.failed} <= in flight ${POST_CONCURRENCY}: ${JSON.stringify(p.failures)}`);
  assert.ok(
    p.failures.every((f) => f.at < killAt + 3000),
    'failures only around the kill',
  );
  assert.equal(lateFailures, [], 'after the kill nginx routes around the dead host');
});

test.run();
