// The arbiter (after Gunicorn's arbiter.py). Signal handlers, worker exits, ticks and ctl
// commands only enqueue events; ONE loop handles them one at a time, in the light of its mode
// (running, reloading, draining, stopping): two reloads never interleave; health checks run.
import type { Settings } from '../config/settings.js';
import type { LoadedConfig } from '../config/load.js';
import type { Listener } from '../listeners/bind.js';
import { flushLogs, reopenLogFiles, type Logger } from '../log/logger.js';
import { EXIT_BOOT_ERROR, exhaustive } from '../protocol.js';
import { VERSION } from '../version.js';
import { noopNotifier, type Notifier } from '../notify/notifier.js';
import { runHook } from '../config/hooks.js';
import { runControlCall, type ControlCall, type ControlReply, type ControlTarget, type SetResult } from './control.js';
import { getSetting, parseChange, withChange } from './live-settings.js';
import { configRows } from '../config/display.js';
import { WorkerPool } from './pool.js';
import { Autoscaler } from './autoscale.js';
import { startAlarm, type Alarm, type Mode } from './modes.js';
import { assertAppFound } from './boot-errors.js';
import { Reload, type ReloadOutcome } from './reload.js';
import { MasterResources } from './resources.js';
import { SignalQueue, type ArbiterEvent, type HandledSignal } from './signals.js';
import { hookView, isHealthy, statusLine, statusView, workerRows, type ArbiterState, type HookView } from './status.js';
import { checkTimeouts } from './timeouts.js';
import { Upgrade, announceUpgradeReady } from './upgrade.js';
import type { WorkerProcess } from './workers.js';

export type { ArbiterState } from './status.js';

export interface ArbiterOptions {
  config: LoadedConfig;
  log: Logger;
  /** Re-reads config file and environment on reload (SIGHUP). */
  reloadConfig?: () => Promise<LoadedConfig>;
  env?: NodeJS.ProcessEnv;
  /** Supervisor notifications (systemd); defaults to none. */
  notifier?: Notifier;
}

export class Arbiter {
  settings: Settings;
  readonly startedAt = Date.now();
  readonly pool: WorkerPool;
  private mode: Mode = { is: 'booting' };
  private readonly log: Logger;
  private readonly notifier: Notifier;
  private readonly queue = new SignalQueue();
  config: LoadedConfig;
  private announced = false;
  /** Callers of a reload asked for while one runs: one more reload follows it. */
  private nextReload: ((reloaded: boolean) => void)[] | null = null;
  private exitCode = 0;
  private readonly held: MasterResources;
  private readonly upgrade: Upgrade;
  readonly autoscaler: Autoscaler;
  /** How the last reload ended (ctl status, ctl top). */
  lastReload: ({ at: number } & ReloadOutcome) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastStatus = '';

  constructor(private readonly opts: ArbiterOptions) {
    this.config = opts.config;
    this.settings = opts.config.settings;
    this.log = opts.log;
    this.notifier = opts.notifier ?? noopNotifier;
    this.held = new MasterResources(this.log);
    this.pool = new WorkerPool(
      {
        log: this.log,
        settings: () => this.settings,
        listeners: () => this.held.listeners,
        configPath: () => this.config.configPath,
        poolReady: () => this.announced && !this.stopRequested,
        stopping: () => this.stopRequested,
        metrics: () => this.held.metrics,
        hook: (name, ...args) => this.hook(name, ...args),
        push: (event) => this.queue.push(event),
      },
      { floor: this.settings.workers, ceiling: this.settings.maxWorkers },
    );
    this.autoscaler = new Autoscaler({
      log: this.log,
      pool: this.pool,
      scaleDownDelayMs: () => this.settings.scaleDownDelay * 1000,
      listeners: () => this.held.listeners,
      steady: () => this.mode.is === 'running',
    });
    this.upgrade = new Upgrade({
      log: this.log,
      notifier: this.notifier,
      pidfile: () => this.held.pidfile,
      preExec: () => this.hook('preExec'),
    });
  }

  get state(): ArbiterState {
    return this.mode.is === 'draining' ? 'stopping' : this.mode.is;
  }

  get listeners(): readonly Listener[] {
    return this.held.listeners;
  }

  get workers(): ReadonlySet<WorkerProcess> {
    return this.pool.workers;
  }

  /** A stop has begun (the drain window counts). */
  private get stopRequested(): boolean {
    return this.mode.is === 'draining' || this.mode.is === 'stopping';
  }

  /** The last worker of a stop has exited: the loop ends. */
  private get stopped(): boolean {
    return this.mode.is === 'stopping' && this.pool.workers.size === 0;
  }

