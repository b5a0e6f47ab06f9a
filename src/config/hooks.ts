// Server hooks a config file may export (Gunicorn's hooks, camelCased). See docs/hooks.md.
export const hookNames: ReadonlySet<string> = new Set([
  'onStarting',
  'onReload',
  'whenReady',
  'preFork',
  'postFork',
  'postWorkerInit',
  'workerInt',
  'workerAbort',
  'preExec',
  'preRequest',
  'postRequest',
  'childExit',
  'workerExit',
  'nworkersChanged',
  'onExit',
]);

export type Hook = (...args: never[]) => unknown;
export type Hooks = Partial<Record<string, Hook>>;

interface HookLog {
  error(obj: object, msg: string): void;
}

/**
 * Calls a hook if the config defines it. A hook that throws (or rejects) is logged and
 * ignored: user code in a hook never takes the server down.
 */
export async function runHook(hooks: Hooks, name: string, log: HookLog, ...args: unknown[]): Promise<void> {
  const fn = hooks[name] as ((...a: unknown[]) => unknown) | undefined;
  if (!fn) return;
  try {
    await fn(...args);
  } catch (err) {
    log.error(
      { hook: name, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) },
      `hook ${name} threw; continuing`,
    );
  }
}
