// Starts the --hang-stacks watchdog thread (src/worker/watchdog.ts), which reads this
// worker's stack when its event loop is blocked.
import { Worker as Thread } from 'node:worker_threads';
import { errorInfo, type Logger } from '../log/logger.js';

/**
 * Resolves once the thread is up (5 s at most; at once if it fails): the worker listens
 * only then, since once connections come, the fds the thread needs may be gone.
 */
export function startWatchdogThread(fd: number, log: Logger): Promise<void> {
  const watchdog = new Thread(new URL('./watchdog.js', import.meta.url), {
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
