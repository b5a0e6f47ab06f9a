// The adaptive pool under a load that rises and falls: a CPU-bound app (each request
// computes for --work-ms) behind nginx (the site's upstream keepalive), three pools side by
// side in turn: fixed at --workers, fixed at --max-workers, and adaptive between the two.
// The load comes from keep-alive clients that honour `Connection: close` (a Node http.Agent),
// so every failed request counts. Prints the adaptive pool's size over time against the load,
// and for each pool the busy phase's req/s and p99 and the requests lost.
//
// node --import tsx bench/adaptive.ts [--workers 1] [--max-workers 3] [--work-ms 4]
//   [--phases "1x6,8x14,1x8,0x16"]   concurrency x seconds, in order
//   [--scale-down-delay 5]
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from './engines.js';
import { startNginx } from './nginx.js';
import { start, stopAll } from './procs.js';
import { sendControl } from '../src/arbiter/control-socket.js';

const { values: o } = parseArgs({
  options: {
    workers: { type: 'string', default: '1' },
    'max-workers': { type: 'string', default: '3' },
    'work-ms': { type: 'string', default: '4' },
    phases: { type: 'string', default: '1x6,8x14,1x8,0x16' },
    'scale-down-delay': { type: 'string', default: '5' },
  },
});
const phases = o.phases.split(',').map((p) => {
  const [c, s] = p.split('x').map(Number);
  return { concurrency: c!, seconds: s! };
});
const CLI = join(ROOT, 'dist/cli/main.js');
const APP = join(ROOT, 'test/fixtures/cpu-app.mjs');
const dir = mkdtempSync(join(tmpdir(), 'wspk-adaptive-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

interface Second {
  t: number;
  concurrency: number;
  ok: number;
  failed: number;
  size: number | null;
  busy: number | null;
}

async function runPool(
  name: string,
  flags: string[],
  port: number,
): Promise<{ seconds: Second[]; latencies: number[]; busyPhase: number[] }> {
  const sock = join(dir, `${name}.sock`);
  const server = start(
    name,
    process.execPath,
    [CLI, APP, '-b', `unix:${sock}`, '--log-format', 'json', '--scale-down-delay', o['scale-down-delay'], ...flags],
    {
      cwd: ROOT,
    },
  );
  await server.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('ready'), 30_000);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const seconds: Second[] = [];
  const latencies: number[] = [];
  const busyPhase: number[] = [];
  let ok = 0;
  let failed = 0;
  let concurrency = 0;
  let running = 0;
  let stopped = false;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const req = http.get({ host: '127.0.0.1', port, path: `/?ms=${o['work-ms']}`, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) {
            ok++;
            latencies.push(performance.now() - t0);
          } else failed++;
          resolve();
        });
      });
      req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        failed++;
        resolve();
      });
    });
  const loop = async (i: number) => {
    running++;
    while (!stopped && i < concurrency) await one();
    running--;
  };
  const t0 = Date.now();
  const sampler = setInterval(async () => {
    const reply = await sendControl(join(dir, `${name}.ctl`), { command: 'status', args: [] }, 2000).catch(() => null);
    const pool = reply?.ok ? (reply.result as { pool: { size: number; busyPercent: number | null } }).pool : null;
    seconds.push({
      t: Math.round((Date.now() - t0) / 1000),
      concurrency,
      ok,
      failed,
      size: pool?.size ?? null,
      busy: pool?.busyPercent ?? null,
    });
    ok = failed = 0;
  }, 1000);
  for (const phase of phases) {
    concurrency = phase.concurrency;
    for (let i = running; i < concurrency; i++) void loop(i);
    const from = latencies.length;
    await new Promise((r) => setTimeout(r, phase.seconds * 1000));
    if (phase.concurrency === Math.max(...phases.map((p) => p.concurrency))) busyPhase.push(...latencies.slice(from));
  }
  stopped = true;
  while (running > 0) await new Promise((r) => setTimeout(r, 20));
  clearInterval(sampler);
  agent.destroy();
  await server.stop('SIGTERM', 30_000);
  return { seconds, latencies, busyPhase };
}

const pools: [string, string[]][] = [
  [`fixed-${o.workers}`, ['--workers', o.workers]],
  [`fixed-${o['max-workers']}`, ['--workers', o['max-workers']]],
  [`adaptive-${o.workers}-${o['max-workers']}`, ['--workers', o.workers, '--max-workers', o['max-workers']]],
];
const nginx = await startNginx(
  dir,
  pools.map(([name]) => ({ name, socket: join(dir, `${name}.sock`) })),
  2,
);
try {
  const results = [];
  for (const [name, flags] of pools) {
    process.stderr.write(`[adaptive] ${name}\n`);
    const port = Number(new URL(nginx.url(name, 'keepalive')).port);
    results.push({ name, ...(await runPool(name, flags, port)) });
  }
  const adaptive = results.at(-1)!;
  console.log(`Load: ${o.phases} (concurrency x seconds), ${o['work-ms']} ms of CPU per request, through nginx (upstream keepalive).\n`);
  console.log(
    `The adaptive pool, second by second:\n\n| s | clients | req/s | failed | pool size | busy % |\n|---:|---:|---:|---:|---:|---:|`,
  );
  for (const s of adaptive.seconds)
    console.log(`| ${s.t} | ${s.concurrency} | ${s.ok} | ${s.failed} | ${s.size ?? '-'} | ${s.busy ?? '-'} |`);
  console.log(`\n| pool | busy phase req/s (median second) | p50 ms | p99 ms | failed requests (whole run) |\n|---|---:|---:|---:|---:|`);
  const top = Math.max(...phases.map((p) => p.concurrency));
  for (const r of results) {
    const busySeconds = r.seconds.filter((s) => s.concurrency === top).map((s) => s.ok);
    const failed = r.seconds.reduce((a, s) => a + s.failed, 0);
    console.log(
      `| ${r.name} | ${median(busySeconds.slice(2))} | ${pct(r.busyPhase, 50).toFixed(1)} | ${pct(r.busyPhase, 99).toFixed(1)} | ${failed} |`,
    );
  }
} finally {
  await nginx.stop();
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}
