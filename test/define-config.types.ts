// Type-level test of defineConfig, compiled by the typecheck (tsc -p tsconfig.json; not run):
// configs as a user writes them compile, a wrong key or a wrong type is an error.
import { defineConfig, type UserConfig } from '../src/index.js';

// Settings as a config file gives them, with the hooks.
export const full = defineConfig({
  app: 'dist/server.js',
  bind: ['unix:/run/app.sock', '127.0.0.1:8000'],
  socketMode: '0660',
  socketGroup: 'www-data',
  workers: 4,
  timeout: 30,
  keepAlive: 7.5,
  reload: false,
  logLevel: 'warning',
  forwardedHeader: 'forwarded',
  forwardedAllowIps: '10.0.0.0/8, 127.0.0.1',
  proxyProtocol: true,
  healthPath: '/health',
  accessLogfile: null,
  controlSocket: false,
  import: 'tsx',
  whenReady(server) {
    server.log.info({ workers: server.workers.length, state: server.state }, 'all workers up');
  },
  postWorkerInit(worker) {
    worker.log.info({ index: worker.index, pid: worker.pid }, 'worker up');
  },
  async postRequest(worker, req, res) {
    worker.log.debug({ url: req.url, status: res.statusCode });
  },
  workerAbort(_server, info, stack) {
    return [info.pid, stack.length];
  },
  nworkersChanged(_server, newCount: number, oldCount: number) {
    return newCount - oldCount;
  },
});

export const modeAsNumber = defineConfig({ socketMode: 0o600, bind: 'unix:/run/app.sock' });
export const factory = defineConfig(async () => ({ workers: Number(process.env.WORKERS ?? 2) }));
export const plain: UserConfig = { workers: 2 };

// @ts-expect-error an unknown key
export const typo = defineConfig({ wokers: 2 });
// @ts-expect-error workers is a number
export const workersText = defineConfig({ workers: '4' });
// @ts-expect-error bind takes strings (a BindSpec is what it parses to)
export const parsedBind = defineConfig({ bind: [{ kind: 'tcp', host: '127.0.0.1', port: 80, text: '127.0.0.1:80' }] });
// @ts-expect-error not a file mode
export const badMode = defineConfig({ socketMode: 'rw-rw----' });
// @ts-expect-error not a log level
export const badLevel = defineConfig({ logLevel: 'loud' });
// @ts-expect-error a URL path starts with /
export const badPath = defineConfig({ healthPath: 'health' });
// @ts-expect-error --print-config is a command-line action, not a config key
export const action = defineConfig({ printConfig: true });
// @ts-expect-error the config file cannot name another config file
export const nested = defineConfig({ config: 'other.mjs' });
// @ts-expect-error a hook is a function
export const hookValue = defineConfig({ onStarting: 42 });
// @ts-expect-error an unknown key returned by a factory
export const factoryTypo = defineConfig(() => ({ wokers: 2 }));
