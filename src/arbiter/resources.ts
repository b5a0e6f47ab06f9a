// What the master holds besides its workers, taken at start and let go at exit: the
// listening sockets (bound here, passed by systemd, or inherited from the old master after
// USR2), the metrics endpoint, the pidfile, the --reload watcher and the control socket.
import type { Settings } from '../config/settings.js';
import { openListeners, closeListeners, type Listener } from '../listeners/bind.js';
import { parseBind } from '../listeners/bind-spec.js';
import { forgetActivationEnv } from '../listeners/systemd.js';
import type { Logger } from '../log/logger.js';
// Loaded when used (--metrics-bind, --reload): a master that doesn't use them doesn't carry
// prom-client or chokidar.
import type { MasterMetrics, MasterMetricsOptions } from '../metrics/master-metrics.js';
import type { ControlCall, ControlReply } from './control.js';
import { ControlServer, controlSocketPath } from './control-socket.js';
import { Pidfile } from './pidfile.js';
import { inheritedListeners } from './upgrade.js';

export class MasterResources {
  listeners: Listener[] = [];
  metrics: MasterMetrics | null = null;
  pidfile: Pidfile | null = null;
  /** This master was started by USR2 on inherited sockets. */
  upgraded = false;
  private control: ControlServer | null = null;
  private stopWatching: (() => Promise<void>) | null = null;
  private listenersClosed = false;

  constructor(private readonly log: Logger) {}

  /** The sockets, the metrics endpoint and the pidfile: all before the first worker starts. */
  async open(s: Settings, env: NodeJS.ProcessEnv, pool: Pick<MasterMetricsOptions, 'workers' | 'degraded' | 'poolSize'>): Promise<void> {
    const inherited = inheritedListeners(env);
    this.upgraded = inherited !== null;
    this.listeners = inherited ?? (await openListeners(s.bind, s, this.log, env));
    // --health-bind: one more socket, appended after the app binds; workers serve only the
    // health paths on it (src/worker/health.ts). After USR2 it is among the inherited ones.
    if (!inherited && s.healthBind) {
      const health = await openListeners([parseBind(s.healthBind)], s, this.log, env).catch((err: unknown) => {
        closeListeners(this.listeners);
        throw err;
      });
      this.listeners.push(...health);
    }
    if (inherited)
      this.log.info(
        { binds: inherited.map((l) => l.address), parent: process.ppid },
        'upgrade: serving the sockets inherited from the old master',
      );
    forgetActivationEnv(env);
    if (s.metricsBind) {
      const { MasterMetrics } = await import('../metrics/master-metrics.js');
      this.metrics = new MasterMetrics({ bind: s.metricsBind, log: this.log, listeners: () => this.listeners, ...pool });
      // After USR2 the old master still holds the address: the new one retries until it is free.
      await this.metrics.listen(this.upgraded).catch((err: unknown) => {
        closeListeners(this.listeners, { unlink: !this.upgraded });
        throw err;
      });
    }
    if (s.pid) this.pidfile = Pidfile.create(s.pid);
  }

  /** --reload (development): a change to the app's files or the config file calls onChange. */
  async watch(s: Settings, configPath: string | null, onChange: () => void): Promise<void> {
    if (!s.reload || !s.app) return;
    const { watchForReload } = await import('./reloader.js');
    this.stopWatching = watchForReload({ app: s.app, cwd: process.cwd(), configPath, log: this.log, onChange });
  }

  /** The control socket. After USR2 the old master holds its path until it exits: then this keeps trying while `retry()`. */
  async openControl(s: Settings, handle: (call: ControlCall) => Promise<ControlReply>, retry: () => boolean): Promise<void> {
    const path = controlSocketPath(s);
    if (!path) return;
    const control = new ControlServer(path, handle, this.log);
    for (let attempt = 0; retry(); attempt++) {
      try {
        await control.listen();
        this.control = control;
        this.log.info({ path }, 'control socket listening (ws-proxy-kit ctl)');
        return;
      } catch (err) {
        // ctl is a convenience: a server must not fail to start over it.
        if (!this.upgraded || attempt === 0)
          this.log.warn(
            { path, err: (err as Error).message },
            this.upgraded ? 'control socket busy (the old master has it): retrying until it exits' : 'control socket not available',
          );
        if (!this.upgraded) return;
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  }

  /** Stop taking connections and commands. After an upgrade the sockets (and their files) belong to the new master. */
  closeListeners(handedOver: boolean): void {
    if (!this.listenersClosed) closeListeners(this.listeners, { unlink: !handedOver });
    this.listenersClosed = true;
    this.control?.close();
  }

  /** At exit, first: the watcher and the metrics endpoint. */
  async stopServices(): Promise<void> {
    await this.stopWatching?.();
    await this.metrics?.close();
  }

  /** At exit, last: sockets, control socket, pidfile. */
  release(handedOver: boolean): void {
    this.closeListeners(handedOver);
    this.pidfile?.remove();
  }
}
