// Worker process entry: load the app, serve on the inherited fds, heartbeat to the
// arbiter, drain on request. Spawned by the arbiter with its boot data in the environment.
import { BOOT_ENV, EXIT_BOOT_ERROR, type MasterMessage, type WorkerBoot, type WorkerMessage } from '../protocol.js';
import { createLogger, errorInfo, flushLogs, reopenLogFiles, type Logger } from '../log/logger.js';
import type { AccessLog } from '../log/access.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import { loadApp } from './app.js';
import { ServerResponse } from 'node:http';
import { Worker } from 'node:worker_threads';
import { HttpWorker } from './http-server.js';
import { currentRequest } from './request-context.js';
import { answerError } from './error-answers.js';
import { HealthResponder, serveHealthBind } from './health.js';
import { runHook, type Hooks } from '../config/hooks.js';
// The config loader, the access log and metrics load only when used: a worker's boot time
// is mostly module loading (docs/performance.md).
import { tapOutput } from './boot-output.js';

const boot = JSON.parse(process.env[BOOT_ENV] ?? 'null') as WorkerBoot | null;
if (!boot) {
  process.stderr.write('ws-proxy-kit: this is the worker entry point; start the server with `ws-proxy-kit APP`.\n');
  process.exit(2);
}
delete process.env[BOOT_ENV];

const settings = boot.settings;
const log: Logger = createLogger({ ...settings, logFormat: boot.logFormat }, { worker: boot.index });
let access: AccessLog | undefined;
let http: HttpWorker | null = null;
let metrics: WorkerMetrics | undefined;
let exiting = false;
/** --health-path/--ready-path on the app binds, and the --health-bind server: told the pool's readiness. */
const healthResponders: HealthResponder[] = [];
let poolReadiness = { ready: false, reason: 'booting' };

function send(msg: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.connected) process.send!(msg, undefined, undefined, () => resolve());
    else resolve();
  });
}

function exit(code: number): never {
  callHookSync('workerExit');
  access?.flush();
  flushLogs();
  process.exit(code);
}

/**
 * Graceful stop: no new connections, finish in-flight requests, then exit. `abandon` after
 * an uncaught error: stop taking work at once (HttpWorker.drain).
 */
function drain(reason: string, code = 0, abandon = false): void {
  if (exiting) return;
  exiting = true;
  void send({ type: 'draining', reason });
  if (!http) {
    log.info({ reason }, 'worker draining');
    exit(code);
  }
  const deadline = setTimeout(() => {
    log.warn({ inflight: http!.stats.inflight, connections: http!.stats.connections }, 'graceful timeout: closing remaining connections');
    http!.closeAll();
    exit(code);
  }, settings.gracefulTimeout * 1000);
  // Logged once the listening sockets are closed (after the backlog is emptied): from this
  // line on, no new connection reaches us.
  const drained = http.drain(() => log.info({ reason, inflight: http!.stats.inflight }, 'worker draining'), { abandon });
  void drained.then(async () => {
    clearTimeout(deadline);
    log.info('worker stopped');
    // The final counts, so the master's exit line and totals include the last requests.
    await send(heartbeat(currentRss()));
    exit(code);
  });
}

function quit(reason: string): void {
  if (exiting && !http) exit(0);
  exiting = true;
  callHookSync('workerInt');
  log.info({ reason }, 'worker quitting now');
  if (!http) exit(0);
  http.closeAll();
  // The final counts for the master's exit line, if the channel takes them at once.
  void Promise.race([send(heartbeat(currentRss())), new Promise((r) => setTimeout(r, 100))]).then(() => exit(0));
}

