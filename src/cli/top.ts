// `ws-proxy-kit ctl top`: a live view of the pool, like `pm2 monit` or htop. Once a second it
// asks the control socket for the status and the workers (the same answers `ctl status` and
// `ctl workers` print) and draws one frame: a header (uptime, version, binds, the pool's size
// with its floor and ceiling, req/s, 5xx/s, the last reload, a sparkline of req/s over the
// last minute) and a row per worker. It draws on the terminal's alternate screen and gives
// the screen back on exit (q or Ctrl-C); colour only on a terminal and without NO_COLOR.
// `--once` prints one frame (rates over one second) and exits, for scripts and tests.
import { sendControl } from '../arbiter/control-socket.js';
import type { ControlReply, StatusView, WorkerRow } from '../arbiter/control.js';
import { duration } from './units.js';

const SPARKS = '▁▂▃▄▅▆▇█';
const HISTORY = 60;

interface Sample {
  at: number;
  status: StatusView;
  workers: WorkerRow[];
}

async function ask<T>(path: string, command: string): Promise<T> {
  const reply: ControlReply = await sendControl(path, { command, args: [] }, 5000);
  if (!reply.ok) throw new Error(reply.error);
  return reply.result as T;
}

async function sample(path: string): Promise<Sample> {
  const [status, workers] = await Promise.all([ask<StatusView>(path, 'status'), ask<WorkerRow[]>(path, 'workers')]);
  return { at: Date.now(), status, workers };
}

/** What changed between two samples, per second. */
interface Rates {
  total: number;
  /** null when the workers do not count 5xx (only with --reload-canary or --metrics-bind). */
  serverErrors: number | null;
  byPid: Map<number, number>;
}

function rates(prev: Sample | null, now: Sample): Rates | null {
  if (!prev) return null;
  const dt = Math.max(0.001, (now.at - prev.at) / 1000);
  const before = new Map(prev.workers.map((w) => [w.pid, w.requests]));
  const byPid = new Map(now.workers.map((w) => [w.pid, Math.max(0, w.requests - (before.get(w.pid) ?? 0)) / dt]));
  return {
    total: Math.max(0, now.status.pool.requests - prev.status.pool.requests) / dt,
    serverErrors:
      now.status.pool.serverErrors === null || prev.status.pool.serverErrors === null
        ? null
        : Math.max(0, now.status.pool.serverErrors - prev.status.pool.serverErrors) / dt,
    byPid,
  };
}

function sparkline(values: number[]): string {
  const max = Math.max(1, ...values);
  return values.map((v) => SPARKS[Math.min(SPARKS.length - 1, Math.round((v / max) * (SPARKS.length - 1)))]).join('');
}

export interface FrameOptions {
  width: number;
  color: boolean;
}

const paint = (on: boolean, code: string, text: string) => (on ? `\x1b[${code}m${text}\x1b[0m` : text);
const STATE_COLOR: Record<string, string> = { ready: '32', booting: '36', retiring: '33', replacing: '33', failing: '31', hung: '31' };

