// A small, bounded load generator: `concurrency` loops sending requests over keep-alive
// connections until stopped (or the time bound). Counts every outcome; never retries.
import http from 'node:http';
import type { Target } from './server.js';

export interface LoadResult {
  sent: number;
  ok: number;
  statuses: Record<number, number>;
  errors: Record<string, number>;
  pids: Record<string, number>;
}

export function startLoad(target: Target, opts: { path?: string; concurrency?: number; maxMs?: number } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency ?? 8 });
  const result: LoadResult = { sent: 0, ok: 0, statuses: {}, errors: {}, pids: {} };
  let stopping = false;
  const bound = setTimeout(() => (stopping = true), opts.maxMs ?? 60_000);
  const one = () =>
    new Promise<void>((resolve) => {
      result.sent++;
      const req = http.request(
        {
          ...(target.socketPath ? { socketPath: target.socketPath } : { host: target.host ?? '127.0.0.1', port: target.port }),
          path: opts.path ?? '/',
          agent,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => {
            result.statuses[res.statusCode!] = (result.statuses[res.statusCode!] ?? 0) + 1;
            if (res.statusCode === 200) {
              result.ok++;
              const pid = body.trim().split(' ').pop()!;
              result.pids[pid] = (result.pids[pid] ?? 0) + 1;
            }
            resolve();
          });
          res.on('error', (err: NodeJS.ErrnoException) => {
            result.errors[err.code ?? err.message] = (result.errors[err.code ?? err.message] ?? 0) + 1;
            resolve();
          });
        },
      );
      req.setTimeout(20_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => {
        result.errors[err.code ?? err.message] = (result.errors[err.code ?? err.message] ?? 0) + 1;
        resolve();
      });
      req.end();
    });
  const loops = Array.from({ length: opts.concurrency ?? 8 }, async () => {
    while (!stopping) await one();
  });
  return {
    result,
    async stop(): Promise<LoadResult> {
      stopping = true;
      await Promise.all(loops);
      clearTimeout(bound);
      agent.destroy();
      return result;
    },
  };
}

export function failures(r: LoadResult): number {
  return r.sent - r.ok;
}
