// The core server over real UNIX sockets and TCP: binds, workers, socket files, pidfile.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { statSync, existsSync, writeFileSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startServer, request, tempDir, freePort, cleanup, FIXTURES, ROOT, until } from './helpers/server.js';

test.after.each(cleanup);

const APP = join(FIXTURES, 'app.mjs');

test('serves the hello example on the default bind, and PORT overrides it', async () => {
  const port = await freePort();
  const server = startServer([join(ROOT, 'examples/hello/app.mjs')], { env: { PORT: String(port) } });
  const ready = await server.ready();
  assert.equal(ready.binds, [`127.0.0.1:${port}`]);
  const reply = await request({ port }, '/');
  assert.equal(reply.status, 200);
  assert.match(reply.body, /^Hello from ws-proxy-kit worker \d+/);
  assert.equal((await server.stop()).code, 0);
});

test('one app on a UNIX socket, IPv4 and IPv6 at once, all workers serving', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const [p4, p6] = [await freePort(), await freePort('::1')];
  const server = startServer([APP, '--bind', `unix:${sock}`, '--bind', `127.0.0.1:${p4}`, '--bind', `[::1]:${p6}`, '--workers', '3']);
  const ready = await server.ready();
  assert.equal(ready.workers, 3);
  assert.equal((ready.binds as string[]).length, 3);
  const pids = new Set<string>();
  for (const target of [{ socketPath: sock }, { port: p4 }, { host: '::1', port: p6 }]) {
    const r = await request(target, '/');
    assert.equal(r.status, 200);
  }
  // Different workers answer: keep asking until every worker has (bounded).
  const workerPids = server.workerPids().map(String);
  await until(
    async () => {
      const rs = await Promise.all(Array.from({ length: 12 }, () => request({ socketPath: sock }, '/slow?ms=20')));
      for (const r of rs) pids.add(r.body.trim().split(' ').pop()!);
      return pids.size === 3;
    },
    15_000,
    'all three workers to answer',
  );
  assert.equal([...pids].sort(), workerPids.sort());
  assert.ok(!pids.has(String(server.pid)), 'the master never serves a request');
  assert.equal((await server.stop()).code, 0);
});

test('UNIX socket gets mode 0660 by default, --socket-mode applies, file removed on clean exit', async () => {
  const dir = tempDir();
  const a = join(dir, 'a.sock');
  const b = join(dir, 'b.sock');
  const server = startServer([APP, '-b', `unix:${a}`]);
  await server.ready();
  assert.equal(statSync(a).mode & 0o777, 0o660);
  assert.ok(statSync(a).isSocket());
  assert.equal((await server.stop()).code, 0);
  assert.not.ok(existsSync(a), 'socket file removed on clean exit');

  const other = startServer([APP, '-b', `unix:${b}`, '--socket-mode', '600']);
  await other.ready();
  assert.equal(statSync(b).mode & 0o777, 0o600);
  await other.stop();
});

test('--socket-group sets the group of the socket file', async () => {
  const dir = tempDir();
  const sock = join(dir, 'g.sock');
  const gid = process.getgid!();
  const server = startServer([APP, '-b', `unix:${sock}`, '--socket-group', String(gid), '--socket-user', String(process.getuid!())]);
  await server.ready();
  assert.equal(statSync(sock).gid, gid);
  await server.stop();
});

