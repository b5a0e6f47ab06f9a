// Canary reloads under load through real nginx (upstream keepalive, the site's forwarding
// fields): a version that answers 5xx and one that crashes on its third request are both
// rolled back, and nothing fails outside the canary's own share; a good version rolls out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { join } from 'node:path';
import { startServer, cleanup, onCleanup, type ServerProcess } from '../test/helpers/server.js';
import { hasCommand, testWithTool } from '../test/helpers/tools.js';
import { releases, type Release } from '../test/helpers/releases.js';
import { startNginx, type NginxFront } from '../bench/nginx.js';

test.after.each(cleanup);
const missing = hasCommand('nginx', ['-v']) ? null : 'nginx is not installed (apt-get install nginx)';

/** Keep-alive clients through nginx (an http.Agent: it honours Connection: close), each answer kept. */
function loadThrough(url: string, concurrency = 8) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const answers: { status: number; body: string }[] = [];
  const errors: string[] = [];
  let stopping = false;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.get(`${url}/`, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          answers.push({ status: res.statusCode!, body: body.trim() });
          resolve();
        });
      });
      req.setTimeout(15_000, () => req.destroy(new Error('timeout')));
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
      agent.destroy();
    },
  };
}

async function setup(): Promise<{ r: ReturnType<typeof releases>; server: ServerProcess; url: string }> {
  const r = releases();
  const sock = join(r.dir, 'app.sock');
  const server = startServer(['app.mjs', '--chdir', r.current, '-b', `unix:${sock}`, '-w', '2', '--reload-canary', '3']);
  await server.ready();
  const nginx: NginxFront = await startNginx(r.dir, [{ name: 'app', socket: sock }], 1);
  onCleanup(() => nginx.stop());
  return { r, server, url: nginx.url('app', 'keepalive') };
}

async function reloadUnderLoad(version: Release, outcome: RegExp) {
  const { r, server, url } = await setup();
  const load = loadThrough(url);
  await new Promise((res) => setTimeout(res, 500));
  r.deploy(version);
  server.signal('SIGHUP');
  const canary = await server.waitForMsg(/^reload: a canary/, 10_000);
  const line = await server.waitForMsg(outcome, 30_000);
  await new Promise((res) => setTimeout(res, 1000));
  await load.stop();
  const byStatus = load.answers.reduce<Record<number, number>>((a, x) => ({ ...a, [x.status]: (a[x.status] ?? 0) + 1 }), {});
  console.log(`  ${version}: ${String(line.msg).split(';')[0]}; answers ${JSON.stringify(byStatus)}, errors ${load.errors.length}`);
  return { canaryPid: canary.canaryPid as number, load, line, server };
}

testWithTool(test, 'through nginx: a version that answers 5xx is rolled back; every 5xx came from the canary', missing, async () => {
  const { canaryPid, load } = await reloadUnderLoad('errors', /^reload rolled back: the canary answered 5xx too often/);
  assert.equal(load.errors, []);
  const failed = load.answers.filter((a) => a.status !== 200);
  assert.ok(failed.length >= 1);
  assert.ok(
    failed.every((a) => a.status === 500 && Number(a.body.split(' ').pop()) === canaryPid),
    'the 5xx answers are the canary’s own',
  );
  const last = load.answers.slice(-50);
  assert.ok(
    last.every((a) => a.status === 200 && a.body.startsWith('ok v1')),
    'the old version serves after the rollback',
  );
});

testWithTool(test, 'through nginx: a version that crashes on its third request is rolled back', missing, async () => {
  const { load } = await reloadUnderLoad('crash', /^reload rolled back: the canary \(pid \d+\) exited/);
  // The canary's share: what it held when it exited (nginx retries a request on a cached
  // upstream connection that closes; one it had sent on a fresh one answers 502).
  const failed = load.answers.filter((a) => a.status !== 200).length + load.errors.length;
  assert.ok(failed <= 8, `failed: ${failed}`);
  assert.ok(load.answers.slice(-50).every((a) => a.status === 200 && a.body.startsWith('ok v1')));
});

testWithTool(test, 'through nginx: a good version passes its canary and rolls out with no failed request', missing, async () => {
  const { load } = await reloadUnderLoad('good', /^reload complete/);
  assert.equal(load.errors, []);
  assert.ok(load.answers.every((a) => a.status === 200));
  assert.ok(
    load.answers.slice(-50).every((a) => a.body.startsWith('ok v2')),
    'the new version serves',
  );
});

test.run();
