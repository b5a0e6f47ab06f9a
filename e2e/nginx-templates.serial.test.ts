// The nginx/ templates as a user installs them without `init`: placeholders filled, the
// http-context files (websocket-map.conf, upstream.conf) in `http {}` and proxy-params.conf
// `include`d in a location of one's own server block, and next to it site.conf with its
// own includes. One real nginx (foreground, temporary prefix, www-data workers) runs both,
// the WebSocket map included twice; ws-proxy-kit serves on a UNIX socket behind it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { cleanup, freePort, onCleanup, request, ROOT, startServer, tempDir, until, type ServerProcess } from '../test/helpers/server.js';
import { hasCommand, testWithTool } from '../test/helpers/tools.js';
import { fillTemplate } from '../src/deploy/template.js';
import { lookupGid } from '../src/deploy/proxy-access.js';
import { nginxMainConf } from '../src/deploy/nginx-site.js';
import { PROXY_USER } from './nginx-cases.js';
import { shopTemplateValues } from '../test/helpers/init.js';

test.after(cleanup);

const missing = !hasCommand('nginx', ['-v'])
  ? 'nginx is not installed (apt-get install nginx)'
  : process.getuid?.() !== 0
    ? `needs root: nginx's workers run as ${PROXY_USER}, as in production`
    : lookupGid(PROXY_USER) === null
      ? `group ${PROXY_USER} does not exist (Debian's nginx package creates it)`
      : null;

const template = (file: string) => readFileSync(join(ROOT, 'nginx', file), 'utf8');

/** What someone filling the templates by hand gives: no TLS, no static files, one listen address. */
function values(name: string, socket: string, listen: string) {
  return {
    ...shopTemplateValues,
    name,
    socket,
    keepalive_connections: 8,
    client_max_body_size: '1m',
    listen_http: [{ address: listen }],
    listen_https: [],
    generated: false,
  };
}

/** nginx/FILE filled with `v`, written to `dir`. */
function install(dir: string, file: string, v: ReturnType<typeof values>, as = file): void {
  mkdirSync(dir, { recursive: true });
  const text = fillTemplate(template(file), v, `nginx/${file}`);
  assert.not.match(text, '{{', `${file}: every placeholder filled`);
  writeFileSync(join(dir, as), text);
}

let nginx: { child: ChildProcess; errorLog: () => string } | null = null;
let app: ServerProcess;
let ownPort = 0;
let sitePort = 0;
let prefix = '';
let nginxConf = '';

function nginxArgs(...extra: string[]): string[] {
  return ['-p', prefix + '/', '-c', nginxConf, '-e', join(prefix, 'error.log'), ...extra];
}

test.before(async () => {
  if (missing !== null) return;
  const dir = tempDir('wspk-e2e-templates-');
  chmodSync(dir, 0o755);
  // The app's socket: in a directory nginx's group may search, mode 0660 in that group.
  const socketDir = join(dir, 'run');
  mkdirSync(socketDir);
  chownSync(socketDir, 0, lookupGid(PROXY_USER)!);
  chmodSync(socketDir, 0o750);
  const socket = join(socketDir, 'app.sock');
  app = startServer([join(ROOT, 'e2e/fixtures/app.mjs'), '--bind', `unix:${socket}`, '--socket-group', PROXY_USER, '--workers', '2']);
  await app.ready(30_000);

  prefix = join(dir, 'nginx');
  mkdirSync(prefix, { mode: 0o755 });
  chmodSync(prefix, 0o755); // www-data writes its temp files here
  [ownPort, sitePort] = [await freePort(), await freePort()];

  // 1. The pieces in a server block of one's own.
  const own = values('tpl-own', socket, `127.0.0.1:${ownPort}`);
  for (const f of ['websocket-map.conf', 'upstream.conf', 'proxy-params.conf']) install(join(prefix, 'snippets'), f, own);
  writeFileSync(
    join(prefix, 'own-server.conf'),
    [
      'include snippets/websocket-map.conf;',
      'include snippets/upstream.conf;',
      'server {',
      `    listen 127.0.0.1:${ownPort};`,
      '    location / {',
      '        include snippets/proxy-params.conf;',
      '        proxy_pass http://tpl-own;',
      '    }',
      '}',
      '',
    ].join('\n'),
  );
  // 2. site.conf as shipped, its includes in ws-proxy-kit/NAME/ under the configuration's directory.
  const site = values('tpl-site', socket, `127.0.0.1:${sitePort}`);
  for (const f of ['websocket-map.conf', 'upstream.conf', 'proxy-params.conf']) install(join(prefix, 'ws-proxy-kit/tpl-site'), f, site);
  install(prefix, 'site.conf', site);
  assert.match(readFileSync(join(prefix, 'site.conf'), 'utf8'), /^include ws-proxy-kit\/tpl-site\/upstream\.conf;$/m);

  writeFileSync(join(prefix, 'sites.conf'), 'include own-server.conf;\ninclude site.conf;\n');
  nginxConf = join(prefix, 'nginx.conf');
  writeFileSync(nginxConf, nginxMainConf(prefix, join(prefix, 'sites.conf'), { user: PROXY_USER }));
});

