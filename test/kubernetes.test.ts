// `ws-proxy-kit init --target kubernetes|hosts`: every manifest validates against the
// Kubernetes API schemas (kubernetes-models), the values that must agree do, the app's
// command line is accepted by the real CLI, and the nginx sites pass `nginx -t`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Service } from 'kubernetes-models/v1/Service';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { cleanup, runCli } from './helpers/server.js';
import { initAppDir, initDryRun } from './helpers/init.js';
import { hasCommand, testWithTool } from './helpers/tools.js';
import { nginxMainConf } from '../src/deploy/nginx-site.js';
import { ENDPOINTS_PROPAGATION, HEALTH_PORT, SOCKET_GID } from '../src/deploy/kubernetes.js';

test.after.each(cleanup);

function nginxTest(site: string): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wspk-k8s-nginx-'));
  try {
    writeFileSync(join(dir, 'site.conf'), site);
    writeFileSync(join(dir, 'nginx.conf'), nginxMainConf(dir, join(dir, 'site.conf')));
    const r = spawnSync('nginx', ['-t', '-p', dir + '/', '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
      encoding: 'utf8',
    });
    return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function manifests(args: string[] = []): Promise<Obj[]> {
  const files = await initDryRun(['--target', 'kubernetes', '--image', 'registry.example/shop:1', ...args]);
  assert.equal(Object.keys(files), ['shop.k8s.yaml']);
  const docs = parseAllDocuments(files['shop.k8s.yaml']!);
  for (const d of docs) assert.equal(d.errors, [], 'valid YAML');
  return docs.map((d) => d.toJS() as Obj);
}

const flagValue = (args: string[], flag: string): string => args[args.indexOf(flag) + 1]!;

test('every kubernetes manifest validates against the API schemas', async () => {
  const docs = await manifests();
  assert.equal(
    docs.map((d) => d.kind),
    ['ConfigMap', 'Deployment', 'Service', 'PodDisruptionBudget'],
  );
  const models = { ConfigMap, Deployment, Service, PodDisruptionBudget } as Record<string, new (x: Obj) => { validate(): void }>;
  for (const d of docs) new models[d.kind]!(d).validate();
  // The validator does catch mistakes (so the loop above can fail).
  const broken = structuredClone(docs[1]!);
  broken.spec.template.spec.terminationGracePeriodSeconds = '45s';
  assert.throws(() => new Deployment(broken).validate(), /terminationGracePeriodSeconds/);
});

test('kubernetes: probes, drain, grace period, socket sharing and selectors agree', async () => {
  const [configMap, deployment, service, pdb] = (await manifests([
    '--drain-seconds',
    '12',
    '--graceful-timeout',
    '20',
    '--workers',
    '3',
  ])) as [Obj, Obj, Obj, Obj];
  const pod = deployment.spec.template.spec;
  const app = pod.containers.find((c: Obj) => c.name === 'app');
  const nginx = pod.containers.find((c: Obj) => c.name === 'nginx');
  const args: string[] = app.args;

  // Timings: the pod is unready well before the drain window ends; the grace period covers drain + graceful.
  assert.is(flagValue(args, '--drain-seconds'), '12');
  assert.is(flagValue(args, '--graceful-timeout'), '20');
  const rp = app.readinessProbe;
  assert.ok(
    rp.periodSeconds * rp.failureThreshold + ENDPOINTS_PROPAGATION <= 12,
    'unready and out of the endpoints before the drain window ends',
  );
  assert.ok(
    pod.terminationGracePeriodSeconds >= 12 + 20 + 1,
    `grace ${pod.terminationGracePeriodSeconds} covers drain + graceful + the master's 1 s`,
  );
  const preStop = nginx.lifecycle.preStop.exec.command.join(' ');
  assert.match(preStop, /sleep 12; nginx -s quit/, 'nginx serves through the drain window, then quits gracefully');
  assert.not.ok(app.lifecycle?.preStop, 'the app drains on SIGTERM itself');

  // Probes hit --health-bind on the container port the app declares.
  const healthPort = app.ports.find((p: Obj) => p.name === 'health');
  assert.is(healthPort.containerPort, HEALTH_PORT);
  assert.is(flagValue(args, '--health-bind'), `0.0.0.0:${HEALTH_PORT}`);
  assert.equal([rp.httpGet.path, rp.httpGet.port], ['/ready', 'health']);
  assert.equal([app.livenessProbe.httpGet.path, app.livenessProbe.httpGet.port], ['/health', 'health']);

  // The socket: one emptyDir at its directory in both containers, group = fsGroup, mode 0660.
  const bind = flagValue(args, '--bind');
  assert.is(bind, 'unix:/run/shop/app.sock');
  const volume = pod.volumes.find((v: Obj) => v.emptyDir);
  for (const c of [app, nginx])
    assert.ok(
      c.volumeMounts.some((m: Obj) => m.name === volume.name && m.mountPath === '/run/shop'),
      c.name,
    );
  assert.is(flagValue(args, '--socket-mode'), '0660');
  assert.is(flagValue(args, '--socket-group'), String(SOCKET_GID));
  assert.is(pod.securityContext.fsGroup, SOCKET_GID);
  assert.ok(
    nginx.securityContext.runAsUser !== 0 && pod.securityContext.runAsNonRoot,
    'nginx runs as a non-root user that keeps the fsGroup',
  );

  // nginx: its site proxies to that socket and listens on the port the Service targets.
  const site: string = configMap.data['default.conf'];
  assert.match(site, 'server unix:/run/shop/app.sock');
  const nginxPort = nginx.ports.find((p: Obj) => p.name === service.spec.ports[0].targetPort);
  assert.ok(nginxPort, 'the Service targets a named nginx port');
  assert.match(site, new RegExp(`listen ${nginxPort.containerPort};`));
  assert.ok(nginx.volumeMounts.some((m: Obj) => m.mountPath === '/etc/nginx/conf.d'));

  // Selectors: Deployment, Service and PDB pick the pod's labels.
  const labels = deployment.spec.template.metadata.labels;
  for (const sel of [deployment.spec.selector.matchLabels, service.spec.selector, pdb.spec.selector.matchLabels]) {
    for (const [k, v] of Object.entries(sel)) assert.is(labels[k], v);
  }
  assert.is(flagValue(args, '--workers'), '3');
  assert.ok(app.resources.requests.cpu && app.resources.requests.memory, 'resource requests');
  assert.is(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0);
});

test("kubernetes: the app's command line is accepted by the real CLI", async () => {
  const [, deployment] = await manifests();
  const app = deployment!.spec.template.spec.containers[0];
  const args = [...(app.args as string[])];
  // --print-config validates every flag and exits without starting.
  const r = await runCli([...args.slice(1), '--print-config'], { cwd: initAppDir('wspk-k8s-') });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^drain-seconds\s+10\s+command line/m);
  assert.match(r.stdout, /^health-bind\s+0\.0\.0\.0:9000\s+command line/m);
});

