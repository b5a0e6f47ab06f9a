// The systemd units: rendered, checked by the real `systemd-analyze verify`, and the
// settings that matter asserted one by one. The checked-in templates must be current.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderSystemdUnits, renderTemplateUnits, TEMPLATE_OPTIONS } from '../src/deploy/systemd-units.js';
import type { DeployOptions } from '../src/deploy/options.js';
import { tempDir, cleanup, ROOT } from './helpers/server.js';
import { hasCommand, testWithTool } from './helpers/tools.js';

test.after.each(cleanup);

const missing = hasCommand('systemd-analyze') ? null : 'systemd-analyze is not installed (apt-get install systemd)';

/** Deploy options whose paths exist (verify checks that ExecStart's binary does). */
function options(dir: string, overrides: Partial<DeployOptions> = {}): DeployOptions {
  const app = join(dir, 'app');
  mkdirSync(join(app, 'node_modules/ws-proxy-kit/dist/cli'), { recursive: true });
  writeFileSync(join(app, 'node_modules/ws-proxy-kit/dist/cli/main.js'), '');
  writeFileSync(join(app, 'ws-proxy-kit.config.mjs'), 'export default {};\n');
  return {
    name: 'demo-app',
    app: 'app.mjs',
    workingDirectory: app,
    user: 'demo',
    group: 'demo',
    proxyGroup: 'www-data',
    socketPath: '/run/demo-app/app.sock',
    workers: 2,
    gracefulTimeout: 30,
    timeout: 20,
    keepAlive: 75,
    serverName: 'demo.example',
    tls: false,
    nodePath: process.execPath,
    cliPath: join(app, 'node_modules/ws-proxy-kit/dist/cli/main.js'),
    configPath: join(app, 'ws-proxy-kit.config.mjs'),
    clientMaxBodySize: '10m',
    ...overrides,
  };
}

