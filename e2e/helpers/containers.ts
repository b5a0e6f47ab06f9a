// Containers for the e2e suites, driven by testcontainers against the private Docker engine
// that e2e/containers/setup.sh starts (recipe: ../shared/CONTAINERS.md). Images are local
// (built from debootstrap), never pulled. Every container is removed by the test that
// started it: the start functions register its removal with onCleanup.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { onCleanup, ROOT } from '../../test/helpers/server.js';
import type { NginxSiteOptions } from '../../src/deploy/nginx-site.js';

export const E2E_WORK = process.env.WSPK_E2E_WORK ?? '/var/tmp/ws-proxy-kit-e2e';
export const NGINX_IMAGE = 'local/wspk-nginx:e2e';
export const SYSTEMD_IMAGE = 'local/wspk-systemd:e2e';
/** SYSTEMD_IMAGE with systemd 254 from bookworm-backports (Type=notify-reload needs 253+). */
export const SYSTEMD_BPO_IMAGE = 'local/wspk-systemd-bpo:e2e';

// Defaults, so that after `sudo e2e/containers/setup.sh` no variable needs exporting.
// testcontainers reads these when it first connects, not at import.
if (!process.env.DOCKER_HOST && existsSync(`${E2E_WORK}/docker.sock`)) process.env.DOCKER_HOST = `unix://${E2E_WORK}/docker.sock`;
// Its reaper (ryuk) image cannot be pulled here, and the host has no bridge network.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= '127.0.0.1';

/** A bind mount as testcontainers takes it (its type is not exported from the package root). */
export type BindMount = Parameters<GenericContainer['withBindMounts']>[0][number];

/**
 * The project directory, bind-mounted read-only for a container whose app runs as a
 * non-root user. A checkout made in a `mktemp -d` directory is mode 0700, which that user
 * cannot enter: open it to others (read and search only) for the test, and put the mode
 * back at cleanup.
 */
export function projectMount(target = ROOT): BindMount {
  const mode = statSync(ROOT).mode & 0o7777;
  if ((mode & 0o005) !== 0o005) {
    chmodSync(ROOT, mode | 0o005);
    onCleanup(() => chmodSync(ROOT, mode));
  }
  return { source: ROOT, target, mode: 'ro' };
}

/**
 * node_modules when it is a symlink out of the project (a git worktree that shares another
 * checkout's): the project mount carries only the link, so mount what it points to at the
 * path the link names inside the container (`projectTarget`: where the project is mounted).
 */
export function linkedNodeModulesMounts(projectTarget = ROOT): BindMount[] {
  const link = join(ROOT, 'node_modules');
  if (!lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink()) return [];
  const source = realpathSync(link);
  if (source.startsWith(ROOT + '/')) return [];
  return [{ source, target: resolve(projectTarget, readlinkSync(link)), mode: 'ro' }];
}

const SETUP_HINT = 'run `sudo e2e/containers/setup.sh` (starts the engine, builds the images)';

/**
 * Why the container suites cannot run here, or null when they can: the engine answers and
 * the images exist. Synchronous (for testWithTool), so it asks the engine from a child node.
 */
export function containersMissing(images: string[] = [NGINX_IMAGE, SYSTEMD_IMAGE]): string | null {
  const host = process.env.DOCKER_HOST;
  if (!host) return `no Docker engine (DOCKER_HOST unset and no ${E2E_WORK}/docker.sock); ${SETUP_HINT}`;
  if (!host.startsWith('unix://')) return `DOCKER_HOST=${host}: the e2e suites expect a local unix:// engine; ${SETUP_HINT}`;
  const socketPath = host.slice('unix://'.length);
  if (!existsSync(socketPath)) return `no Docker engine socket at ${socketPath}; ${SETUP_HINT}`;
  // Prints one line per image: "ok" or the engine's answer.
  const probe = `
    const http = require('node:http');
    const get = (path) => new Promise((resolve) => {
      const req = http.get({ socketPath: ${JSON.stringify(socketPath)}, path }, (res) => { res.resume(); resolve(String(res.statusCode)); });
      req.on('error', (e) => resolve(e.code || e.message));
      req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    });
    (async () => {
      const ping = await get('/_ping');
      if (ping !== '200') { console.log('engine: ' + ping); return; }
      for (const image of ${JSON.stringify(images)}) {
        const s = await get('/images/' + image + '/json');
        console.log(s === '200' ? 'ok' : image + ': ' + (s === '404' ? 'missing' : s));
      }
    })();`;
  const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', timeout: 15_000 });
  const lines = (r.stdout ?? '').trim().split('\n').filter(Boolean);
  if (r.status !== 0 || lines.length === 0)
    return `could not query the Docker engine at ${socketPath} (${(r.stderr || r.error?.message || 'no answer').trim()}); ${SETUP_HINT}`;
  const bad = lines.filter((l) => l !== 'ok');
  if (bad.length) return `Docker engine at ${socketPath}: ${bad.join(', ')}; ${SETUP_HINT}`;
  return null;
}

