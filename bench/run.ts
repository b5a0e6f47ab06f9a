// The side-by-side benchmark: the same hello app on raw node:http, node:cluster
// (both policies), PM2, ws-proxy-kit and Gunicorn, loaded on the UNIX socket and through
// nginx, in interleaved rounds. Usage: npm run bench -- [--duration 2] [--rounds 3] [--json]
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ENGINES, EXTRA_ENGINES, parseCliSpec, wsProxyKitEngine, type RunningEngine } from './engines.js';
import { autocannonLoad, wrkLoad, SHAPES, EXTRA_SHAPES, SHAPE_LOAD, type Shape, type LoadResult } from './load.js';
import { startNginx, type NginxFront } from './nginx.js';
import { cpuTicks, machineTicks, rssBytes, stopAll, CLOCK_TICKS } from './procs.js';
import { addRatios, summarize, markdown, median, type Cell, type EngineInfo, type Path } from './report.js';

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    workers: { type: 'string', default: '2' },
    engines: { type: 'string', default: ENGINES.map((e) => e.name).join(',') },
    paths: { type: 'string', default: 'socket,nginx' },
    shapes: { type: 'string', default: SHAPES.join(',') },
    reloads: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    'pool-warmup': { type: 'string', default: '1' },
    app: { type: 'string', default: 'minimal' },
    cli: { type: 'string', multiple: true, default: [] },
    json: { type: 'boolean', default: false },
    tmpdir: { type: 'string', default: tmpdir() },
    help: { type: 'boolean', default: false },
  },
});

if (opts.help) {
  console.log(`usage: npm run bench -- [options]
  --duration S     seconds of load per cell (default 2)
  --rounds N       interleaved rounds; medians are reported (default 3)
  --workers N      workers for every pooled engine (default 2)
  --engines LIST   subset of ${ENGINES.map((e) => e.name).join(',')}
                   (experiments, only when named: ${EXTRA_ENGINES.map((e) => e.name).join(',')})
  --paths LIST     socket,nginx
  --shapes LIST    ${SHAPES.join(',')} (also, only when named: ${EXTRA_SHAPES.join(',')})
  --reloads N      HUP reloads to time per engine that has one (default 3; 0 skips)
  --warmup S       seconds of keep-alive load per engine before the rounds (default 1; 0 skips)
  --pool-warmup S  through nginx, with upstream keepalive: seconds of the same load right before
                   each measured one, so nginx's upstream connections are open (default 1; 0 skips)
  --app MODE       minimal (default): the smallest listener, per-worker figures from /proc
                   (fairness is the CPU each worker got); counting: the app also counts requests
                   and connections per worker (fairness by requests), at a cost to every engine
  --cli NAME=PATH  one more engine: the ws-proxy-kit build at PATH (dist/cli/main.js of a copy),
                   to compare a change side by side (repeatable)
  --json           print JSON (with the markdown table in "markdown") instead of markdown
  --tmpdir DIR     where the temporary directory for sockets and nginx goes (default the OS's)`);
  process.exit(0);
}

const countInApp = opts.app === 'counting';
if (opts.app !== 'minimal' && !countInApp) throw new Error(`--app ${opts.app}: use minimal or counting`);
const durationS = Number(opts.duration);
const rounds = Number(opts.rounds);
const workers = Number(opts.workers);
const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const paths = list(opts.paths) as Path[];
const shapes = list(opts.shapes) as Shape[];
for (const s of shapes)
  if (![...SHAPES, ...EXTRA_SHAPES].includes(s)) throw new Error(`unknown shape ${s}: use ${[...SHAPES, ...EXTRA_SHAPES].join(', ')}`);
for (const p of paths) if (p !== 'socket' && p !== 'nginx') throw new Error(`unknown path ${p}: use socket, nginx`);
const builds = opts.cli.map((spec) => {
  const { name, cli } = parseCliSpec(spec);
  return wsProxyKitEngine(name, undefined, resolve(cli));
});
const wanted = [...list(opts.engines), ...builds.map((b) => b.name)];
const ALL_ENGINES = [...ENGINES, ...EXTRA_ENGINES, ...builds];
for (const name of wanted)
  if (!ALL_ENGINES.some((e) => e.name === name))
    throw new Error(`unknown engine ${name}: use ${ALL_ENGINES.map((e) => e.name).join(', ')}`);

const progress = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(opts.tmpdir, 'wspk-bench-'));
const running: RunningEngine[] = [];
let nginx: NginxFront | null = null;

