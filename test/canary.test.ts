// Canary reloads (--reload-canary) with the real CLI, deployed as releases behind a `current`
// symlink: a good version rolls out; a version that answers 5xx, or crashes on its third
// request, is rolled back while the old workers keep serving; a worker of the old pool that
// dies meanwhile is replaced with the old version.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { join } from 'node:path';
import { startServer, runCli, request, cleanup, until, freePort, type ServerProcess } from './helpers/server.js';
import { notifySink } from './helpers/notify-sink.js';
import { releases } from './helpers/releases.js';

test.after.each(cleanup);

/** A new connection per request (Connection: close), `concurrency` at a time: every worker gets new connections. */
function churnLoad(socketPath: string, concurrency = 4) {
  const answers: { status: number; body: string }[] = [];
  const errors: string[] = [];
  let stopping = false;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.get({ socketPath, path: '/', agent: false, headers: { connection: 'close' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          answers.push({ status: res.statusCode!, body: body.trim() });
          resolve();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => {
        errors.push(err.code ?? err.message);
        resolve();
      });
    });
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopping) await one();
  });
  return {
    answers,
    errors,
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

const pidOf = (body: string) => Number(body.split(' ').pop());

async function serve(
  r: ReturnType<typeof releases>,
  extra: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<{ server: ServerProcess; sock: string; ctl: string }> {
  const sock = join(r.dir, 'app.sock');
  const canary = extra.includes('--reload-canary') ? [] : ['--reload-canary', '2'];
  const server = startServer(['app.mjs', '--chdir', r.current, '-b', `unix:${sock}`, '-w', '2', ...canary, ...extra], { env });
  await server.ready();
  return { server, sock, ctl: join(r.dir, 'app.ctl') };
}

/**
 * Until every worker of the first generation has exited (each one spawned, recycled ones and
 * their replacements too). "reload complete" means the new workers serve and the old ones
 * drain; a draining worker still takes what reaches the shared socket while it empties its
 * queue, so only after its exit is every answer the new version's.
 */
function oldWorkersGone(server: ServerProcess): Promise<unknown> {
  const count = (msg: string) => server.logs.filter((l) => l.msg === msg && l.generation === 1).length;
  return server.waitForLog(
    (l) => l.msg === 'worker exited' && l.generation === 1 && count('worker exited') >= count('worker spawned'),
    15_000,
    'the old workers to exit',
  );
}

async function lastReload(ctl: string): Promise<{ outcome: string; reason?: string }> {
  const out = await runCli(['ctl', '--socket', ctl, 'status', '--json']);
  return (JSON.parse(out.stdout) as { lastReload: { outcome: string; reason?: string } }).lastReload;
}

test('a good version: the canary serves first, passes, then the rest rolls out; nothing is lost', async () => {
  const r = releases();
  const { server, sock, ctl } = await serve(r);
  const load = churnLoad(sock);
  r.deploy('good');
  server.signal('SIGHUP');
  const canary = await server.waitForMsg(/^reload: a canary of the new version serves next to the old workers for 2 s first/);
  const passed = await server.waitForMsg(/^reload: the canary passed \(5xx 0\.0 % of \d+ answers, old workers 0\.0 % of \d+/, 20_000);
  await server.waitForMsg(/^reload complete/, 20_000);
  await load.stop();
  assert.equal(load.errors, [], 'no request failed');
  assert.ok(load.answers.every((a) => a.status === 200));
  assert.ok(Number(passed.canaryAnswers) > 0, 'the canary served its share meanwhile');
  assert.ok(
    load.answers.some((a) => pidOf(a.body) === canary.canaryPid && a.body.startsWith('ok v2')),
    'answers from the canary',
  );
  await oldWorkersGone(server);
  const after = await request({ socketPath: sock }, '/');
  assert.match(after.body, /^ok v2 /);
  assert.is((await lastReload(ctl)).outcome, 'completed');
});

test('a version that answers 5xx is rolled back: only the canary answered 5xx, the old version serves on, and systemd hears of it', async () => {
  const r = releases();
  const sink = notifySink(r.dir);
  const port = await freePort();
  const { server, sock, ctl } = await serve(r, ['--metrics-bind', `127.0.0.1:${port}`], { NOTIFY_SOCKET: sink.path });
  const load = churnLoad(sock);
  r.deploy('errors');
  const from = sink.messages.length;
  server.signal('SIGHUP');
  const canary = await server.waitForMsg(/^reload: a canary/);
  const rolled = await server.waitForMsg(
    /^reload rolled back: the canary answered 5xx too often: 5xx 100\.0 % of \d+ answers, old workers 0\.0 % of \d+/,
    20_000,
  );
  await server.waitForLog((l) => l.msg === 'worker exited' && l.workerPid === canary.canaryPid, 15_000, 'the canary to retire');
  const more = churnLoad(sock);
  await until(() => more.answers.length >= 20, 10_000, 'answers after the rollback');
  await Promise.all([load.stop(), more.stop()]);
  console.log(`  ${String(rolled.msg)}`);
  assert.equal([...load.errors, ...more.errors], [], 'no request failed');
  const failed = load.answers.filter((a) => a.status !== 200);
  assert.ok(failed.length > 0);
  assert.ok(
    failed.every((a) => pidOf(a.body) === canary.canaryPid),
    'every 5xx came from the canary',
  );
  assert.ok(
    more.answers.every((a) => a.status === 200 && a.body.startsWith('ok v1')),
    'the old version serves on',
  );
  const last = await lastReload(ctl);
  assert.is(last.outcome, 'rolled back');
  assert.match(String(last.reason), /5xx too often/);
  await sink.waitFor(/READY=1\nSTATUS=running: 2\/2 workers ready[^;\n]*; reload rolled back: the canary answered 5xx too often/, from);
  assert.match((await request({ port }, '/metrics')).body, /^ws_proxy_kit_reload_rollbacks_total\{cause="errors"\} 1$/m);
  // A reload is refused, as systemctl reload with ExecReload=ws-proxy-kit ctl reload reports it.
  const again = churnLoad(sock);
  const ctlReload = await runCli(['ctl', '--socket', ctl, 'reload'], { timeoutMs: 30_000 });
  await again.stop();
  assert.is(ctlReload.code, 1);
  assert.match(ctlReload.stderr, /reload did not happen|rolled back/);
});

test('a version that crashes on its third request is rolled back; an old worker that dies meanwhile comes back as the old version', async () => {
  const r = releases();
  const { server, sock } = await serve(r, ['--reload-canary', '4']);
  const load = churnLoad(sock, 2);
  r.deploy('crash');
  server.signal('SIGHUP');
  const canary = await server.waitForMsg(/^reload: a canary/);
  // An old worker goes away while the canary is watched: its replacement is v1, not the new release.
  await server.waitForLog((l) => l.msg === 'worker spawned' && l.workerPid === canary.canaryPid, 5000);
  const victim = server.logs.find((l) => l.msg === 'worker spawned' && l.generation === 1)!.workerPid as number;
  process.kill(victim, 'SIGTERM');
  const rolled = await server.waitForMsg(/^reload rolled back: the canary \(pid \d+\) exited \((crashed|exited)\)/, 20_000);
  await load.stop();
  const replacement = server.logs.find((l) => l.msg === 'worker spawned' && l.generation === 1 && l.worker === 1 && l.workerPid !== victim);
  assert.ok(
    replacement,
    `the old worker was replaced in the old generation; log:\n${server.logs
      .filter((l) => /worker|reload/.test(String(l.msg)))
      .map((l) => `${l.msg} ${l.worker ?? ''} ${l.workerPid ?? ''} ${l.generation ?? ''}`)
      .join('\n')}`,
  );
  const pids = new Set<number>();
  for (let i = 0; i < 30; i++) {
    const a = await request({ socketPath: sock }, '/');
    assert.match(a.body, /^ok v1 /);
    pids.add(pidOf(a.body));
  }
  console.log(
    `  ${String(rolled.msg)}; requests failed while the canary crashed: ${load.errors.length} of ${load.answers.length + load.errors.length}`,
  );
  // The canary's own share: what it held when it exited (2 clients, one request each at most).
  assert.ok(load.errors.length <= 2, `failed: ${load.errors.join(', ')}`);
  assert.ok(load.answers.every((a) => a.status === 200));
});

test('--max-requests during the canary window: the canary is recycled after it passes, not taken for a failure', async () => {
  const r = releases();
  const { server, sock, ctl } = await serve(r, ['--max-requests', '6']);
  const load = churnLoad(sock);
  r.deploy('good');
  server.signal('SIGHUP');
  const canary = await server.waitForMsg(/^reload: a canary/);
  await server.waitForMsg(/^reload: the canary passed/, 20_000);
  await server.waitForMsg(/^reload complete/, 20_000);
  await server.waitForLog((l) => l.msg === 'worker exited' && l.workerPid === canary.canaryPid, 15_000, 'the canary to be recycled');
  await load.stop();
  assert.equal(load.errors, [], 'no request failed');
  assert.is((await lastReload(ctl)).outcome, 'completed');
  await oldWorkersGone(server);
  assert.match((await request({ socketPath: sock }, '/')).body, /^ok v2 /);
});

test.run();