test('kubernetes: a drain window shorter than Kubernetes needs is refused with a sentence', async () => {
  const r = await runCli(['init', '--dry-run', '--target', 'kubernetes', '--drain-seconds', '3'], { cwd: initAppDir('wspk-k8s-') });
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /--drain-seconds 3 is shorter than Kubernetes needs/);
});

testWithTool(
  test,
  'kubernetes: the nginx site in the ConfigMap passes nginx -t',
  hasCommand('nginx', ['-v']) ? null : 'nginx is not installed',
  async () => {
    const [configMap] = await manifests();
    const r = nginxTest(configMap!.data['default.conf']);
    assert.ok(r.ok, r.output);
  },
);

test('hosts: upstream over every host with failover and keepalive; each host trusts only the nginx host', async () => {
  const files = await initDryRun([
    '--target',
    'hosts',
    '--hosts',
    '10.231.1.2:8000, 10.231.2.2:8000',
    '--proxy-address',
    '10.231.0.1',
    '--drain-seconds',
    '3',
  ]);
  assert.equal(Object.keys(files).sort(), [
    'host-10.231.1.2-8000/shop.service',
    'host-10.231.1.2-8000/shop.socket',
    'host-10.231.1.2-8000/ws-proxy-kit.config.mjs',
    'host-10.231.2.2-8000/shop.service',
    'host-10.231.2.2-8000/shop.socket',
    'host-10.231.2.2-8000/ws-proxy-kit.config.mjs',
    'shop.nginx.conf',
  ]);
  const site = files['shop.nginx.conf']!;
  assert.match(site, /server 10\.231\.1\.2:8000 max_fails=1 fail_timeout=5s;/);
  assert.match(site, /server 10\.231\.2\.2:8000 max_fails=1 fail_timeout=5s;/);
  assert.match(site, /^\s+proxy_next_upstream error timeout;$/m);
  assert.match(site, /^\s+keepalive \d+;$/m);
  assert.match(site, /proxy_set_header X-Forwarded-For \$remote_addr;/);
  assert.not.match(site, /unix:/);
  const socket = files['host-10.231.2.2-8000/shop.socket']!;
  assert.match(socket, /^ListenStream=10\.231\.2\.2:8000$/m);
  assert.not.match(socket, /SocketGroup=/);
  const config = files['host-10.231.1.2-8000/ws-proxy-kit.config.mjs']!;
  assert.match(config, /bind: \["10\.231\.1\.2:8000"\]/);
  assert.match(config, /forwardedAllowIps: \["10\.231\.0\.1"\]/);
  assert.match(config, /drainSeconds: 3,/);
  if (hasCommand('nginx', ['-v'])) assert.ok(nginxTest(site).ok, nginxTest(site).output);
  const bad = await runCli(['init', '--dry-run', '--target', 'hosts', '--hosts', 'nope', '--proxy-address', '10.0.0.1'], {
    cwd: initAppDir('wspk-k8s-'),
  });
  assert.match(bad.stderr, /HOST:PORT/);
});

test.run();
