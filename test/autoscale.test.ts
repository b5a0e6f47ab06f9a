// The adaptive pool (--max-workers) with the real CLI and a CPU-bound app: it grows while
// the workers' event loops stay busy, shrinks after --scale-down-delay of little use, stays
// within its floor and ceiling, and a manual change moves the floor. No request is lost.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { startServer, runCli, request, tempDir, cleanup, until, FIXTURES, type ServerProcess } from './helpers/server.js';
import { startLoad, failures } from './helpers/load.js';

test.after.each(cleanup);
const CPU_APP = join(FIXTURES, 'cpu-app.mjs');

const steps = (server: ServerProcess) => server.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('adaptive pool:'));
async function poolSize(dir: string): Promise<{ size: number; floor: number; ceiling: number; busyPercent: number | null }> {
  const r = await runCli(['ctl', '--socket', join(dir, 'app.ctl'), 'status', '--json']);
  return (JSON.parse(r.stdout) as { pool: { size: number; floor: number; ceiling: number; busyPercent: number | null } }).pool;
}

test('under CPU load the pool grows to its ceiling, never past it; without load it shrinks back to its floor; nothing is lost', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const server = startServer([CPU_APP, '-b', `unix:${sock}`, '-w', '1', '--max-workers', '2', '--scale-down-delay', '2']);
  await server.ready();
  const load = startLoad({ socketPath: sock }, { path: '/?ms=4', concurrency: 6, maxMs: 60_000 });
  const up = await server.waitForMsg(
    /^adaptive pool: one worker more \(1 -> 2 of 1-2\): event-loop utilization \d+ % for [\d.]+ s/,
    20_000,
  );
  assert.is(up.to, 2);
  // Busy still, at the ceiling: no third worker, however long it lasts.
  await until(() => server.logs.filter((l) => l.msg === 'worker spawned').length >= 2, 10_000, 'the second worker');
  await new Promise((r) => setTimeout(r, 3000));
  assert.is(steps(server).length, 1, 'one step only: the ceiling holds');
  assert.is((await poolSize(dir)).size, 2);
  const r = await load.stop();
  const down = await server.waitForMsg(/^adaptive pool: one worker fewer \(2 -> 1 of 1-2\)/, 20_000);
  assert.match(String(down.reason), /for \d+ s/);
  await server.waitForLog(
    (l) => l.msg === 'worker exited' && l.reason === 'pool shrunk (adaptive pool)',
    15_000,
    'the extra worker to retire',
  );
  console.log(
    `  adaptive pool: ${steps(server)
      .map((l) => l.msg)
      .join(' | ')}; load sent ${r.sent}, ok ${r.ok}`,
  );
  assert.is(failures(r), 0, JSON.stringify(r));
  const after = await poolSize(dir);
  assert.equal([after.size, after.floor, after.ceiling], [1, 1, 2]);
  await server.stop();
});

test('a manual change moves the floor: after TTIN the idle pool does not shrink below it', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const server = startServer([CPU_APP, '-b', `unix:${sock}`, '-w', '1', '--max-workers', '3', '--scale-down-delay', '1']);
  await server.ready();
  server.signal('SIGTTIN');
  await until(async () => (await poolSize(dir)).floor === 2, 10_000, 'the floor to move');
  await until(() => server.logs.filter((l) => l.msg === 'worker spawned').length >= 2, 10_000, 'a second worker');
  assert.is((await request({ socketPath: sock }, '/?ms=1')).status, 200);
  // Idle for well past --scale-down-delay and the cool-down: still 2.
  await new Promise((r) => setTimeout(r, 7000));
  assert.equal(steps(server), []);
  const p = await poolSize(dir);
  assert.equal([p.size, p.floor, p.ceiling], [2, 2, 3]);
  await server.stop();
});

test('--max-workers below --workers is an error that names both', async () => {
  const r = await runCli([CPU_APP, '-w', '3', '--max-workers', '2']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /Invalid value for maxWorkers: 2 \(--max-workers\) is below workers, 3 \(--workers\)/);
});

test.run();
