// `ws-proxy-kit ctl` against a running server: the same effects as the signals.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { statSync, existsSync, writeFileSync } from 'node:fs';
import { startServer, runCli, request, tempDir, cleanup, FIXTURES, until, isAlive, freePort } from './helpers/server.js';

test.after.each(cleanup);
const APP = join(FIXTURES, 'app.mjs');

async function ctl(args: string[], cwd?: string) {
  return runCli(['ctl', ...args], cwd ? { cwd } : {});
}

const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('ctl workers counts the requests in flight and the open connections of each worker', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '1']);
  await server.ready();
  const workers = async () => {
    const r = await ctl(['--bind', `unix:${sock}`, 'workers', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { inflight: number; connections: number; requests: number }[])[0]!;
  };
  // Two requests held in the app for a while: both in flight, on two connections.
  const held = [request({ socketPath: sock }, '/slow?ms=4000'), request({ socketPath: sock }, '/slow?ms=4000')];
  const busy = (await until(
    async () => {
      const w = await workers();
      return w.inflight === 2 ? w : null;
    },
    10_000,
    'two requests in flight',
  ))!;
  assert.ok(busy.connections >= 2, `connections: ${busy.connections}`);
  for (const r of await Promise.all(held)) assert.is(r.status, 200);
  const idle = (await until(
    async () => {
      const w = await workers();
      return w.inflight === 0 && w.requests >= 2 ? w : null;
    },
    10_000,
    'nothing in flight',
  ))!;
  assert.is(idle.inflight, 0);
  await server.stop();
});

test('the control socket sits next to the app socket, mode 0600, and goes away on exit', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2']);
  await server.ready();
  const ctlPath = join(dir, 'app.ctl');
  await until(() => existsSync(ctlPath), 10_000, 'control socket');
  assert.equal(statSync(ctlPath).mode & 0o777, 0o600);

  const status = await ctl(['--bind', `unix:${sock}`, 'status', '--json']);
  assert.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout) as Record<string, unknown>;
  assert.equal(s.pid, server.pid);
  assert.equal(s.workers, 2);
  assert.equal(s.ready, 2);
  assert.equal(s.binds, [`unix:${sock}`]);
  assert.match(JSON.stringify(s.settings), /workers/);

  const human = await ctl(['--socket', ctlPath, 'workers']);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /^PID\s+INDEX\s+GENERATION\s+STATE/);
  assert.equal(human.stdout.trim().split('\n').length, 3);
  await server.stop();
  assert.not.ok(existsSync(ctlPath));
});

test('ctl workers add/remove, worker kill, reload and shutdown act like the signals', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const ctlPath = join(dir, 'app.ctl');
  const server = startServer([APP, '-b', `unix:${sock}`]);
  await server.ready();
  await until(() => existsSync(ctlPath), 10_000, 'control socket');
  const workers = async () =>
    JSON.parse((await ctl(['--socket', ctlPath, '--json', 'workers'])).stdout) as { pid: number; state: string; requests: number }[];

  assert.equal((await ctl(['--socket', ctlPath, 'workers', 'add', '2'])).code, 0);
  await until(async () => (await workers()).filter((w) => w.state === 'ready').length === 3, 20_000, 'three ready workers');
  assert.equal((await ctl(['--socket', ctlPath, 'workers', 'remove'])).code, 0);
  await until(async () => (await workers()).length === 2, 20_000, 'two workers');

  const [victim] = await workers();
  assert.equal((await ctl(['--socket', ctlPath, 'worker', 'kill', String(victim!.pid)])).code, 0);
  await until(() => !isAlive(victim!.pid), 20_000, 'killed worker gone');
  await until(async () => (await workers()).filter((w) => w.state === 'ready').length === 2, 20_000, 'replacement');

  const before = (await workers()).map((w) => w.pid);
  const reload = await ctl(['--socket', ctlPath, '--json', 'reload']);
  assert.equal(reload.code, 0, reload.stderr);
  assert.equal((JSON.parse(reload.stdout) as { reloaded: boolean }).reloaded, true);
  await until(async () => (await workers()).every((w) => !before.includes(w.pid)), 20_000, 'new generation only');
  assert.equal((await request({ socketPath: sock }, '/')).status, 200);

  const bad = await ctl(['--socket', ctlPath, 'frobnicate']);
  assert.equal(bad.code, 2, 'an unknown command is a usage error');
  assert.match(bad.stderr, /unknown command "frobnicate". Commands: status/);
  assert.ok(isAlive(server.pid), 'a bad command never hurts the master');

  assert.equal((await ctl(['--socket', ctlPath, 'shutdown'])).code, 0);
  assert.equal((await server.exited).code, 0);
});

test('ctl against no server says what is wrong', async () => {
  const r = await ctl(['--socket', join(tempDir(), 'none.ctl'), 'status']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot reach .*no such socket/);
});

