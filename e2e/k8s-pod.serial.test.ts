// The Kubernetes pod of `init --target kubernetes`, reproduced in containers: an nginx
// container and app containers sharing a bind-mounted socket directory, as the pod's
// emptyDir would (same group-writable setgid directory, socket group = the "fsGroup",
// nginx and the app as non-root users in that group). The app containers run the project
// (bind-mounted read-only) with the host's node, with the command line from the generated
// Deployment. A rolling replacement under load — start the new app container, wait for its
// /ready, SIGTERM the old one — must lose zero requests.
//
// One liberty, said plainly: in a cluster the Service moves traffic from the old pod to the
// new one; in one "pod" here, nginx's upstream lists both app sockets (the old one's path
// disappears when its drain window ends, and nginx moves on to the other).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { cleanup, onCleanup, freePort, request, until, ROOT, FIXTURES } from '../test/helpers/server.js';
import { startLoad, failures } from '../test/helpers/load.js';
import { testWithTool } from '../test/helpers/tools.js';
import { nginxMainConf } from '../src/deploy/nginx-site.js';
import { kubernetesManifests, appArgs, SOCKET_GID, APP_UID, type KubernetesOptions } from '../src/deploy/kubernetes.js';
import { containersMissing, NGINX_IMAGE, type BindMount, projectMount, linkedNodeModulesMounts } from './helpers/containers.js';

test.after.each(cleanup);

const NGINX_UID = 33; // www-data in the Debian image (the unprivileged image's is 101)
const DRAIN = 3; // short for the test; the generator insists on >= 9 s for a real cluster

const missing = process.getuid?.() !== 0 ? 'needs root (socket group and container users)' : containersMissing([NGINX_IMAGE]);

const options: KubernetesOptions = {
  name: 'shop',
  app: join(FIXTURES, 'app.mjs'),
  workingDirectory: '/app',
  user: 'app',
  group: 'app',
  proxyGroup: 'www-data',
  socketPath: '/run/shop/app.sock',
  workers: 2,
  gracefulTimeout: 20,
  timeout: 30,
  keepAlive: 5,
  serverName: '_',
  tls: false,
  nodePath: 'node',
  cliPath: join(ROOT, 'dist/cli/main.js'),
  configPath: '/app/ws-proxy-kit.config.mjs',
  clientMaxBodySize: '10m',
  image: 'unused',
  nginxImage: 'unused',
  replicas: 1,
  drainSeconds: 10,
};

async function startRemovedAfter(container: GenericContainer): Promise<StartedTestContainer> {
  const started = await container.start();
  onCleanup(() => started.stop({ remove: true, timeout: 0 }).then(() => undefined));
  return started;
}

/** The generated app command line, with this container's socket paths and the test's drain window. */
function appCommand(slot: number): string[] {
  const args = appArgs(options);
  const set = (flag: string, value: string) => (args[args.indexOf(flag) + 1] = value);
  set('--bind', `unix:/run/shop/app-${slot}.sock`);
  // The pod's --health-bind is 0.0.0.0:9000 in the pod's own network; these containers have
  // none, so the probes use a socket in the shared directory instead.
  set('--health-bind', `unix:/run/shop/health-${slot}.sock`);
  set('--drain-seconds', String(DRAIN));
  return ['/usr/bin/node', options.cliPath, ...args];
}