  /** Runs the server until it stops; resolves with the process exit code. */
  async run(): Promise<number> {
    const s = this.settings;
    const env = this.opts.env ?? process.env;
    this.log.info({ version: VERSION, node: process.version, app: s.app, workers: s.workers }, 'starting ws-proxy-kit');
    if (s.app) assertAppFound(s.app, s.chdir ?? process.cwd());
    await this.hook('onStarting');
    // Before the sockets exist: a TERM from then on is queued for the loop (a graceful stop
    // that removes them), never the default action that kills the master and leaves them.
    this.queue.install();
    await this.held.open(s, env, {
      workers: () => this.pool.workers,
      degraded: () => this.pool.degraded !== null,
      poolSize: () => ({ ...this.pool.bounds(), utilization: this.autoscaler.utilization() }),
    });
    await this.held.watch(s, this.config.configPath, () => this.queue.push({ type: 'signal', signal: 'SIGHUP' }));
    this.timer = setInterval(() => this.queue.push({ type: 'tick' }), 500);
    // Not awaited after an upgrade: the new master serves while it waits for the path.
    const control = this.held.openControl(
      s,
      (call) => this.control(call),
      () => !this.stopRequested,
    );
    if (!this.held.upgraded) await control;

    // The loop runs while the first workers boot, so a TERM during boot is honoured at once.
    this.pool.switchTo(this.pool.startGeneration(this.pool.desired).generation);
    this.mode = { is: 'running' };
    while (!this.stopped) {
      await this.handle(await this.queue.next());
      this.step();
    }
    return this.finish();
  }

  private async handle(event: ArbiterEvent): Promise<void> {
    switch (event.type) {
      case 'signal':
        return this.handleSignal(event.signal);
      case 'exit':
        return this.handleExit(event.worker);
      case 'tick':
        return this.handleTick();
      case 'command':
        return this.handleCommand(event.call, event.reply);
      default:
        exhaustive(event);
    }
  }

  /** After each event: what the mode calls for now. */
  private step(): void {
    if (this.mode.is === 'reloading') this.mode.reload.progress();
    const mode = this.mode;
    // While a reload runs (a canary's window can be long), the old pool is kept whole too:
    // a worker of it that dies is replaced, with the old version.
    if (mode.is === 'running' || mode.is === 'reloading') this.pool.maintain();
    if (mode.is === 'running') {
      this.announceReady();
    } else if (mode.is === 'draining' && mode.alarm.rang) {
      this.log.info('drain window over: stopping the workers');
      this.stopWorkers(true);
    } else if (mode.is === 'stopping' && mode.alarm.rang && !mode.killed) {
      mode.killed = true;
      for (const w of this.pool.alive()) w.kill('killed: graceful timeout');
    }
    if (this.announced) this.publishStatus();
  }

  private readonly signalHandlers: Record<HandledSignal, (signal: HandledSignal) => void | Promise<void>> = {
    SIGTERM: () => this.beginStop(true),
    SIGINT: (signal) => this.stopNow(signal),
    SIGQUIT: (signal) => this.stopNow(signal),
    SIGHUP: () => void this.reload(),
    SIGTTIN: () => this.log.info({ workers: this.pool.resize(+1) }, 'one worker more'),
    SIGTTOU: () => this.log.info({ workers: this.pool.resize(-1) }, 'one worker fewer'),
    SIGUSR2: () => this.upgrade.start(this.listeners),
    // After USR2: stop the workers, keep the sockets (a HUP brings them back).
    SIGWINCH: () => this.pool.retireAll(),
    SIGUSR1: () => {
      reopenLogFiles();
      for (const w of this.pool.workers) w.send({ type: 'reopen-logs' });
      this.log.info('log files reopened');
    },
  };

  private handleSignal(signal: HandledSignal): void | Promise<void> {
    this.log.info({ signal }, `received ${signal}`);
    // Once a stop has begun, only a quicker stop and new log files still mean something.
    if (this.stopRequested && signal !== 'SIGINT' && signal !== 'SIGQUIT' && signal !== 'SIGUSR1') return;
    return this.signalHandlers[signal](signal);
  }

  private handleExit(w: WorkerProcess): void {
    // First, so that an aborted reload's workers are logged as such.
    if (this.mode.is === 'reloading') this.mode.reload.progress();
    if (this.pool.reap(w) === 'give up') {
      this.exitCode = EXIT_BOOT_ERROR;
      this.beginStop(false);
    }
  }

