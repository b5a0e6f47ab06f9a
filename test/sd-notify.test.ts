// sd_notify against a real datagram socket bound by the test: the messages the real CLI
// sends through boot, reload and stop, the watchdog, and a notify socket that is gone.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { DgramSocket } from 'node-unix-socket';
import { notifySink, type Received } from './helpers/notify-sink.js';
import { startServer, request, tempDir, cleanup, onCleanup, FIXTURES, until, isAlive } from './helpers/server.js';
import { hasCommand, testWithTool } from './helpers/tools.js';
import { SdNotifier, takeNotifyEnv } from '../src/notify/sd-notify.js';

test.after.each(cleanup);

const APP = join(FIXTURES, 'app.mjs');

const kinds = (ms: Received[]): string[] =>
  ms.map((m) => m.lines.filter((l) => !l.startsWith('STATUS=') && !l.startsWith('MONOTONIC_USEC=')).join('+') || 'STATUS');

test('boot, reload and stop: READY=1 after all workers, RELOADING=1 + MONOTONIC_USEC, READY=1, STOPPING=1', async () => {
  const dir = tempDir();
  const sink = notifySink(dir);
  const sock = join(dir, 'app.sock');
  const server = startServer([APP, '--bind', `unix:${sock}`, '--workers', '2'], {
    env: { NOTIFY_SOCKET: sink.path, WATCHDOG_USEC: '60000000' },
  });
  const readyAt = await sink.waitFor(/^READY=1/);
  // The first thing systemd hears is READY=1, and by then both workers are ready.
  assert.is(readyAt, 0, `messages before READY=1: ${JSON.stringify(sink.messages.slice(0, readyAt))}`);
  assert.equal(sink.messages[0]!.lines, ['READY=1', 'STATUS=running: 2/2 workers ready']);
  await server.ready();

  // Workers do not inherit the notify or watchdog variables.
  const env = JSON.parse((await request({ socketPath: sock }, '/env')).body) as Record<string, string | null>;
  assert.equal(env, {
    NOTIFY_SOCKET: null,
    WATCHDOG_USEC: null,
    WATCHDOG_PID: null,
    LISTEN_FDS: null,
    LISTEN_PID: null,
    LISTEN_FDNAMES: null,
  });

  // Reload: RELOADING=1 stamped with CLOCK_MONOTONIC (the same clock in every process).
  const before = process.hrtime.bigint() / 1000n;
  const from = sink.messages.length;
  server.signal('SIGHUP');
  const reloadingAt = await sink.waitFor(/^RELOADING=1/, from);
  const after = process.hrtime.bigint() / 1000n;
  const reloading = sink.messages[reloadingAt]!.lines;
  assert.is(reloading[0], 'RELOADING=1');
  assert.match(reloading[1]!, /^MONOTONIC_USEC=\d+$/);
  const stamp = BigInt(reloading[1]!.slice('MONOTONIC_USEC='.length));
  assert.ok(stamp >= before && stamp <= after, `MONOTONIC_USEC ${stamp} should lie between ${before} and ${after}`);
  assert.is(reloading[2], 'STATUS=reloading');
  const readyAgain = await sink.waitFor(/^READY=1/, reloadingAt + 1);
  assert.match(sink.messages[readyAgain]!.lines[1]!, /^STATUS=running: 2\/2 workers ready/);
  await server.waitForMsg(/^reload complete/);
  assert.is((await request({ socketPath: sock }, '/')).status, 200);

  const stopFrom = sink.messages.length;
  const { code } = await server.stop('SIGTERM');
  assert.is(code, 0);
  const stoppingAt = await sink.waitFor(/^STOPPING=1/, stopFrom);
  assert.equal(sink.messages[stoppingAt]!.lines, ['STOPPING=1', 'STATUS=stopping']);

  // The whole conversation, in order; STATUS-only updates may sit between the milestones.
  // (WATCHDOG_USEC is set: the first ping follows READY=1, then one every 30 s.)
  const milestones = kinds(sink.messages).filter((k) => k !== 'STATUS' && k !== 'WATCHDOG=1');
  assert.is(kinds(sink.messages).indexOf('WATCHDOG=1'), 1, 'the first watchdog ping comes right after READY=1');
  assert.equal(milestones, ['READY=1', 'RELOADING=1', 'READY=1', 'STOPPING=1']);
  // A STATUS= update is sent only when the line changes.
  const statuses = sink.messages.map((m) => m.lines.find((l) => l.startsWith('STATUS='))).filter(Boolean);
  for (let i = 1; i < statuses.length; i++) assert.ok(statuses[i] !== statuses[i - 1], `repeated status ${statuses[i]}`);
  console.log(`  notify messages: ${JSON.stringify(sink.messages.map((m) => m.text.replace(/MONOTONIC_USEC=\d+/, 'MONOTONIC_USEC=…')))}`);
});

