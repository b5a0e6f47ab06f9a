// WebSocket-aware draining with real `ws` clients: when a worker drains, the app's drain hook
// (the `ws-proxy-kit/ws` helper in examples/websocket) closes its clients with a close frame,
// spread over --ws-drain-seconds: 1012 on a reload (they reconnect to the new workers), 1001
// on a stop. No client is cut without one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ROOT, startServer, tempDir, cleanup, onCleanup, until } from './helpers/server.js';

test.after.each(cleanup);
const APP = join(ROOT, 'examples/websocket/app.mjs');

interface Client {
  ws: WebSocket;
  pid: number;
  close?: { code: number; at: number };
}

/** Opens a client and asks its worker's pid. */
function connect(sock: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws+unix://${sock}:/echo`);
    onCleanup(() => ws.terminate());
    const client: Client = { ws, pid: 0 };
    ws.once('error', reject);
    ws.once('open', () => ws.send('pid'));
    ws.once('message', (d) => {
      client.pid = Number(String(d).split(' ')[1]);
      resolve(client);
    });
    ws.once('close', (code) => (client.close = { code, at: Date.now() }));
  });
}

test('a reload: every client hears 1012, spread over --ws-drain-seconds, and reconnects to a new worker', async () => {
  const sock = join(tempDir(), 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2', '--ws-drain-seconds', '2']);
  await server.ready();
  const clients = await Promise.all(Array.from({ length: 50 }, () => connect(sock)));
  const oldPids = new Set(clients.map((c) => c.pid));
  const t0 = Date.now();
  server.signal('SIGHUP');
  await until(() => clients.every((c) => c.close), 15_000, 'every client closed');
  const codes = [...new Set(clients.map((c) => c.close!.code))];
  const spread = Math.max(...clients.map((c) => c.close!.at)) - Math.min(...clients.map((c) => c.close!.at));
  assert.equal(codes, [1012], 'a close frame with 1012 for every client (1006 would be a cut)');
  assert.ok(spread >= 1000, `the closes spread over the window: ${spread} ms`);
  assert.ok(Math.max(...clients.map((c) => c.close!.at)) - t0 < 8000, 'all within the window (and the reload)');
  const again = await Promise.all(clients.map(() => connect(sock)));
  assert.ok(
    again.every((c) => !oldPids.has(c.pid)),
    'reconnected to new workers',
  );
  console.log(
    `  reload: 50 clients closed with 1012 over ${spread} ms, reconnected to ${new Set(again.map((c) => c.pid)).size} new workers`,
  );
  await server.stop();
});

test('a stop: the clients hear 1001 (going away)', async () => {
  const sock = join(tempDir(), 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '1', '--ws-drain-seconds', '0.5']);
  await server.ready();
  const clients = await Promise.all(Array.from({ length: 10 }, () => connect(sock)));
  server.signal('SIGTERM');
  await until(() => clients.every((c) => c.close), 10_000, 'every client closed');
  assert.equal([...new Set(clients.map((c) => c.close!.code))], [1001]);
  assert.is((await server.exited).code, 0);
});

test.run();