  /** Kills workers whose event loop stopped answering, or that never finished booting: in every mode. */
  private handleTick(): void {
    checkTimeouts(this.pool.workers, {
      settings: this.settings,
      log: this.log,
      workerAbort: (w, frames) => this.hook('workerAbort', w.info(), frames),
    });
    this.autoscaler.tick();
  }

  /** A ctl command from code (serve()'s handle): through the queue, as the control socket's. */
  control(call: ControlCall): Promise<ControlReply> {
    return new Promise((reply) => this.queue.push({ type: 'command', call, reply }));
  }

  /** `ws-proxy-kit ctl`: the same effects as the signals, from the same queue. Not awaited: a reload answers once done. */
  private handleCommand(call: ControlCall, reply: (r: ControlReply) => void): void {
    const refused =
      this.mode.is === 'draining'
        ? 'the server is draining before it stops'
        : this.mode.is === 'stopping'
          ? 'the server is stopping'
          : null;
    if (refused) return reply({ ok: false, error: refused });
    void new Promise((resolve) => resolve(runControlCall(this.commands, call))).then(
      (result) => reply({ ok: true, result }),
      (err: unknown) => reply({ ok: false, error: (err as Error).message }),
    );
  }

  private readonly commands: ControlTarget = {
    status: () => statusView(this),
    workerRows: () => workerRows(this.pool),
    reload: () => this.reload(),
    resize: (delta) => this.pool.resize(delta),
    retireWorker: (pid) => this.pool.retireByPid(pid, 'stopped by ctl'),
    reopenLogs: () => void this.handleSignal('SIGUSR1'),
    enqueueSignal: (signal) => this.queue.push({ type: 'signal', signal }),
    setSetting: (name, value) => this.setSetting(name, value),
    getSetting: (name) => getSetting(this.config, name),
    configRows: () => configRows(this.config),
  };

  /** `ctl set`: the master takes the value now, the live workers hear of it (live-settings.ts). */
  private setSetting(name: string, raw: string): SetResult {
    const { setting, value, result } = parseChange(this.config, name, raw);
    this.config = withChange(this.config, setting, value);
    this.settings = { ...this.config.settings, bind: this.settings.bind };
    this.pool.applySettings({ [setting.name]: value } as Partial<Settings>);
    if (setting.name === 'logLevel') this.log.level = value as string;
    this.log.info({ ...result }, `ctl set ${setting.name}: ${result.old} -> ${result.new} (${result.applied})`);
    return result;
  }

  /** SIGHUP: new config, new workers; the old ones retire once the new are ready. Resolves false when the reload did not happen. */
  private reload(): Promise<boolean> {
    if (this.mode.is === 'reloading') return new Promise((resolve) => (this.nextReload ??= []).push(resolve));
    if (this.mode.is !== 'running') return Promise.resolve(false);
    const reload = new Reload({
      log: this.log,
      pool: this.pool,
      settings: () => this.settings,
      ...(this.opts.reloadConfig ? { reloadConfig: this.opts.reloadConfig } : {}),
      apply: (next) => {
        this.config = next;
        this.settings = { ...next.settings, bind: this.settings.bind };
        this.pool.setBounds(next.settings.workers, next.settings.maxWorkers);
      },
      onReloadHook: () => this.hook('onReload'),
      wake: (ms = 0) => void setTimeout(() => this.queue.push({ type: 'tick' }), ms),
      done: (result) => this.endReload(reload, result),
    });
    this.mode = { is: 'reloading', reload };
    this.notifier.reloading();
    void reload.begin();
    return reload.wait();
  }

  /** The reload completed or was aborted: running again (and the next reload, if one was asked for meanwhile). */
  private endReload(reload: Reload, result: ReloadOutcome): void {
    if (this.mode.is !== 'reloading' || this.mode.reload !== reload) return;
    this.mode = { is: 'running' };
    const reloaded = result.outcome === 'completed';
    this.lastReload = { at: Date.now(), ...result };
    if (result.outcome === 'rolled back') this.held.metrics?.reloadRolledBack(result.cause);
    this.notifier.ready(
      result.outcome === 'rolled back' ? `${this.statusLine()}; reload rolled back: ${result.reason}` : this.statusLine(),
    );
    reload.settle(reloaded);
    const next = this.nextReload;
    this.nextReload = null;
    if (next) void this.reload().then((ok) => next.forEach((resolve) => resolve(ok)));
    this.queue.push({ type: 'tick' });
  }

