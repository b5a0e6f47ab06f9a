// The servers under test, each serving bench/app.mjs on its own UNIX socket.
import { mkdirSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { start, childrenOf, signalPid, isAlive, type Proc } from './procs.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = join(ROOT, 'bench');
const APP = join(BENCH, 'app.mjs');
const CLI = join(ROOT, 'dist/cli/main.js');

export interface EngineContext {
  dir: string;
  workers: number;
  /** --app counting: the app counts requests and connections into the stats directory. */
  countInApp: boolean;
}

export interface RunningEngine {
  name: string;
  socket: string;
  statsDir: string;
  /** The process that owns the pool (null for a single process): its CPU is "master CPU". */
  master: number | null;
  workers(): number[];
  /** Wall time from spawn to serving with every worker. */
  readyMs: number;
  stop(): Promise<void>;
  /** Graceful reload; resolves with its duration in ms (when the engine has one). */
  reload?(): Promise<number>;
}

export interface Engine {
  name: string;
  /** Why it cannot run here, or null. */
  missing(): string | null;
  start(ctx: EngineContext): Promise<RunningEngine>;
}

/** An environment without the user's server settings. */
function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('WS_PROXY_KIT_') || k.startsWith('NODE_CLUSTER') || k === 'WEB_CONCURRENCY' || k === 'PORT') continue;
    if (k.startsWith('PM2_')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function prepare(ctx: EngineContext, name: string): { socket: string; statsDir: string } {
  const statsDir = join(ctx.dir, `${name}.stats`);
  mkdirSync(statsDir, { recursive: true });
  return { socket: join(ctx.dir, `${name}.sock`), statsDir };
}

/** GET / on the socket; true on a 200. */
export function probe(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: '/', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

async function poll(what: string, fn: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function processEngine(
  name: string,
  launch: (socket: string, ctx: EngineContext, env: NodeJS.ProcessEnv) => Proc,
  opts: { single?: boolean; isReady?: (p: Proc, socket: string, ctx: EngineContext) => Promise<void> } = {},
): Engine['start'] {
  return async (ctx) => {
    const { socket, statsDir } = prepare(ctx, name);
    const t0 = performance.now();
    const proc = launch(socket, ctx, cleanEnv(ctx.countInApp ? { BENCH_STATS_DIR: statsDir } : {}));
    try {
      if (opts.isReady) await opts.isReady(proc, socket, ctx);
      else await proc.waitFor((l) => typeof l.msg === 'string' && /^ready/.test(l.msg), 30_000);
    } catch (err) {
      await proc.stop('SIGKILL');
      throw err;
    }
    const readyMs = performance.now() - t0;
    return {
      name,
      socket,
      statsDir,
      master: opts.single ? null : proc.pid,
      workers: () => (opts.single ? [proc.pid] : childrenOf(proc.pid)),
      readyMs,
      stop: async () => {
        await proc.stop('SIGTERM', 5000);
        rmSync(socket, { force: true });
      },
      reload: name.startsWith('ws-proxy-kit') ? () => reloadWsProxyKit(proc) : undefined,
    };
  };
}

async function reloadWsProxyKit(proc: Proc): Promise<number> {
  const from = proc.logs.length;
  signalPid(proc.pid, 'SIGHUP');
  const line = await proc.waitFor((l) => typeof l.msg === 'string' && /^reload (complete|aborted)/.test(l.msg), 30_000, from);
  if (!String(line.msg).startsWith('reload complete')) throw new Error(String(line.msg));
  return Number(line.reloadMs);
}

function hasCommand(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).error === undefined;
}

const raw: Engine = {
  name: 'node:http',
  missing: () => null,
  start: processEngine(
    'node:http',
    (socket, _ctx, env) => start('node:http', process.execPath, [join(BENCH, 'servers/raw.mjs'), socket], { env }),
    { single: true },
  ),
};

/** `suffix` names a variant: `-bookkeeping` (our per-request bookkeeping added), `-twin` (identical). */
function clusterEngine(policy: 'rr' | 'none', suffix: '' | '-bookkeeping' | '-twin' = ''): Engine {
  const name = `cluster-${policy}${suffix}`;
  const bookkeeping = suffix === '-bookkeeping';
  return {
    name,
    missing: () => null,
    start: processEngine(name, (socket, ctx, env) =>
      start(name, process.execPath, [join(BENCH, 'servers/cluster.mjs'), socket, String(ctx.workers)], {
        env: { ...env, NODE_CLUSTER_SCHED_POLICY: policy, BENCH_BOOKKEEPING: bookkeeping ? '1' : '0' },
      }),
    ),
  };
}

/**
 * ws-proxy-kit as shipped, or with extra flags under another name: `ws-proxy-kit-metrics`
 * measures what metrics cost, `ws-proxy-kit-unbalanced` what connection balancing brings.
 */
export function wsProxyKitEngine(name = 'ws-proxy-kit', flags: (socket: string) => string[] = () => [], cli = CLI): Engine {
  return {
    name,
    missing: () => (existsSync(cli) ? null : `${cli} is missing: run npm run build`),
    start: processEngine(name, (socket, ctx, env) =>
      start(
        name,
        process.execPath,
        [cli, APP, '--bind', `unix:${socket}`, '--workers', String(ctx.workers), '--log-format', 'json', ...flags(socket)],
        { env, cwd: ROOT },
      ),
    ),
  };
}
const wsProxyKit = wsProxyKitEngine();

/** One ws-proxy-kit build for the one-worker tools (bench/worker-*.ts): its name and command line. */
export interface Build {
  name: string;
  /** node arguments serving bench/app.mjs on `socket` with one worker. */
  args(socket: string): string[];
}

/** `--cli NAME=PATH` (bench/run.ts and the one-worker tools): a build's name and its dist/cli/main.js. */
export function parseCliSpec(spec: string): { name: string; cli: string } {
  const at = spec.indexOf('=');
  if (at < 1) throw new Error(`--cli ${spec}: use NAME=path/to/dist/cli/main.js`);
  return { name: spec.slice(0, at), cli: spec.slice(at + 1) };
}

/**
 * The builds named by `--cli name=path/to/dist/cli/main.js` (this checkout's dist when none)
 * and their extra flags from `--flags "name=--flag value ..."`.
 */
export function buildsFromArgs(cliSpecs: string[], flagSpecs: string[], extra: string[] = []): Build[] {
  const flags = new Map(
    flagSpecs.map((f) => [
      f.slice(0, f.indexOf('=')),
      f
        .slice(f.indexOf('=') + 1)
        .split(' ')
        .filter(Boolean),
    ]),
  );
  return (cliSpecs.length ? cliSpecs : [`ws-proxy-kit=${CLI}`]).map((spec) => {
    const { name, cli } = parseCliSpec(spec);
    return {
      name,
      args: (socket) => [
        cli,
        APP,
        '--bind',
        `unix:${socket}`,
        '--workers',
        '1',
        '--log-format',
        'json',
        ...extra,
        ...(flags.get(name) ?? []),
      ],
    };
  });
}

const gunicorn: Engine = {
  name: 'gunicorn',
  missing: () => (hasCommand('gunicorn', ['--version']) ? null : 'gunicorn is not installed (apt-get install gunicorn)'),
  start: processEngine(
    'gunicorn',
    (socket, ctx, env) =>
      start(
        'gunicorn',
        'gunicorn',
        [
          '--chdir',
          join(BENCH, 'servers'),
          '--bind',
          `unix:${socket}`,
          '--workers',
          String(ctx.workers),
          '--keep-alive',
          '5',
          '--backlog',
          '2048',
          'wsgi_app:app',
        ],
        { env },
      ),
    {
      isReady: async (proc, socket, ctx) => {
        await poll('gunicorn workers', async () => childrenOf(proc.pid).length >= ctx.workers && (await probe(socket)), 30_000);
      },
    },
  ),
};

/** PM2 cluster mode: its God daemon is the cluster primary; run with a private PM2_HOME. */
const pm2: Engine = {
  name: 'pm2',
  missing: () => (existsSync(join(ROOT, 'node_modules/.bin/pm2')) ? null : 'node_modules/.bin/pm2 is missing (npm install)'),
  start: async (ctx) => {
    const { socket, statsDir } = prepare(ctx, 'pm2');
    const home = join(ctx.dir, 'pm2-home');
    mkdirSync(home, { recursive: true });
    const bin = join(ROOT, 'node_modules/.bin/pm2');
    const env = cleanEnv({ PM2_HOME: home, BENCH_SOCKET: socket, ...(ctx.countInApp ? { BENCH_STATS_DIR: statsDir } : {}) });
    const pm2Cmd = async (args: string[], timeoutMs = 60_000): Promise<string> => {
      const p = start('pm2-cli', bin, args, { env, cwd: ROOT });
      const timer = setTimeout(() => void p.stop('SIGKILL'), timeoutMs);
      await p.exited;
      clearTimeout(timer);
      return p.text;
    };
    const daemonPid = (): number | null => {
      try {
        return Number(readFileSync(join(home, 'pm2.pid'), 'utf8').trim()) || null;
      } catch {
        return null;
      }
    };
    const kill = async () => {
      const god = daemonPid();
      const workers = god ? childrenOf(god) : [];
      await pm2Cmd(['kill'], 30_000);
      // pm2 kill should have ended them all; anything left goes by PID.
      for (const pid of [god, ...workers]) if (pid && isAlive(pid)) signalPid(pid, 'SIGKILL');
      rmSync(socket, { force: true });
    };
    const t0 = performance.now();
    try {
      await pm2Cmd([
        'start',
        join(BENCH, 'servers/pm2-app.cjs'),
        '--name',
        'bench',
        '-i',
        String(ctx.workers),
        '--no-autorestart',
        '--time',
      ]);
      await poll(
        'pm2 workers',
        async () => {
          const god = daemonPid();
          return god !== null && childrenOf(god).length >= ctx.workers && (await probe(socket));
        },
        60_000,
      );
    } catch (err) {
      await kill();
      throw err;
    }
    const readyMs = performance.now() - t0;
    const god = daemonPid()!;
    return {
      name: 'pm2',
      socket,
      statsDir,
      master: god,
      workers: () => childrenOf(god),
      readyMs,
      stop: kill,
      reload: async () => {
        const t = performance.now();
        await pm2Cmd(['reload', 'bench']);
        return performance.now() - t;
      },
    };
  },
};

export const ENGINES: Engine[] = [raw, clusterEngine('rr'), clusterEngine('none'), pm2, wsProxyKit, gunicorn];
/** Engines for experiments, run only when named in --engines. */
export const EXTRA_ENGINES: Engine[] = [
  clusterEngine('none', '-bookkeeping'),
  // The same server as cluster-none under another name: how far apart two identical engines
  // measure in one run (the bench's noise floor on this machine).
  clusterEngine('none', '-twin'),
  wsProxyKitEngine('ws-proxy-kit-metrics', (socket) => ['--metrics-bind', `unix:${socket}.metrics`]),
  wsProxyKitEngine('ws-proxy-kit-unbalanced', () => ['--no-balance-connections']),
];
