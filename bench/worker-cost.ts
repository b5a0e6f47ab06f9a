// What one worker spends per request: CPU time (utime + stime from /proc) of the single
// worker process divided by the requests it served, for node:cluster SCHED_NONE with 1
// worker (the bare node:http reference) and ws-proxy-kit builds with --workers 1.
// CPU time per request barely moves with what else the machine runs, unlike req/s.
//
// node --import tsx bench/worker-cost.ts [--rounds 5] [--requests 60000] [--shape keepalive|slow|churn]
// (churn: a new connection per request, for --duration seconds instead of a request count)
//   [--proxy-headers]  churn only: the request nginx sends upstream without keepalive (HTTP/1.0,
//                  the init site's forwarding fields)
//   [--cli name=path/to/dist/cli/main.js ...] [--flags name="--access-logfile -" ...]
// Each --cli adds a ws-proxy-kit build to compare (default: this checkout's dist as "ws-proxy-kit").
import autocannon from 'autocannon';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { start, cpuTicks, childrenOf, stopAll, CLOCK_TICKS, type Proc } from './procs.js';
import { ROOT, buildsFromArgs } from './engines.js';
import { churnLoad } from './load.js';
import { median } from './report.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    requests: { type: 'string', default: '60000' },
    connections: { type: 'string', default: '32' },
    shape: { type: 'string', default: 'keepalive' },
    duration: { type: 'string', default: '4' },
    cli: { type: 'string', multiple: true, default: [] },
    flags: { type: 'string', multiple: true, default: [] },
    'proxy-headers': { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const requests = Number(values.requests);
const connections = Number(values.connections);
const path = values.shape === 'slow' ? '/slow' : '/';

interface Variant {
  name: string;
  launch(socket: string): Proc;
}
const variants: Variant[] = [
  {
    name: 'cluster-none',
    launch: (socket) =>
      start('cluster-none', process.execPath, [join(ROOT, 'bench/servers/cluster.mjs'), socket, '1'], {
        env: { ...process.env, NODE_CLUSTER_SCHED_POLICY: 'none' },
      }),
  },
];
for (const build of buildsFromArgs(values.cli, values.flags)) {
  variants.push({ name: build.name, launch: (socket) => start(build.name, process.execPath, build.args(socket), { cwd: ROOT }) });
}

async function load(socketPath: string, amount: number): Promise<number> {
  if (values.shape === 'churn') {
    const r = await churnLoad(
      socketPath,
      connections,
      '/',
      amount === requests ? Number(values.duration) : 1,
      Infinity,
      values['proxy-headers'],
    );
    if (r.errors) throw new Error(`errors: ${r.errors}`);
    return r.requests;
  }
  const r = await autocannon({ url: `http://localhost${path}`, socketPath, connections, amount, timeout: 10 });
  if (r.errors || r.non2xx || r.timeouts) throw new Error(`errors: ${r.errors} non2xx: ${r.non2xx} timeouts: ${r.timeouts}`);
  return r.requests.total;
}

const dir = mkdtempSync(join(tmpdir(), 'wpk-worker-cost-'));
const results = new Map<string, number[]>(variants.map((v) => [v.name, []]));
try {
  for (let round = 1; round <= rounds; round++) {
    for (const v of variants) {
      const socket = join(dir, `${v.name}.sock`);
      const proc = v.launch(socket);
      await proc.waitFor((l) => typeof l.msg === 'string' && /^ready/.test(l.msg), 30_000);
      const [worker] = childrenOf(proc.pid);
      if (!worker) throw new Error(`${v.name}: no worker process`);
      await load(socket, Math.min(20_000, requests / 3)); // warm up the JIT
      const before = cpuTicks(worker);
      const served = await load(socket, requests);
      const usPerReq = (((cpuTicks(worker) - before) / CLOCK_TICKS) * 1e6) / served;
      results.get(v.name)!.push(usPerReq);
      await proc.stop('SIGTERM', 5000);
      rmSync(socket, { force: true });
      process.stderr.write(`round ${round} ${v.name}: ${usPerReq.toFixed(1)} µs/req\n`);
    }
  }
} finally {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}

const base = median(results.get('cluster-none')!);
console.log(
  `\nshape=${values.shape}${values['proxy-headers'] ? ' proxy-headers' : ''} requests=${requests} connections=${connections} rounds=${rounds}\n`,
);
console.log('| variant | worker CPU µs/req (median) | × cluster-none | rounds |');
console.log('|---|---:|---:|---|');
for (const [name, xs] of results)
  console.log(`| ${name} | ${median(xs).toFixed(1)} | ${(median(xs) / base).toFixed(2)}× | ${xs.map((x) => x.toFixed(1)).join(', ')} |`);