function startApp(socketDir: string, slot: number): Promise<StartedTestContainer> {
  const binds: BindMount[] = [
    projectMount(),
    ...linkedNodeModulesMounts(),
    { source: process.execPath, target: '/usr/bin/node', mode: 'ro' },
    { source: socketDir, target: '/run/shop', mode: 'rw' },
  ];
  return startRemovedAfter(
    new GenericContainer(NGINX_IMAGE)
      // The pod's securityContext: runAsUser APP_UID, the fsGroup as its group.
      .withUser(`${APP_UID}:${SOCKET_GID}`)
      .withNetworkMode('none')
      .withBindMounts(binds)
      .withWorkingDir(ROOT)
      .withCommand(appCommand(slot))
      .withWaitStrategy(Wait.forLogMessage(/"msg":"ready: serving/))
      .withStartupTimeout(60_000),
  );
}

testWithTool(test, 'pod: a rolling replacement of the app container under load loses zero requests', missing, async () => {
  const [configMap, deployment] = kubernetesManifests(options) as unknown as [
    { data: Record<string, string> },
    { spec: { template: { spec: { securityContext: { fsGroup: number } } } } },
  ];
  assert.is(deployment.spec.template.spec.securityContext.fsGroup, SOCKET_GID);

  // The emptyDir: group SOCKET_GID, setgid, group-writable (what the kubelet does with fsGroup).
  const pod = mkdtempSync(join(tmpdir(), 'wspk-e2e-pod-'));
  onCleanup(() => rmSync(pod, { recursive: true, force: true }));
  chmodSync(pod, 0o755);
  const socketDir = join(pod, 'run-shop');
  mkdirSync(socketDir);
  chownSync(socketDir, 0, SOCKET_GID);
  chmodSync(socketDir, 0o2770);

  // nginx: the ConfigMap's site, listening where the test reaches it, upstream over both app slots.
  const port = await freePort();
  const prefix = join(pod, 'nginx');
  mkdirSync(prefix);
  chownSync(prefix, NGINX_UID, SOCKET_GID);
  let site = configMap.data['default.conf']!;
  assert.match(site, 'server unix:/run/shop/app.sock max_fails=0;');
  site = site
    .replace('listen 8080;', `listen 127.0.0.1:${port};`)
    .replace(
      'server unix:/run/shop/app.sock max_fails=0;',
      'server unix:/run/shop/app-1.sock max_fails=0;\n    server unix:/run/shop/app-2.sock max_fails=0;',
    );
  writeFileSync(join(prefix, 'site.conf'), site);
  writeFileSync(join(prefix, 'nginx.conf'), nginxMainConf(prefix, join(prefix, 'site.conf'), { workerProcesses: 2 }));
  await startRemovedAfter(
    new GenericContainer(NGINX_IMAGE)
      .withUser(`${NGINX_UID}:${SOCKET_GID}`)
      .withNetworkMode('host')
      .withBindMounts([
        { source: prefix, target: prefix, mode: 'rw' },
        { source: socketDir, target: '/run/shop', mode: 'rw' },
      ])
      .withCommand(['nginx', '-p', prefix + '/', '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off; error_log stderr notice;'])
      .withWaitStrategy(Wait.forLogMessage(/start worker process/))
      .withStartupTimeout(30_000),
  );

  const probe = (slot: number, path: string) =>
    request({ socketPath: join(socketDir, `health-${slot}.sock`) }, path, { timeoutMs: 5000 }).catch(() => ({ status: 0, body: '' }));
  const old = await startApp(socketDir, 1);
  await until(async () => (await probe(1, '/ready')).status === 200, 30_000, 'old app ready');
  const front = { host: '127.0.0.1', port };
  assert.is((await request(front, '/')).status, 200);

  const load = startLoad(front, { path: '/slow?ms=30', concurrency: 8, maxMs: 120_000 });
  await until(() => load.result.ok >= 50, 30_000, 'load through nginx');
  const fresh = await startApp(socketDir, 2);
  await until(async () => (await probe(2, '/ready')).status === 200, 30_000, 'new app ready');
  const okBeforeStop = load.result.ok;

  // SIGTERM the old one (docker stop), watching its readiness during the drain window.
  let sawNotReady = false;
  let stopped = false;
  const watch = (async () => {
    while (!stopped) {
      if ((await probe(1, '/ready')).status === 503) sawNotReady = true;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const stopStarted = Date.now();
  await old.stop({ remove: true, timeout: 60_000 }); // ms: SIGTERM, SIGKILL only after this
  stopped = true;
  await watch;
  const stopMs = Date.now() - stopStarted;
  const okAfterStop = load.result.ok;
  await until(() => load.result.ok >= okAfterStop + 50, 30_000, 'load after the old app is gone');
  const result = await load.stop();

  const errorLog = readFileSync(join(prefix, 'error.log'), 'utf8');
  const resets = (errorLog.match(/reset by peer|prematurely closed/g) ?? []).length;
  const refusedAfterDrain = (errorLog.match(/app-1\.sock failed/g) ?? []).length;
  console.log(
    `  [k8s-pod] requests ${result.sent}, ok ${result.ok}, failed ${failures(result)} (ok before stop ${okBeforeStop}, during the ${stopMs} ms stop ${okAfterStop - okBeforeStop}); ` +
      `nginx: upstream resets ${resets}, connects to the stopped app's vanished socket ${refusedAfterDrain} (retried on the new one)`,
  );
  assert.ok(sawNotReady, 'the old app answered 503 on /ready during its drain window');
  assert.ok(stopMs >= DRAIN * 1000, `the stop took the drain window (${stopMs} ms)`);
  assert.is(failures(result), 0, JSON.stringify(result));
  assert.equal(Object.keys(result.statuses), ['200'], JSON.stringify(result.statuses));
  assert.is(resets, 0, 'no upstream connection was reset');
  assert.ok(okAfterStop - okBeforeStop > 0, 'requests were served during the stop');
  assert.is((await probe(2, '/ready')).status, 200);
  await fresh.stop({ remove: true, timeout: 30_000 });
});

test.run();
