// systemd socket activation with the real systemd-socket-activate (systemd package): the
// first connection starts the server, which serves on fd 3 and leaves systemd's socket
// file alone; and a restart refuses no connection because the socket outlives the server.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { lstatSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ServerProcess, CLI, ROOT, FIXTURES, request, tempDir, cleanup, until, type LogLine, followProcess } from './helpers/server.js';
import { hasCommand, testWithTool } from './helpers/tools.js';

test.after.each(cleanup);

const APP = join(FIXTURES, 'app.mjs');
const missing = hasCommand('systemd-socket-activate') ? null : 'systemd-socket-activate is not installed (apt-get install systemd)';

/** Runs `systemd-socket-activate -l SOCK [extra] -- command...` in its own process group. */
function activate(sock: string, extra: string[], command: string[]): ServerProcess {
  const child = spawn('systemd-socket-activate', ['-l', sock, '-E', 'WS_PROXY_KIT_LOG_FORMAT=json', ...extra, ...command], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const server = followProcess(child);
  return server;
}

const comm = (pid: number): string => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();

testWithTool(
  test,
  'the first connection starts the server; it serves on fd 3 (--bind systemd:NAME) and keeps the socket file',
  missing,
  async () => {
    const dir = tempDir();
    const sock = join(dir, 'app.sock');
    const server = activate(sock, ['--fdname=web'], [process.execPath, CLI, APP, '--bind', 'systemd:web', '--workers', '2']);
    await server.waitForLog(
      (l) => typeof l.msg === 'string' && l.msg.startsWith('Listening on'),
      10_000,
      'systemd-socket-activate listening',
    );
    // Nothing started yet: the socket exists, the process is still systemd-socket-activate.
    assert.ok(lstatSync(sock).isSocket());
    assert.is(comm(server.pid), 'systemd-socket-', 'comm is cut to 15 characters');
    assert.not.ok(server.logs.some((l) => l.msg === 'starting ws-proxy-kit'));

    // The first request is queued by the kernel while the server boots, then answered.
    const first = await request({ socketPath: sock }, '/', { timeoutMs: 20_000 });
    assert.is(first.status, 200);
    const ready = await server.ready();
    assert.is(ready.pid, server.pid, 'systemd-socket-activate exec()s the server, which keeps its pid');
    assert.equal(ready.binds, [`unix:${sock} (systemd:web, fd 3)`]);
    const env = JSON.parse((await request({ socketPath: sock }, '/env')).body) as Record<string, unknown>;
    assert.equal(
      env,
      { NOTIFY_SOCKET: null, WATCHDOG_USEC: null, WATCHDOG_PID: null, LISTEN_FDS: null, LISTEN_PID: null, LISTEN_FDNAMES: null },
      'workers do not inherit the activation variables',
    );

    assert.is((await server.stop('SIGTERM')).code, 0);
    // systemd made the socket file; the server must not remove it.
    assert.ok(existsSync(sock) && lstatSync(sock).isSocket(), 'the socket file is still there');
  },
);

testWithTool(test, '--bind systemd:NAME with a name systemd did not pass fails with a sentence', missing, async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const server = activate(sock, ['--fdname=web'], [process.execPath, CLI, APP, '--bind', 'systemd:admin']);
  await server.waitForLog(
    (l) => typeof l.msg === 'string' && l.msg.startsWith('Listening on'),
    10_000,
    'systemd-socket-activate listening',
  );
  await request({ socketPath: sock }, '/', { timeoutMs: 20_000 }).catch(() => {});
  const { code } = await server.exited;
  assert.is(code, 1);
  const fatal = server.logs.find((l) => l.level === 60);
  assert.match(String(fatal?.msg), /systemd passed no socket named "admin" \(it passed: web\)\. Set FileDescriptorName=/);
  assert.ok(lstatSync(sock).isSocket());
});

