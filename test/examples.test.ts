// Smoke tests: each example in examples/ served by the real CLI on a UNIX socket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import WebSocket from 'ws';
import { cleanup, request, startServer, tempDir } from './helpers/server.js';

test.after.each(cleanup);

async function serve(example: string): Promise<{ socketPath: string }> {
  const socketPath = join(tempDir(), 'app.sock');
  const server = startServer([`examples/${example}/app.mjs`, '--bind', `unix:${socketPath}`, '--workers', '1']);
  await server.ready(30_000);
  return { socketPath };
}

test('hello: a plain request listener answers', async () => {
  const target = await serve('hello');
  const r = await request(target, '/');
  assert.is(r.status, 200);
  assert.match(r.body, /^Hello from ws-proxy-kit worker \d+/);
});

test('express: routes, and req.ip/protocol from X-Forwarded-* of a trusted proxy', async () => {
  const target = await serve('express');
  const r = await request(target, '/');
  assert.is(r.status, 200);
  assert.match(r.body, /^Hello from Express in worker \d+/);
  const who = await request(target, '/whoami', {
    headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', host: 'example.org' },
  });
  assert.is(who.status, 200);
  const body = JSON.parse(who.body) as { ip: string; protocol: string; host: string };
  assert.is(body.ip, '203.0.113.7');
  assert.is(body.protocol, 'https');
  assert.is(body.host, 'example.org');
  assert.is((await request(target, '/missing')).status, 404);
});

test('hono: a fetch handler answers text and JSON', async () => {
  const target = await serve('hono');
  const r = await request(target, '/');
  assert.is(r.status, 200);
  assert.match(r.body, /^Hello from Hono in worker \d+/);
  const j = await request(target, '/json', { headers: { 'x-forwarded-proto': 'https' } });
  assert.equal(JSON.parse(j.body), { framework: 'hono', pid: JSON.parse(j.body).pid, forwardedProto: 'https' });
});

test('websocket: plain HTTP answers, and /echo echoes text and binary messages', async () => {
  const target = await serve('websocket');
  const r = await request(target, '/');
  assert.is(r.status, 200);
  assert.match(r.body, /WebSocket echo server/);
  const ws = new WebSocket(`ws+unix://${target.socketPath}:/echo`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const replies: { data: Buffer; binary: boolean }[] = [];
  const two = new Promise<void>((resolve) =>
    ws.on('message', (data: Buffer, binary: boolean) => {
      replies.push({ data, binary });
      if (replies.length === 2) resolve();
    }),
  );
  ws.send('hello');
  ws.send(Buffer.from([0, 1, 2, 255]));
  await two;
  assert.is(replies[0]!.data.toString(), 'hello');
  assert.is(replies[0]!.binary, false);
  assert.equal([...replies[1]!.data], [0, 1, 2, 255]);
  assert.is(replies[1]!.binary, true);
  ws.close();
});

test.run();
