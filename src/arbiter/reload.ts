// One reload (HUP, `ctl reload`), while the arbiter's loop is in its reloading mode: re-read
// the configuration, start a new generation of workers, and once ALL of it is ready retire
// the old one. If a new worker fails to boot, the new generation is killed and the old one
// keeps serving. The loop goes on meanwhile: health checks (--boot-timeout) run, a TERM stops
// everything at once.
//
// With --reload-canary S, one new worker (the canary) first serves next to the old pool for
// S seconds and is compared with it (canary.ts): it must not exit or hang, nor answer 5xx
// clearly more often. Only then does the rest of the new generation start; else the canary
// is retired and the reload is rolled back. The new configuration is taken only once the new
// generation serves: until then a worker of the old pool that dies is replaced with the old
// version (the pool pins each generation's settings).
import type { LoadedConfig } from '../config/load.js';
import type { Settings } from '../config/settings.js';
import { errorInfo, type Logger } from '../log/logger.js';
import { CanaryWatch, type CanaryVerdict } from './canary.js';
import type { WorkerPool } from './pool.js';
import type { WorkerProcess } from './workers.js';

export type ReloadOutcome =
  | { outcome: 'completed' }
  | { outcome: 'aborted'; reason: string }
  | { outcome: 'rolled back'; reason: string; cause: CanaryVerdict['cause'] };

export interface ReloadHost {
  log: Logger;
  pool: WorkerPool;
  settings(): Settings;
  reloadConfig?: () => Promise<LoadedConfig>;
  /** Takes the new configuration (the binds stay as they are), once the new generation serves. */
  apply(next: LoadedConfig): void;
  onReloadHook(): Promise<void>;
  /** The loop looks at the reload again, now or in `ms`. */
  wake(ms?: number): void;
  /** How it ended: the loop runs as before. */
  done(result: ReloadOutcome): void;
}

export class Reload {
  private readonly started = Date.now();
  private generation: number | null = null;
  private fresh: WorkerProcess[] = [];
  private next: LoadedConfig | null = null;
  private size = 0;
  private canary: CanaryWatch | null = null;
  private wakeSet = false;
  private readonly waiting: ((reloaded: boolean) => void)[] = [];
  private cancelled = false;
  private ended = false;

  constructor(private readonly host: ReloadHost) {}

  /** Resolves true when the new workers took over, false when the reload did not happen. */
  wait(): Promise<boolean> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Re-reads the configuration and starts the new workers (not when the configuration is invalid). */
  async begin(): Promise<void> {
    const { host } = this;
    await host.onReloadHook();
    let settings = host.settings();
    if (host.reloadConfig) {
      try {
        const next = await host.reloadConfig();
        if (this.cancelled) return;
        if (JSON.stringify(next.settings.bind) !== JSON.stringify(host.settings().bind)) {
          host.log.warn('reload: binds changed in the configuration; they take effect on restart (or a USR2 upgrade)');
        }
        this.next = next;
        settings = { ...next.settings, bind: host.settings().bind };
      } catch (err) {
        if (this.cancelled) return;
        host.log.error({ err: errorInfo(err) }, 'reload aborted: the new configuration is invalid; the current workers keep serving');
        return this.end({ outcome: 'aborted', reason: 'the new configuration is invalid' });
      }
    }
    if (this.cancelled) return;
    const { pool } = host;
    const ceiling = Math.max(settings.workers, settings.maxWorkers);
    this.size = this.next ? Math.min(ceiling, Math.max(settings.workers, pool.desired)) : pool.desired;
    const canarySeconds = settings.reloadCanary;
    const count = canarySeconds > 0 ? 1 : this.size;
    ({ generation: this.generation, fresh: this.fresh } = pool.startGeneration(count, settings));
    if (canarySeconds > 0) {
      this.canary = new CanaryWatch(this.fresh[0]!, canarySeconds * 1000, () =>
        pool.alive().filter((w) => w.generation === pool.generation),
      );
      host.log.info(
        { canaryPid: this.fresh[0]!.pid, canarySeconds },
        `reload: a canary of the new version serves next to the old workers for ${canarySeconds} s first`,
      );
    }
    host.wake();
  }

  /** After each event: where the reload stands now. */
  progress(): void {
    const { log, pool } = this.host;
    if (this.generation === null || this.ended) return;
    if (this.fresh.some((w) => !w.alive && w.readyAt === null)) {
      const err = this.fresh.find((w) => w.bootError)?.bootError;
      for (const w of this.fresh) w.kill('killed: reload aborted');
      pool.forgetGeneration(this.generation);
      log.error({ err }, 'reload aborted: new workers failed to boot; the old workers keep serving');
      return this.end({ outcome: 'aborted', reason: `new workers failed to boot${err ? `: ${err.message.split('\n')[0]}` : ''}` });
    }
    if (this.canary) {
      const verdict = this.canary.look();
      if (verdict === null) {
        // Looked at again on every event (heartbeats included), and at the window's end.
        const due = this.canary.dueInMs();
        if (due !== null && !this.wakeSet) {
          this.wakeSet = true;
          this.host.wake(due);
        }
        return;
      }
      this.canary = null;
      if (verdict.cause !== 'passed') return this.rollBack(verdict);
      log.info({ ...verdict.figures }, `reload: the canary passed (${verdict.reason}); the rest of the new workers start`);
      this.fresh.push(...pool.extendGeneration(this.generation, 1, this.size - 1));
    }
    if (!this.fresh.every((w) => w.readyAt !== null)) return;
    if (this.next) this.host.apply(this.next);
    pool.switchTo(this.generation);
    // Every older worker, also one that replaced an old worker (a crash, --max-requests) meanwhile.
    for (const w of pool.alive()) if (w.generation !== this.generation) w.retire('replaced by reload');
    log.info({ workers: pool.desired, reloadMs: Date.now() - this.started }, 'reload complete: new workers serving, old workers draining');
    this.end({ outcome: 'completed' });
  }

  /** The canary did not prove the new version: it goes, gracefully; the old pool keeps serving. */
  private rollBack(verdict: CanaryVerdict): void {
    const { log, pool } = this.host;
    for (const w of this.fresh) w.retire('reload rolled back');
    pool.forgetGeneration(this.generation!);
    log.error(
      { cause: verdict.cause, ...verdict.figures },
      `reload rolled back: ${verdict.reason}; the old workers keep serving (the new version is not tried again until the next reload)`,
    );
    this.end({ outcome: 'rolled back', reason: verdict.reason, cause: verdict.cause });
  }

  private end(result: ReloadOutcome): void {
    this.ended = true;
    this.host.done(result);
  }

  /** A stop began: the reload is off (its new workers stop with the others). */
  cancel(): void {
    this.cancelled = true;
    this.settle(false);
  }

  settle(reloaded: boolean): void {
    for (const resolve of this.waiting.splice(0)) resolve(reloaded);
  }
}
