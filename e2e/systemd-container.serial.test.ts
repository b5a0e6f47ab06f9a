// End to end under real systemd: systemd runs as PID 1 in a container (local/wspk-systemd:e2e,
// built by e2e/containers/setup.sh), with the files `ws-proxy-kit init` generates installed as
// in production: NAME.socket + NAME.service, the config file, and the nginx site in front.
// The host's node binary and this project (dist/, node_modules) are bind-mounted read-only.
// Traffic stays inside the container, or reaches nginx through a UNIX socket in the shared
// directory (the container has no network).
//
// The cases run in order against one container and form one lifecycle: socket first,
// activation, status, reload, restart, stop, then the watchdog. The container is removed
// after the last case (or when one fails, by the same cleanup).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import type { StartedTestContainer } from 'testcontainers';
import { cleanup, request, tempDir, until } from '../test/helpers/server.js';
import { testWithTool } from '../test/helpers/tools.js';
import { singleHostPlan } from '../src/deploy/single-host.js';
import {
  containersMissing,
  sh,
  shOk,
  startSystemdContainer,
  SYSTEMD_IMAGE,
  CONTAINER_SHARED,
  initOptions,
  systemdSuiteBinds,
} from './helpers/containers.js';

const NAME = 'wspk-e2e';
const SERVICE = `${NAME}.service`;
const SOCKET = `${NAME}.socket`;
const SHARED = CONTAINER_SHARED;
const HANG_FILE = `${SHARED}/hang-on-boot`;

const deploy = initOptions(NAME, {
  // Short, so the watchdog case sees a hung worker detected in seconds.
  timeout: 3,
  // nginx's only listener: a socket the test reaches through the shared directory.
  listenHttp: [`unix:${SHARED}/nginx.sock`],
});

const missing = process.getuid?.() !== 0 ? 'needs root (the Docker engine)' : containersMissing([SYSTEMD_IMAGE]);
let container: StartedTestContainer;
let hostShared = '';
let nginx: { socketPath: string };
const files = new Map(singleHostPlan.files(deploy).map((f) => [f.name, f.content]));

/** Last Key=value of a rendered unit. */
function unitValue(unit: string, key: string): string | undefined {
  return [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].at(-1)?.[1]?.trim();
}

async function show(prop: string): Promise<string> {
  return (await shOk(container, `systemctl show -p ${prop} --value ${SERVICE}`)).trim();
}

async function journal(unit = SERVICE): Promise<string> {
  return shOk(container, `journalctl --no-pager -o cat -u ${unit}`);
}

/** How many journal lines of the service match a fixed string. */
async function journalCount(text: string, unit = SERVICE): Promise<number> {
  return (await journal(unit)).split('\n').filter((l) => l.includes(text)).length;
}

type Counts = Record<string, number>;

/**
 * Bounded load through nginx: `clients` keep-alive loops of GET / while `action` runs, and
 * afterwards until every loop has been answered by a worker pid not seen before the action
 * (so the new workers really served). Returns status counts (errors as "error CODE").
 */
async function loadAround(
  action: () => Promise<void>,
  clients = 4,
): Promise<{ counts: Counts; oldPids: Set<string>; newPids: Set<string> }> {
  const counts: Counts = {};
  const oldPids = new Set<string>();
  const newPids = new Set<string>();
  let phase: 'before' | 'during' | 'after' = 'before';
  const sawNew = new Array<boolean>(clients).fill(false);
  // Bounds: 60 s, and a loop that gets errors slows down and gives up after 200 of them.
  const hardStop = Date.now() + 60_000;
  const maxFailuresPerClient = 200;
  const one = (agent: http.Agent) =>
    new Promise<{ status: string; pid: string | null }>((resolve) => {
      const req = http.get({ socketPath: nginx.socketPath, path: '/', agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: String(res.statusCode), pid: /^ok (\d+)/.exec(body)?.[1] ?? null }));
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ status: `error ${e.code ?? e.message}`, pid: null }));
      });
      req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: `error ${e.code ?? e.message}`, pid: null }));
    });
  const warmed: Promise<void>[] = [];
  const loops = Array.from({ length: clients }, (_, i) => {
    let markWarm!: () => void;
    warmed.push(new Promise((r) => (markWarm = r)));
    return (async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let failures = 0;
      try {
        while (Date.now() < hardStop && failures < maxFailuresPerClient && !(phase === 'after' && sawNew[i])) {
          const r = await one(agent);
          counts[r.status] = (counts[r.status] ?? 0) + 1;
          if (r.status !== '200') {
            failures++;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          if (r.pid) {
            if (phase === 'before') oldPids.add(r.pid);
            else if (!oldPids.has(r.pid)) {
              newPids.add(r.pid);
              if (phase === 'after') sawNew[i] = true;
            }
          }
          markWarm();
        }
      } finally {
        agent.destroy();
      }
    })();
  });
  await Promise.all(warmed);
  phase = 'during';
  try {
    await action();
  } finally {
    phase = 'after';
    await Promise.all(loops);
  }
  return { counts, oldPids, newPids };
}