/** One frame as lines, each at most `width` columns. */
export function frame(s: Sample, r: Rates | null, history: number[], o: FrameOptions): string[] {
  const st = s.status;
  const p = st.pool;
  const num = (v: number | null | undefined, digits = 0) => (v === null || v === undefined ? '-' : v.toFixed(digits));
  const reload = st.lastReload ? `last reload ${duration(st.lastReload.agoSec)} ago (${st.lastReload.outcome})` : 'no reload yet';
  const head = [
    paint(o.color, '1', `ws-proxy-kit ${st.version}`),
    `up ${duration(st.uptimeSec)}`,
    st.binds.join(' '),
    `pool ${p.size} (${p.floor === p.ceiling ? `fixed` : `${p.floor}-${p.ceiling}`})`,
  ].join('  ');
  const load = [
    `${num(r?.total)} req/s`,
    `${num(r?.serverErrors, 1)} 5xx/s`,
    `busy ${num(p.busyPercent)} %`,
    `cpu ${num(p.cpuPercent, 0)} %`,
    `rss ${num(p.rssMb, 0)} MB`,
    `queued ${num(p.listenQueue)}`,
    reload,
  ].join('  ');
  const spark = history.length ? `req/s, last ${history.length} s: ${sparkline(history)} (max ${num(Math.max(...history))})` : '';
  const cols = ['PID', 'GEN', 'STATE', 'REQ/S', 'BUSY %', 'CPU %', 'RSS MB', 'IN-FL', 'CONNS', 'AGE', 'RESTARTS'];
  const rows = s.workers.map((w) => [
    String(w.pid),
    String(w.generation),
    w.state,
    num(r?.byPid.get(w.pid)),
    num(w.busyPercent),
    num(w.cpuPercent, 1),
    num(w.rssMb, 1),
    String(w.inflight),
    String(w.connections),
    duration(w.ageSec),
    String(w.restarts),
  ]);
  const widths = cols.map((c, i) => Math.max(c.length, ...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((v, i) => (i >= 3 ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join('  ');
  const fit = (text: string) => cut(text, o.width);
  const status = st.degraded ? paint(o.color, '31', st.status) : st.status;
  return [
    fit(head),
    fit(load),
    fit(spark),
    fit(status),
    '',
    fit(paint(o.color, '7', line(cols))),
    ...rows.map((row, i) => fit(line(row).replace(s.workers[i]!.state, (x) => paint(o.color, STATE_COLOR[x] ?? '0', x)))),
  ];
}

/** Cuts a line to `width` visible columns, keeping colour codes whole. */
function cut(text: string, width: number): string {
  let visible = 0;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\x1b') {
      const end = text.indexOf('m', i);
      out += text.slice(i, end + 1);
      i = end;
      continue;
    }
    if (visible === width) {
      out += text.includes('\x1b') ? '\x1b[0m' : '';
      break;
    }
    out += text[i];
    visible++;
  }
  return out;
}

/** Runs the view until q, Ctrl-C or the server goes away; the exit code. */
export async function runTop(path: string, opts: { once: boolean }): Promise<number> {
  const out = process.stdout;
  const color = Boolean(out.isTTY) && !process.env.NO_COLOR;
  const width = () => (out.isTTY && out.columns ? out.columns : 80);
  if (opts.once) {
    const a = await sample(path);
    await new Promise((r) => setTimeout(r, 1000));
    const b = await sample(path);
    const r = rates(a, b);
    out.write(frame(b, r, r ? [r.total] : [], { width: width(), color }).join('\n') + '\n');
    return 0;
  }
  const tty = Boolean(out.isTTY);
  let stopped = false;
  let wake: (() => void) | null = null;
  const stop = () => {
    stopped = true;
    wake?.();
  };
  if (tty) out.write('\x1b[?1049h\x1b[?25l'); // the alternate screen, no cursor
  const restore = () => {
    if (tty) out.write('\x1b[?25h\x1b[?1049l');
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const stdin = process.stdin;
  if (stdin.isTTY) {
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', (d: Buffer) => {
      const key = d.toString('latin1');
      if (key === 'q' || key === 'Q' || key === '\x03') stop();
    });
  }
  const history: number[] = [];
  let prev: Sample | null = null;
  let code = 0;
  try {
    while (!stopped) {
      let s: Sample;
      try {
        s = await sample(path);
      } catch (err) {
        restore();
        process.stderr.write(`ws-proxy-kit ctl top: the server stopped answering (${(err as Error).message})\n`);
        code = 1;
        break;
      }
      const r = rates(prev, s);
      if (r) history.push(r.total);
      if (history.length > HISTORY) history.shift();
      prev = s;
      const lines = frame(s, r, history, { width: width(), color });
      out.write((tty ? '\x1b[H\x1b[2J' : '') + lines.join('\n') + '\n');
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 1000);
      });
    }
  } finally {
    if (code === 0) restore();
    if (stdin.isTTY) {
      stdin.setRawMode(false);
      stdin.pause();
    }
  }
  return code;
}
