// Processes the bench starts: each in its own process group, logs parsed, and /proc
// readers for CPU time and RSS. Everything started is registered so stopAll() can end it.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { jsonLines, type JsonLine } from '../scripts/json-lines.js';

export type LogLine = JsonLine;

const started = new Set<Proc>();

export class Proc {
  readonly logs: LogLine[] = [];
  text = '';
  readonly exited: Promise<void>;
  done = false;
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    started.add(this);
    const onLine = (parsed: LogLine) => {
      this.logs.push(parsed);
      this.waiters = this.waiters.filter((w) => (w.pred(parsed) ? (w.resolve(parsed), false) : true));
    };
    for (const stream of [child.stderr, child.stdout]) {
      const lines = jsonLines(onLine);
      stream?.setEncoding('utf8').on('data', (chunk: string) => {
        this.text = (this.text + chunk).slice(-20_000);
        lines(chunk);
      });
    }
    this.exited = new Promise((resolve) => child.once('exit', () => ((this.done = true), started.delete(this), resolve())));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The first log line (from `from` on) matching pred. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs: number, from = 0): Promise<LogLine> {
    const found = this.logs.slice(from).find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name}: no expected log line within ${timeoutMs} ms; output:\n${this.text.slice(-3000)}`)),
        timeoutMs,
      );
      const w = { pred, resolve: (l: LogLine) => (clearTimeout(timer), resolve(l)) };
      this.waiters.push(w);
      void this.exited.then(() => {
        if (!this.waiters.includes(w)) return;
        clearTimeout(timer);
        reject(
          new Error(
            `${this.name} exited (code ${this.child.exitCode}, signal ${this.child.signalCode}); output:\n${this.text.slice(-3000)}`,
          ),
        );
      });
    });
  }

  /** Signals the process group, then SIGKILLs it if it has not exited in time. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (!this.done) signalGroup(this.pid, sig);
    const timer = setTimeout(() => signalGroup(this.pid, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    // Workers that outlived their parent are in the same group.
    signalGroup(this.pid, 'SIGKILL');
  }
}

export function start(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts, detached: true });
  child.on('error', () => {});
  return new Proc(name, child);
}

export function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {}
}

export function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {}
}

/** Ends every process started through start() (by process group). */
export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((p) => p.stop('SIGTERM', 3000)));
}
process.on('exit', () => {
  for (const p of started) signalGroup(p.pid, 'SIGKILL');
});

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function statFields(pid: number): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at ") ".
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime + stime in clock ticks (field 14 and 15 of /proc/PID/stat); 0 if gone. */
export function cpuTicks(pid: number): number {
  const f = statFields(pid);
  return f ? Number(f[11]) + Number(f[12]) : 0;
}

/** Resident set size in bytes (VmRSS), or 0 if gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Direct children of pid (from each process's ppid in /proc). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f && Number(f[1]) === pid) out.push(Number(name));
  }
  return out.sort((a, b) => a - b);
}

/** Kernel clock ticks per second (USER_HZ): 100 on every mainstream Linux build. */
export const CLOCK_TICKS = 100;

/** The machine's CPU ticks so far, all and stolen (a VM whose host ran something else: /proc/stat). */
export function machineTicks(): { total: number; steal: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { total: f.slice(0, 8).reduce((a, b) => a + b, 0), steal: f[7] ?? 0 };
  } catch {
    return { total: 0, steal: 0 };
  }
}
