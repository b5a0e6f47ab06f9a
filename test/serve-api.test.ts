// Programmatic use: serve() as the README shows it, from a user's script run with plain node
// (test/fixtures/serve-api.mjs), and its option errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { serve } from '../src/serve.js';
import { ConfigError } from '../src/config/load.js';
import { FIXTURES, request, tempDir, cleanup, onCleanup, followProcess, until } from './helpers/server.js';

test.after.each(cleanup);

test('serve({ app, bind, workers }) with paths relative to cwd: ready, serving, reload(), stop()', async () => {
  const dir = tempDir();
  copyFileSync(join(FIXTURES, 'app.mjs'), join(dir, 'app.mjs'));
  const child = spawn(process.execPath, [join(FIXTURES, 'serve-api.mjs'), dir], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  onCleanup(() => void child.stdin!.destroy());
  const script = followProcess(child);
  const said = () =>
    script.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const step = (key: string): Promise<Record<string, unknown>> =>
    until<Record<string, unknown>>(() => said().find((o) => key in o)!, 20_000, `the script to say ${key}; stderr: ${script.stderrText}`);
  const ready = await step('ready');
  const sock = join(dir, 'app.sock');
  assert.equal(ready.binds, [`unix:${sock}`]);
  const first = await request({ socketPath: sock }, '/');
  assert.is(first.status, 200);
  child.stdin!.write('reload\n');
  assert.is((await step('reloaded')).reloaded, true);
  const pid = (r: { body: string }) => r.body.trim().split(' ').pop();
  assert.is.not(pid(await request({ socketPath: sock }, '/')), pid(first), 'served by the new workers after reload()');
  child.stdin!.write('stop\n');
  assert.is((await step('stopped')).stopped, 0);
  assert.is((await script.exited).code, 0);
  assert.not.ok(existsSync(sock), 'the socket file is gone');
});

test('serve() with a bad option rejects with the setting, the value and what is accepted', async () => {
  const err = await serve({ app: 'x.mjs', workers: 0, env: {} }).then(
    () => null,
    (e: unknown) => e,
  );
  assert.instance(err, ConfigError);
  assert.match(String((err as Error).message), /workers/);
  assert.match(String((err as Error).message), /an integer from 1 to 1024/);
});

test.run();
