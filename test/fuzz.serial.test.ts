// A short bounded fuzz run (scripts/fuzz.ts) against the real server: no worker crashes,
// the master alive, valid requests still answered.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { cleanup, onCleanup, ROOT } from './helpers/server.js';

test.after.each(cleanup);

test('5 s of random and mutated requests: zero worker crashes, master alive, valid requests answered', async () => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'scripts/fuzz.ts'), '--duration', '5', '--seed', '12345', '--concurrency', '6'],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  onCleanup(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, out);
  const sent = Number(/fuzz: (\d+) requests/.exec(out)?.[1]);
  assert.ok(sent > 50, `sent a meaningful number of requests (${sent})\n${out}`);
  assert.match(out, /worker exits 0; fatal log lines 0; master alive true/);
  assert.match(out, /valid checks [1-9]\d*, failed 0/);
  console.log(out.trim());
});

test.run();
