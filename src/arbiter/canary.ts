// The canary of a reload (--reload-canary): one worker of the new version serving next to the
// old pool, watched for a window and compared with it. It fails when it exits or is killed
// for a hang, or when its share of 5xx answers is more than 5 points above the old workers'
// (judged on at least 20 of its answers; with fewer, only its life counts), as soon as that
// shows; it passes once the window is over. The counts come
// with the workers' heartbeats (requests served, 5xx answered: src/worker/response-counts.ts).
import type { WorkerProcess } from './workers.js';

/** 5xx share points the canary may be above the old workers. */
export const ERROR_MARGIN_POINTS = 5;
/** Answers the canary must have given before its 5xx share is judged. */
export const MIN_ANSWERS = 20;

export interface CanaryVerdict {
  cause: 'passed' | 'exited' | 'hung' | 'errors';
  /** In words, with the figures: "5xx 100.0 % of 140 answers, old workers 0.0 % of 2 310". */
  reason: string;
  figures: Record<string, number | string>;
}

interface Counts {
  requests: number;
  serverErrors: number;
}

const countsOf = (ws: readonly WorkerProcess[]): Counts =>
  ws.reduce((a, w) => ({ requests: a.requests + w.stats.requests, serverErrors: a.serverErrors + (w.stats.serverErrors ?? 0) }), {
    requests: 0,
    serverErrors: 0,
  });

const share = (c: Counts) => (c.requests > 0 ? (100 * c.serverErrors) / c.requests : 0);
const fmt = (x: number) => x.toFixed(1);

export class CanaryWatch {
  /** When the window began (the canary ready), and what everyone had served then. */
  private start: { at: number; canary: Counts; old: Map<WorkerProcess, Counts> } | null = null;

  constructor(
    readonly worker: WorkerProcess,
    private readonly windowMs: number,
    /** The old pool's workers now (those that join meanwhile, as replacements, count from zero). */
    private readonly oldWorkers: () => WorkerProcess[],
  ) {}

  /** How long until the window ends; null before it began. */
  dueInMs(): number | null {
    return this.start ? Math.max(0, this.start.at + this.windowMs - Date.now()) : null;
  }

  /** The verdict once there is one; null while the window lasts (or the canary still boots). */
  look(now = Date.now()): CanaryVerdict | null {
    const w = this.worker;
    const pid = w.pid;
    if (!w.alive) {
      const why = w.describeExit();
      const hung = why === 'killed: timeout';
      return {
        cause: hung ? 'hung' : 'exited',
        reason: hung ? `the canary (pid ${pid}) hung and was killed (--timeout)` : `the canary (pid ${pid}) exited (${why})`,
        figures: { canaryPid: pid, exit: why, servedByCanary: w.stats.requests },
      };
    }
    if (w.readyAt === null) return null;
    if (!this.start) {
      this.start = { at: now, canary: countsOf([w]), old: new Map(this.oldWorkers().map((o) => [o, countsOf([o])])) };
      return null;
    }
    const canary = minus(countsOf([w]), this.start.canary);
    const old = this.oldWorkers().reduce<Counts>(
      (a, o) => {
        const d = minus(countsOf([o]), this.start!.old.get(o) ?? { requests: 0, serverErrors: 0 });
        return { requests: a.requests + d.requests, serverErrors: a.serverErrors + d.serverErrors };
      },
      { requests: 0, serverErrors: 0 },
    );
    const figures = {
      canaryPid: pid,
      canaryAnswers: canary.requests,
      canary5xxPercent: Number(fmt(share(canary))),
      oldAnswers: old.requests,
      old5xxPercent: Number(fmt(share(old))),
      windowSeconds: this.windowMs / 1000,
    };
    const said = `5xx ${fmt(share(canary))} % of ${canary.requests} answers, old workers ${fmt(share(old))} % of ${old.requests}`;
    // A failure is called as soon as the figures show it (every answer meanwhile is one more
    // 5xx); a pass takes the whole window.
    if (canary.requests >= MIN_ANSWERS && share(canary) > share(old) + ERROR_MARGIN_POINTS) {
      return { cause: 'errors', reason: `the canary answered 5xx too often: ${said}`, figures };
    }
    if (now < this.start.at + this.windowMs) return null;
    const note = canary.requests < MIN_ANSWERS ? ` (under ${MIN_ANSWERS} answers: judged on staying up)` : '';
    return { cause: 'passed', reason: `${said}${note}, up for ${this.windowMs / 1000} s`, figures };
  }
}

function minus(a: Counts, b: Counts): Counts {
  return { requests: Math.max(0, a.requests - b.requests), serverErrors: Math.max(0, a.serverErrors - b.serverErrors) };
}
