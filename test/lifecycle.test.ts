// Worker and server lifecycle with the real CLI: crashes and respawns, app errors, boot
// failure, graceful and quick stops, pool resizing (TTIN/TTOU) and reload (HUP).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { existsSync, watch } from 'node:fs';
import { join } from 'node:path';
import { startServer, request, tempDir, cleanup, until, isAlive, FIXTURES, type ServerProcess, type Reply } from './helpers/server.js';

test.after.each(cleanup);

const APP = join(FIXTURES, 'app.mjs');

/** A server with `workers` workers on a fresh UNIX socket, ready. */
async function serve(workers: number, extra: string[] = []): Promise<{ server: ServerProcess; sock: string }> {
  const sock = join(tempDir(), 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', String(workers), ...extra]);
  await server.ready();
  return { server, sock };
}

/** The pid in an answer of the fixture app ("ok PID", "slow done PID"). */
const pidOf = (r: Reply) => Number(r.body.trim().split(' ').pop());

/**
 * Starts a slow request and resolves once the worker has surely received it: a second
 * request, queued behind it on the same single-worker socket, has been answered.
 */
async function inFlight(sock: string, path: string): Promise<{ reply: Promise<Reply> }> {
  const reply = request({ socketPath: sock }, path, { timeoutMs: 30_000 });
  reply.catch(() => {}); // awaited by the caller; avoids an unhandled rejection meanwhile
  await request({ socketPath: sock }, '/');
  // Wrapped: an async function returning the promise itself would wait for it.
  return { reply };
}

/** Connects and sends a request: 'refused' (no listener / no socket file) or what happened instead. */
function probe(target: { path: string } | { port: number; host: string }): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(target as net.NetConnectOpts);
    const timer = setTimeout(() => {
      c.destroy();
      resolve('accepted, no answer within 3 s');
    }, 3000);
    const done = (what: string) => {
      clearTimeout(timer);
      c.destroy();
      resolve(what);
    };
    c.on('connect', () => c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    c.on('data', (d) => done(`answered: ${String(d).split('\r\n')[0]}`));
    c.on('error', (err: NodeJS.ErrnoException) =>
      done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'refused' : `error ${err.code}`),
    );
    c.on('close', () => done('closed'));
  });
}

/** Distinct pids that answer `rounds` batches of concurrent slow requests. */
async function servingPids(sock: string, rounds = 4, batch = 8): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < rounds; i++) {
    const rs = await Promise.all(Array.from({ length: batch }, () => request({ socketPath: sock }, '/slow?ms=40')));
    for (const r of rs) pids.add(pidOf(r));
  }
  return pids;
}

// ---- crashes and errors --------------------------------------------------------------

test('a worker killed with SIGKILL is respawned; the log says why it exited; the new pid serves', async () => {
  const { server, sock } = await serve(1);
  const old = pidOf(await request({ socketPath: sock }, '/'));
  assert.equal(server.workerPids(), [old]);
  process.kill(old, 'SIGKILL');
  const exit = await server.waitForLog(
    (l) => l.msg === 'worker exited unexpectedly' && l.workerPid === old,
    15_000,
    'the exit of the killed worker',
  );
  assert.is(exit.signal, 'SIGKILL');
  assert.match(String(exit.reason), /killed by SIGKILL/);
  assert.is(exit.worker, 1);
  const respawned = await server.waitForLog((l) => l.msg === 'worker spawned' && l.workerPid !== old, 15_000, 'a replacement');
  assert.is(respawned.worker, 1, 'the replacement takes the same worker index');
  const r = (await until(() => request({ socketPath: sock }, '/').catch(() => null), 15_000, 'an answer from the replacement'))!;
  assert.is(pidOf(r), respawned.workerPid);
  assert.is(server.exitInfo, null, 'the master keeps running');
  assert.is((await server.stop()).code, 0);
});

test('an app exception in a request answers 500, is logged with stack and request id; the worker keeps serving', async () => {
  const { server, sock } = await serve(1);
  const pid = pidOf(await request({ socketPath: sock }, '/'));
  const thrown = await request({ socketPath: sock }, '/throw', { headers: { 'x-request-id': 'trace-throw-1' } });
  assert.is(thrown.status, 500);
  assert.match(thrown.body, /Internal Server Error/);
  assert.not.match(thrown.body, /thrown by the app/, 'the error is not leaked to the client');
  const line = await server.waitForLog(
    (l) => l.msg === 'app error: answered 500' && l.requestId === 'trace-throw-1',
    10_000,
    'the app error line',
  );
  const err = line.err as { message?: string; stack?: string };
  assert.is(err.message, 'thrown by the app');
  assert.match(String(err.stack), /Error: thrown by the app\n\s+at /);
  assert.is(line.pid, pid);
  assert.is(line.worker, 1);
  assert.is(line.url, '/throw');

  const rejected = await request({ socketPath: sock }, '/reject', { headers: { 'x-request-id': 'trace-reject-1' } });
  assert.is(rejected.status, 500);
  const rline = await server.waitForLog(
    (l) => l.msg === 'app error: answered 500' && l.requestId === 'trace-reject-1',
    10_000,
    'the rejection line',
  );
  assert.match(String((rline.err as { stack?: string }).stack), /rejected by the app/);

  const after = await request({ socketPath: sock }, '/');
  assert.is(after.status, 200);
  assert.is(pidOf(after), pid, 'the same worker keeps serving');
  assert.not.ok(
    server.logs.some((l) => /worker exited/.test(String(l.msg))),
    'no worker exited',
  );
  assert.is((await server.stop()).code, 0);
});

