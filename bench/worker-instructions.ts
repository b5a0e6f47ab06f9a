// Instructions one worker executes per request, counted by valgrind's callgrind: unlike CPU
// time, the count barely moves with what else the machine runs (without optimizing compiles,
// below: two copies of a build in one run within 0.1 %, runs apart within 2 %), so a change
// of a few percent in the per-request path is visible.
//
// Each variant runs under `valgrind --tool=callgrind` (about 50× slower, so requests are
// few): a plain node:http server with bench/app.mjs (what node:cluster's workers run), and
// ws-proxy-kit builds with --workers 1 (the master and the worker both under valgrind; only
// the worker is counted). After a warm-up the worker's counters are zeroed, `--requests`
// keep-alive requests are sent by autocannon (outside valgrind), and the counters dumped.
//
// node --import tsx bench/worker-instructions.ts [--requests 200000] [--connections 16]
//   [--cli name=path/to/dist/cli/main.js ...] [--flags "name=--access-logfile /dev/null"]
//   [--churn]      a new connection per request (Connection: close) instead of keep-alive
//   [--keep DIR]   keep each variant's callgrind file as DIR/NAME.callgrind (callgrind_annotate reads it)
//   [--proxy-headers]  send what the nginx site of `ws-proxy-kit init` adds (X-Forwarded-*, X-Real-IP, X-Request-Id);
//                  with --churn, as nginx's request without upstream keepalive (HTTP/1.0)
//   [--balanced]   leave connection balancing on (see below why it is off by default here)
//   [--idle S]     after the counted requests, count S seconds without load (0: not)
//
// Besides the total, each variant's count without V8's optimizing compiles: TurboFan runs on
// the main thread here (--single-threaded), and a few large compiles landing inside or outside
// the counted window moved totals by several thousand instructions per request between builds
// even after 40 000 warm-up requests. In a long-running server those compiles happen once;
// the "without compiles" column is the steady state, and the one to compare builds by.
//
// Full (mark-compact) collections come every hundred thousand requests or more, and one, with
// its incremental marking, took ~220 million instructions here: 5.5 k per request of a
// 40 000-request window (one build read 1.157× node:http with one in the window, 1.029× without).
// So 200 000 by default, and builds are compared within one run with no other valgrind
// alongside: some of V8's GC heuristics go by the clock, which a second valgrind slows.
//
// What runs on timers (the heartbeat to the master, once a second) is paid per second, not
// per request, and under valgrind a second holds ~50× fewer requests than at full speed. So
// each variant also idles for --idle seconds: its instructions per idle second times the
// seconds the counted load took is the part of the count that timers took; the last column
// leaves it out too (at full speed it is spread over ~50× more requests).
import autocannon from 'autocannon';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { start, childrenOf, stopAll, type Proc } from './procs.js';
import { ROOT, buildsFromArgs } from './engines.js';
import { churnLoad, PROXY_HEADERS } from './load.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '200000' },
    warmup: { type: 'string', default: '5000' },
    connections: { type: 'string', default: '16' },
    path: { type: 'string', default: '/' },
    cli: { type: 'string', multiple: true, default: [] },
    flags: { type: 'string', multiple: true, default: [] },
    keep: { type: 'string' },
    churn: { type: 'boolean', default: false },
    'proxy-headers': { type: 'boolean', default: false },
    balanced: { type: 'boolean', default: false },
    idle: { type: 'string', default: '5' },
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
const variants: Variant[] = [
  {
    name: 'node:http',
    launch: (socket) => start('node:http', 'valgrind', [...VALGRIND, ...NODE, plainServer, socket]),
    counted: (p) => p.pid,
  },
];
// valgrind slows the boot and the heartbeats: generous timeouts so the arbiter never steps in.
// Balancing's busy count runs on a timer (every 50 ms while connections are active): under
// valgrind's ~50× slowdown it lands on ~50× fewer requests each and measured ~0.7 k
// instructions per request that a real run (a count takes 4.4 µs at 16 connections, one per
// ~1000 requests at 20 k req/s) spreads to a few dozen. It is off here unless --balanced
// (its cost is measured on its own: docs/performance.md), or a build's --flags set it.
for (const build of buildsFromArgs(values.cli, values.flags, ['--timeout', '600', '--boot-timeout', '600'])) {
  const ownBalancing = values.flags.some((f) => f.startsWith(`${build.name}=`) && f.includes('--balance-connections'));
  const balancing = values.balanced || ownBalancing ? [] : ['--balance-connections', 'false'];
  variants.push({
    name: build.name,
    launch: (socket) =>
      start(build.name, 'valgrind', ['--trace-children=yes', ...VALGRIND, ...NODE, ...build.args(socket), ...balancing], { cwd: ROOT }),
    counted: (p) => {
      const [worker] = childrenOf(p.pid);
      if (!worker) throw new Error(`${build.name}: no worker process`);
      return worker;
    },
  });
}

