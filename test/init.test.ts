// `ws-proxy-kit init` (generated files agree with each other, overwrite protection,
// package.json inference, nginx -t / systemd-analyze validation) and `check --proxy-user`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, runCli, startServer, tempDir } from './helpers/server.js';
import { hasCommand, testWithTool } from './helpers/tools.js';
import { renderNginxSite } from '../src/deploy/nginx-site.js';
import { inferApp, serviceName } from '../src/deploy/options.js';

test.after.each(cleanup);

function appDir(pkg: object = { name: '@acme/My Shop', scripts: { start: 'ws-proxy-kit --workers 2 server.mjs' } }): string {
  const dir = tempDir('wspk-init-');
  writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg));
  writeFileSync(join(dir, 'server.mjs'), 'export default (req, res) => res.end("hi");\n');
  return dir;
}

test('names and the app module are inferred from package.json', () => {
  assert.is(serviceName('@acme/My Shop'), 'my-shop');
  const dir = appDir();
  assert.is(inferApp({ scripts: { start: 'ws-proxy-kit --workers 2 server.mjs' } }, dir), 'server.mjs');
  assert.is(inferApp({ scripts: { start: 'node dist/app.js' } }, dir), 'dist/app.js');
  assert.is(inferApp({ main: 'server.mjs' }, dir), 'server.mjs');
  assert.is(inferApp({ main: 'missing.js' }, dir), 'server.mjs', 'falls back to a usual file name that exists');
});

test('--dry-run prints four files that agree on socket, group, name and timeouts', async () => {
  const dir = appDir();
  const r = await runCli(['init', '--dry-run', '--socket', '/run/shop/app.sock', '--workers', '3'], { cwd: dir });
  assert.is(r.code, 0, r.stderr);
  const files = r.stdout.split(/^# ---- /m).filter(Boolean);
  assert.equal(
    files.map((f) => f.slice(0, f.indexOf('\n')).replace(dir, '')),
    ['/deploy/my-shop.nginx.conf', '/deploy/my-shop.socket', '/deploy/my-shop.service', '/deploy/ws-proxy-kit.config.mjs'],
  );
  const [site, socket, service, config] = files as [string, string, string, string];
  assert.match(site, 'server unix:/run/shop/app.sock max_fails=0;');
  assert.match(site, 'keepalive_timeout 4s;');
  assert.match(site, 'proxy_set_header Connection $connection_upgrade;');
  assert.match(socket, 'ListenStream=/run/shop/app.sock');
  assert.match(socket, 'SocketGroup=www-data');
  assert.match(service, `--config ${join(dir, 'deploy/ws-proxy-kit.config.mjs')}`);
  assert.match(config, '"unix:/run/shop/app.sock"');
  assert.match(config, 'socketGroup: "www-data"');
  assert.match(config, 'app: "server.mjs"');
  assert.match(config, 'workers: 3');
  assert.not.ok(existsSync(join(dir, 'deploy')), 'a dry run writes nothing');
});

test('--keep-alive and --graceful-timeout given to init reach the site, the units and the config', async () => {
  const dir = appDir();
  const r = await runCli(['init', '--dry-run', '--keep-alive', '30', '--graceful-timeout', '90'], { cwd: dir });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, 'keepalive_timeout 29s;');
  assert.match(r.stdout, 'keepAlive: 30,');
  assert.match(r.stdout, 'gracefulTimeout: 90,');
  assert.ok(Number(/^TimeoutStopSec=(\d+)$/m.exec(r.stdout)?.[1]) > 90, 'systemd waits longer than the graceful timeout');
  const bad = await runCli(['init', '--dry-run', '--keep-alive', 'soon'], { cwd: dir });
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /Invalid value for --keep-alive: "soon"/);
});

test('the site: keepalive below the app keep-alive, TLS redirect, static files', () => {
  const base = {
    name: 'shop',
    app: 'app.mjs',
    workingDirectory: '/srv/shop',
    user: 'shop',
    group: 'shop',
    proxyGroup: 'www-data',
    socketPath: '/run/shop/app.sock',
    workers: 2,
    gracefulTimeout: 30,
    timeout: 30,
    keepAlive: 75,
    serverName: 'shop.example.com',
    tls: false,
    nodePath: '/usr/bin/node',
    cliPath: '/x/main.js',
    configPath: '/srv/shop/c.mjs',
    clientMaxBodySize: '20m',
  };
  assert.match(renderNginxSite(base), 'keepalive_timeout 74s;');
  assert.match(renderNginxSite(base), 'client_max_body_size 20m;');
  assert.match(renderNginxSite({ ...base, keepAlive: 0 }), /No keepalive pool/);
  assert.not.match(renderNginxSite({ ...base, keepAlive: 0 }), /^\s*keepalive /m);
  const tls = renderNginxSite({ ...base, tls: true, staticDir: '/srv/shop/public' });
  assert.match(tls, 'return 301 https://$host$request_uri;');
  assert.match(tls, 'listen 443 ssl http2;');
  assert.match(tls, 'ssl_certificate /etc/letsencrypt/live/shop.example.com/fullchain.pem;');
  assert.match(tls, 'alias /srv/shop/public/;');
});

