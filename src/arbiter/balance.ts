// --balance-connections, the master's half (the worker's is src/worker/accept-control.ts):
// from the busy-connection counts the workers report (a request within the last second,
// or upgraded: src/worker/accept-control.ts), which of them hold more than their share,
// and when to tell them.

/**
 * A worker must stay over its share this long before it is told: a burst of new
 * connections (a proxy filling its pool) is counted while it still arrives, and acting on
 * half a burst moves connections back and forth.
 */
export const SETTLE_MS = 100;
/**
 * The settle time doubles, up to this, each time an order goes to another worker than the
 * last one did (a reversal): the counts then walk at random rather than stand uneven. A
 * proxy's pool does that: nginx closes upstream connections idle past its keepalive_timeout
 * and opens new ones, and each lands by the accept race; two workers under 25 busy
 * connections each drift between 20 and 31 within seconds. Moving connections cannot even
 * that out, it only costs reconnections. A standing imbalance still moves: it stays over its
 * share for this long, and a count further over than a random placement lands (overShare's
 * `standing`) waits SETTLE_MS only.
 */
export const MAX_SETTLE_MS = 5000;
/** An order this long after the last one starts from SETTLE_MS again: it answers news. */
export const CALM_MS = 30_000;
/**
 * Orders to one worker at most this often. A told worker pauses 250 ms and ignores orders
 * meanwhile (src/worker/accept-control.ts); the counts the master sees in that time are in
 * flux: the closed connections have left it and not yet been reported by the workers they
 * reconnect to, so the mean looks low, and a second order would close too many.
 */
export const ORDER_INTERVAL_MS = 300;

/**
 * The indexes of the counts over their share, the share (the mean, rounded up) and the
 * limit past which a count is over: the mean + 10 %, and + 2 at least, so nearly even pools
 * are left alone; + 1 only while the mean is under 4, where + 2 would leave a worker just
 * added with none of a few busy connections (4, 4, 0: each worker over 3 gives one up). The
 * least loaded worker is never over, so some worker always accepts.
 * `standing`: a count above it is further over than connections placed at random ever land
 * (three standard deviations: a worker's share of N connections spread at random over k
 * workers varies by sqrt(mean × (1 - 1/k)) < sqrt(mean)): a burst that landed on one worker,
 * moved after SETTLE_MS whatever the orders before.
 */
export function overShare(counts: readonly number[]): { target: number; limit: number; over: number[]; standing: number } {
  const over: number[] = [];
  if (counts.length < 2) return { target: 0, limit: 0, over, standing: 0 };
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  const limit = Math.floor(mean + Math.max(mean < 4 ? 1 : 2, mean * 0.1));
  counts.forEach((c, i) => {
    if (c > limit) over.push(i);
  });
  return { target: Math.ceil(mean), limit, over, standing: Math.max(limit, mean + 3 * Math.sqrt(mean)) };
}

export interface BalancedWorker {
  /** The busy connections, as last reported (none before the first report). */
  readonly stats: { readonly busy?: number };
  send(m: { type: 'balance'; target: number; limit: number }): void;
}

/** Tells the workers that stayed over their share for SETTLE_MS to come down to it. */
export class Balancer<W extends BalancedWorker> {
  private readonly overSince = new WeakMap<W, number>();
  private readonly orderedAt = new WeakMap<W, number>();
  private timer: NodeJS.Timeout | null = null;
  /** How long a worker had to stay over its share for the last order (settleFor()). */
  private settleMs = SETTLE_MS;
  private lastOrder: { to: WeakRef<W>; at: number } | null = null;

  /** @param pool the workers accepting connections now */
  constructor(
    private readonly pool: () => W[],
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** On each count a worker reports: orders, or a look again when one is due. */
  run(): void {
    const pool = this.pool();
    const { target, limit, over, standing } = overShare(pool.map((w) => w.stats.busy ?? 0));
    const now = this.now();
    pool.forEach((w, i) => {
      if (!over.includes(i)) this.overSince.delete(w);
    });
    let recheck = Infinity;
    for (const i of over) {
      const w = pool[i]!;
      let since = this.overSince.get(w);
      if (since === undefined) this.overSince.set(w, (since = now));
      const burst = (w.stats.busy ?? 0) > standing;
      const settle = burst ? SETTLE_MS : this.settleFor(w, now);
      const due = Math.max(since + settle, (this.orderedAt.get(w) ?? -Infinity) + ORDER_INTERVAL_MS);
      if (now < due) {
        recheck = Math.min(recheck, due - now);
        continue;
      }
      this.orderedAt.set(w, now);
      if (!burst) this.settleMs = settle;
      this.lastOrder = { to: new WeakRef(w), at: now };
      w.send({ type: 'balance', target, limit });
    }
    // Counts that stopped changing bring no more reports: look again when an order is due.
    if (recheck !== Infinity && this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.run();
      }, Math.ceil(recheck));
      this.timer.unref();
    }
  }

  /** How long w must stay over its share: SETTLE_MS after a calm, doubled by a reversal. */
  private settleFor(w: W, now: number): number {
    const last = this.lastOrder;
    if (last === null || now - last.at >= CALM_MS) return SETTLE_MS;
    return last.to.deref() === w ? this.settleMs : Math.min(MAX_SETTLE_MS, this.settleMs * 2);
  }
}
