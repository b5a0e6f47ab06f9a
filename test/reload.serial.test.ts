// Zero-loss promises under a real load on a UNIX socket: HUP reloads and USR2 upgrades.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readFileSync, existsSync } from 'node:fs';
import { startServer, runCli, tempDir, cleanup, FIXTURES, until, isAlive } from './helpers/server.js';
import { startLoad, failures } from './helpers/load.js';

test.after.each(cleanup);
const APP = join(FIXTURES, 'app.mjs');

test('10 HUPs in a row under load lose zero requests', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2']);
  await server.ready();
  const load = startLoad({ socketPath: sock }, { concurrency: 8 });
  await until(() => load.result.ok > 200, 20_000, 'load to get going');
  for (let i = 1; i <= 10; i++) {
    const before = server.logs.length;
    server.signal('SIGHUP');
    await server.waitForMsg(/^reload complete/, 30_000, before);
    const at = load.result.ok;
    await until(() => load.result.ok > at + 20, 20_000, 'requests after the reload');
  }
  const r = await load.stop();
  console.log(
    `  HUP x10 under load: sent ${r.sent}, ok ${r.ok}, statuses ${JSON.stringify(r.statuses)}, errors ${JSON.stringify(r.errors)}, distinct worker pids ${Object.keys(r.pids).length}`,
  );
  assert.equal(failures(r), 0, `lost requests: ${JSON.stringify(r)}`);
  assert.ok(Object.keys(r.pids).length >= 20, 'every reload brought new workers that served');
  assert.equal(server.logs.filter((l) => /^reload complete/.test(String(l.msg))).length, 10);
  assert.equal((await server.stop()).code, 0);
});

test('a reload whose new workers cannot boot keeps the old pool serving', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const cfg = join(dir, 'ws-proxy-kit.config.mjs');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(cfg, `export default { app: ${JSON.stringify(APP)} };\n`);
  const server = startServer(['-c', cfg, '-b', `unix:${sock}`, '-w', '2']);
  await server.ready();
  const load = startLoad({ socketPath: sock }, { concurrency: 4 });
  await until(() => load.result.ok > 50, 20_000, 'load');
  writeFileSync(cfg, `export default { app: ${JSON.stringify(join(FIXTURES, 'boot-fail.mjs'))} };\n`);
  const before = server.logs.length;
  server.signal('SIGHUP');
  const aborted = await server.waitForMsg(/^reload aborted/, 30_000, before);
  assert.match(JSON.stringify(aborted), /DATABASE_URL/);
  const at = load.result.ok;
  await until(() => load.result.ok > at + 50, 20_000, 'old workers still serving');
  const r = await load.stop();
  assert.equal(failures(r), 0, JSON.stringify(r));
  assert.ok(isAlive(server.pid));
  await server.stop();
});

test('USR2 upgrade under load: new master on the same socket, WINCH and TERM the old one, zero lost', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const pidfile = join(dir, 'app.pid');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2', '--pid', pidfile]);
  await server.ready();
  const oldPid = server.pid;
  const load = startLoad({ socketPath: sock }, { concurrency: 8 });
  await until(() => load.result.ok > 200, 20_000, 'load');
  server.signal('SIGUSR2');
  await server.waitForMsg(/^upgrade: the new master is serving/, 30_000);
  const newPid = Number(readFileSync(pidfile, 'utf8'));
  assert.ok(newPid !== oldPid && isAlive(newPid), 'the pidfile names the new master');
  assert.equal(Number(readFileSync(pidfile + '.oldbin', 'utf8')), oldPid, 'the old pidfile became .oldbin');
  server.signal('SIGWINCH');
  await until(
    () => server.logs.filter((l) => l.msg === 'worker exited' && l.reason === 'stopped by WINCH').length === 2,
    20_000,
    'old workers to stop',
  );
  const at = load.result.ok;
  await until(() => load.result.ok > at + 100, 20_000, 'new master serving alone');
  server.signal('SIGTERM');
  await server.exited;
  assert.ok(existsSync(sock), 'the old master left the socket to the new one');
  assert.not.ok(existsSync(pidfile + '.oldbin'));
  const at2 = load.result.ok;
  await until(() => load.result.ok > at2 + 100, 20_000, 'served after the old master exited');
  // ctl follows the new master once the old one has let go of the control socket.
  await until(
    async () => {
      const st = await runCli(['ctl', '--socket', join(dir, 'app.ctl'), '--json', 'status']);
      return st.code === 0 && (JSON.parse(st.stdout) as { pid: number }).pid === newPid;
    },
    20_000,
    'ctl to reach the new master',
  );
  const r = await load.stop();
  console.log(
    `  USR2 upgrade under load: sent ${r.sent}, ok ${r.ok}, statuses ${JSON.stringify(r.statuses)}, errors ${JSON.stringify(r.errors)}`,
  );
  assert.equal(failures(r), 0, JSON.stringify(r));
  process.kill(newPid, 'SIGTERM');
  await until(() => !isAlive(newPid), 40_000, 'new master to stop');
  assert.not.ok(existsSync(sock), 'the new master removed the socket on its clean exit');
});

test.run();