async function load(socketPath: string, amount: number): Promise<void> {
  if (values.churn) {
    const r = await churnLoad(socketPath, Number(values.connections), values.path, Infinity, amount, values['proxy-headers']);
    if (r.errors || r.requests !== amount) throw new Error(`churn: ${r.errors} failed, ${r.requests} of ${amount} answered`);
    return;
  }
  const r = await autocannon({
    url: `http://localhost${values.path}`,
    socketPath,
    connections: Number(values.connections),
    amount,
    timeout: 120,
    headers: values['proxy-headers'] ? PROXY_HEADERS : {},
  });
  if (r.errors || r.non2xx || r.timeouts || r.requests.total !== amount)
    throw new Error(`errors: ${r.errors} non2xx: ${r.non2xx} timeouts: ${r.timeouts} total: ${r.requests.total}`);
}

/** The dump's total, and what V8's optimizing compiler took of it (inclusive cost of its runtime entries). */
function summary(pid: number, name: string): { total: number; compiles: number } {
  const dumps = readdirSync(dir).filter((f) => f.startsWith(`callgrind.${pid}.`));
  const file = join(dir, dumps.sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop())).at(-1)!);
  if (values.keep) copyFileSync(file, join(values.keep, `${name.replace(/\W/g, '_')}.callgrind`));
  const total = Number(/^summary: (\d+)/m.exec(readFileSync(file, 'utf8'))![1]);
  const annotated = execFileSync('callgrind_annotate', ['--inclusive=yes', '--threshold=100', file], {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  let compiles = 0;
  // The runtime entries JS code calls to optimize (none calls another): Runtime_CompileOptimized
  // and its OSR twin (Node 20-22's V8), Runtime_Optimize{Turbofan,Maglev}Eager and the
  // Runtime_Compile{Turbofan,Maglev}_* ones (Node 24's).
  const entry = /^\s*([\d,]+) .*Runtime_(?:CompileOptimized\w*|Optimize(?:Turbofan|Maglev)\w*|Compile(?:Turbofan|Maglev)\w*)\(/gm;
  for (const m of annotated.matchAll(entry)) compiles += Number(m[1]!.replaceAll(',', ''));
  return { total, compiles };
}

/** Zeroes the counters of `pid`, runs `during`, dumps them: the instructions in between, and how long it took. */
async function counted(pid: number, name: string, during: () => Promise<unknown>) {
  execFileSync('callgrind_control', ['-z', String(pid)], { stdio: 'ignore' });
  const t0 = performance.now();
  await during();
  const seconds = (performance.now() - t0) / 1000;
  execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore' });
  return { ...summary(pid, name), seconds };
}

const results: { name: string; perRequest: number; withoutCompiles: number; withoutTimers: number; timerShare: number }[] = [];
try {
  for (const v of variants) {
    const socket = join(dir, `${v.name.replace(/\W/g, '_')}.sock`);
    const proc = v.launch(socket);
    await proc.waitFor((l) => typeof l.msg === 'string' && /^ready/.test(l.msg), 600_000);
    const pid = v.counted(proc);
    await load(socket, Number(values.warmup));
    const { total, compiles, seconds } = await counted(pid, v.name, () => load(socket, requests));
    const idleSeconds = Number(values.idle);
    const idle = idleSeconds > 0 ? await counted(pid, `${v.name}-idle`, () => new Promise((r) => setTimeout(r, idleSeconds * 1000))) : null;
    const timers = idle ? ((idle.total - idle.compiles) / idle.seconds) * seconds : 0;
    const result = {
      name: v.name,
      perRequest: total / requests,
      withoutCompiles: (total - compiles) / requests,
      withoutTimers: (total - compiles - timers) / requests,
      timerShare: timers / requests,
    };
    results.push(result);
    process.stderr.write(
      `${v.name}: ${Math.round(result.perRequest)} instructions/request, ${Math.round(result.withoutCompiles)} without optimizing compiles, ` +
        `${Math.round(result.withoutTimers)} without timers too (load ${seconds.toFixed(1)} s, timers ${Math.round(result.timerShare)} a request)\n`,
    );
    await proc.stop('SIGTERM', 30_000);
  }
} finally {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}

const [base] = results;
console.log(
  `\npath=${values.path} requests=${requests} connections=${values.connections}${values['proxy-headers'] ? ' proxy-headers' : ''}\n`,
);
const ratio = (a: number, b: number) => `${(a / b).toFixed(3)}×`;
console.log(
  '| variant | instructions/request | × node:http | without optimizing compiles | × node:http | without timers too | × node:http |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(
    `| ${r.name} | ${Math.round(r.perRequest)} | ${ratio(r.perRequest, base!.perRequest)} | ${Math.round(r.withoutCompiles)} | ` +
      `${ratio(r.withoutCompiles, base!.withoutCompiles)} | ${Math.round(r.withoutTimers)} | ${ratio(r.withoutTimers, base!.withoutTimers)} |`,
  );
}
