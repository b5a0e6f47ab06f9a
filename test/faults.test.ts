// Faults that used to cost requests: connections refused while the first workers boot,
// an async throw that left the pool without an accepting worker, a refused deploy that
// became an outage on the next crash, unfinished request heads that locked good clients
// out, and the hang inspector's TCP port.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir, cleanup, freePort, FIXTURES } from './helpers/server.js';

test.after.each(cleanup);

const SLOW_IMPORT = join(FIXTURES, 'slow-import.mjs');
const HELLO = join(FIXTURES, 'app.mjs');

/** One GET on a new connection: 'refused' when connect() fails, else the status line. */
function attempt(target: net.NetConnectOpts, timeoutMs = 10_000): Promise<{ connected: boolean; answer: string }> {
  return new Promise((resolve) => {
    let connected = false;
    const c = net.connect(target);
    const timer = setTimeout(() => done('no answer'), timeoutMs);
    function done(answer: string) {
      clearTimeout(timer);
      c.destroy();
      resolve({ connected, answer });
    }
    c.on('connect', () => {
      connected = true;
      c.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
    c.on('data', (d) => done(String(d).split('\r\n')[0]!));
    c.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'refused' : `error ${err.code}`));
    c.on('close', () => done('closed'));
  });
}

for (const [name, app] of [
  ['the hello app', HELLO],
  ['an app that takes 2 s to import', SLOW_IMPORT],
] as const) {
  test(`unix: a client connecting from the instant the socket file appears is never refused (${name})`, async () => {
    const sock = join(tempDir(), 'app.sock');
    const server = startServer([app, '-b', `unix:${sock}`, '-w', '2']);
    // Polls the path as fast as the loop allows; then connects at once, again and again.
    while (!existsSync(sock)) {
      if (server.exitInfo) throw new Error(`server exited: ${server.stderrText}`);
      await new Promise((r) => setImmediate(r));
    }
    const appeared = Date.now();
    let refused = 0;
    let answered = 0;
    const attempts: Promise<void>[] = [];
    // 20 clients, one every 5 ms from the instant the file appears, each waiting for its answer.
    for (let i = 0; i < 20; i++) {
      attempts.push(
        attempt({ path: sock }).then((r) => {
          if (r.answer === 'refused') refused++;
          else if (r.answer.startsWith('HTTP/1.1 200')) answered++;
        }),
      );
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(attempts);
    const ready = await server.ready();
    console.log(`  ${name}: socket file appeared ${Date.parse(String(ready.time)) - appeared} ms before "ready"; 20 clients: ${answered} answered, ${refused} refused`);
    assert.is(refused, 0, 'connections refused while the workers booted');
    assert.is(answered, 20);
  });
}

test('tcp: the port takes connections into its backlog while the workers still load the app', async () => {
  const port = await freePort();
  const server = startServer([SLOW_IMPORT, '-b', `127.0.0.1:${port}`, '-w', '1']);
  let firstConnect = 0;
  let refusedAfter = 0;
  const answers: Promise<string>[] = [];
  // Until the first connect succeeds, refusals are expected (nothing is bound yet); after it none.
  while (answers.length < 10) {
    const r = attempt({ port, host: '127.0.0.1' }, 15_000);
    const connected = await Promise.race([r.then((x) => x.connected), new Promise<boolean>((res) => setTimeout(() => res(true), 50))]);
    if (!connected) {
      if (firstConnect) refusedAfter++;
      if (server.exitInfo) throw new Error(`server exited: ${server.stderrText}`);
      continue;
    }
    firstConnect ||= Date.now();
    answers.push(r.then((x) => x.answer));
  }
  const results = await Promise.all(answers);
  const ready = await server.ready();
  const early = Date.parse(String(ready.time)) - firstConnect;
  console.log(`  tcp: first connection accepted into the backlog ${early} ms before "ready"; ${results.filter((a) => a.startsWith('HTTP/1.1 200')).length}/10 answered`);
  assert.is(refusedAfter, 0);
  assert.ok(early > 1000, `the port listened only ${early} ms before the pool was ready`);
  assert.ok(results.every((a) => a.startsWith('HTTP/1.1 200')), results.join(', '));
});

test.run();