test('init writes the files, refuses to overwrite them, and --force overwrites', async () => {
  const dir = appDir();
  const first = await runCli(['init', '--out', 'out'], { cwd: dir });
  assert.is(first.code === 0 || first.code === 1, true, first.stderr); // 1 only if a validator disagrees
  assert.ok(existsSync(join(dir, 'out/my-shop.nginx.conf')));
  assert.match(first.stdout, /systemctl enable --now my-shop\.socket my-shop\.service/);
  assert.match(first.stdout, /proxy access \(as configured\)/);
  writeFileSync(join(dir, 'out/my-shop.socket'), 'edited\n');
  const again = await runCli(['init', '--out', 'out'], { cwd: dir });
  assert.is(again.code, 2);
  assert.match(again.stderr, /Refusing to overwrite .*--force/);
  assert.is(readFileSync(join(dir, 'out/my-shop.socket'), 'utf8'), 'edited\n');
  const forced = await runCli(['init', '--out', 'out', '--force'], { cwd: dir });
  assert.not.equal(readFileSync(join(dir, 'out/my-shop.socket'), 'utf8'), 'edited\n');
  assert.ok(forced.code === 0 || forced.code === 1);
});

test('bad flags are errors that say what to do', async () => {
  const dir = appDir();
  const tls = await runCli(['init', '--tls', '--dry-run'], { cwd: dir });
  assert.is(tls.code, 2);
  assert.match(tls.stderr, /--tls needs --server-name/);
  const name = await runCli(['init', '--name', 'My App', '--dry-run'], { cwd: dir });
  assert.match(name.stderr, /lowercase letters, digits and dashes/);
  const noApp = await runCli(['init', '--dry-run'], { cwd: tempDir() });
  assert.match(noApp.stderr, /Pass --app/);
  // An app module that is not there: the files are still written, with a warning.
  const typo = await runCli(['init', '--app', 'srv/sever.mjs', '--dry-run'], { cwd: dir });
  assert.is(typo.code, 0);
  assert.match(typo.stderr, /^warning: --app srv\/sever\.mjs: no such file in /m);
  const found = await runCli(['init', '--dry-run'], { cwd: dir });
  assert.not.match(found.stderr, /warning/);
});

testWithTool(
  test,
  'init validates the site with nginx -t, TLS included',
  hasCommand('nginx', ['-v']) ? null : 'nginx is not installed',
  async () => {
    const dir = appDir();
    const r = await runCli(['init', '--tls', '--server-name', 'shop.example.com', '--static', 'public'], { cwd: dir, timeoutMs: 60_000 });
    assert.match(r.stdout, /nginx -t: ok/, r.stdout + r.stderr);
    assert.not.match(r.stdout, /\/etc\/nginx\/nginx\.conf/, 'validated in a temporary prefix');
  },
);

testWithTool(
  test,
  'init verifies the units with systemd-analyze',
  hasCommand('systemd-analyze') ? null : 'systemd-analyze is not installed',
  async () => {
    const dir = appDir();
    const r = await runCli(['init'], { cwd: dir, timeoutMs: 60_000 });
    assert.match(r.stdout, /systemd-analyze verify: (ok|FAILED)/);
  },
);

const rootOnly = process.getuid?.() === 0 ? null : 'needs root to test access as another user (www-data)';

testWithTool(test, 'check --proxy-user: a directory www-data cannot search is named, with the fix', rootOnly, async () => {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const sockDir = join(dir, 'private');
  mkdirSync(sockDir, { mode: 0o700 });
  const sock = join(sockDir, 'app.sock');
  const server = startServer(['test/fixtures/app.mjs', '--bind', `unix:${sock}`, '--socket-group', 'www-data']);
  await server.ready();
  const denied = await runCli([
    'check',
    'test/fixtures/app.mjs',
    '--bind',
    `unix:${sock}`,
    '--socket-group',
    'www-data',
    '--proxy-user',
    'www-data',
  ]);
  assert.is(denied.code, 1, denied.stdout + denied.stderr);
  assert.match(denied.stdout, new RegExp(`FAIL drwx------ .* ${sockDir}: search \\(x\\) as other`));
  assert.match(denied.stdout, new RegExp(`fix: ${sockDir}: chmod o\\+x ${sockDir}`));
  assert.match(denied.stdout, /www-data cannot connect/);
  chmodSync(sockDir, 0o711);
  const allowed = await runCli([
    'check',
    'test/fixtures/app.mjs',
    '--bind',
    `unix:${sock}`,
    '--socket-group',
    'www-data',
    '--proxy-user',
    'www-data',
  ]);
  assert.is(allowed.code, 0, allowed.stdout);
  assert.match(allowed.stdout, /ok   srw-rw---- root:www-data .*connect \(w\) as group/);
  const noGroup = await runCli(['check', 'test/fixtures/app.mjs', '--bind', `unix:${join(dir, 'later.sock')}`, '--proxy-user', 'www-data']);
  assert.is(noGroup.code, 1, 'a socket created without the proxy group is not reachable');
  assert.match(noGroup.stdout, /--socket-group www-data/);
  const nobody = await runCli(['check', 'test/fixtures/app.mjs', '--bind', `unix:${sock}`, '--proxy-user', 'no-such-user-wspk']);
  assert.is(nobody.code, 1);
  assert.match(nobody.stdout, /does not exist/);
});

test.run();
