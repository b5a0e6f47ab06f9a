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