testWithTool(test, 'restarting the server under a held socket refuses no connection', missing, async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const stopFile = join(dir, 'stop');
  // systemd-socket-activate execs its command once; this loop plays systemd's part of
  // holding the socket across restarts. The subshell exec keeps its pid = LISTEN_PID.
  const loop = `while [ ! -e "$1" ]; do (LISTEN_PID=$BASHPID exec "$2" "$3" "$4" --workers 2 --graceful-timeout 10); done`;
  const server = activate(sock, [], ['bash', '-c', loop, 'restart-loop', stopFile, process.execPath, CLI, APP]);
  await server.waitForLog(
    (l) => typeof l.msg === 'string' && l.msg.startsWith('Listening on'),
    10_000,
    'systemd-socket-activate listening',
  );
  assert.is((await request({ socketPath: sock }, '/', { timeoutMs: 20_000 })).status, 200);
  const firstReady = await server.ready();
  const firstMaster = firstReady.pid as number;
  // No --bind: the passed socket is the default bind.
  assert.match((firstReady.binds as string[])[0]!, /^unix:.*\(systemd:unknown, fd 3\)$/);

  const workersOf = (master: number): Set<string> =>
    new Set(server.logs.filter((l: LogLine) => l.msg === 'worker spawned' && l.pid === master).map((l) => String(l.workerPid)));
  const servedBy = new Map<string, number>();
  const failures: string[] = [];
  let sent = 0;
  let running = true;
  /** Requests sent before the restarted server was seen ready, by the worker that answered. */
  let secondUp = false;
  const queuedAcross: string[] = [];
  const client = async (): Promise<void> => {
    while (running) {
      sent++;
      const early = !secondUp;
      try {
        const r = await request({ socketPath: sock }, '/', { timeoutMs: 20_000 });
        if (r.status !== 200) failures.push(`status ${r.status}`);
        const pid = /^ok (\d+)/.exec(r.body)?.[1] ?? '?';
        servedBy.set(pid, (servedBy.get(pid) ?? 0) + 1);
        if (early) queuedAcross.push(pid);
      } catch (err) {
        failures.push((err as NodeJS.ErrnoException).code ?? (err as Error).message);
      }
    }
  };
  const clients = Array.from({ length: 4 }, () => client());
  const served = (pids: Set<string>): number => [...pids].reduce((n, p) => n + (servedBy.get(p) ?? 0), 0);
  try {
    await until(() => served(workersOf(firstMaster)) >= 20, 15_000, 'requests served by the first server');
    // A reload keeps the default bind (the passed socket), though LISTEN_* left the environment.
    process.kill(firstMaster, 'SIGHUP');
    await server.waitForLog((l) => l.pid === firstMaster && l.msg?.startsWith('reload complete') === true, 30_000, 'the reload');
    assert.not.ok(
      server.logs.some((l) => /binds changed/.test(String(l.msg))),
      'no "binds changed" warning on reload',
    );
    process.kill(firstMaster, 'SIGTERM');
    const secondReady = await server.waitForLog(
      (l) => typeof l.msg === 'string' && l.msg.startsWith('ready') && l.pid !== firstMaster,
      30_000,
      'the restarted server',
    );
    const secondMaster = secondReady.pid as number;
    secondUp = true;
    await until(() => served(workersOf(secondMaster)) >= 20, 15_000, 'requests served by the restarted server');
    running = false;
    await Promise.all(clients);

    const before = served(workersOf(firstMaster));
    const after = served(workersOf(secondMaster));
    const waited = queuedAcross.filter((p) => workersOf(secondMaster).has(p)).length;
    console.log(
      `  restart under held socket: ${sent} requests, ${before} served before the restart, ${after} after (${waited} of them sent during the restart, queued by the kernel, served by the new server), ${failures.length} failed`,
    );
    assert.equal(failures, [], 'no request was refused or failed');
    assert.ok(before >= 20 && after >= 20);
    assert.ok(waited >= 1, 'requests sent during the restart were served by the new server');
    assert.ok(
      server.logs.some((l) => l.pid === firstMaster && l.msg === 'stopped'),
      'the first server stopped gracefully',
    );

    writeFileSync(stopFile, '');
    process.kill(secondMaster, 'SIGTERM');
    const { code } = await server.exited;
    assert.is(code, 0);
    assert.ok(lstatSync(sock).isSocket(), 'the socket file is still there');
  } finally {
    running = false;
    await Promise.all(clients);
  }
});

test.run();
