// The answers the worker gives itself (src/worker/error-answers.ts), on a plain node:http
// server: the bytes of each form, and that every one of them closes the connection.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { join } from 'node:path';
import { answerError, rawErrorResponse, refuse } from '../src/worker/error-answers.js';
import { cleanup, onCleanup, tempDir } from './helpers/server.js';
import { RawConnection } from './helpers/raw-socket.js';

test.after.each(cleanup);

/** A server whose every request goes to `handle`; resolves with its socket path. */
async function serve(handle: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<string> {
  const server = http.createServer(handle);
  const sock = join(tempDir(), 'answers.sock');
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  onCleanup(() => void server.close());
  return sock;
}

/** What the server sent for one request, without its Date field, and whether it then closed. */
async function exchange(sock: string, request = 'GET / HTTP/1.1\r\nHost: a\r\n\r\n'): Promise<{ text: string; closed: boolean }> {
  const c = await new RawConnection({ socketPath: sock }).ready();
  await c.write(request);
  const closed = await c.waitClosed(5000);
  return { text: c.text.replace(/Date: [^\r]*\r\n/, ''), closed };
}

test('rawErrorResponse: a whole answer with its length, for a socket without a response object', () => {
  assert.is(
    rawErrorResponse(400),
    'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n',
  );
  assert.is(
    rawErrorResponse(431),
    'HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\nRequest Header Fields Too Large\n',
  );
});

test('answerError before the head went out: the status and its reason, then the connection closes', async () => {
  const sock = await serve((_req, res) => answerError(res, 426));
  const { text, closed } = await exchange(sock);
  assert.is(
    text,
    'HTTP/1.1 426 Upgrade Required\r\ncontent-type: text/plain\r\nconnection: close\r\nTransfer-Encoding: chunked\r\n\r\n11\r\nUpgrade Required\n\r\n0\r\n\r\n',
  );
  assert.ok(closed, 'closed after the answer');
});

test('answerError after the head went out: only the cut connection tells', async () => {
  const sock = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('part', () => answerError(res, 500));
  });
  const { text, closed } = await exchange(sock);
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.not.match(text, /Internal Server Error/);
  assert.not.match(text, /0\r\n\r\n$/, 'the chunked body never ends');
  assert.ok(closed);
});

test('refuse: the answer goes out, the rest of the request is not read, the connection closes', async () => {
  let bodyRead = 0;
  const sock = await serve((req, res) => {
    req.on('data', (chunk: Buffer) => (bodyRead += chunk.length));
    refuse(res, 413);
  });
  const c = await new RawConnection({ socketPath: sock }).ready();
  await c.write('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n');
  await c.waitFor(/Content Too Large\n\r\n0\r\n\r\n$/);
  await c.write(Buffer.alloc(100_000, 120));
  assert.ok(await c.waitClosed(5000), 'closed within the linger time');
  assert.match(c.text, /^HTTP\/1\.1 413 Payload Too Large\r\n/);
  assert.match(c.text, /\r\nconnection: close\r\n/);
  assert.ok(bodyRead < 100_000, `read ${bodyRead} bytes of the body`);
});

test.run();
