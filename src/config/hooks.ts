// Server hooks a config file may export (Gunicorn's hooks, camelCased). See docs/hooks.md.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Arbiter } from '../arbiter/arbiter.js';
import type { WorkerProcess } from '../arbiter/workers.js';
import type { StackFrame } from '../arbiter/hang-stack.js';
import type { WorkerBoot } from '../protocol.js';

/** What master-side hooks get: a read-only view of the server. */
export type ServerView = ReturnType<Arbiter['hookView']>;
/** A worker as the master sees it (server.workers, childExit, workerAbort). */
export type WorkerInfo = ReturnType<WorkerProcess['info']>;
/** What worker-side hooks get. */
export interface WorkerView extends Pick<WorkerBoot, 'id' | 'index' | 'generation'> {
  pid: number;
  log: Logger;
}

/** The hooks with their arguments (docs/hooks.md). A hook may be async; what it returns is ignored. */
export interface ServerHooks {
  onStarting?(server: ServerView): unknown;
  onReload?(server: ServerView): unknown;
  whenReady?(server: ServerView): unknown;
  preFork?(server: ServerView, worker: { index: number; generation: number }): unknown;
  postFork?(worker: WorkerView): unknown;
  postWorkerInit?(worker: WorkerView): unknown;
  workerInt?(worker: WorkerView): unknown;
  workerAbort?(server: ServerView, worker: WorkerInfo, stack: StackFrame[]): unknown;
  preExec?(server: ServerView): unknown;
  preRequest?(worker: WorkerView, req: IncomingMessage): unknown;
  postRequest?(worker: WorkerView, req: IncomingMessage, res: ServerResponse): unknown;
  childExit?(server: ServerView, worker: WorkerInfo): unknown;
  workerExit?(worker: WorkerView): unknown;
  nworkersChanged?(server: ServerView, newCount: number, oldCount: number): unknown;
  onExit?(server: ServerView): unknown;
}

/** Where each hook runs; a Record, so that a hook added to ServerHooks must be listed. */
const HOOKS: Record<keyof ServerHooks, 'master' | 'worker'> = {
  onStarting: 'master',
  onReload: 'master',
  whenReady: 'master',
  preFork: 'master',
  postFork: 'worker',
  postWorkerInit: 'worker',
  workerInt: 'worker',
  workerAbort: 'master',
  preExec: 'master',
  preRequest: 'worker',
  postRequest: 'worker',
  childExit: 'master',
  workerExit: 'worker',
  nworkersChanged: 'master',
  onExit: 'master',
};

export const hookNames: ReadonlySet<string> = new Set(Object.keys(HOOKS));

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
