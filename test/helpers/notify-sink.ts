// A notify socket like systemd's, bound by a test: collects every datagram the server sends.
import { join } from 'node:path';
import { DgramSocket } from 'node-unix-socket';
import { onCleanup, until } from './server.js';

export interface Received {
  text: string;
  lines: string[];
}

/** Binds `dir/name` and collects every datagram sent to it; closed at cleanup. */
export function notifySink(dir: string, name = 'notify.sock') {
  const path = join(dir, name);
  const socket = new DgramSocket();
  socket.bind(path);
  const messages: Received[] = [];
  socket.on('data', (buf: Buffer) => {
    const text = buf.toString('utf8');
    messages.push({ text, lines: text.split('\n') });
  });
  let closed = false;
  const close = (): void => {
    if (!closed) socket.close();
    closed = true;
  };
  onCleanup(close);
  return {
    path,
    messages,
    close,
    /** Index of the first message at or after `from` whose text matches. */
    async waitFor(re: RegExp, from = 0, what = String(re), timeoutMs = 20_000): Promise<number> {
      return until(
        () => {
          const i = messages.findIndex((m, idx) => idx >= from && re.test(m.text));
          return i >= 0 ? i + 1 : 0;
        },
        timeoutMs,
        `a notify message matching ${what}; got so far: ${JSON.stringify(messages.map((m) => m.text))}`,
      ).then((n) => n - 1);
    },
  };
}
