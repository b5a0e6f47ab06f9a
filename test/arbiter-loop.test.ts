// The arbiter's one event loop (src/arbiter/arbiter.ts) in its modes: health checks go on in
// the drain window, a worker that drains by itself is replaced at once, and a reload whose new
// workers hang neither blocks the loop nor outlives the boot timeout.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { copyFileSync } from 'node:fs';
import { startServer, request, tempDir, cleanup, FIXTURES } from './helpers/server.js';

test.after.each(cleanup);
const APP = join(FIXTURES, 'app.mjs');

test('health checks go on in the drain window: a worker that hangs then is killed (with its stack) before the window ends', async () => {
  const sock = join(tempDir(), 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2', '--drain-seconds', '8', '--timeout', '1']);
  await server.ready();
  server.signal('SIGTERM');
  await server.waitForMsg(/^draining: readiness fails/);
  // Still served in the window: this request spins one worker's event loop forever.
  request({ socketPath: sock }, '/spin', { timeoutMs: 30_000 }).catch(() => {});
  const killed = await server.waitForMsg(/^worker timeout: its event loop is blocked; killing it/, 7_000);
  const over = await server.waitForMsg(/^drain window over/, 15_000);
  assert.ok(server.logs.indexOf(killed) < server.logs.indexOf(over), 'killed within the drain window');
  assert.is((await server.exited).code, 0);
});

test('a worker that starts draining by itself (SIGTERM from outside) leaves the pool: its replacement starts at once', async () => {
  const sock = join(tempDir(), 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '1']);
  await server.ready();
  const [victim] = server.workerPids();
  // The only worker holds a request for 4 s: it exits only once that is answered.
  const held = request({ socketPath: sock }, '/slow?ms=4000');
  await new Promise((r) => setTimeout(r, 300));
  process.kill(victim!, 'SIGTERM');
  await server.waitForMsg(/^worker draining without being asked/, 5_000);
  const spawned = await server.waitForLog((l) => l.msg === 'worker spawned' && l.workerPid !== victim, 5_000, 'the replacement');
  const served = await request({ socketPath: sock }, '/');
  assert.is(served.status, 200);
  assert.not.match(served.body, new RegExp(`\\b${victim}\\b`));
  assert.is((await held).status, 200, 'the request in progress is answered');
  const exited = await server.waitForLog((l) => l.msg?.startsWith('worker exited') === true && l.workerPid === victim, 10_000, 'its exit');
  assert.ok(server.logs.indexOf(spawned) < server.logs.indexOf(exited), 'the replacement started before the drained worker exited');
  await server.stop();
});

test('a reload whose new workers hang while loading is aborted at the boot timeout; a TERM during a reload stops at once', async () => {
  const dir = tempDir();
  const app = join(dir, 'app.mjs');
  const sock = join(dir, 'app.sock');
  copyFileSync(APP, app);
  const server = startServer([app, '-b', `unix:${sock}`, '-w', '1', '--boot-timeout', '2']);
  await server.ready();
  copyFileSync(join(FIXTURES, 'slow-boot.mjs'), app);
  server.signal('SIGHUP');
  await server.waitForMsg(/^worker did not become ready within the boot timeout/, 10_000);
  await server.waitForMsg(/^reload aborted: new workers failed to boot/, 5_000);
  assert.is((await request({ socketPath: sock }, '/')).status, 200, 'the old worker serves');

  const from = server.logs.length;
  server.signal('SIGHUP');
  await server.waitForMsg(/^worker spawned/, 5_000, from);
  const termAt = Date.now();
  server.signal('SIGTERM');
  assert.is((await server.exited).code, 0);
  assert.ok(Date.now() - termAt < 5_000, `stopped ${Date.now() - termAt} ms after the TERM`);
});

test.run();