test('ctl finds the server from the config file: here with no flags, elsewhere with --config (paths relative to its directory)', async () => {
  const dir = tempDir();
  const config = join(dir, 'ws-proxy-kit.config.mjs');
  writeFileSync(config, `export default { app: ${JSON.stringify(APP)}, bind: 'unix:./app.sock', workers: 1 };\n`);
  const server = startServer([], { cwd: dir });
  await server.ready();
  await until(() => existsSync(join(dir, 'app.ctl')), 10_000, 'control socket');
  const here = await ctl(['status', '--json'], dir);
  assert.equal(here.code, 0, here.stderr);
  assert.equal((JSON.parse(here.stdout) as { pid: number }).pid, server.pid);
  const elsewhere = await ctl(['--config', config, 'status', '--json'], tempDir());
  assert.equal(elsewhere.code, 0, elsewhere.stderr);
  assert.equal((JSON.parse(elsewhere.stdout) as { pid: number }).pid, server.pid);
  await server.stop();
});

test('ctl --pid FILE finds the master from its pidfile, also where a config file names another socket', async () => {
  const dir = tempDir();
  const pidfile = join(dir, 'app.pid');
  const server = startServer([APP, '-b', `127.0.0.1:${await freePort()}`, '-w', '1', '--pid', pidfile]);
  await server.ready();
  await until(() => existsSync(join(dir, 'app.ctl')), 10_000, 'control socket');
  // Another project's directory: its config file binds a UNIX socket of its own.
  const other = tempDir();
  writeFileSync(join(other, 'ws-proxy-kit.config.mjs'), `export default { bind: 'unix:${join(other, 'other.sock')}' };\n`);
  const r = await ctl(['--pid', pidfile, 'status', '--json'], other);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { pid: number }).pid, server.pid);
  await server.stop();
});

test('ctl that reaches no server says each place it tried and why', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'ws-proxy-kit.config.mjs'), `export default { bind: 'unix:./app.sock', pid: './app.pid' };\n`);
  // A stale pidfile: the pid of a process that has exited.
  writeFileSync(join(dir, 'app.pid'), `${spawnSync(process.execPath, ['-e', '']).pid}\n`);
  const r = await ctl(['status'], dir);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /cannot reach the server\. Tried:/);
  assert.match(
    r.stderr,
    new RegExp(
      `${literally(join(dir, 'app.ctl'))} \\(next to the bind unix:\\./app\\.sock \\(bind in .*ws-proxy-kit\\.config\\.mjs\\)\\): no such socket`,
    ),
  );
  assert.match(
    r.stderr,
    new RegExp(`the pidfile ${literally(join(dir, 'app.pid'))} \\(.*\\): it names process \\d+, which is not running`),
  );
});

test('ctl workers: a table in human units, CPU over the last heartbeat, restarts per slot', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const ctlPath = join(dir, 'app.ctl');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2']);
  await server.ready();
  await until(() => existsSync(ctlPath), 10_000, 'control socket');
  type Row = { pid: number; index: number; state: string; cpuPercent: number | null; restarts: number };
  const rows = async () => JSON.parse((await ctl(['--socket', ctlPath, '--json', 'workers'])).stdout) as Row[];
  await until(async () => (await rows()).every((w) => typeof w.cpuPercent === 'number'), 10_000, 'CPU figures');
  const human = await ctl(['--socket', ctlPath, 'workers']);
  assert.equal(human.code, 0, human.stderr);
  const [header, ...lines] = human.stdout.trimEnd().split('\n');
  assert.match(header!, /^PID\s+INDEX\s+GENERATION\s+STATE\s+AGE\s+REQS\s+IN-FLIGHT\s+CONNS\s+BUSY %\s+RSS\s+CPU %\s+RESTARTS$/);
  assert.is(lines.length, 2);
  for (const line of lines) assert.match(line, /^\d+\s+[12]\s+1\s+ready\s+\d+s\s+\d+\s+0\s+\d+\s+\d+\s+\d+\.\d MB\s+\d+\.\d\s+0$/);

  const victim = (await rows()).find((w) => w.index === 1)!;
  assert.equal((await ctl(['--socket', ctlPath, 'worker', 'kill', String(victim.pid)])).code, 0);
  await until(
    async () => {
      const now = await rows();
      return now.length === 2 && now.every((w) => w.state === 'ready' && w.pid !== victim.pid);
    },
    20_000,
    'the replacement',
  );
  const restarts = Object.fromEntries((await rows()).map((w) => [w.index, w.restarts]));
  assert.equal(restarts, { 1: 1, 2: 0 });
  await server.stop();
});

test('ctl usage errors exit 2 before any server is asked; a typo gets a did-you-mean; no command lists them all', async () => {
  const socket = join(tempDir(), 'none.ctl'); // nobody listens: the command line is checked first
  for (const args of [
    ['workers', 'add', 'many'],
    ['workers', 'remove', '0'],
    ['worker', 'kill'],
    ['shutdown', 'sideways'],
    ['status', 'now'],
  ]) {
    const r = await ctl(['--socket', socket, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`ws-proxy-kit ctl: ${args[0]}.*Usage: ${args[0]}`));
  }
  const typo = await ctl(['--socket', socket, 'stauts']);
  assert.match(typo.stderr, /unknown command "stauts"\. Commands: status, workers, .* Did you mean "status"\?/);
  const none = await ctl([]);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /ctl needs a command/);
  assert.match(none.stderr, /^ {2}workers add \[N\] +as TTIN/m);
  assert.match(none.stderr, /^ {2}shutdown \[graceful\|quick\] +as TERM/m);
});

test.run();
