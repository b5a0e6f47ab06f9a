// Worker health and operations: hung workers, recycling, boot timeout, hooks, --reload, USR1.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { writeFileSync, readFileSync, renameSync, existsSync } from 'node:fs';
import { startServer, request, tempDir, cleanup, FIXTURES, until, isAlive } from './helpers/server.js';
import { startLoad, failures } from './helpers/load.js';

test.after.each(cleanup);
const APP = join(FIXTURES, 'app.mjs');

test('a worker blocked longer than --timeout is killed and replaced, and its JS stack is logged', async () => {
  const sock = join(tempDir(), 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '--timeout', '2']);
  await server.ready();
  const [hung] = server.workerPids();
  request({ socketPath: sock }, '/spin', { timeoutMs: 30_000 }).catch(() => {});
  const line = await server.waitForMsg(/^worker timeout/, 30_000);
  assert.match(String(line.msg), /stuck at:/);
  // The stack points into the app's spinning route.
  const frames = line.stack as { functionName: string; url: string; line: number }[];
  assert.ok(Array.isArray(frames) && frames.length > 0, JSON.stringify(line));
  assert.equal(frames[0]!.functionName, 'app');
  assert.match(frames[0]!.url, /fixtures\/app\.mjs$/);
  await until(() => !isAlive(hung!), 10_000, 'hung worker to die');
  await until(async () => (await request({ socketPath: sock }, '/')).status === 200, 20_000, 'replacement serving');
  assert.ok(server.workerPids().length >= 2);
  await server.stop();
});

test('--max-requests recycles workers without dropping a request', async () => {
  const sock = join(tempDir(), 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2', '--max-requests', '300', '--max-requests-jitter', '50']);
  await server.ready();
  const load = startLoad({ socketPath: sock }, { concurrency: 6 });
  await until(
    () => server.logs.filter((l) => l.reason === 'max requests reached' && l.msg === 'worker exited').length >= 3,
    60_000,
    'three recycled workers',
  );
  const r = await load.stop();
  console.log(`  max-requests: sent ${r.sent}, ok ${r.ok}, errors ${JSON.stringify(r.errors)}, workers seen ${Object.keys(r.pids).length}`);
  assert.equal(failures(r), 0, JSON.stringify(r));
  // No worker served much past its limit + jitter + what was in flight while its replacement booted.
  assert.ok(Object.keys(r.pids).length >= 4);
  await server.stop();
});

test('--max-worker-memory recycles a worker whose RSS stays above the limit', async () => {
  const sock = join(tempDir(), 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '--max-worker-memory', '150']);
  await server.ready();
  const [first] = server.workerPids();
  const grown = await request({ socketPath: sock }, '/grow?mb=200');
  assert.match(grown.body, new RegExp(`grew 200 ${first}`));
  const line = await server.waitForLog(
    (l) => l.msg === 'worker exited' && /^memory: RSS/.test(String(l.reason)),
    30_000,
    'memory recycling',
  );
  assert.equal(line.workerPid, first);
  const after = await request({ socketPath: sock }, '/');
  assert.not.match(after.body, new RegExp(String(first)));
  await server.stop();
});

test('--boot-timeout kills a worker that never becomes ready; repeated, the master exits 3', async () => {
  const sock = join(tempDir(), 'app.sock');
  const server = startServer([join(FIXTURES, 'slow-boot.mjs'), '-b', `unix:${sock}`, '--boot-timeout', '1']);
  const { code } = await server.exited;
  assert.equal(code, 3);
  const line = server.logs.find((l) => /did not become ready within the boot timeout/.test(String(l.msg)));
  assert.ok(line, 'the boot timeout is logged');
  // ...with what the app printed while loading, so the operator sees what it was waiting for.
  assert.equal(line!.lastOutput, ['connecting to the database at db.internal:5432 ...']);
  assert.match(String(line!.msg), /Its last output:\n {4}connecting to the database/);
});