async function startRemovedAfter(container: GenericContainer): Promise<StartedTestContainer> {
  const started = await container.start();
  // timeout 0: SIGKILL at once; the test already checked what it wanted from the container.
  onCleanup(() => started.stop({ remove: true, timeout: 0 }).then(() => undefined));
  return started;
}

/**
 * nginx (Debian's package) in the foreground with the given main config file. The config's
 * directory and the app socket's directory are bind-mounted at the same paths as on the
 * host, so paths inside the config need no translation. Network: `host` (nginx listens on
 * 127.0.0.1) or `none` (nginx listens on a UNIX socket in a shared directory).
 */
export function startNginxContainer(o: { confFile: string; binds: string[]; network: 'host' | 'none' }): Promise<StartedTestContainer> {
  const binds: BindMount[] = [...new Set(o.binds)].map((dir) => ({ source: dir, target: dir, mode: 'rw' }));
  return startRemovedAfter(
    new GenericContainer(NGINX_IMAGE)
      // error_log stderr: the "start worker process" notice lands in the container's log,
      // which is what the wait strategy reads (the config's own error_log stays in place too).
      .withCommand(['nginx', '-c', o.confFile, '-g', 'daemon off; error_log stderr notice;'])
      .withNetworkMode(o.network)
      .withBindMounts(binds)
      .withWaitStrategy(Wait.forLogMessage(/start worker process/))
      .withStartupTimeout(30_000),
  );
}

/**
 * A container running real systemd as PID 1 (cgroup v1 host: /sys/fs/cgroup bound rw; no
 * --privileged, which fails here). Resolves once `systemctl is-system-running` says running.
 */
export function startSystemdContainer(o: { binds: BindMount[]; image?: string }): Promise<StartedTestContainer> {
  return startRemovedAfter(
    new GenericContainer(o.image ?? SYSTEMD_IMAGE)
      .withNetworkMode('none')
      .withAddedCapabilities('SYS_ADMIN')
      .withSecurityOpt('seccomp=unconfined', 'apparmor=unconfined')
      .withTmpFs({ '/run': 'rw', '/run/lock': 'rw' })
      .withBindMounts([{ source: '/sys/fs/cgroup', target: '/sys/fs/cgroup', mode: 'rw' }, ...o.binds])
      // The `--wait` form of is-system-running hangs here; poll the plain form instead.
      .withWaitStrategy(Wait.forSuccessfulCommand('test "$(systemctl is-system-running)" = running'))
      .withStartupTimeout(60_000),
  );
}

/** Where the systemd suites mount this project and their shared host directory in the container. */
export const CONTAINER_PROJECT = '/opt/ws-proxy-kit';
export const CONTAINER_SHARED = '/shared';

/**
 * What the systemd suites tell `ws-proxy-kit init`: the e2e fixture app with 2 workers, run as
 * the user NAME by the host's node from the mounted project, its config file in the shared
 * directory. `timeout` and nginx's `listenHttp` are each suite's own.
 */
export function initOptions(name: string, own: Pick<NginxSiteOptions, 'timeout' | 'listenHttp'>): NginxSiteOptions {
  return {
    name,
    app: 'e2e/containers/fixtures/app.mjs',
    workingDirectory: CONTAINER_PROJECT,
    user: name,
    group: name,
    proxyGroup: 'www-data',
    socketPath: `/run/${name}/app.sock`,
    workers: 2,
    gracefulTimeout: 10,
    keepAlive: 5,
    serverName: '_',
    tls: false,
    nodePath: '/usr/bin/node',
    cliPath: `${CONTAINER_PROJECT}/dist/cli/main.js`,
    configPath: `${CONTAINER_SHARED}/deploy/ws-proxy-kit.config.mjs`,
    clientMaxBodySize: '1m',
    ...own,
  };
}

/** The systemd suites' mounts: the node running the tests (as /usr/bin/node), this project (read-only) and the shared directory. */
export function systemdSuiteBinds(hostShared: string): BindMount[] {
  return [
    { source: process.execPath, target: '/usr/bin/node', mode: 'ro' },
    projectMount(CONTAINER_PROJECT),
    ...linkedNodeModulesMounts(CONTAINER_PROJECT),
    { source: hostShared, target: CONTAINER_SHARED, mode: 'rw' },
  ];
}

export interface ShellResult {
  exitCode: number;
  output: string;
}

/** Runs a shell command in the container (sh -c), whatever its exit code. */
export async function sh(container: StartedTestContainer, command: string): Promise<ShellResult> {
  const r = await container.exec(['sh', '-c', command]);
  return { exitCode: r.exitCode, output: r.output };
}

/** Runs a shell command in the container and returns its output; throws with the output on failure. */
export async function shOk(container: StartedTestContainer, command: string): Promise<string> {
  const r = await sh(container, command);
  if (r.exitCode !== 0) throw new Error(`\`${command}\` exited ${r.exitCode} in the container:\n${r.output}`);
  return r.output;
}