test.before(async () => {
  if (missing !== null) return;
  hostShared = tempDir('wspk-e2e-systemd-');
  // The service user reads the config file here; nginx (root) creates its socket here.
  chmodSync(hostShared, 0o755);
  mkdirSync(join(hostShared, 'deploy'));
  for (const [name, content] of files) writeFileSync(join(hostShared, 'deploy', name), content);
  nginx = { socketPath: join(hostShared, 'nginx.sock') };
  const booted = Date.now();
  container = await startSystemdContainer({
    binds: systemdSuiteBinds(hostShared),
  });
  console.log(`  systemd container ${container.getId().slice(0, 12)} running in ${Date.now() - booted} ms`);
  // As `init` tells the user to do on a server; the drop-in only lets the watchdog case make
  // the app hang at boot, and is inert until that file exists.
  await shOk(
    container,
    [
      `useradd --system --user-group --no-create-home --shell /usr/sbin/nologin ${NAME}`,
      `cp ${SHARED}/deploy/${SOCKET} ${SHARED}/deploy/${SERVICE} /etc/systemd/system/`,
      `mkdir -p /etc/systemd/system/${SERVICE}.d`,
      `printf '[Service]\\nEnvironment=WSPK_E2E_HANG_ON_BOOT=${HANG_FILE}\\n' > /etc/systemd/system/${SERVICE}.d/e2e.conf`,
      `rm -f /etc/nginx/sites-enabled/default`,
      `cp ${SHARED}/deploy/${NAME}.nginx.conf /etc/nginx/sites-enabled/${NAME}`,
      `systemctl daemon-reload`,
      `systemctl enable --now ${SOCKET}`,
      `nginx -t 2>&1`,
      `systemctl restart nginx`,
    ].join(' && '),
  );
  // `systemctl restart nginx` returns once nginx runs: its socket is there.
  assert.ok(existsSync(nginx.socketPath), 'nginx created its socket in the shared directory');
});
test.after(cleanup);

testWithTool(
  test,
  'the socket unit creates the socket with the owner, group and mode it declares; the service is not running yet',
  missing,
  async () => {
    const socketUnit = files.get(SOCKET)!;
    const expected = `${unitValue(socketUnit, 'SocketUser')} ${unitValue(socketUnit, 'SocketGroup')} ${Number.parseInt(unitValue(socketUnit, 'SocketMode')!, 8).toString(8)}`;
    assert.is(expected, `${NAME} www-data 660`, 'the rendered unit: app user, nginx group, 0660');
    const seen = (await shOk(container, `stat -c '%U %G %a %F' ${deploy.socketPath}`)).trim();
    assert.is(seen, `${expected} socket`);
    assert.is((await shOk(container, `systemctl is-active ${SOCKET}`)).trim(), 'active');
    assert.is((await sh(container, `systemctl is-active ${SERVICE}`)).output.trim(), 'inactive', 'nothing has connected yet');
  },
);

testWithTool(test, 'the first request through nginx activates the service', missing, async () => {
  assert.is((await sh(container, `systemctl is-active ${SERVICE}`)).output.trim(), 'inactive');
  const r = await request(nginx, '/', { timeoutMs: 30_000 });
  assert.is(r.status, 200, r.body);
  assert.match(r.body, /^ok \d+/);
  // A worker may answer before READY=1 (sent once all workers are up): "activating" first.
  await until(async () => (await sh(container, `systemctl is-active ${SERVICE}`)).output.trim() === 'active', 30_000, `${SERVICE} active`);
  const mainPid = await show('MainPID');
  assert.match(mainPid, /^[1-9]\d*$/);
  assert.is((await shOk(container, `stat -c %U /proc/${mainPid}`)).trim(), NAME, 'runs as the app user');
  // Starting the service must leave the socket as the socket unit made it (a RuntimeDirectory=
  // holding it gets chowned, recursively, to the service's User/Group: nginx is locked out).
  assert.is(
    (await shOk(container, `stat -c '%U %G %a' ${deploy.socketPath}`)).trim(),
    `${NAME} www-data 660`,
    'the socket after the service started',
  );
  const again = await request(nginx, '/', { timeoutMs: 30_000 });
  assert.is(again.status, 200, 'nginx still connects once the service runs');
});

testWithTool(test, '`systemctl status` shows the STATUS= line the master sends', missing, async () => {
  const statusText = await until(
    async () => {
      const s = await show('StatusText');
      return /running: 2\/2 workers ready/.test(s) ? s : null;
    },
    30_000,
    'StatusText "running: 2/2 workers ready"',
  );
  const status = (await sh(container, `systemctl status --no-pager ${SERVICE}`)).output;
  console.log(
    `  systemctl status: ${status
      .split('\n')
      .find((l) => l.includes('Status:'))
      ?.trim()}`,
  );
  assert.ok(status.includes(`Status: "${statusText}"`), status);
});