async function teardown(): Promise<void> {
  for (const e of running.splice(0)) {
    try {
      await e.stop();
    } catch (err) {
      progress(`stopping ${e.name}: ${String(err)}`);
    }
  }
  if (nginx) await nginx.stop().catch(() => {});
  nginx = null;
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    progress(`${sig}: stopping everything`);
    void teardown().finally(() => process.exit(130));
  });
}

interface WorkerCounts {
  requests: number;
  connections: number;
  /** Not written by every app (the WSGI one): then counted as none. */
  open?: number;
  gcMs?: number;
}

function workerCounts(e: RunningEngine): Map<number, WorkerCounts> {
  const out = new Map<number, WorkerCounts>();
  for (const f of readdirSync(e.statsDir)) {
    if (!f.endsWith('.json')) continue; // PID.json.tmp: being written
    try {
      const s = JSON.parse(readFileSync(join(e.statsDir, f), 'utf8')) as WorkerCounts & { pid: number };
      out.set(s.pid, s);
    } catch {
      // gone (the worker exited): nothing to count
    }
  }
  return out;
}

/**
 * Connections the engine's workers hold now: from the app's counts (--app counting), else
 * the accepted sockets bound to its listening path (/proc/net/unix lists them with the path).
 */
function openConnections(e: RunningEngine): number {
  if (countInApp) return [...workerCounts(e).values()].reduce((a, c) => a + (c.open ?? 0), 0);
  // ws-proxy-kit binds under a staging name (.NAME.PID beside it) and renames the file once it
  // listens: the kernel keeps the name it was bound to.
  const slash = e.socket.lastIndexOf('/') + 1;
  const stagingPrefix = `${e.socket.slice(0, slash)}.${e.socket.slice(slash)}.`;
  const ours = (path: string | undefined) =>
    path === e.socket || (path?.startsWith(stagingPrefix) && /^\d+$/.test(path.slice(stagingPrefix.length)));
  let open = 0;
  for (const line of readFileSync('/proc/net/unix', 'latin1').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[5] === '03' && ours(f[7])) open++; // 03: connected
  }
  return open;
}

/**
 * Until the engine's workers hold no connection: nginx keeps its upstream connections 1 s
 * after a cell, and closing them in the middle of the next engine's cell would charge that
 * engine with the work. Each cell starts from no connections, as the first one did.
 */
async function waitIdle(e: RunningEngine): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const open = openConnections(e);
    if (open <= 0) return;
    if (Date.now() > deadline) {
      progress(`${e.name}: ${open} connections still open 10 s after the load; going on`);
      return;
    }
    await sleep(50);
  }
}

/**
 * Until the workers stop working (their request counts, or without them their CPU time, hold
 * still; 10 s at most): the warm-up's requests must be done before the measured cell, and an
 * engine slower than the load (Gunicorn's sync workers on the slow shape: 256 requests queued
 * at ~100 req/s) would otherwise finish the warm-up's queue inside it and show 0 req/s.
 */
async function waitServed(e: RunningEngine): Promise<void> {
  const deadline = Date.now() + 10_000;
  const progressMade = () =>
    countInApp ? [...workerCounts(e).values()].reduce((a, c) => a + c.requests, 0) : e.workers().reduce((a, p) => a + cpuTicks(p), 0);
  let last = -1;
  for (;;) {
    await sleep(250); // the app writes its counts every 100 ms
    const now = progressMade();
    if (now === last || Date.now() > deadline) return;
    last = now;
  }
}

