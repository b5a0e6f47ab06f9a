// `ws-proxy-kit ctl set NAME VALUE`, `ctl get NAME`, `ctl config`: settings changed on a running
// server, validated as the CLI validates them, applied at once where they can be (the master
// and the live workers), shown with their source; a HUP goes back to the config file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { startServer, runCli, request, rawRequest, tempDir, cleanup, until, FIXTURES } from './helpers/server.js';

test.after.each(cleanup);
const APP = join(FIXTURES, 'app.mjs');

async function serve(extra: string[] = []) {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2', ...extra], { cwd: dir });
  await server.ready();
  const ctl = (...args: string[]) => runCli(['ctl', '--socket', join(dir, 'app.ctl'), ...args]);
  return { dir, sock, server, ctl };
}

test('set takes effect in the live workers at once: a request limit, the log level, the pool size; the reply names old and new', async () => {
  const { sock, server, ctl } = await serve();
  const long = `/${'a'.repeat(200)}`;
  assert.is((await request({ socketPath: sock }, long)).status, 200);
  const set = await ctl('set', 'limitRequestLine', '100', '--json');
  assert.is(set.code, 0, set.stderr);
  const reply = JSON.parse(set.stdout) as { setting: string; old: string; new: string; applied: string };
  assert.equal([reply.setting, reply.old, reply.new, reply.applied], ['limitRequestLine', '4094', '100', 'now']);
  // Both live workers: no restart, the same pids.
  const pids = new Set<string>();
  await until(
    async () => {
      const r = await request({ socketPath: sock }, long);
      return r.status === 414;
    },
    5000,
    'a 414 from the live workers',
  );
  for (let i = 0; i < 10; i++) assert.is((await request({ socketPath: sock }, long)).status, 414);
  for (let i = 0; i < 10; i++) pids.add((await request({ socketPath: sock }, '/')).body.trim().split(' ').pop()!);
  assert.is(server.logs.filter((l) => l.msg === 'worker spawned').length, 2, 'no worker was restarted');

  assert.is((await ctl('set', 'log-level', 'debug')).code, 0);
  const before = server.logs.length;
  await rawRequest({ socketPath: sock }, 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
  await server.waitForLog(
    (l) => server.logs.indexOf(l) >= before && l.level === 20 && l.worker !== undefined,
    5000,
    'a debug line from a worker',
  );

  assert.is((await ctl('set', 'workers', '3')).code, 0);
  await until(() => server.logs.filter((l) => l.msg === 'worker spawned').length === 3, 10_000, 'a third worker');
  const got = JSON.parse((await ctl('get', 'workers', '--json')).stdout) as { value: string; source: string };
  assert.equal(got, { setting: 'workers', value: '3', source: 'ctl set' });
  const config = await ctl('config');
  assert.match(config.stdout, /^workers\s+3\s+ctl set$/m);
  assert.match(config.stdout, /^limit-request-line\s+100\s+ctl set$/m);
  assert.match(config.stdout, /^bind\s+unix:.*app\.sock\s+command line: --bind$/m);
});

test('set refuses what it cannot do, with the CLI messages: a bad value, an unknown name, a setting that needs new sockets', async () => {
  const { ctl } = await serve();
  const bad = await ctl('set', 'workers', 'zero');
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /Invalid value for workers \(ctl set\): "zero"\. Accepted: an integer from 1 to 1024\./);
  const cli = await runCli([APP, '--workers', 'zero']);
  assert.match(
    cli.stderr,
    /Invalid value for workers \(--workers\): "zero"\. Accepted: an integer from 1 to 1024\./,
    'the same words as the CLI',
  );
  const typo = await ctl('set', 'wrokers', '3');
  assert.match(typo.stderr, /Unknown setting "wrokers"\. Did you mean workers\?/);
  const bind = await ctl('set', 'bind', 'unix:/tmp/other.sock');
  assert.is(bind.code, 1);
  assert.match(bind.stderr, /bind cannot change on a running server: .*restart, or use a USR2 upgrade/);
  const mode = await ctl('set', 'socketMode', '0600');
  assert.match(mode.stderr, /socketMode cannot change on a running server: .*USR2 upgrade/);
  const later = await ctl('set', 'headersTimeout', '5');
  assert.match(later.stderr, /headersTimeout cannot change on a running server: put it in the config file and reload/);
  const usage = await ctl('set', 'workers');
  assert.is(usage.code, 2);
});

test('a HUP re-reads the config file and drops ctl-set values', async () => {
  const dir = tempDir();
  writeFileSync(
    join(dir, 'ws-proxy-kit.config.mjs'),
    `export default { app: ${JSON.stringify(APP)}, bind: ['unix:app.sock'], workers: 1, keepAlive: 7 };\n`,
  );
  const server = startServer([], { cwd: dir });
  await server.ready();
  const ctl = (...args: string[]) => runCli(['ctl', ...args], { cwd: dir });
  assert.is((await ctl('set', 'keepAlive', '2')).code, 0);
  assert.match((await ctl('get', 'keepAlive')).stdout, /value: 2\nsource: ctl set/);
  assert.is((await ctl('reload')).code, 0);
  assert.match((await ctl('get', 'keepAlive')).stdout, /value: 7\nsource: config file/);
  await server.stop();
});

test.run();