test('hooks run in master and workers; a hook that throws is logged and changes nothing', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const trace = join(dir, 'trace.txt');
  const cfg = join(dir, 'ws-proxy-kit.config.mjs');
  writeFileSync(
    cfg,
    `import { appendFileSync } from 'node:fs';
const t = (line) => appendFileSync(${JSON.stringify(trace)}, line + '\\n');
export default {
  app: ${JSON.stringify(APP)},
  onStarting: (server) => t('onStarting ' + server.pid),
  whenReady: (server) => { t('whenReady ' + server.workers.length); throw new Error('hook bug'); },
  preFork: (server, w) => t('preFork ' + w.index),
  postFork: (worker) => t('postFork ' + worker.index),
  postWorkerInit: (worker) => t('postWorkerInit ' + worker.index),
  preRequest: (worker, req) => t('preRequest ' + req.url),
  postRequest: (worker, req, res) => t('postRequest ' + res.statusCode),
  onReload: () => t('onReload'),
  childExit: (server, w) => t('childExit ' + w.index),
  nworkersChanged: (server, n, old) => t('nworkersChanged ' + old + '->' + n),
  workerExit: (worker) => t('workerExit ' + worker.index),
  onExit: () => t('onExit'),
};
`,
  );
  const server = startServer(['-c', cfg, '-b', `unix:${sock}`]);
  await server.ready();
  assert.equal((await request({ socketPath: sock }, '/hooked')).status, 200);
  await server.waitForLog((l) => l.hook === 'whenReady' && /threw/.test(String(l.msg)), 10_000, 'hook error logged');
  server.signal('SIGTTIN');
  await until(() => readFileSync(trace, 'utf8').includes('nworkersChanged 1->2'), 10_000, 'nworkersChanged');
  await server.stop();
  const lines = readFileSync(trace, 'utf8');
  for (const expected of [
    'onStarting',
    'whenReady 1',
    'preFork 1',
    'postFork 1',
    'postWorkerInit 1',
    'preRequest /hooked',
    'postRequest 200',
    'childExit 1',
    'workerExit 1',
    'onExit',
  ]) {
    assert.ok(lines.includes(expected), `missing "${expected}" in:\n${lines}`);
  }
  assert.ok(lines.indexOf('onStarting') < lines.indexOf('postFork 1') && lines.indexOf('postFork 1') < lines.indexOf('postWorkerInit 1'));
});

test('--reload: changing the app file reloads the workers with the new code', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const app = join(dir, 'app.mjs');
  writeFileSync(app, `export default (req, res) => res.end('version 1\\n');\n`);
  const server = startServer([app, '-b', `unix:${sock}`, '--reload']);
  await server.ready();
  assert.equal((await request({ socketPath: sock }, '/')).body, 'version 1\n');
  writeFileSync(app, `export default (req, res) => res.end('version 2\\n');\n`);
  await until(async () => (await request({ socketPath: sock }, '/')).body === 'version 2\n', 20_000, 'the new code to serve');
  await server.stop();
});

test('SIGUSR1 reopens log files (logrotate without copytruncate)', async () => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const log = join(dir, 'server.log');
  const access = join(dir, 'access.log');
  const server = startServer([APP, '-b', `unix:${sock}`, '--error-logfile', log, '--access-logfile', access]);
  await until(() => existsSync(log) && /ready/.test(readFileSync(log, 'utf8')), 15_000, 'ready in the log file');
  await request({ socketPath: sock }, '/before');
  renameSync(log, log + '.1');
  await until(() => existsSync(access) && readFileSync(access, 'utf8').includes('/before'), 10_000, 'access line');
  renameSync(access, access + '.1');
  server.signal('SIGUSR1');
  await until(() => existsSync(log) && /log files reopened/.test(readFileSync(log, 'utf8')), 10_000, 'a fresh server log');
  await until(
    async () => {
      await request({ socketPath: sock }, '/after');
      return existsSync(access) && readFileSync(access, 'utf8').includes('/after');
    },
    10_000,
    'a fresh access log',
  );
  assert.not.ok(readFileSync(access + '.1', 'utf8').includes('/after'));
  await server.stop();
  assert.ok(isAlive(process.pid));
});

test.run();