async function measureCell(round: number, path: Path, shape: Shape, e: RunningEngine): Promise<Cell> {
  // Each cell starts with no connection (waitIdle). Through nginx, a deployment's upstream
  // connections stay open for hours; opening all 64 at once is a moment of a cell that
  // would weigh on the keep-alive figure (balancing moves some of them first). Open them
  // unmeasured: nginx keeps them for the measured run that follows at once.
  const poolWarmupS = Number(opts['pool-warmup']);
  if (path === 'nginx' && shape !== 'churn' && poolWarmupS > 0) {
    await wrkLoad(nginx!.url(e.name, shape), shape, poolWarmupS, availableParallelism(), SHAPE_LOAD[shape].pool);
    await waitServed(e);
  }
  const workerPids = e.workers();
  const before = countInApp ? workerCounts(e) : new Map<number, WorkerCounts>();
  const ticks0 = new Map([...workerPids, ...(e.master ? [e.master] : [])].map((p) => [p, cpuTicks(p)]));
  const machine0 = machineTicks();
  const t0 = performance.now();
  let load: LoadResult;
  if (path === 'socket') load = await autocannonLoad(e.socket, shape, durationS);
  else load = await wrkLoad(nginx!.url(e.name, shape), shape, durationS, availableParallelism());
  const wallS = (performance.now() - t0) / 1000;
  const machine1 = machineTicks();
  const delta = (pid: number) => cpuTicks(pid) - (ticks0.get(pid) ?? 0);
  const masterTicks = e.master ? delta(e.master) : null;
  const workerTicks = workerPids.reduce((a, p) => a + delta(p), 0);
  if (countInApp) await sleep(300); // the app writes its counts every 100 ms
  const after = countInApp ? workerCounts(e) : new Map<number, WorkerCounts>();
  const per = workerPids.map((pid) => ({
    requests: (after.get(pid)?.requests ?? 0) - (before.get(pid)?.requests ?? 0),
    connections: (after.get(pid)?.connections ?? 0) - (before.get(pid)?.connections ?? 0),
    cpuMs: (delta(pid) / CLOCK_TICKS) * 1000,
    gcMs: (after.get(pid)?.gcMs ?? 0) - (before.get(pid)?.gcMs ?? 0),
  }));
  // Fairness: the requests each worker served, or without the app's counts the CPU it spent
  // (the same work per request: the hello app's answers cost the same).
  const share = (p: (typeof per)[number]) => (countInApp ? p.requests : p.cpuMs);
  per.sort((a, b) => share(b) - share(a));
  const served = countInApp ? per.map((p) => p.requests) : [];
  const shares = per.map(share);
  return {
    round,
    path,
    shape,
    engine: e.name,
    ...load,
    workerRequests: served,
    workerConnections: per.map((p) => p.connections),
    // Tells an unfair round's cause apart: a worker the kernel gave less CPU, or one given less work.
    workerCpuMs: per.map((p) => Math.round(p.cpuMs)),
    workerGcMs: per.map((p) => Math.round(p.gcMs)),
    // Share of the machine's CPU time its host gave to others (VM steal): a noisy cell.
    steal: (machine1.steal - machine0.steal) / Math.max(1, machine1.total - machine0.total),
    // null when the engine reported no counts (or one process): nothing to compare; ∞ when a worker got none.
    fairness: shares.length > 1 && shares[0]! > 0 ? (shares.at(-1)! > 0 ? shares[0]! / shares.at(-1)! : Infinity) : null,
    masterCpuShare: masterTicks === null ? null : masterTicks / Math.max(1, masterTicks + workerTicks),
    masterCpuMachine: masterTicks === null ? null : masterTicks / CLOCK_TICKS / (wallS * availableParallelism()),
    // CPU the server spent per request: unlike req/s, barely moved by other load on the machine.
    cpuUsPerRequest: load.requests > 0 ? (((masterTicks ?? 0) + workerTicks) / CLOCK_TICKS / load.requests) * 1e6 : NaN,
  };
}

/** The first line of the error and the last line of the server's output. */
function startFailure(err: unknown): string {
  const lines = String((err as Error).message ?? err)
    .trim()
    .split('\n');
  return (lines.length > 1 ? `${lines[0]} ${lines.at(-1)}` : lines[0]!).slice(0, 400);
}

