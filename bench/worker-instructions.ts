// Instructions one worker executes per request, counted by valgrind's callgrind: unlike CPU
// time, the count does not move with what else the machine runs (repeat runs agree within
// ~0.5 %), so a change of a few percent in the per-request path is visible.
//
// Each variant runs under `valgrind --tool=callgrind` (about 50× slower, so requests are
// few): a plain node:http server with bench/app.mjs (what node:cluster's workers run), and
// ws-proxy-kit builds with --workers 1 (the master and the worker both under valgrind; only
// the worker is counted). After a warm-up the worker's counters are zeroed, `--requests`
// keep-alive requests are sent by autocannon (outside valgrind), and the counters dumped.
//
// node --import tsx bench/worker-instructions.ts [--requests 10000] [--connections 16]
//   [--cli name=path/to/dist/cli/main.js ...] [--flags "name=--access-logfile /dev/null"]
//   [--churn]      a new connection per request (Connection: close) instead of keep-alive
//   [--keep DIR]   keep each variant's callgrind file as DIR/NAME.callgrind (callgrind_annotate reads it)
import autocannon from 'autocannon';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { start, childrenOf, stopAll, type Proc } from './procs.js';
import { ROOT, buildsFromArgs } from './engines.js';
import { churnLoad } from './load.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '10000' },
    warmup: { type: 'string', default: '5000' },
    connections: { type: 'string', default: '16' },
    path: { type: 'string', default: '/' },
    cli: { type: 'string', multiple: true, default: [] },
    flags: { type: 'string', multiple: true, default: [] },
    keep: { type: 'string' },
    churn: { type: 'boolean', default: false },
  },
});
const requests = Number(values.requests);
const APP = join(ROOT, 'bench/app.mjs');
const dir = mkdtempSync(join(tmpdir(), 'wpk-instr-'));
const VALGRIND = ['--tool=callgrind', '--smc-check=all-non-file', `--callgrind-out-file=${dir}/callgrind.%p`];
// --single-threaded: no background JIT threads, so compilation happens at the same points every run.
const NODE = [process.execPath, '--single-threaded'];

interface Variant {
  name: string;
  launch(socket: string): Proc;
  /** The pid whose instructions count. */
  counted(proc: Proc): number;
}

const plainServer = join(dir, 'plain.mjs');
writeFileSync(
  plainServer,
  `import http from 'node:http';\nconst { default: app } = await import(${JSON.stringify(APP)});\n` +
    `http.createServer({ keepAliveTimeout: 5000 }, app).listen(process.argv[2], () => console.error(JSON.stringify({ msg: 'ready' })));\n`,
);
const variants: Variant[] = [{ name: 'node:http', launch: (socket) => start('node:http', 'valgrind', [...VALGRIND, ...NODE, plainServer, socket]), counted: (p) => p.pid }];
// valgrind slows the boot and the heartbeats: generous timeouts so the arbiter never steps in.
for (const build of buildsFromArgs(values.cli, values.flags, ['--timeout', '600', '--boot-timeout', '600'])) {
  variants.push({
    name: build.name,
    launch: (socket) => start(build.name, 'valgrind', ['--trace-children=yes', ...VALGRIND, ...NODE, ...build.args(socket)], { cwd: ROOT }),
    counted: (p) => {
      const [worker] = childrenOf(p.pid);
      if (!worker) throw new Error(`${build.name}: no worker process`);
      return worker;
    },
  });
}

async function load(socketPath: string, amount: number): Promise<void> {
  if (values.churn) {
    const r = await churnLoad(socketPath, Number(values.connections), values.path, Infinity, amount);
    if (r.errors || r.requests !== amount) throw new Error(`churn: ${r.errors} failed, ${r.requests} of ${amount} answered`);
    return;
  }
  const r = await autocannon({ url: `http://localhost${values.path}`, socketPath, connections: Number(values.connections), amount, timeout: 120 });
  if (r.errors || r.non2xx || r.timeouts || r.requests.total !== amount) throw new Error(`errors: ${r.errors} non2xx: ${r.non2xx} timeouts: ${r.timeouts} total: ${r.requests.total}`);
}

function summary(pid: number, name: string): number {
  const files = readdirSync(dir).filter((f) => f.startsWith(`callgrind.${pid}.`));
  const file = join(dir, files.sort().at(-1)!);
  if (values.keep) copyFileSync(file, join(values.keep, `${name.replace(/\W/g, '_')}.callgrind`));
  const text = readFileSync(file, 'utf8');
  return Number(/^summary: (\d+)/m.exec(text)![1]);
}

const results: { name: string; perRequest: number }[] = [];
try {
  for (const v of variants) {
    const socket = join(dir, `${v.name.replace(/\W/g, '_')}.sock`);
    const proc = v.launch(socket);
    await proc.waitFor((l) => typeof l.msg === 'string' && /^ready/.test(l.msg), 600_000);
    const pid = v.counted(proc);
    await load(socket, Number(values.warmup));
    execFileSync('callgrind_control', ['-z', String(pid)], { stdio: 'ignore' });
    await load(socket, requests);
    execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore' });
    const perRequest = summary(pid, v.name) / requests;
    results.push({ name: v.name, perRequest });
    process.stderr.write(`${v.name}: ${Math.round(perRequest)} instructions/request\n`);
    await proc.stop('SIGTERM', 30_000);
  }
} finally {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}

const base = results[0]!.perRequest;
console.log(`\npath=${values.path} requests=${requests} connections=${values.connections}\n`);
console.log('| variant | instructions/request | × node:http |');
console.log('|---|---:|---:|');
for (const r of results) console.log(`| ${r.name} | ${Math.round(r.perRequest)} | ${(r.perRequest / base).toFixed(2)}× |`);
