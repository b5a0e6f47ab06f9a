// Type=notify-reload under real systemd 254 (local/wspk-systemd-bpo:e2e: the systemd image
// with systemd from bookworm-backports; Debian 12's own 252 predates the type). With it,
// systemd sends SIGHUP itself on `systemctl reload` and counts the reload done only when the
// service sends RELOADING=1 with a fresh MONOTONIC_USEC and then READY=1; a service that
// does not send them leaves the reload job hanging until it times out. The unit is the one
// `ws-proxy-kit init` writes, with Type=notify-reload and no ExecReload= (as its comment says).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StartedTestContainer } from 'testcontainers';
import { cleanup, tempDir, until } from '../test/helpers/server.js';
import { testWithTool } from '../test/helpers/tools.js';
import { singleHostPlan } from '../src/deploy/single-host.js';
import {
  containersMissing,
  sh,
  shOk,
  startSystemdContainer,
  SYSTEMD_BPO_IMAGE,
  CONTAINER_SHARED,
  initOptions,
  systemdSuiteBinds,
} from './helpers/containers.js';

const NAME = 'wspk-reload';
const SERVICE = `${NAME}.service`;
const SOCKET = `${NAME}.socket`;
const SHARED = CONTAINER_SHARED;

const deploy = initOptions(NAME, { timeout: 30, listenHttp: ['80'] });

const missing = process.getuid?.() !== 0 ? 'needs root (the Docker engine)' : containersMissing([SYSTEMD_BPO_IMAGE]);
let container: StartedTestContainer;

/** The service unit `init` writes, switched to Type=notify-reload without ExecReload=. */
function notifyReloadUnit(unit: string): string {
  assert.match(unit, /^Type=notify$/m, 'init writes Type=notify');
  assert.match(unit, /^ExecReload=/m, 'init writes ExecReload=');
  return unit.replace(/^Type=notify$/m, 'Type=notify-reload').replace(/^ExecReload=.*\n/m, '');
}

async function show(prop: string): Promise<string> {
  return (await shOk(container, `systemctl show -p ${prop} --value ${SERVICE}`)).trim();
}

/** The master's children: its workers (old ones still draining included). */
async function workerPids(mainPid: string): Promise<string[]> {
  return (await sh(container, `ps -o pid= --ppid ${mainPid}`)).output.split(/\s+/).filter(Boolean);
}

test.before(async () => {
  if (missing !== null) return;
  const shared = tempDir('wspk-e2e-notify-reload-');
  chmodSync(shared, 0o755);
  mkdirSync(join(shared, 'deploy'));
  for (const f of singleHostPlan.files(deploy))
    writeFileSync(join(shared, 'deploy', f.name), f.name === SERVICE ? notifyReloadUnit(f.content) : f.content);
  container = await startSystemdContainer({
    image: SYSTEMD_BPO_IMAGE,
    binds: systemdSuiteBinds(shared),
  });
  await shOk(
    container,
    [
      `useradd --system --user-group --no-create-home --shell /usr/sbin/nologin ${NAME}`,
      `cp ${SHARED}/deploy/${SOCKET} ${SHARED}/deploy/${SERVICE} /etc/systemd/system/`,
      `systemctl daemon-reload`,
      `systemctl enable --now ${SOCKET}`,
      `systemctl start ${SERVICE}`,
    ].join(' && '),
  );
});
test.after(cleanup);

testWithTool(test, 'systemd 254 runs the unit as Type=notify-reload', missing, async () => {
  const version = (await shOk(container, 'systemctl --version')).split('\n')[0]!;
  console.log(`  ${version}`);
  assert.ok(Number(/^systemd (\d+)/.exec(version)?.[1]) >= 253, version);
  assert.is(await show('Type'), 'notify-reload');
  assert.is(await show('ExecReload'), '', 'no ExecReload=: systemd sends SIGHUP itself');
  // `systemctl start` of a notify service returns after READY=1.
  assert.is((await shOk(container, `systemctl is-active ${SERVICE}`)).trim(), 'active');
  assert.match(await shOk(container, `curl -s --max-time 10 --unix-socket ${deploy.socketPath} http://localhost/`), /^ok \d+/);
});

testWithTool(test, '`systemctl reload` returns once the new workers serve (RELOADING=1, MONOTONIC_USEC, READY=1)', missing, async () => {
  const mainPid = await show('MainPID');
  const before = await workerPids(mainPid);
  assert.is(before.length, 2, `two workers before: ${before.join(' ')}`);
  const started = Date.now();
  // A reload job that never sees RELOADING=1 and READY=1 would not end (TimeoutStartSec=):
  // bounded here so that a failure reads as one.
  const reload = await sh(container, `timeout 60 systemctl reload ${SERVICE}; echo "exit $?"`);
  const tookMs = Date.now() - started;
  console.log(`  systemctl reload (Type=notify-reload): ${reload.output.trim().split('\n').at(-1)} in ${tookMs} ms`);
  assert.match(reload.output, /exit 0\s*$/, reload.output);
  // systemd waited for READY=1, which the master sends only when the new workers are ready.
  const after = await workerPids(mainPid);
  const fresh = after.filter((p) => !before.includes(p));
  assert.ok(fresh.length >= 2, `two new workers when the reload returned: before ${before.join(' ')}, after ${after.join(' ')}`);
  assert.is(await show('MainPID'), mainPid, 'same master');
  assert.is((await shOk(container, `systemctl is-active ${SERVICE}`)).trim(), 'active');
  const journal = await shOk(container, `journalctl --no-pager -o cat -u ${SERVICE}`);
  assert.match(journal, /reload complete/);
  // The old workers drain and go; the new ones serve.
  await until(async () => (await workerPids(mainPid)).every((p) => fresh.includes(p)), 30_000, 'the old workers to exit');
  const body = await shOk(container, `curl -s --max-time 10 --unix-socket ${deploy.socketPath} http://localhost/`);
  const pid = /^ok (\d+)/.exec(body)?.[1];
  assert.ok(pid && fresh.includes(pid), `a new worker answered: ${body}`);
});

testWithTool(test, 'a second reload works too (a fresh MONOTONIC_USEC each time)', missing, async () => {
  const mainPid = await show('MainPID');
  const before = await workerPids(mainPid);
  const reload = await sh(container, `timeout 60 systemctl reload ${SERVICE}; echo "exit $?"`);
  assert.match(reload.output, /exit 0\s*$/, reload.output);
  const fresh = (await workerPids(mainPid)).filter((p) => !before.includes(p));
  assert.ok(fresh.length >= 2, 'new workers again');
  assert.is((await shOk(container, `systemctl is-active ${SERVICE}`)).trim(), 'active');
});

test.run();
