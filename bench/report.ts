// Aggregation (medians of rounds, ratios to the best node:cluster run of the same round) and output.
import type { Shape } from './load.js';

export type Path = 'socket' | 'nginx';

export interface Cell {
  round: number;
  path: Path;
  shape: Shape;
  engine: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** Requests and connections each worker served during the cell (busiest first). */
  workerRequests: number[];
  workerConnections: number[];
  workerCpuMs: number[];
  workerGcMs: number[];
  steal: number;
  /** busiest / least busy worker (by requests with --app counting, else by CPU time); null with one process. */
  fairness: number | null;
  /** Master CPU as a share of all the server's CPU (master + workers), and of the machine. */
  masterCpuShare: number | null;
  masterCpuMachine: number | null;
  cpuUsPerRequest: number;
  ratio?: { rps: number; p50: number; p99: number; vs: string };
}

/** One line of the table: a cell's figures, each the median over the rounds (errors summed). */
export interface Row extends Pick<
  Cell,
  'path' | 'shape' | 'engine' | 'rps' | 'p50' | 'p99' | 'errors' | 'fairness' | 'masterCpuShare' | 'cpuUsPerRequest'
> {
  ratio: { rps: number; p50: number; p99: number } | null;
  /** which cluster policy was the reference, per round */
  best: string[];
}

export interface EngineInfo {
  engine: string;
  readyMs: number;
  /** RSS right after ready, and after all the load. */
  idleMasterRssMB: number | null;
  idleWorkerRssMB: number[];
  masterRssMB: number | null;
  workerRssMB: number[];
  reloadMs: number[];
  reloadError?: string;
  /** Every pid of the engine seen (master first), to check that none outlives the bench. */
  pids: number[];
}

export const CLUSTERS = ['cluster-rr', 'cluster-none'];

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Adds to every cell its ratios to the best node:cluster cell of the same round, path and shape. */
export function addRatios(cells: Cell[]): void {
  for (const c of cells) {
    const refs = cells.filter((r) => r.round === c.round && r.path === c.path && r.shape === c.shape && CLUSTERS.includes(r.engine));
    if (refs.length === 0) continue;
    const best = refs.reduce((a, b) => (b.rps > a.rps ? b : a));
    c.ratio = { rps: c.rps / best.rps, p50: c.p50 / best.p50, p99: c.p99 / best.p99, vs: best.engine };
  }
}

export function summarize(cells: Cell[]): Row[] {
  const rows: Row[] = [];
  const keys = [...new Set(cells.map((c) => `${c.path}\u0000${c.shape}\u0000${c.engine}`))];
  for (const key of keys) {
    const [path, shape, engine] = key.split('\u0000') as [Path, Shape, string];
    const group = cells.filter((c) => c.path === path && c.shape === shape && c.engine === engine);
    const withRatio = group.filter((c) => c.ratio);
    const nullable = (xs: (number | null)[]) => (xs.every((x) => x === null) ? null : median(xs.filter((x): x is number => x !== null)));
    rows.push({
      path,
      shape,
      engine,
      rps: median(group.map((c) => c.rps)),
      p50: median(group.map((c) => c.p50)),
      p99: median(group.map((c) => c.p99)),
      errors: group.reduce((a, c) => a + c.errors, 0),
      fairness: nullable(group.map((c) => c.fairness)),
      masterCpuShare: nullable(group.map((c) => c.masterCpuShare)),
      cpuUsPerRequest: median(group.map((c) => c.cpuUsPerRequest)),
      ratio: withRatio.length
        ? {
            rps: median(withRatio.map((c) => c.ratio!.rps)),
            p50: median(withRatio.map((c) => c.ratio!.p50)),
            p99: median(withRatio.map((c) => c.ratio!.p99)),
          }
        : null,
      best: withRatio.map((c) => c.ratio!.vs),
    });
  }
  return rows;
}

const f0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toString() : '–');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const pct = (x: number | null) => (x === null || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(1)}%`);
const ratio = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : `${x.toFixed(2)}×`);
const fair = (x: number | null) => (x === null ? '–' : Number.isFinite(x) ? `${x.toFixed(2)}` : '∞');

export function markdown(
  rows: Row[],
  engines: EngineInfo[],
  skipped: { engine: string; reason: string }[],
  meta: Record<string, unknown>,
  cells: Cell[] = [],
): string {
  const out: string[] = [];
  out.push(
    `Load: ${Object.entries(meta)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(', ')}`,
    '',
  );
  out.push(
    'Ratios (×) are to the best node:cluster configuration (rr or none) of the same round; every column is a median of rounds',
    '(so a ratio need not equal the quotient of the median req/s). autocannon (socket path) reports latency in whole ms.',
    '',
  );
  out.push(
    '| path | shape | engine | req/s | ×best | p50 ms | ×best | p99 ms | ×best | errors | busiest/least worker | master CPU share | server CPU µs/req |',
  );
  out.push('|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    out.push(
      `| ${r.path} | ${r.shape} | ${r.engine} | ${f0(r.rps)} | ${ratio(r.ratio?.rps)} | ${f2(r.p50)} | ${ratio(r.ratio?.p50)} | ${f2(r.p99)} | ${ratio(r.ratio?.p99)} | ${r.errors} | ${fair(r.fairness)} | ${pct(r.masterCpuShare)} | ${f0(r.cpuUsPerRequest)} |`,
    );
  }
  out.push(
    '',
    'RSS in MB, idle (right after ready) → after the load; for node:http the "worker" is its one process.',
    '',
    '| engine | start → ready ms | master RSS MB | worker RSS MB | reload ms (median) |',
    '|---|---:|---:|---:|---:|',
  );
  const mb = (x: number | null) => (x === null ? '–' : x.toFixed(1));
  for (const e of engines) {
    const reload = e.reloadMs.length ? f0(median(e.reloadMs)) : e.reloadError ? `failed: ${e.reloadError}` : '–';
    const workers = e.workerRssMB.map((x, i) => `${mb(e.idleWorkerRssMB[i] ?? null)} → ${mb(x)}`).join(', ') || '–';
    out.push(`| ${e.engine} | ${f0(e.readyMs)} | ${mb(e.idleMasterRssMB)} → ${mb(e.masterRssMB)} | ${workers} | ${reload} |`);
  }
  // Medians hide how much a ratio swings from round to round, and why (a lopsided worker split).
  const pooled = rows.filter((r) => r.fairness !== null);
  if (cells.length && pooled.length) {
    out.push(
      '',
      `Each round: ×best (busiest/least worker, by ${String(meta.app ?? '').startsWith('counting') ? 'requests' : 'CPU time'}; – when only one worker served).`,
      '',
    );
    out.push('| path | shape | engine | rounds |', '|---|---|---|---|');
    for (const r of pooled) {
      const own = cells.filter((c) => c.path === r.path && c.shape === r.shape && c.engine === r.engine).sort((a, b) => a.round - b.round);
      out.push(`| ${r.path} | ${r.shape} | ${r.engine} | ${own.map((c) => `${ratio(c.ratio?.rps)} (${fair(c.fairness)})`).join(', ')} |`);
    }
  }
  if (skipped.length) {
    out.push('', 'Skipped:');
    for (const s of skipped) out.push(`- ${s.engine}: ${s.reason}`);
  }
  return out.join('\n') + '\n';
}
