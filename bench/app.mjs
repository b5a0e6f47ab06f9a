// The hello app every engine serves (the same module, loaded by each server).
// GET / answers at once; GET /slow waits 20 ms on a timer first (the "slow app" shape).
// Without BENCH_STATS_DIR (the bench's default, --app minimal) it is the smallest listener
// there is, so that a server's own overhead shows undiluted. With BENCH_STATS_DIR (--app
// counting) each process counts its requests, its connections and those still open, and
// writes them to BENCH_STATS_DIR/<pid>.json (at most every 100 ms, off the request path), so
// the bench can tell how evenly the workers shared the requests; that bookkeeping costs every
// engine the same and shrinks the ratios between them.
import { rename, writeFile, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';

const statsDir = process.env.BENCH_STATS_DIR;
const counts = { pid: process.pid, requests: 0, connections: 0, open: 0, gcMs: 0 };
const seen = new WeakSet();
let dirty = false;
let writing = false;

function flush(sync) {
  if (!statsDir || !dirty) return;
  dirty = false;
  const file = join(statsDir, `${process.pid}.json`);
  const text = JSON.stringify(counts);
  if (sync) {
    try {
      writeFileSync(file, text);
    } catch {}
    return;
  }
  if (writing) {
    dirty = true;
    return;
  }
  writing = true;
  // Written aside and renamed: the bench never reads a half-written file.
  writeFile(`${file}.tmp`, text, (err) => {
    if (err) return (writing = false);
    rename(`${file}.tmp`, file, () => (writing = false));
  });
}
if (statsDir) {
  // Time in garbage collection: tells a worker slowed by its heap from one given less CPU.
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) counts.gcMs += e.duration;
    dirty = true;
  }).observe({ entryTypes: ['gc'] });
  setInterval(flush, 100).unref();
  process.on('exit', () => flush(true));
}

function count(req) {
  counts.requests++;
  if (!seen.has(req.socket)) {
    seen.add(req.socket);
    counts.connections++;
    counts.open++;
    req.socket.once('close', closed);
  }
  dirty = true;
}

function closed() {
  counts.open--;
  dirty = true;
}

function hello(res) {
  res.setHeader('content-type', 'text/plain');
  res.end('Hello, world!\n');
}

function counting(req, res) {
  count(req);
  if (req.url === '/slow') setTimeout(hello, 20, res);
  else hello(res);
}

function minimal(req, res) {
  if (req.url === '/slow') return void setTimeout(hello, 20, res);
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '12' });
  res.end('hello world\n');
}

export default statsDir ? counting : minimal;
