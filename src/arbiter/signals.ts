// Signals become events in one queue; the arbiter's loop takes them one at a time
// (Gunicorn's SIG_QUEUE), so a burst of HUPs never runs two reloads at once.
import type { WorkerProcess } from './workers.js';
import type { ControlCall, ControlReply } from './control.js';

export const HANDLED_SIGNALS = ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGTTIN', 'SIGTTOU', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const;
export type HandledSignal = (typeof HANDLED_SIGNALS)[number];

export type ArbiterEvent =
  | { type: 'signal'; signal: HandledSignal }
  | { type: 'exit'; worker: WorkerProcess }
  /** Look at the pool and the clock again (every 500 ms, after a boot, at a deadline). */
  | { type: 'tick' }
  | { type: 'command'; call: ControlCall; reply: (reply: ControlReply) => void };

export class SignalQueue {
  private readonly items: ArbiterEvent[] = [];
  /** Who waits in next(), first come first served (the arbiter's loop is the one in practice). */
  private readonly waiters: ((e: ArbiterEvent) => void)[] = [];
  private readonly handlers = new Map<HandledSignal, () => void>();

  push(event: ArbiterEvent): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter(event);
      return;
    }
    // Ticks only ask "look at the pool again": one queued is enough.
    if (event.type === 'tick' && this.items.some((e) => e.type === 'tick')) return;
    // Gunicorn caps its signal queue at 5; beyond that a burst carries no new information.
    if (event.type === 'signal' && this.items.filter((e) => e.type === 'signal').length >= 5) return;
    this.items.push(event);
  }

  next(): Promise<ArbiterEvent> {
    const e = this.items.shift();
    if (e) return Promise.resolve(e);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  install(): void {
    for (const sig of HANDLED_SIGNALS) {
      const h = () => this.push({ type: 'signal', signal: sig });
      this.handlers.set(sig, h);
      process.on(sig, h);
    }
  }

  uninstall(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.clear();
  }
}