test('WATCHDOG=1 every half WATCHDOG_USEC, withheld while the only worker is hung', async () => {
  const dir = tempDir();
  const sink = notifySink(dir);
  const sock = join(dir, 'app.sock');
  const server = startServer([APP, '--bind', `unix:${sock}`, '--workers', '1', '--timeout', '1'], {
    env: { NOTIFY_SOCKET: sink.path, WATCHDOG_USEC: '200000' },
  });
  await sink.waitFor(/^READY=1/);
  // Pings flow while healthy.
  await until(() => sink.messages.filter((m) => m.text === 'WATCHDOG=1').length >= 3, 10_000, 'three watchdog pings');

  const hangFrom = sink.messages.length;
  // The worker spins forever: heartbeats stop, it is killed after --timeout and replaced.
  request({ socketPath: sock }, '/spin', { timeoutMs: 30_000 }).catch(() => {});
  const down = await sink.waitFor(/^STATUS=running: 0\/1 workers ready/, hangFrom);
  const up = await sink.waitFor(/^STATUS=running: 1\/1 workers ready/, down);
  await server.waitForMsg(/^watchdog: no worker is answering/);
  const during = sink.messages.slice(down, up).filter((m) => m.text === 'WATCHDOG=1');
  assert.is(during.length, 0, 'no watchdog ping while no worker is ready');
  // The pool is healthy again: pings resume.
  await sink.waitFor(/^WATCHDOG=1$/, up);
  await server.waitForMsg(/^watchdog: the worker pool is healthy again/);
  assert.is((await request({ socketPath: sock }, '/')).status, 200);
  const pings = sink.messages.filter((m) => m.text === 'WATCHDOG=1').length;
  console.log(`  watchdog: ${pings} pings, none between "${sink.messages[down]!.text}" and "${sink.messages[up]!.text}"`);
  assert.is((await server.stop()).code, 0);
});

test('no watchdog pings when WATCHDOG_PID names another process', async () => {
  const dir = tempDir();
  const sink = notifySink(dir);
  const sock = join(dir, 'app.sock');
  const server = startServer([APP, '--bind', `unix:${sock}`, '--workers', '1'], {
    env: { NOTIFY_SOCKET: sink.path, WATCHDOG_USEC: '100000', WATCHDOG_PID: '1' },
  });
  await sink.waitFor(/^READY=1/);
  // A reload takes far longer than the 50 ms ping interval: pings would have shown up.
  server.signal('SIGHUP');
  await server.waitForMsg(/^reload complete/);
  await sink.waitFor(/^READY=1/, 1);
  assert.is(sink.messages.filter((m) => m.text.includes('WATCHDOG=1')).length, 0);
  assert.is((await server.stop()).code, 0);
});