/** systemd-analyze verify on unit files written to `dir`; returns its exit code and output. */
function verify(dir: string, files: Record<string, string>): { code: number | null; output: string } {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const r = spawnSync('systemd-analyze', ['verify', ...Object.keys(files).map((f) => join(dir, f))], {
    encoding: 'utf8',
    // Warnings (unknown keys, bad values) are printed at "notice"/"warning": keep those, not debug chatter.
    env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice', SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: '' },
  });
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** Key → values per section, as systemd reads them (comments and blank lines skipped). */
function parseUnit(text: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(\w+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(eq > 0, `not a Key=value line: ${line}`);
    const key = `${section}.${line.slice(0, eq)}`;
    keys.set(key, [...(keys.get(key) ?? []), line.slice(eq + 1)]);
  }
  return keys;
}

function one(unit: Map<string, string[]>, key: string): string {
  const v = unit.get(key);
  assert.ok(v && v.length === 1, `${key}: expected exactly one value, got ${JSON.stringify(v)}`);
  return v![0]!;
}

testWithTool(test, 'per-app units pass systemd-analyze verify', missing, () => {
  const dir = tempDir();
  const u = renderSystemdUnits(options(dir));
  assert.is(u.socketFile, 'demo-app.socket');
  assert.is(u.serviceFile, 'demo-app.service');
  const r = verify(dir, { [u.socketFile]: u.socketUnit, [u.serviceFile]: u.serviceUnit });
  assert.is(r.output, '', 'no warnings');
  assert.is(r.code, 0);
});

testWithTool(test, 'systemd-analyze verify really checks: a missing ExecStart binary and a bad SocketMode fail', missing, () => {
  const dir = tempDir();
  const u = renderSystemdUnits(options(dir, { nodePath: join(dir, 'no-such-node') }));
  const r = verify(dir, { [u.socketFile]: u.socketUnit.replace('SocketMode=0660', 'SocketMode=bogus'), [u.serviceFile]: u.serviceUnit });
  assert.is.not(r.code, 0);
  assert.match(r.output, /no-such-node is not executable/);
  assert.match(r.output, /Failed to parse mode value/);
});

test('the service: notify, reload through ctl (which waits for it and fails when it is refused), mixed kill, stop and watchdog timeouts, hardening', () => {
  const o = options(tempDir());
  const s = parseUnit(renderSystemdUnits(o).serviceUnit);
  assert.is(one(s, 'Service.Type'), 'notify');
  assert.is(one(s, 'Service.NotifyAccess'), 'main');
  assert.is(one(s, 'Service.ExecReload'), `${o.nodePath} ${o.cliPath} ctl --config ${o.configPath} reload`);
  assert.is(one(s, 'Service.ExecStart'), `${o.nodePath} ${o.cliPath} serve --config ${o.configPath} --bind systemd`);
  assert.is(one(s, 'Service.KillMode'), 'mixed');
  assert.is(one(s, 'Service.KillSignal'), 'SIGTERM');
  assert.ok(
    Number(one(s, 'Service.TimeoutStopSec')) > o.gracefulTimeout + 1,
    'TimeoutStopSec above the graceful timeout (+1 s the arbiter waits)',
  );
  assert.ok(Number(one(s, 'Service.WatchdogSec')) > o.timeout, 'WatchdogSec leaves the master time to replace a hung worker first');
  assert.is(one(s, 'Service.User'), 'demo');
  assert.is(one(s, 'Service.Group'), 'demo');
  assert.is(one(s, 'Service.WorkingDirectory'), o.workingDirectory);
  assert.is(
    one(s, 'Service.RuntimeDirectory'),
    'demo-app/server',
    'a subdirectory: systemd re-owns a RuntimeDirectory, which must not reach the socket file',
  );
  assert.is(one(s, 'Service.RuntimeDirectoryPreserve'), 'yes', 'kept across stops');
  assert.is(one(s, 'Unit.Requires'), 'demo-app.socket');
  assert.match(one(s, 'Unit.After'), /\bdemo-app\.socket\b/);
  for (const [key, value] of [
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['PrivateDevices', 'yes'],
    ['ProtectKernelTunables', 'yes'],
    ['ProtectKernelModules', 'yes'],
    ['ProtectControlGroups', 'yes'],
    ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6'],
    ['RestrictNamespaces', 'yes'],
    ['RestrictSUIDSGID', 'yes'],
    ['LockPersonality', 'yes'],
    ['CapabilityBoundingSet', ''],
    ['SystemCallFilter', '@system-service'],
  ] as const) {
    assert.is(one(s, `Service.${key}`), value, key);
  }
  // V8's JIT needs W+X memory.
  assert.not.ok(s.has('Service.MemoryDenyWriteExecute'));
  // The master reads /proc/net/unix.
  assert.not.ok(s.has('Service.ProcSubset'));
});

test('the socket: path, owner and group for nginx, 0660, a name for --bind systemd:NAME', () => {
  const o = options(tempDir());
  const k = parseUnit(renderSystemdUnits(o).socketUnit);
  assert.is(one(k, 'Socket.ListenStream'), '/run/demo-app/app.sock');
  assert.is(one(k, 'Socket.SocketUser'), 'demo');
  assert.is(one(k, 'Socket.SocketGroup'), 'www-data');
  assert.is(one(k, 'Socket.SocketMode'), '0660');
  assert.is(one(k, 'Socket.FileDescriptorName'), 'app');
  assert.is(one(k, 'Socket.DirectoryMode'), '0755');
  // PartOf= would propagate a service restart to the socket and refuse connections meanwhile.
  assert.not.ok(k.has('Unit.PartOf') || k.has('Unit.BindsTo'));
  assert.is(one(k, 'Install.WantedBy'), 'sockets.target');
});

testWithTool(test, 'odd paths: spaces, % and $ are escaped; an app under /home gets ProtectHome=read-only', missing, () => {
  const dir = tempDir();
  const base = join(dir, 'odd dir');
  mkdirSync(base);
  const o = options(base, { name: 'odd', socketPath: '/srv/sockets/odd.sock' });
  const cli = join(base, 'app', '50%$HOME.js');
  writeFileSync(cli, '');
  const u = renderSystemdUnits({ ...o, cliPath: cli, workingDirectory: '/home/odd/app' });
  const s = parseUnit(u.serviceUnit);
  assert.is(one(s, 'Service.ExecStart').split(' --config ')[0], `${o.nodePath} "${cli.replace('%', '%%').replace('$', () => '$$')}" serve`);
  assert.is(one(s, 'Service.ProtectHome'), 'read-only');
  assert.not.ok(s.has('Service.RuntimeDirectory'), 'the socket is not under /run');
  const r = verify(dir, { [u.socketFile]: u.socketUnit, [u.serviceFile]: u.serviceUnit });
  assert.is(r.output, '');
  assert.is(r.code, 0);
});

test('systemd/ws-proxy-kit@.socket and @.service are the rendered templates', () => {
  const u = renderTemplateUnits();
  assert.is(readFileSync(join(ROOT, 'systemd', u.socketFile), 'utf8'), u.socketUnit, 'regenerate systemd/ws-proxy-kit@.socket');
  assert.is(readFileSync(join(ROOT, 'systemd', u.serviceFile), 'utf8'), u.serviceUnit, 'regenerate systemd/ws-proxy-kit@.service');
  const s = parseUnit(u.serviceUnit);
  assert.is(one(s, 'Unit.Requires'), 'ws-proxy-kit@%i.socket');
  assert.is(one(s, 'Service.RuntimeDirectory'), 'ws-proxy-kit-%i/server');
  assert.is(one(parseUnit(u.socketUnit), 'Socket.ListenStream'), '/run/ws-proxy-kit-%i/app.sock');
});

testWithTool(test, 'the templates pass systemd-analyze verify as an instance', missing, () => {
  const dir = tempDir();
  const u = renderTemplateUnits();
  // The template runs /usr/bin/node; verify needs a node that exists on this machine.
  const service = u.serviceUnit.replace(`ExecStart=${TEMPLATE_OPTIONS.nodePath} `, `ExecStart=${process.execPath} `);
  const r = verify(dir, { 'ws-proxy-kit@demo.socket': u.socketUnit, 'ws-proxy-kit@demo.service': service });
  assert.is(r.output, '');
  assert.is(r.code, 0);
});

test.run();
