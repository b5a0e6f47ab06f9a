// --timeout and --boot-timeout: on each tick, workers whose event loop stopped answering, or
// that never finished booting, are marked hung; the log says why as well as we can (the
// app's last output while loading, or the JS stack the worker is stuck in), then they are
// SIGKILLed. The stack capture is hang-stack.ts, loaded only when needed.
import type { Settings } from '../config/settings.js';
import type { Logger } from '../log/logger.js';
import type { WorkerProcess } from './workers.js';
import type { StackFrame } from './hang-stack.js';

export interface TimeoutContext {
  settings: Settings;
  log: Logger;
  /** The workerAbort hook, given the worker and the stack it was stuck at. */
  workerAbort(w: WorkerProcess, frames: StackFrame[]): Promise<void>;
}

export function checkTimeouts(workers: Iterable<WorkerProcess>, ctx: TimeoutContext): void {
  const now = Date.now();
  const s = ctx.settings;
  for (const w of workers) {
    if (!w.alive) continue;
    if (w.booting && now - w.spawnedAt > s.bootTimeout * 1000) {
      if (w.markHung('killed: boot timeout')) void killBootTimedOut(w, ctx);
    } else if (!w.booting && s.timeout > 0 && now - w.lastHeartbeat > s.timeout * 1000) {
      if (w.markHung('killed: timeout')) void killHung(w, now - w.lastHeartbeat, ctx);
    }
  }
}

async function stuckAt(w: WorkerProcess): Promise<{ frames: StackFrame[]; text: string }> {
  const { captureBlockedStack, formatFrames } = await import('./hang-stack.js');
  const frames = await captureBlockedStack(w.watchdog);
  return { frames, text: formatFrames(frames) };
}

/**
 * The boot timeout ran out. Say why as well as we can: the app's last output while loading
 * (asked over IPC), or, when the worker can't even answer, the JS stack it is stuck in.
 */
async function killBootTimedOut(w: WorkerProcess, { settings, log }: TimeoutContext): Promise<void> {
  const fields: Record<string, unknown> = { worker: w.index, workerPid: w.pid, bootTimeout: settings.bootTimeout };
  w.send({ type: 'boot-report' });
  const deadline = Date.now() + 1000;
  while (w.bootReport === null && w.alive && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  let detail = '';
  if (w.bootReport !== null) {
    fields.lastOutput = w.bootReport;
    detail = w.bootReport.length
      ? ` Its last output:\n${w.bootReport.map((l) => `    ${l}`).join('\n')}`
      : ' It printed nothing while loading.';
  } else if (w.alive) {
    try {
      const stack = await stuckAt(w);
      fields.stack = stack.frames;
      detail = ` Its event loop is blocked at:\n${stack.text}`;
    } catch (err) {
      fields.stackError = (err as Error).message;
    }
  }
  log.error(fields, `worker did not become ready within the boot timeout (${settings.bootTimeout} s): killing it.${detail}`);
  w.killHung();
}

/** A worker's event loop is blocked: log where (its JS stack), then kill it. */
async function killHung(w: WorkerProcess, silentMs: number, ctx: TimeoutContext): Promise<void> {
  const fields = { worker: w.index, workerPid: w.pid, timeout: ctx.settings.timeout, silentMs };
  try {
    const stack = await stuckAt(w);
    ctx.log.error(
      { ...fields, stack: stack.frames },
      `worker timeout: its event loop is blocked; killing it. It was stuck at:\n${stack.text}`,
    );
    await ctx.workerAbort(w, stack.frames);
  } catch (err) {
    ctx.log.error(
      { ...fields, stackError: (err as Error).message },
      'worker timeout: its event loop is blocked; killing it (its stack could not be read)',
    );
  }
  w.killHung();
}