process.on('SIGTERM', () => drain('SIGTERM'));
process.on('SIGHUP', () => drain('SIGHUP'));
process.on('SIGINT', () => quit('SIGINT'));
process.on('SIGQUIT', () => quit('SIGQUIT'));
// SIGUSR1 reopens the log files, as in Gunicorn's workers (the master also asks over IPC).
// Handling it also keeps Node from opening its inspector on 127.0.0.1:9229 on that signal.
process.on('SIGUSR1', () => reopenLogFiles());
process.on('message', (m: MasterMessage) => {
  if (m?.type === 'reopen-logs') {
    reopenLogFiles();
    log.debug('log files reopened');
  } else if (m?.type === 'boot-report') {
    void send({ type: 'boot-report', lines: bootOutput.lines() });
  } else if (m?.type === 'balance' && http) {
    const shed = http.acceptControl.order(m.target, m.limit);
    if (shed) log.debug({ target: m.target, shed }, "more than this worker's share of the connections: pausing accepts, closing some");
  } else if (m?.type === 'readiness') {
    poolReadiness = m; // may arrive before the app is loaded: applied to responders made later
    for (const h of healthResponders) h.setPoolReadiness(m.ready, m.reason);
  }
});
for (const sig of ['SIGUSR2', 'SIGWINCH', 'SIGTTIN', 'SIGTTOU'] as const) process.on(sig, () => {});
// The arbiter is gone (crashed or SIGKILLed): nobody will replace or stop us. Finish and go.
process.on('disconnect', () => drain('master went away'));

for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err: unknown) => {
    // The request whose code threw (its timers and promises carry its context), if any.
    const target = currentRequest();
    const req = target instanceof ServerResponse ? target.req : undefined;
    const where = req ? { requestId: req.headers['x-request-id'], method: req.method, url: req.url?.slice(0, 200) } : {};
    log.fatal(
      { err: errorInfo(err), event, ...where },
      target
        ? `uncaught error in a request's code: that request is answered 500; the worker takes no more work and exits once its other requests finish`
        : 'uncaught error outside a request: the worker takes no more work and exits once its requests finish',
    );
    if (target instanceof ServerResponse) answerError(target, 500);
    else target?.destroy(); // an upgraded connection
    void send({ type: 'fatal', reason: event, error: errorInfo(err) });
    drain(event, 1, true);
  });
}

// Hooks that run in the worker (the others run in the arbiter): see docs/hooks.md.
let hooks: Hooks = {};
const workerView = { pid: process.pid, index: boot.index, id: boot.id, generation: boot.generation, log };
/** For hooks on exit paths, which can't wait: a returned promise is not awaited. */
function callHookSync(name: string, ...args: unknown[]): void {
  const fn = hooks[name] as ((...a: unknown[]) => unknown) | undefined;
  if (!fn) return;
  try {
    const r = fn(workerView, ...args) as Promise<unknown> | undefined;
    if (r && typeof r.then === 'function')
      r.then(undefined, (err: unknown) => log.error({ hook: name, err: errorInfo(err) }, `hook ${name} threw; continuing`));
  } catch (err) {
    log.error({ hook: name, err: errorInfo(err) }, `hook ${name} threw; continuing`);
  }
}

// --hang-stacks: the thread that reads this worker's stack when its event loop is blocked
// (src/worker/watchdog.ts). Started before the app loads: a boot can hang too.
// Awaited before the worker listens: once connections come, the fds it needs may be gone.
const watchdogStarted = boot.watchdogFd === null ? Promise.resolve() : startWatchdog(boot.watchdogFd);

function startWatchdog(fd: number): Promise<void> {
  const watchdog = new Worker(new URL('./watchdog.js', import.meta.url), {
    workerData: { fd },
    execArgv: [],
    stdout: false,
    stderr: false,
  });
  watchdog.unref(); // it never keeps the worker alive
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 5000).unref();
    watchdog.once('message', () => {
      clearTimeout(timer);
      resolve();
    });
    watchdog.on('error', (err) => {
      log.warn({ err: errorInfo(err) }, 'the watchdog thread stopped: a hang will be logged without its stack');
      clearTimeout(timer);
      resolve();
    });
  });
}

// While the app loads, keep the last lines it prints: if it never gets ready, the arbiter
// asks for them and logs them with the boot timeout (no piping through the master).
const bootOutput = tapOutput(20);