test('a stale socket file from a dead server is replaced', async () => {
  const dir = tempDir();
  const sock = join(dir, 'stale.sock');
  // A socket file nobody listens on, as a SIGKILLed server leaves behind.
  spawnSync(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  assert.ok(statSync(sock).isSocket(), 'stale socket file exists');
  const server = startServer([APP, '-b', `unix:${sock}`]);
  await server.ready();
  assert.ok(server.logs.some((l) => /stale socket/.test(String(l.msg))));
  assert.equal((await request({ socketPath: sock }, '/')).status, 200);
  await server.stop();
});

test('a socket a live server answers on is refused with a clear error, and left alone', async () => {
  const dir = tempDir();
  const sock = join(dir, 'live.sock');
  const first = startServer([APP, '-b', `unix:${sock}`]);
  await first.ready();
  const second = startServer([APP, '-b', `unix:${sock}`]);
  const { code } = await second.exited;
  assert.equal(code, 1);
  assert.match(second.stderrText, /another server is listening on this socket/);
  // The first server still serves on its socket.
  assert.equal((await request({ socketPath: sock }, '/')).status, 200);
  await first.stop();
});

test('a path that is not a socket is never replaced', async () => {
  const dir = tempDir();
  const path = join(dir, 'data.txt');
  writeFileSync(path, 'precious');
  const server = startServer([APP, '-b', `unix:${path}`]);
  assert.equal((await server.exited).code, 1);
  assert.match(server.stderrText, /exists and is not a socket/);
  assert.equal(readFileSync(path, 'utf8'), 'precious');
});

test('a TCP port in use is a clear error', async () => {
  const port = await freePort();
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
  const server = startServer([APP, '-b', `127.0.0.1:${port}`]);
  assert.equal((await server.exited).code, 1);
  assert.match(server.stderrText, /already in use/);
  await new Promise<void>((r) => blocker.close(() => r()));
});

test('--pid writes the pidfile and removes it on exit', async () => {
  const dir = tempDir();
  const pidfile = join(dir, 'server.pid');
  const server = startServer([APP, '-b', `unix:${join(dir, 's.sock')}`, '--pid', pidfile]);
  await server.ready();
  assert.equal(readFileSync(pidfile, 'utf8').trim(), String(server.pid));
  await server.stop();
  assert.not.ok(existsSync(pidfile));
});

test('fd://N serves on an inherited listening socket and does not unlink anything', async () => {
  const dir = tempDir();
  const sock = join(dir, 'inherited.sock');
  // A parent that bound the socket and passes it on, as a supervisor would.
  const handle = (
    net as unknown as { _createServerHandle(p: string, port: number, t: number): { fd: number; close(): void } }
  )._createServerHandle(sock, -1, -1);
  const server = startServer([APP, '-b', 'fd://3'], { stdio: ['ignore', 'pipe', 'pipe', handle.fd] });
  await server.ready();
  let answered = 0;
  for (let i = 0; i < 5; i++) if ((await request({ socketPath: sock }, '/')).status === 200) answered++;
  assert.equal(answered, 5);
  await server.stop();
  assert.ok(existsSync(sock), 'a socket the server did not create is left alone');
  handle.close();
});

test('fetch handlers and named exports are served; a bad export is a boot error', async () => {
  const dir = tempDir();
  const sock = join(dir, 'f.sock');
  const fetchServer = startServer([join(FIXTURES, 'fetch-app.mjs'), '-b', `unix:${sock}`]);
  const ready = await fetchServer.ready();
  assert.match(String(ready.app), /fetch handler/);
  const r = await request({ socketPath: sock }, '/hello', { method: 'POST', body: 'x' });
  assert.match(r.body, /^fetch POST \/hello \d+/);
  const err = await request({ socketPath: sock }, '/throw');
  assert.equal(err.status, 500);
  assert.equal((await request({ socketPath: sock }, '/again')).status, 200);
  await fetchServer.stop();

  const named = startServer([`${join(FIXTURES, 'named.mjs')}:createApp()`, '-b', `unix:${sock}`]);
  await named.ready();
  assert.equal((await request({ socketPath: sock }, '/')).body, 'from factory\n');
  await named.stop();

  const bad = startServer([`${join(FIXTURES, 'named.mjs')}:notAnApp`, '-b', `unix:${sock}`]);
  assert.equal((await bad.exited).code, 3);
  assert.match(bad.stderrText, /is not an app/);
});

test('a TypeScript app runs with --import tsx (the documented loader)', async () => {
  const dir = tempDir();
  const sock = join(dir, 'ts.sock');
  const app = join(dir, 'app.ts');
  writeFileSync(
    app,
    `import type { IncomingMessage, ServerResponse } from 'node:http';\nconst greet = (name: string): string => \`typed \${name}\\n\`;\nexport default (req: IncomingMessage, res: ServerResponse): void => { res.end(greet('hello')); };\n`,
  );
  // tsx resolves from the project, as it would from the user's own node_modules.
  const server = startServer([app, '-b', `unix:${sock}`, '--import', 'tsx'], { cwd: ROOT });
  await server.ready(30_000);
  assert.equal((await request({ socketPath: sock }, '/')).body, 'typed hello\n');
  await server.stop();
});

test.run();