testWithTool(test, 'the templates, filled and installed both ways, pass nginx -t', missing, () => {
  const r = spawnSync('nginx', nginxArgs('-t'), { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /test is successful/);
});

testWithTool(test, 'real nginx serves the app through both: forwarding headers, keepalive, no Connection: close', missing, async () => {
  const child = spawn('nginx', nginxArgs('-g', 'daemon off;'), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  process.once('exit', () => child.kill('SIGKILL'));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  nginx = { child, errorLog: () => readFileSync(join(prefix, 'error.log'), 'utf8') };
  onCleanup(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGQUIT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  const accepting = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
  await until(
    async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
      return (await accepting(ownPort)) && (await accepting(sitePort));
    },
    15_000,
    'nginx accepting on both ports',
  );
  for (const port of [ownPort, sitePort]) {
    const r = await request({ host: '127.0.0.1', port }, '/headers', { headers: { host: 'app.test', 'x-forwarded-for': '6.6.6.6' } });
    assert.is(r.status, 200, `${port}: ${r.body.slice(0, 300)}`);
    assert.match(String(r.headers.server), /nginx/);
    const seen = (JSON.parse(r.body) as { headers: Record<string, string> }).headers;
    assert.is(seen['x-forwarded-for'], '127.0.0.1', 'the client address, the forged one dropped');
    assert.is(seen['x-forwarded-proto'], 'http');
    assert.is(seen['x-forwarded-host'], 'app.test');
    assert.is(seen.host, 'app.test');
    assert.match(seen['x-request-id'] ?? '', /^[0-9a-f]{32}$/);
    assert.is(seen.connection, undefined, 'no Connection: close to the app (upstream keepalive)');
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) ids.add((await request({ host: '127.0.0.1', port }, '/conn')).body);
    assert.ok(ids.size <= 4, `20 requests reused upstream connections (${ids.size} distinct)`);
  }
});

testWithTool(test, 'a WebSocket echo goes through the map and the upgrade headers', missing, async () => {
  for (const port of [ownPort, sitePort]) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`);
    onCleanup(() => ws.terminate());
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const reply = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send(`through ${port}`);
    assert.is(await reply, `through ${port}`);
    ws.close();
  }
});

testWithTool(test, 'with the app stopped, site.conf answers its 503 page with Retry-After', missing, async () => {
  assert.ok(nginx, 'nginx runs');
  assert.is((await app.stop('SIGTERM')).code, 0);
  const down = await request({ host: '127.0.0.1', port: sitePort }, '/');
  assert.is(down.status, 503, nginx!.errorLog());
  assert.is(down.headers['retry-after'], '5');
  assert.match(down.body, /tpl-site is restarting/);
});

test.run();