testWithTool(test, '`systemctl reload` under load through nginx loses no request', missing, async () => {
  const mainPid = await show('MainPID');
  const before = await journalCount('reload complete');
  const { counts, newPids } = await loadAround(async () => {
    await shOk(container, `systemctl reload ${SERVICE}`);
    await until(async () => (await journalCount('reload complete')) > before, 60_000, '"reload complete" in the journal');
  });
  console.log(`  systemctl reload under load: ${JSON.stringify(counts)}, new worker pids ${[...newPids].join(' ')}`);
  assert.equal(Object.keys(counts), ['200'], 'every response was a 200');
  assert.ok(newPids.size > 0, 'new workers served after the reload');
  assert.is(await show('MainPID'), mainPid, 'same master');
});

testWithTool(test, '`systemctl reload` fails when the new version cannot boot, and the old workers keep serving', missing, async () => {
  const mainPid = await show('MainPID');
  writeFileSync(join(hostShared, 'fail-on-boot'), '');
  try {
    const r = await sh(container, `systemctl reload ${SERVICE}`);
    console.log(`  systemctl reload of a version that cannot boot: exit ${r.exitCode}`);
    assert.is.not(r.exitCode, 0, 'systemctl reload reports the failure');
  } finally {
    rmSync(join(hostShared, 'fail-on-boot'), { force: true });
  }
  assert.match(await journal(), /reload aborted: new workers failed to boot/);
  assert.is(await show('ActiveState'), 'active');
  assert.is(await show('MainPID'), mainPid, 'same master');
  assert.is((await request(nginx, '/', { timeoutMs: 30_000 })).status, 200, 'the old workers serve');
});

testWithTool(test, '`systemctl restart` under load through nginx refuses no connection', missing, async () => {
  const mainPid = await show('MainPID');
  const { counts, newPids } = await loadAround(async () => {
    await shOk(container, `systemctl restart ${SERVICE}`);
  });
  console.log(`  systemctl restart under load: ${JSON.stringify(counts)}, new worker pids ${[...newPids].join(' ')}`);
  assert.equal(Object.keys(counts), ['200'], 'every response was a 200: no refused connection, no 502/503');
  assert.ok(newPids.size > 0, 'new workers served after the restart');
  assert.is.not(await show('MainPID'), mainPid, 'a new master');
  assert.is(await show('NRestarts'), '0', 'a requested restart, not a failure');
});

testWithTool(test, '`systemctl stop` is graceful: an in-flight slow request completes', missing, async () => {
  const before = await journalCount('slow request started');
  const slow = request(nginx, '/slow?ms=2000', { timeoutMs: 30_000 });
  await until(async () => (await journalCount('slow request started')) > before, 20_000, 'the slow request to reach a worker');
  await shOk(container, `systemctl stop ${SERVICE}`);
  const r = await slow;
  assert.is(r.status, 200, r.body);
  assert.match(r.body, /^slow done \d+/);
  assert.is((await sh(container, `systemctl is-active ${SERVICE}`)).output.trim(), 'inactive');
  assert.match(await journal(), /stopping gracefully/);
});

testWithTool(test, 'an app that hangs (and hangs again at boot) trips the systemd watchdog', missing, async () => {
  // WatchdogSec small for this case; the rendered value (timeout + 30 s) is for production.
  await shOk(
    container,
    `printf '[Service]\\nWatchdogSec=2\\n' > /etc/systemd/system/${SERVICE}.d/watchdog.conf && systemctl daemon-reload && systemctl restart ${SERVICE}`,
  );
  assert.is(await show('WatchdogUSec'), '2s');
  await until(async () => /2\/2 workers ready/.test(await show('StatusText')), 30_000, 'both workers ready');
  const restartsBefore = Number(await show('NRestarts'));
  writeFileSync(join(hostShared, 'hang-on-boot'), '');
  try {
    // Hang both workers: each connection is taken by a worker that is still free. The
    // master kills them after --timeout (3 s); their replacements hang while loading, so no
    // worker is ready and the master withholds its pings.
    await shOk(
      container,
      `for i in 1 2 3 4 5 6; do curl -s -o /dev/null --max-time 2 --unix-socket ${deploy.socketPath} http://localhost/spin & done; wait; true`,
    );
    await until(async () => (await journalCount('Watchdog timeout')) > 0, 60_000, "systemd's watchdog timeout in the journal");
  } finally {
    rmSync(join(hostShared, 'hang-on-boot'), { force: true });
  }
  const restarts = await until(
    async () => {
      const n = Number(await show('NRestarts'));
      return n > restartsBefore ? n : null;
    },
    60_000,
    'systemd to restart the service (NRestarts)',
  );
  const log = await journal();
  console.log(
    `  watchdog: ${log
      .split('\n')
      .find((l) => l.includes('Watchdog timeout'))
      ?.trim()}; NRestarts ${restartsBefore} -> ${restarts}`,
  );
  assert.match(log, /withholding systemd watchdog pings/);
  // Restarted without the hang file: it serves again.
  const r = await until(
    async () => {
      const res = await request(nginx, '/', { timeoutMs: 10_000 }).catch(() => null);
      return res?.status === 200 ? res : null;
    },
    60_000,
    'the restarted service to serve',
  );
  assert.match(r!.body, /^ok \d+/);
});

test.run();
