// The hello app every engine serves (the same module, loaded by each server).
// GET / answers at once; GET /slow waits 20 ms on a timer first (the "slow app" shape).
// When BENCH_STATS_DIR is set, each process counts its requests and connections and
// writes them to BENCH_STATS_DIR/<pid>.json (at most every 100 ms, off the request path),
// so the bench can tell how evenly the workers shared the load.
import { writeFile, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const statsDir = process.env.BENCH_STATS_DIR;
const counts = { pid: process.pid, requests: 0, connections: 0 };
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
  writeFile(file, text, () => (writing = false));
}
if (statsDir) {
  setInterval(flush, 100).unref();
  process.on('exit', () => flush(true));
}

function count(req) {
  counts.requests++;
  if (!seen.has(req.socket)) {
    seen.add(req.socket);
    counts.connections++;
  }
  dirty = true;
}

function hello(res) {
  res.setHeader('content-type', 'text/plain');
  res.end('Hello, world!\n');
}

export default function app(req, res) {
  if (statsDir) count(req);
  if (req.url === '/slow') setTimeout(hello, 20, res);
  else hello(res);
}
