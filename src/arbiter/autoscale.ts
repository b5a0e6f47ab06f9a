// The adaptive pool (--max-workers): one worker more while the pool stays busy, one fewer
// after it has been under-used for --scale-down-delay. Busy is what Node itself measures:
// the event-loop utilization the workers report with their heartbeats (the share of time
// their loop was running code, not waiting), and the connections the kernel holds in a
// listen queue because no worker took them. --workers is the floor, --max-workers the
// ceiling; a manual change (TTIN/TTOU, ctl workers add/remove) moves the floor. After each
// step the pool holds still for a while (no flapping) and every step is logged with its reason.
import type { Logger } from '../log/logger.js';
import { readQueueDepths, type QueuedListener, type QueueDepth } from '../listeners/queue-depth.js';
import type { WorkerPool } from './pool.js';

/** The pool is busy while its mean event-loop utilization stays over this ... */
export const BUSY_UTILIZATION = 0.75;
/** ... for this long, or connections wait in a listen queue for QUEUED_MS. */
export const BUSY_FOR_MS = 2000;
const QUEUED_MS = 1000;
/** Under-used: the utilization it would have with one worker fewer stays under this. */
export const IDLE_UTILIZATION = 0.5;
/** No second step within this long of one (and none while a new worker still boots). */
export const COOLDOWN_MS = 5000;
/** How often the listen queues are read (an ss run for UNIX sockets). */
const QUEUE_SAMPLE_MS = 1000;

export interface AutoscaleHost {
  readonly log: Logger;
  readonly pool: WorkerPool;
  scaleDownDelayMs(): number;
  listeners(): readonly QueuedListener[];
  /** Steps wait while a reload or a stop is under way. */
  steady(): boolean;
}

export class Autoscaler {
  private busySince: number | null = null;
  private queuedSince: number | null = null;
  private idleSince: number | null = null;
  private lastStep = -Infinity;
  private queues: QueueDepth[] = [];
  private queuesAt = -Infinity;
  private sampling = false;

  constructor(private readonly host: AutoscaleHost) {}

  /** The pool's mean event-loop utilization now (ready workers of the serving generation), or null. */
  utilization(): number | null {
    const ready = this.host.pool.ready().filter((w) => w.stats.elu !== undefined);
    if (ready.length === 0) return null;
    return ready.reduce((a, w) => a + w.stats.elu!, 0) / ready.length;
  }

  /** The last listen-queue reading (empty before the first). */
  queueDepths(): readonly QueueDepth[] {
    return this.queues;
  }

  /** Connections waiting in the listen queues, as last read; null when no bind says. */
  queued(): number | null {
    const known = this.queues.filter((q) => q.queued !== null);
    return known.length ? known.reduce((a, q) => a + q.queued!, 0) : null;
  }

  /** On every tick of the arbiter's loop (twice a second). */
  tick(now = Date.now()): void {
    const { pool } = this.host;
    if (pool.ceiling <= pool.floor && pool.desired <= pool.ceiling) return this.reset();
    this.sampleQueues(now);
    const utilization = this.utilization();
    if (utilization === null || !this.host.steady() || pool.current().some((w) => w.booting)) return this.reset();
    const n = pool.desired;
    const queued = this.queued() ?? 0;
    this.busySince = utilization > BUSY_UTILIZATION ? (this.busySince ?? now) : null;
    this.queuedSince = queued > 0 ? (this.queuedSince ?? now) : null;
    // With one worker fewer, the same work would load the others this much.
    const projected = n > 1 ? (utilization * n) / (n - 1) : Infinity;
    this.idleSince = projected < IDLE_UTILIZATION && queued === 0 ? (this.idleSince ?? now) : null;
    if (now - this.lastStep < COOLDOWN_MS) return;
    const pct = (x: number) => `${Math.round(x * 100)} %`;
    if (n < pool.ceiling && this.busySince !== null && now - this.busySince >= BUSY_FOR_MS) {
      this.step(n + 1, `event-loop utilization ${pct(utilization)} for ${((now - this.busySince) / 1000).toFixed(1)} s`, now);
    } else if (n < pool.ceiling && this.queuedSince !== null && now - this.queuedSince >= QUEUED_MS) {
      this.step(
        n + 1,
        `${queued} connection${queued === 1 ? '' : 's'} waiting in the listen queue for ${((now - this.queuedSince) / 1000).toFixed(1)} s`,
        now,
      );
    } else if (n > pool.floor && this.idleSince !== null && now - this.idleSince >= this.host.scaleDownDelayMs()) {
      this.step(
        n - 1,
        `event-loop utilization ${pct(utilization)} for ${Math.round((now - this.idleSince) / 1000)} s (${pct(projected)} with one worker fewer)`,
        now,
      );
    }
  }

  private step(to: number, reason: string, now: number): void {
    const { pool, log } = this.host;
    const from = pool.desired;
    pool.shrinkReason = 'pool shrunk (adaptive pool)';
    pool.setDesired(to);
    this.lastStep = now;
    this.reset();
    log.info(
      { from, to, floor: pool.floor, ceiling: pool.ceiling, reason },
      `adaptive pool: ${to > from ? 'one worker more' : 'one worker fewer'} (${from} -> ${to} of ${pool.floor}-${pool.ceiling}): ${reason}`,
    );
  }

  private reset(): void {
    this.busySince = this.queuedSince = this.idleSince = null;
  }

  private sampleQueues(now: number): void {
    if (this.sampling || now - this.queuesAt < QUEUE_SAMPLE_MS) return;
    this.sampling = true;
    this.queuesAt = now;
    readQueueDepths(this.host.listeners()).then(
      (q) => {
        this.queues = q;
        this.sampling = false;
      },
      () => (this.sampling = false),
    );
  }
}
