// How accepted connections spread over the workers: open a burst of connections at once
// (as nginx does when it fills its upstream keepalive pool, or a load tester at start),
// send one request on each, and count connections per worker; once with the workers idle,
// once while they are busy with other keep-alive load.
// Usage: node --import tsx bench/accept-spread.ts [--burst 64] [--trials 5] [--engines cluster-rr,cluster-none,ws-proxy-kit]
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { ENGINES, type RunningEngine } from './engines.js';
import { autocannonLoad } from './load.js';
import { stopAll } from './procs.js';
import { median } from './report.js';

const { values: opts } = parseArgs({
  options: {
    burst: { type: 'string', default: '64' },
    trials: { type: 'string', default: '5' },
    workers: { type: 'string', default: '2' },
    engines: { type: 'string', default: 'cluster-rr,cluster-none,ws-proxy-kit' },
  },
});
const burst = Number(opts.burst);

function connections(e: RunningEngine): Map<number, number> {
  const out = new Map<number, number>();
  for (const f of readdirSync(e.statsDir)) {
    try {
      const s = JSON.parse(readFileSync(join(e.statsDir, f), 'utf8')) as { pid: number; connections: number };
      out.set(s.pid, s.connections);
    } catch {}
  }
  return out;
}

/** Opens `n` keep-alive connections at once, one request each; resolves when all answered. */
async function openBurst(socketPath: string, n: number): Promise<http.Agent> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: n });
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve, reject) => {
          http.get({ socketPath, path: '/', agent }, (res) => res.resume().on('end', resolve)).on('error', reject);
        }),
    ),
  );
  return agent;
}

async function trial(e: RunningEngine, busy: boolean): Promise<number[]> {
  const before = connections(e);
  const background = busy ? autocannonLoad(e.socket, 'keepalive', 1.5) : null;
  if (busy) await new Promise((r) => setTimeout(r, 300));
  const agent = await openBurst(e.socket, burst);
  await background;
  agent.destroy();
  await new Promise((r) => setTimeout(r, 300));
  const after = connections(e);
  const per = e.workers().map((pid) => (after.get(pid) ?? 0) - (before.get(pid) ?? 0));
  return per.sort((a, b) => b - a);
}

const dir = mkdtempSync(join(tmpdir(), 'wspk-spread-'));
const running: RunningEngine[] = [];
try {
  for (const name of opts.engines.split(',')) {
    const engine = ENGINES.find((x) => x.name === name);
    if (!engine) throw new Error(`unknown engine ${name}`);
    running.push(await engine.start({ dir, workers: Number(opts.workers), countInApp: true }));
  }
  console.log(
    `| engine | workers idle: connections per worker (busiest/least, median of ${opts.trials}) | workers busy: same (includes the 64 load connections) |`,
  );
  console.log('|---|---|---|');
  for (const e of running) {
    const idle: number[][] = [];
    const busy: number[][] = [];
    for (let i = 0; i < Number(opts.trials); i++) {
      idle.push(await trial(e, false));
      busy.push(await trial(e, true));
    }
    const show = (xs: number[][]) =>
      `${xs.map((x) => x.join('/')).join(', ')} (${median(xs.map((x) => x[0]! / Math.max(1, x.at(-1)!))).toFixed(2)})`;
    console.log(`| ${e.name} | ${show(idle)} | ${show(busy)} |`);
  }
} finally {
  for (const e of running) await e.stop().catch(() => {});
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}