async function main(): Promise<void> {
  const skipped: { engine: string; reason: string }[] = [];
  if (paths.includes('nginx')) {
    for (const [cmd, pkg] of [
      ['nginx', 'nginx'],
      ['wrk', 'wrk'],
    ] as const) {
      if (spawnSync(cmd, ['-v'], { stdio: 'ignore' }).error)
        throw new Error(`${cmd} is not installed: apt-get install -y ${pkg}, or run with --paths socket`);
    }
  }
  const infos: EngineInfo[] = [];
  for (const engine of ALL_ENGINES.filter((e) => wanted.includes(e.name))) {
    const reason = engine.missing();
    if (reason) {
      skipped.push({ engine: engine.name, reason });
      progress(`skip ${engine.name}: ${reason}`);
      continue;
    }
    try {
      progress(`starting ${engine.name}`);
      const r = await engine.start({ dir, workers, countInApp });
      running.push(r);
      infos.push({
        engine: r.name,
        readyMs: r.readyMs,
        idleWorkerRssMB: r.workers().map((p) => rssBytes(p) / 2 ** 20),
        idleMasterRssMB: r.master ? rssBytes(r.master) / 2 ** 20 : null,
        masterRssMB: null,
        workerRssMB: [],
        reloadMs: [],
        pids: [],
      });
    } catch (err) {
      skipped.push({ engine: engine.name, reason: `could not start: ${startFailure(err)}` });
      progress(`skip ${engine.name}: ${String(err)}`);
    }
  }
  if (running.length === 0) throw new Error('no engine could run');
  if (paths.includes('nginx'))
    nginx = await startNginx(
      dir,
      running.map((e) => ({ name: e.name, socket: e.socket })),
      availableParallelism(),
    );

  if (Number(opts.warmup) > 0) {
    for (const e of running) {
      progress(`warm-up ${e.name}`);
      await autocannonLoad(e.socket, 'keepalive', Number(opts.warmup));
    }
  }

  const cells: Cell[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const path of paths) {
      for (const shape of shapes) {
        // The order rotates each round: no engine always follows the same one.
        const order = running.map((_, i) => running[(i + round - 1) % running.length]!);
        for (const e of order) {
          const cell = await measureCell(round, path, shape, e);
          await waitIdle(e);
          progress(
            `round ${round} ${path} ${shape} ${e.name}: ${Math.round(cell.rps)} req/s, p99 ${cell.p99.toFixed(2)} ms, errors ${cell.errors}, workers ${(countInApp ? cell.workerRequests : cell.workerCpuMs.map((ms) => `${ms} ms`)).join('/')}, steal ${(cell.steal * 100).toFixed(0)}%`,
          );
          cells.push(cell);
        }
      }
    }
  }

  for (const e of running) {
    const info = infos.find((i) => i.engine === e.name)!;
    info.masterRssMB = e.master ? rssBytes(e.master) / 2 ** 20 : null;
    info.workerRssMB = e.workers().map((p) => rssBytes(p) / 2 ** 20);
    info.pids = [...(e.master ? [e.master] : []), ...e.workers()];
    if (e.reload) {
      for (let i = 0; i < Number(opts.reloads); i++) {
        try {
          info.reloadMs.push(await e.reload());
          progress(`reload ${e.name}: ${Math.round(info.reloadMs.at(-1)!)} ms`);
        } catch (err) {
          info.reloadError = startFailure(err);
          progress(`reload ${e.name} failed: ${info.reloadError}`);
          break;
        }
      }
    }
  }

  addRatios(cells);
  const rows = summarize(cells);
  const meta = {
    duration: `${durationS}s`,
    rounds,
    workers,
    cpus: availableParallelism(),
    node: process.version,
    connections: shapes.map((s) => `${s}:${SHAPE_LOAD[s].connections}`).join(' '),
    app: countInApp ? 'counting (fairness: requests per worker)' : 'minimal (fairness: CPU per worker)',
  };
  for (const e of running) {
    const info = infos.find((i) => i.engine === e.name)!;
    info.pids = [...new Set([...info.pids, ...(e.master ? [e.master] : []), ...e.workers()])];
  }
  if (opts.json) {
    console.log(
      JSON.stringify({ meta, rows, engines: infos, skipped, cells, markdown: markdown(rows, infos, skipped, meta, cells) }, null, 2),
    );
  } else {
    console.log(markdown(rows, infos, skipped, meta, cells));
    const fairCells = cells.filter(
      (c) => c.path === 'nginx' && (c.shape === 'keepalive' || c.shape === 'spare') && c.workerRequests.length > 1,
    );
    if (fairCells.length) {
      console.log('Requests (new connections, CPU ms, of which GC ms) per worker, nginx keep-alive, each round:');
      for (const c of fairCells)
        console.log(
          `- round ${c.round} ${c.shape} ${c.engine}: ${c.workerRequests.map((r, i) => `${r} (${c.workerConnections[i]}, ${c.workerCpuMs[i]} ms, ${c.workerGcMs[i]} ms)`).join(' / ')}, steal ${(c.steal * 100).toFixed(0)}%`,
        );
    }
    const reloads = infos.filter((i) => i.reloadMs.length);
    if (reloads.length)
      console.log(
        `\nReloads: ${reloads.map((i) => `${i.engine} median ${Math.round(median(i.reloadMs))} ms of ${i.reloadMs.map((x) => Math.round(x)).join(', ')}`).join('; ')}`,
      );
  }
}

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.error(err instanceof Error ? err.message : err);
} finally {
  await teardown();
}
process.exit(failed ? 1 : 0);
