// --balance-connections, the master's half (the worker's is src/worker/accept-control.ts):
// from the open-connection counts the workers report, which of them hold more than their
// share, and what to come down to.

/** Orders to one worker at most this often: it needs time to shed and report again. */
export const ORDER_INTERVAL_MS = 20;

/**
 * The indexes of the counts over their share, and the share: the mean, rounded up. "Over"
 * means above the mean by more than 10 % of it and by more than 2, so small or
 * nearly even pools are left alone. The least loaded worker is never over, so some worker
 * always accepts.
 */
export function overShare(counts: readonly number[]): { target: number; over: number[] } {
  const over: number[] = [];
  if (counts.length < 2) return { target: 0, over };
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  const limit = mean + Math.max(2, mean * 0.1);
  counts.forEach((c, i) => {
    if (c > limit) over.push(i);
  });
  return { target: Math.ceil(mean), over };
}
