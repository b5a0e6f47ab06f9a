// A raw client connection for hostile-client tests: write bytes when you like, read what
// the server answered, know whether and when it closed the connection.
import net from 'node:net';
import { onCleanup, type Target } from './server.js';

export class RawConnection {
  readonly sock: net.Socket;
  text = '';
  closed = false;
  error: string | null = null;
  readonly closedAt: Promise<number>;
  private readonly connected: Promise<void>;

  constructor(target: Target) {
    this.sock = target.socketPath ? net.connect(target.socketPath) : net.connect(target.port!, target.host ?? '127.0.0.1');
    this.sock.setEncoding('latin1');
    this.sock.on('data', (d: string) => (this.text += d));
    this.sock.on('error', (err: NodeJS.ErrnoException) => (this.error = err.code ?? err.message));
    this.connected = new Promise((resolve) => this.sock.once('connect', () => resolve()));
    this.closedAt = new Promise((resolve) =>
      this.sock.once('close', () => {
        this.closed = true;
        resolve(Date.now());
      }),
    );
    onCleanup(() => {
      this.sock.destroy();
    });
  }

  async ready(): Promise<this> {
    await Promise.race([this.connected, this.closedAt]);
    return this;
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed || this.sock.destroyed) return resolve();
      this.sock.write(data, () => resolve());
    });
  }

  /** Resolves when the server closed the connection, or false after timeoutMs. */
  waitClosed(timeoutMs = 10_000): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      void this.closedAt.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Resolves when what the server sent matches re (or rejects after timeoutMs). */
  async waitFor(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!re.test(this.text)) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${re}; got ${JSON.stringify(this.text.slice(0, 500))} (closed: ${this.closed})`);
      if (this.closed && !re.test(this.text))
        throw new Error(`connection closed before ${re}; got ${JSON.stringify(this.text.slice(0, 500))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.text;
  }

  /** Status codes of every response head received so far, in order (100 included). */
  statuses(): number[] {
    return [...this.text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** Sends one raw request on a new connection; resolves with the first status and whether the server closed it. */
export async function sendRaw(
  target: Target,
  data: string | Buffer,
  timeoutMs = 5000,
): Promise<{ status: number; closed: boolean; text: string }> {
  const c = await new RawConnection(target).ready();
  await c.write(data);
  try {
    await c.waitFor(/^HTTP\/1\.[01] \d{3} [^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n/, timeoutMs);
  } catch {
    // no (complete) answer: status stays 0
  }
  // A refused request closes the connection; a served one keeps it open (keep-alive).
  const closed = await c.waitClosed(c.statuses()[0] && c.statuses()[0]! < 400 ? 300 : timeoutMs);
  c.destroy();
  return { status: c.statuses()[0] ?? 0, closed, text: c.text };
}