test('USR2 upgrade: the new master is ready, then MAINPID= hands the service over; only it says STOPPING=1', async () => {
  const dir = tempDir();
  const sink = notifySink(dir);
  const sock = join(dir, 'app.sock');
  const server = startServer([APP, '--bind', `unix:${sock}`, '--workers', '1'], { env: { NOTIFY_SOCKET: sink.path } });
  await sink.waitFor(/^READY=1/);
  const from = sink.messages.length;
  server.signal('SIGUSR2');
  const handed = await server.waitForMsg(/^upgrade: the new master is serving/, 30_000);
  const newPid = handed.newMasterPid as number;
  const mainPidAt = await sink.waitFor(new RegExp(`^MAINPID=${newPid}$`), from);
  // The new master (it inherited NOTIFY_SOCKET) reported ready before the hand-over.
  const newReady = sink.messages.slice(from, mainPidAt).findIndex((m) => m.lines[0] === 'READY=1');
  assert.ok(newReady >= 0, `READY=1 from the new master before MAINPID=: ${JSON.stringify(sink.messages.slice(from).map((m) => m.text))}`);

  // The old master goes; it no longer speaks for the service.
  assert.is((await server.stop('SIGTERM')).code, 0);
  assert.not.ok(
    sink.messages.some((m) => m.lines[0] === 'STOPPING=1'),
    'the old master sent no STOPPING=1',
  );
  assert.is((await request({ socketPath: sock }, '/')).status, 200, 'the new master serves');

  process.kill(newPid, 'SIGTERM');
  await sink.waitFor(/^STOPPING=1/, mainPidAt);
  await until(() => !isAlive(newPid), 30_000, 'the new master to exit');
  assert.is(sink.messages.filter((m) => m.lines[0] === 'STOPPING=1').length, 1);
  console.log(
    `  upgrade: ${JSON.stringify(
      sink.messages
        .slice(from)
        .map((m) => m.text)
        .filter((t) => t !== 'WATCHDOG=1'),
    )}`,
  );
});

for (const variant of ['missing', 'dead'] as const) {
  test(`a ${variant} notify socket is logged once and the server still serves`, async () => {
    const dir = tempDir();
    let path = join(dir, 'missing.sock');
    if (variant === 'dead') {
      // Bound once, then its reader went away: the file stays, sends are refused.
      const sink = notifySink(dir, 'dead.sock');
      sink.close();
      path = sink.path;
    }
    const sock = join(dir, 'app.sock');
    const server = startServer([APP, '--bind', `unix:${sock}`, '--workers', '1'], { env: { NOTIFY_SOCKET: path } });
    await server.ready();
    assert.is((await request({ socketPath: sock }, '/')).status, 200);
    // A reload sends more messages; the warning still appears once.
    server.signal('SIGHUP');
    await server.waitForMsg(/^reload complete/);
    assert.is((await request({ socketPath: sock }, '/')).status, 200);
    const warnings = () =>
      server.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith("cannot send to systemd's notify socket"));
    await until(() => warnings().length > 0, 10_000, 'the notify warning');
    assert.is((await server.stop()).code, 0);
    assert.is(warnings().length, 1, JSON.stringify(warnings()));
    assert.is(warnings()[0]!.level, 40);
    assert.is(warnings()[0]!.notifySocket, path);
  });
}

const abstractMissing = !hasCommand('socat', ['-V'])
  ? 'socat is not installed (apt-get install socat): it binds the abstract socket'
  : !hasCommand('systemd-notify', ['--version'])
    ? 'systemd-notify is not installed (apt-get install systemd)'
    : null;

