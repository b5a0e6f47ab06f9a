// One reload (HUP, `ctl reload`), while the arbiter's loop is in its reloading mode: re-read
// the configuration, start a new generation of workers, and once ALL of it is ready retire
// the old one. If a new worker fails to boot, the new generation is killed and the old one
// keeps serving. The loop goes on meanwhile: health checks (--boot-timeout) run, a TERM stops
// everything at once.
import type { LoadedConfig } from '../config/load.js';
import type { Settings } from '../config/settings.js';
import { errorInfo, type Logger } from '../log/logger.js';
import type { WorkerPool } from './pool.js';
import type { WorkerProcess } from './workers.js';

export interface ReloadHost {
  log: Logger;
  pool: WorkerPool;
  settings(): Settings;
  reloadConfig?: () => Promise<LoadedConfig>;
  /** Takes the new configuration (the binds stay as they are). */
  apply(next: LoadedConfig): void;
  onReloadHook(): Promise<void>;
  /** The loop looks at the reload again. */
  wake(): void;
  /** Complete (true) or aborted (false): the loop runs as before. */
  done(reloaded: boolean): void;
}

export class Reload {
  private readonly started = Date.now();
  private generation: number | null = null;
  private fresh: WorkerProcess[] = [];
  private old: WorkerProcess[] = [];
  private readonly waiting: ((reloaded: boolean) => void)[] = [];
  private cancelled = false;

  constructor(private readonly host: ReloadHost) {}

  /** Resolves true when the new workers took over, false when the reload did not happen. */
  wait(): Promise<boolean> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Re-reads the configuration and starts the new workers (not when the configuration is invalid). */
  async begin(): Promise<void> {
    const { host } = this;
    await host.onReloadHook();
    if (host.reloadConfig) {
      try {
        const next = await host.reloadConfig();
        if (this.cancelled) return;
        if (JSON.stringify(next.settings.bind) !== JSON.stringify(host.settings().bind)) {
          host.log.warn('reload: binds changed in the configuration; they take effect on restart (or a USR2 upgrade)');
        }
        host.apply(next);
      } catch (err) {
        if (this.cancelled) return;
        host.log.error({ err: errorInfo(err) }, 'reload aborted: the new configuration is invalid; the current workers keep serving');
        return host.done(false);
      }
    }
    if (this.cancelled) return;
    this.old = host.pool.alive();
    ({ generation: this.generation, fresh: this.fresh } = host.pool.startGeneration(host.pool.desired));
    host.wake();
  }

  /** After each event: done once all the new workers are ready (the pool switches) or one failed (they are killed). */
  progress(): void {
    const { log, pool } = this.host;
    if (this.generation === null) return;
    if (this.fresh.some((w) => !w.alive && w.readyAt === null)) {
      const err = this.fresh.find((w) => w.bootError)?.bootError;
      for (const w of this.fresh) w.kill('killed: reload aborted');
      log.error({ err }, 'reload aborted: new workers failed to boot; the old workers keep serving');
      return this.host.done(false);
    }
    if (!this.fresh.every((w) => w.readyAt !== null)) return;
    pool.switchTo(this.generation);
    for (const w of this.old) w.retire('replaced by reload');
    log.info({ workers: pool.desired, reloadMs: Date.now() - this.started }, 'reload complete: new workers serving, old workers draining');
    this.host.done(true);
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
