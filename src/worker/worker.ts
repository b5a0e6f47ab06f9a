// Worker process entry: spawned by the arbiter with its boot data in the environment. It
// builds the Worker (worker-process.ts) and hands it the process's signals and messages.
import { BOOT_ENV, type MasterMessage, type WorkerBoot, type WorkerMessage } from '../protocol.js';
import { createLogger, reopenLogFiles } from '../log/logger.js';
import { tapOutput } from './boot-output.js';
import { startWatchdogThread } from './watchdog-thread.js';
import { Worker } from './worker-process.js';

const boot = JSON.parse(process.env[BOOT_ENV] ?? 'null') as WorkerBoot | null;
if (!boot) {
  process.stderr.write('ws-proxy-kit: this is the worker entry point; start the server with `ws-proxy-kit APP`.\n');
  process.exit(2);
}
delete process.env[BOOT_ENV];

const log = createLogger({ ...boot.settings, logFormat: boot.logFormat }, { worker: boot.index });

function send(msg: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.connected) process.send!(msg, undefined, undefined, () => resolve());
    else resolve();
  });
}

const worker = new Worker({
  boot,
  log,
  send,
  // --hang-stacks: the thread that reads this worker's stack when its event loop is blocked
  // (src/worker/watchdog.ts). Started before the app loads: a boot can hang too.
  watchdog: boot.watchdogFd === null ? Promise.resolve() : startWatchdogThread(boot.watchdogFd, log),
  // While the app loads, keep the last lines it prints: if it never gets ready, the arbiter
  // asks for them and logs them with the boot timeout (no piping through the master).
  bootOutput: tapOutput(20),
});

process.on('SIGTERM', () => worker.drain('SIGTERM'));
process.on('SIGHUP', () => worker.drain('SIGHUP'));
process.on('SIGINT', () => worker.quit('SIGINT'));
process.on('SIGQUIT', () => worker.quit('SIGQUIT'));
// SIGUSR1 reopens the log files, as in Gunicorn's workers (the master also asks over IPC).
// Handling it also keeps Node from opening its inspector on 127.0.0.1:9229 on that signal.
process.on('SIGUSR1', () => reopenLogFiles());
process.on('message', (m: MasterMessage | null) => {
  if (m) worker.onMessage(m);
});
for (const sig of ['SIGUSR2', 'SIGWINCH', 'SIGTTIN', 'SIGTTOU'] as const) process.on(sig, () => {});
// The arbiter is gone (crashed or SIGKILLed): nobody will replace or stop us. Finish and go.
process.on('disconnect', () => worker.drain('master went away'));
for (const event of ['uncaughtException', 'unhandledRejection'] as const)
  process.on(event, (err: unknown) => worker.onUncaught(event, err));

await worker.start();