testWithTool(
  test,
  'an abstract NOTIFY_SOCKET ("@name") gets the messages through systemd-notify, without its barrier',
  abstractMissing,
  async () => {
    // node-unix-socket cannot bind an abstract name: socat does, and prints what arrives
    // (datagrams back to back, so the checks are on the order of the fields).
    const name = `wspk-test-${process.pid}-${Date.now()}`;
    const sink = spawn('socat', ['-u', `ABSTRACT-RECV:${name}`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'inherit'] });
    onCleanup(() => {
      if (sink.exitCode === null && sink.signalCode === null) sink.kill('SIGTERM');
    });
    let received = '';
    sink.stdout.setEncoding('utf8');
    sink.stdout.on('data', (d: string) => (received += d));
    await until(() => readFileSync('/proc/net/unix', 'utf8').includes(`@${name}`), 10_000, 'socat to bind the abstract socket');

    const sock = join(tempDir(), 'app.sock');
    const server = startServer([APP, '--bind', `unix:${sock}`, '--workers', '1'], { env: { NOTIFY_SOCKET: `@${name}` } });
    await server.ready();
    await until(() => received.includes('READY=1'), 20_000, `READY=1 through systemd-notify; got ${JSON.stringify(received)}`);
    server.signal('SIGHUP');
    await server.waitForMsg(/^reload complete/);
    await until(
      () => /RELOADING=1[\s\S]*MONOTONIC_USEC=\d+[\s\S]*READY=1/.test(received),
      20_000,
      `RELOADING=1, MONOTONIC_USEC, READY=1; got ${JSON.stringify(received)}`,
    );
    assert.is((await request({ socketPath: sock }, '/')).status, 200);
    assert.is((await server.stop()).code, 0);
    await until(() => received.includes('STOPPING=1'), 10_000, `STOPPING=1; got ${JSON.stringify(received)}`);
    console.log(`  abstract NOTIFY_SOCKET via systemd-notify: ${JSON.stringify(received.replace(/STATUS=[^\n]*?(?=[A-Z]+=|$)/g, ''))}`);

    const order = ['READY=1', 'RELOADING=1', 'READY=1', 'STOPPING=1'];
    let at = -1;
    for (const field of order) {
      at = received.indexOf(field, at + 1);
      assert.ok(at >= 0, `${order.join(', ')} in this order: ${JSON.stringify(received)}`);
    }
    // systemd-notify's barrier (its default) is for systemd only: it made every message wait 5 s
    // and sent ERRNO=110 after it.
    assert.not.match(received, /BARRIER=1|ERRNO=/);
    assert.is(
      server.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith("cannot send to systemd's notify socket")).length,
      0,
      'no send failed',
    );
  },
);

const notifyMissing = hasCommand('systemd-notify') ? null : 'systemd-notify is not installed (apt-get install systemd)';

testWithTool(
  test,
  'where node-unix-socket cannot load (no native build), the master notifies through systemd-notify instead of failing',
  notifyMissing,
  async () => {
    const dir = tempDir();
    const sink = notifySink(dir);
    const sock = join(dir, 'app.sock');
    const server = startServer([APP, '--bind', `unix:${sock}`, '--workers', '1'], {
      env: { NOTIFY_SOCKET: sink.path, NODE_OPTIONS: `--import ${join(FIXTURES, 'no-native-dgram.mjs')}` },
    });
    await server.ready();
    await sink.waitFor(/^READY=1/);
    const line = await server.waitForMsg(/^node-unix-socket cannot load/);
    assert.match(String(line.why), /no native build/);
    assert.is((await request({ socketPath: sock }, '/')).status, 200);
    assert.is((await server.stop()).code, 0);
    await sink.waitFor(/^STOPPING=1/);
  },
);

test('takeNotifyEnv removes the variables; MAINPID= for a USR2 successor', async () => {
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42', OTHER: 'x' };
  assert.equal(takeNotifyEnv(env, 42), { socket: '/run/systemd/notify', watchdogUsec: 30_000_000 });
  assert.equal(env, { OTHER: 'x' });
  assert.equal(takeNotifyEnv({ NOTIFY_SOCKET: '@abstract', WATCHDOG_USEC: '5', WATCHDOG_PID: '7' }, 42), {
    socket: '@abstract',
    watchdogUsec: null,
  });
  assert.is(takeNotifyEnv({ WATCHDOG_USEC: '5' }), null);

  const sink = notifySink(tempDir());
  const notifier = new SdNotifier({ socket: sink.path, watchdogUsec: 30_000_000 }, pino({ level: 'silent' }), DgramSocket);
  notifier.mainPid(4321);
  await sink.waitFor(/^MAINPID=4321$/);
  assert.equal(notifier.childEnv(), { NOTIFY_SOCKET: sink.path, WATCHDOG_USEC: '30000000' });
  notifier.close();
});

test.run();
