// The arbiter's modes: what its one loop is doing, in whose light every event is handled.
import type { Reload } from './reload.js';

/** What the loop is doing; every event is handled in its light. */
export type Mode =
  | { is: 'booting' }
  | { is: 'running' }
  /** HUP: a new generation boots; it takes over once all of it is ready, or is killed when one fails. */
  | { is: 'reloading'; reload: Reload }
  /** --drain-seconds: readiness fails, but every listener stays open and every worker serves until the alarm. */
  | { is: 'draining'; alarm: Alarm }
  /** The workers were told to stop; the loop ends once the last one has exited (SIGKILL at the alarm). */
  | { is: 'stopping'; alarm: Alarm; killed: boolean };

/** A timer that wakes the loop; `rang` once it has fired. */
export interface Alarm {
  timer: NodeJS.Timeout;
  rang: boolean;
}

/** An alarm that calls `wake` (the loop's tick) once `ms` have passed. */
export function startAlarm(ms: number, wake: () => void): Alarm {
  const alarm: Alarm = {
    rang: false,
    timer: setTimeout(() => {
      alarm.rang = true;
      wake();
    }, ms),
  };
  return alarm;
}
