// node:cluster with N workers on one UNIX socket. The scheduling policy comes from
// NODE_CLUSTER_SCHED_POLICY (rr: the primary accepts and hands connections out in turn;
// none: the workers share the listening socket and accept themselves).
// usage: NODE_CLUSTER_SCHED_POLICY=rr|none node cluster.mjs SOCKET_PATH WORKERS
import cluster from 'node:cluster';
import http from 'node:http';
import { unlinkSync } from 'node:fs';
import { randomUUID } from 'node:crypto';

const [path, workersText] = process.argv.slice(2);
const workers = Number(workersText);

if (cluster.isPrimary) {
  try {
    unlinkSync(path);
  } catch {}
  let listening = 0;
  cluster.on('listening', () => {
    if (++listening === workers) {
      console.error(
        JSON.stringify({
          msg: 'ready',
          pid: process.pid,
          policy: cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none',
          workerPids: Object.values(cluster.workers).map((w) => w.process.pid),
        }),
      );
    }
  });
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers).length === 0) process.exit(0);
    });
  });
} else {
  const { default: app } = await import('../app.mjs');
  const handler = process.env.BENCH_BOOKKEEPING === '1' ? withBookkeeping(app) : app;
  const server = http.createServer({ keepAliveTimeout: 5000 }, handler);
  server.listen(path);
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

/**
 * The per-request bookkeeping ws-proxy-kit's worker does around the app (request id, a
 * 'close' listener and a Set entry per response for draining and the access log), to
 * measure what it costs on its own (engine "cluster-none-bookkeeping", opt-in).
 */
function withBookkeeping(app) {
  const active = new Set();
  const stats = { requests: 0, inflight: 0 };
  return (req, res) => {
    stats.requests++;
    stats.inflight++;
    const start = performance.now();
    let id = req.headers['x-request-id'];
    if (typeof id !== 'string' || id === '') req.headers['x-request-id'] = id = randomUUID();
    const written = req.socket.bytesWritten;
    res.once('close', () => {
      stats.inflight--;
      void (performance.now() - start, req.socket.bytesWritten - written, id);
      active.delete(res);
    });
    active.add(res);
    app(req, res);
  };
}