test('an uncaught exception outside a request: the worker finishes in-flight requests and exits; the master replaces it', async () => {
  const { server, sock } = await serve(1);
  const crashed = server.workerPids()[0]!;
  const { reply: slow } = await inFlight(sock, '/slow?ms=1500');
  const crash = await request({ socketPath: sock }, '/crash');
  assert.is(crash.status, 200);
  const fatal = await server.waitForLog((l) => l.level === 60 && l.pid === crashed, 10_000, 'the worker fatal line');
  assert.match(String((fatal.err as { stack?: string }).stack), /uncaught outside a request/);
  const done = await slow;
  assert.is(done.status, 200, 'the in-flight request completed');
  assert.is(pidOf(done), crashed, 'and was answered by the crashing worker');
  const exit = await server.waitForLog(
    (l) => l.msg === 'worker exited unexpectedly' && l.workerPid === crashed,
    15_000,
    'the crashed worker exit',
  );
  assert.is(exit.reason, 'uncaught error');
  assert.is(exit.code, 1);
  // Counted: the master keeps a running total of unexpected worker exits.
  assert.type(exit.unexpectedExits, 'number', `the exit line counts unexpected exits: ${JSON.stringify(exit)}`);
  assert.ok((exit.unexpectedExits as number) >= 1);
  const r = (await until(
    async () => {
      const x = await request({ socketPath: sock }, '/').catch(() => null);
      return x && pidOf(x) !== crashed ? x : null;
    },
    15_000,
    'a replacement answering',
  ))!;
  assert.is(r.status, 200);
  assert.is(server.exitInfo, null, 'the master never crashes');
  assert.is((await server.stop()).code, 0);
});

test('a boot failure stops the master with exit 3 and the app error in the log, without looping', async () => {
  const server = startServer([join(FIXTURES, 'boot-fail.mjs'), '-b', `unix:${join(tempDir(), 'b.sock')}`, '-w', '2']);
  const { code } = await server.exited;
  assert.is(code, 3);
  assert.match(server.stderrText, /boom at import: DATABASE_URL is not set/);
  const fatal = server.logs.find((l) => l.level === 60 && /failed to boot/.test(String(l.msg)));
  assert.ok(fatal, 'a fatal line says the workers failed to boot');
  assert.match(String(fatal!.msg), /boom at import/);
  const spawned = server.workerPids().length;
  assert.ok(spawned >= 2 && spawned <= 6, `gave up after a bounded number of attempts (${spawned} spawned)`);
  assert.not.ok(server.logs.some((l) => /^ready/.test(String(l.msg))));
});

// ---- stopping --------------------------------------------------------------------------

test('SIGTERM is graceful: the in-flight request completes, new connections are refused, exit 0', async () => {
  const dir = tempDir();
  const sock = join(dir, 'g.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-b', '127.0.0.1:0', '-w', '1']);
  const ready = await server.ready();
  const port = Number(
    String((ready.binds as string[])[1])
      .split(':')
      .pop(),
  );
  const { reply: slow } = await inFlight(sock, '/slow?ms=1500');
  server.signal('SIGTERM');
  await server.waitForMsg(/worker draining/, 10_000);
  const [tcp, unix] = await Promise.all([probe({ port, host: '127.0.0.1' }), probe({ path: sock })]);
  const done = await slow;
  assert.is(done.status, 200, 'the in-flight request completed');
  assert.match(done.body, /^slow done/);
  assert.is((await server.exited).code, 0);
  assert.is(unix, 'refused', 'a new UNIX connection after the stop began is refused');
  assert.is(tcp, 'refused', 'a new TCP connection after the stop began is refused (not queued until exit)');
});

test('SIGTERM the moment the socket file appears: a graceful stop (exit 0, socket removed), never death by the signal', async () => {
  for (let i = 0; i < 5; i++) {
    const dir = tempDir();
    const sock = join(dir, 'early.sock');
    // fs.watch sees the rename that puts the socket in place, within microseconds.
    const watcher = watch(dir, (_event, name) => {
      if (name === 'early.sock') {
        watcher.close();
        server.signal('SIGTERM');
      }
    });
    const server = startServer([APP, '-b', `unix:${sock}`, '-w', '1', '--log-level', 'warn']);
    const exit = await server.exited;
    watcher.close();
    assert.equal(exit, { code: 0, signal: null }, `attempt ${i + 1}: ${server.stderrText.slice(-2000)}`);
    assert.not.ok(existsSync(sock), 'the socket file is removed');
  }
});