try {
  if (boot.configPath) hooks = (await (await import('../config/load.js')).configFileLayer(boot.configPath)).hooks;
  await runHook(hooks, 'postFork', log, workerView);
  const app = await loadApp(settings.app!, process.cwd(), (err) => log.error({ err }, 'app error in fetch handler: answered 500'));
  if (settings.accessLogfile)
    access = (await import('../log/access.js')).createAccessLog(settings.accessLogfile, boot.index, settings.accessLogformat);
  if (settings.metricsBind) metrics = new (await import('../metrics/worker-metrics.js')).WorkerMetrics();
  const draining = () => exiting;
  const health = HealthResponder.fromSettings(settings, draining);
  if (health) healthResponders.push(health);
  http = new HttpWorker({
    settings,
    app,
    log,
    access,
    metrics,
    health,
    preRequest: hooks.preRequest ? (req) => callHookSync('preRequest', req) : undefined,
    postRequest: hooks.postRequest ? (req, res) => callHookSync('postRequest', req, res) : undefined,
    reportLoad: settings.balanceConnections ? (busy) => void send({ type: 'load', busy }) : undefined,
  });
  await runHook(hooks, 'postWorkerInit', log, workerView);
  // --health-bind: the master appends that socket after the app binds (src/arbiter/arbiter.ts).
  const appListeners = settings.healthBind ? boot.listeners.slice(0, -1) : boot.listeners;
  if (settings.healthBind) healthResponders.push(await serveHealthBind(settings, boot.listeners.at(-1)!.fd, draining, log));
  for (const h of healthResponders) h.setPoolReadiness(poolReadiness.ready, poolReadiness.reason);
  await watchdogStarted;
  await http.listen(appListeners);
  if (exiting) {
    // A stop arrived while we were booting.
    drain('stopped during boot');
  } else {
    log.debug({ app: app.description }, 'worker ready');
    bootOutput.stop();
    void send({ type: 'ready', appKind: app.description });
  }
} catch (err) {
  const info = errorInfo(err);
  log.error({ err: info, app: settings.app }, 'worker failed to boot: could not load the app');
  await send({ type: 'boot-error', error: info });
  exit(EXIT_BOOT_ERROR);
}

/** The heartbeat message: stats, CPU time, and the metrics snapshot when --metrics-bind is set. */
function heartbeat(rss: number): WorkerMessage {
  const cpu = process.cpuUsage();
  const stats = http!.stats;
  const busy = settings.balanceConnections ? http!.acceptControl.busy() : undefined;
  return {
    type: 'heartbeat',
    ...stats,
    busy,
    rss,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    metrics: metrics?.snapshot({ ...stats, moved: http!.acceptControl.shedTotal }),
  };
}

let atFdLimit = false;
/** RSS now; 0 when it cannot be read. */
function currentRss(): number {
  try {
    const rss = process.memoryUsage.rss();
    atFdLimit = false;
    return rss;
  } catch (err) {
    // EMFILE (it reads /proc): a missed figure, not a crash. libuv then closes the connections
    // it cannot accept without telling node, so this is where the fd limit becomes visible.
    if (!atFdLimit)
      log.warn(
        { code: (err as NodeJS.ErrnoException).code, connections: http?.stats.connections },
        'at the open-file limit: new connections are closed unserved; raise `ulimit -n` (LimitNOFILE=) or lower --worker-connections',
      );
    atFdLimit = true;
    return 0;
  }
}
const heartbeatMs = Math.max(100, Math.min(1000, (settings.timeout * 1000) / 4 || 1000));
let askedToRetire = false;
setInterval(() => {
  if (!http) return;
  void send(heartbeat(currentRss()));
  // max-requests: the arbiter starts our replacement and retires us once it is ready,
  // so recycling drops nothing. Checked with the heartbeat: off the request path.
  if (boot.maxRequests > 0 && !askedToRetire && !exiting && http.stats.requests >= boot.maxRequests) {
    askedToRetire = true;
    log.info({ requests: http.stats.requests, maxRequests: boot.maxRequests }, 'max requests reached: asking for a replacement');
    void send({ type: 'retire-me', reason: 'max-requests' });
  }
}, heartbeatMs).unref();