  private beginStop(graceful: boolean): void {
    if (this.stopRequested) return;
    if (this.mode.is === 'reloading') this.mode.reload.cancel();
    for (const resolve of this.nextReload ?? []) resolve(false);
    this.nextReload = null;
    const drainSeconds = graceful ? this.settings.drainSeconds : 0;
    // --drain-seconds: all keeps serving while load balancers notice the failing readiness.
    if (drainSeconds > 0) this.mode = { is: 'draining', alarm: this.alarm(drainSeconds * 1000) };
    this.notifier.stopping();
    // Readiness probes fail from now on (src/worker/health.ts), during the drain window too.
    for (const w of this.pool.workers) w.send({ type: 'readiness', ready: false, reason: 'stopping' });
    if (drainSeconds === 0) return this.stopWorkers(graceful);
    this.log.info({ drainSeconds }, `draining: readiness fails, still serving for ${drainSeconds} s`);
  }

  /** INT/QUIT: a quick stop, or a quicker one (as in Gunicorn, a second INT makes a graceful stop quick). */
  private stopNow(signal: HandledSignal): void {
    if (this.mode.is === 'draining') {
      this.log.info({ signal }, 'drain window cut short: stopping now');
      this.stopWorkers(false);
    } else if (this.mode.is === 'stopping') {
      this.log.info({ signal }, 'stopping now');
      for (const w of this.pool.alive()) w.stop(false);
    } else this.beginStop(false);
  }

  private stopWorkers(graceful: boolean): void {
    if (this.mode.is === 'draining') clearTimeout(this.mode.alarm.timer);
    const s = this.settings;
    const all = this.pool.alive();
    this.log.info({ graceful, workers: all.length }, graceful ? 'stopping gracefully' : 'stopping now');
    // Stop taking connections now, before the workers are told (as Gunicorn does): with UNIX
    // paths unlinked nothing new queues, and each worker accepts what is queued before it
    // closes its fd (HttpWorker.drain). After an upgrade the sockets stay.
    this.held.closeListeners(this.upgrade.handedOver);
    for (const w of all) w.stop(graceful);
    const waitMs = graceful ? s.gracefulTimeout * 1000 + 1000 : Math.min(s.gracefulTimeout * 1000, 5000);
    this.mode = { is: 'stopping', alarm: this.alarm(waitMs), killed: false };
  }

  private alarm(ms: number): Alarm {
    return startAlarm(ms, () => this.queue.push({ type: 'tick' }));
  }

  /** Logs "ready" once, when the whole first pool is up. */
  private announceReady(): void {
    if (this.announced) return;
    const ready = this.pool.ready();
    const desired = this.pool.desired;
    // A first pool that cannot fully boot still serves with what did: ready, and degraded.
    if (ready.length < desired && !(this.pool.degraded && ready.length > 0)) return;
    this.announced = true;
    for (const w of this.pool.workers) w.send({ type: 'readiness', ready: true, reason: 'serving' });
    const addresses = this.listeners.map((l) => l.address);
    const app = ready[0]?.appKind ?? this.settings.app;
    this.log.info(
      { binds: addresses, workers: desired, app, bootMs: Date.now() - this.startedAt },
      `ready: serving ${app} on ${addresses.join(', ')} with ${ready.length} worker${ready.length === 1 ? '' : 's'}${ready.length < desired ? ` of ${desired} (degraded)` : ''}`,
    );
    this.notifier.ready(this.statusLine());
    this.notifier.startWatchdog(() => this.isHealthy());
    if (this.held.upgraded) announceUpgradeReady();
    void this.hook('whenReady');
  }

  /** What hooks get as their first argument: a read-only view of the arbiter. */
  hookView(): HookView {
    return hookView(this, this.log);
  }

  private hook(name: string, ...args: unknown[]): Promise<void> {
    return runHook(this.config.hooks, name, this.log, this.hookView(), ...args);
  }

  /** One line for `systemctl status` and logs. */
  statusLine(): string {
    return statusLine(this);
  }

  /** Healthy = serving with at least one ready worker, none stuck past the timeout. */
  isHealthy(): boolean {
    return isHealthy(this);
  }

  private publishStatus(): void {
    const line = this.statusLine();
    if (line !== this.lastStatus) {
      this.lastStatus = line;
      this.notifier.status(line);
    }
  }

  private async finish(): Promise<number> {
    if (this.mode.is === 'stopping') clearTimeout(this.mode.alarm.timer);
    if (this.timer) clearInterval(this.timer);
    await this.held.stopServices();
    this.queue.uninstall();
    this.held.release(this.upgrade.handedOver);
    this.notifier.close();
    await this.hook('onExit');
    this.log.info({ code: this.exitCode }, 'stopped');
    flushLogs();
    return this.exitCode;
  }
}