test('SIGINT is a quick stop: in-flight requests are cut, exit 0', async () => {
  const { server, sock } = await serve(1);
  const { reply: slow } = await inFlight(sock, '/slow?ms=10000');
  server.signal('SIGINT');
  const outcome = await slow.then(
    (r) => `answered ${r.status}`,
    (err: Error) => `cut: ${err.message}`,
  );
  assert.match(outcome, /^cut/);
  assert.is((await server.exited).code, 0);
});

test('--graceful-timeout 1: a request longer than that is cut and the server exits', async () => {
  const { server, sock } = await serve(1, ['--graceful-timeout', '1']);
  const { reply: slow } = await inFlight(sock, '/slow?ms=10000');
  server.signal('SIGTERM');
  const outcome = await slow.then(
    (r) => `answered ${r.status}`,
    (err: Error) => `cut: ${err.message}`,
  );
  assert.match(outcome, /^cut/, 'the request did not get its 10 s');
  const { code } = await server.exited;
  assert.is(code, 0);
  assert.ok(
    server.logs.some((l) => /graceful timeout/.test(String(l.msg))),
    'the log says the graceful timeout ran out',
  );
});

// ---- pool size and reload -----------------------------------------------------------------

test('SIGTTIN adds a worker and SIGTTOU removes one', async () => {
  const { server, sock } = await serve(1);
  const first = server.workerPids()[0]!;
  server.signal('SIGTTIN');
  const added = await server.waitForLog((l) => l.msg === 'worker spawned' && l.worker === 2, 10_000, 'worker 2 spawned');
  await until(async () => (await servingPids(sock, 1)).size === 2, 20_000, 'two workers serving');
  const both = await servingPids(sock, 1, 16);
  assert.ok(
    [...both].every((p) => p === first || p === added.workerPid),
    `only the two workers answer: ${[...both]}`,
  );

  server.signal('SIGTTOU');
  const removed = await server.waitForLog((l) => l.msg === 'worker exited' && l.workerPid === added.workerPid, 15_000, 'worker 2 exited');
  assert.match(String(removed.reason), /TTOU/);
  assert.not.ok(isAlive(added.workerPid as number));
  assert.equal([...(await servingPids(sock, 2))], [first]);
  // The pool never goes below one worker.
  const before = server.logs.length;
  server.signal('SIGTTOU');
  await server.waitForMsg(/one worker fewer/, 10_000, before);
  assert.equal([...(await servingPids(sock, 1))], [first]);
  assert.is((await server.stop()).code, 0);
});

test('SIGHUP reload: new workers serve, the old ones exit, no request fails meanwhile', async () => {
  const { server, sock } = await serve(2);
  const old = new Set(server.workerPids());
  assert.is(old.size, 2);
  let failures: string[] = [];
  const servedBy: number[] = [];
  // Requests sent once the old workers are gone; one sent just before can still be
  // answered by an old worker and read after its exit was seen.
  const sentAfterExit: number[] = [];
  let oldGone = false;
  let stop = false;
  const loop = (async () => {
    for (let i = 0; i < 3000 && !stop; i++) {
      const late = oldGone;
      try {
        const r = await request({ socketPath: sock }, '/');
        if (r.status !== 200) failures.push(`status ${r.status}`);
        else (late ? sentAfterExit : servedBy).push(pidOf(r));
      } catch (err) {
        failures.push(String(err));
      }
    }
  })();
  await until(() => servedBy.length >= 5, 10_000, 'the loop running');
  server.signal('SIGHUP');
  await server.waitForMsg(/^reload complete/, 30_000);
  await until(() => [...old].every((p) => !isAlive(p)), 20_000, 'the old workers to exit');
  oldGone = true;
  await until(() => sentAfterExit.length >= 20, 10_000, 'requests after the reload');
  stop = true;
  await loop;
  assert.equal(failures, [], 'no failed requests across the reload');
  const after = sentAfterExit;
  assert.ok(
    after.every((p) => !old.has(p)),
    'only new workers serve after the reload',
  );
  const fresh = new Set(server.workerPids().filter((p) => !old.has(p)));
  assert.is(fresh.size, 2);
  assert.ok(after.every((p) => fresh.has(p)));
  for (const p of old) {
    assert.ok(
      server.logs.some((l) => l.msg === 'worker exited' && l.workerPid === p && /reload/.test(String(l.reason))),
      `old worker ${p} logged as exited by the reload`,
    );
  }
  failures = [];
  assert.is((await server.stop()).code, 0);
});

test.run();
