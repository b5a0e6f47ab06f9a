// The nginx/ templates and init's site are one thing: the site `init` prints is
// nginx/site.conf with the files it includes written inline, every placeholder filled with
// the value these tests work out from the flags by hand. A site that gains, loses or
// changes a line the templates do not have fails here, and so does a placeholder whose
// value init computes differently, or one the README does not document.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { cleanup, ROOT } from './helpers/server.js';
import { initAppDir, initDryRun, shopTemplateValues } from './helpers/init.js';
import { hasCommand, testWithTool } from './helpers/tools.js';
import { fillTemplate, templateNames, type TemplateScope } from '../src/deploy/template.js';

test.after.each(cleanup);

const TEMPLATES = ['site.conf', 'websocket-map.conf', 'upstream.conf', 'proxy-params.conf'];
const template = (file: string) => readFileSync(join(ROOT, 'nginx', file), 'utf8');

/** site.conf filled, each `include ws-proxy-kit/NAME/FILE;` replaced by that file filled (indented like the include). */
function fromTemplates(values: TemplateScope, replace: Record<string, string> = {}): string {
  const filled = (file: string) => replace[file] ?? fillTemplate(template(file), values, file);
  return filled('site.conf').replace(/^( *)include ws-proxy-kit\/[a-z-]+\/([a-z-]+\.conf);\n/gm, (_line, indent: string, file: string) =>
    filled(file).replace(/^(?=.)/gm, indent),
  );
}

const defaults = shopTemplateValues;

test("init's site is nginx/site.conf with its includes, filled with the flags' values", async () => {
  const files = await initDryRun(['--workers', '3']);
  assert.fixture(files['shop.nginx.conf']!, fromTemplates(defaults));
});

test("init's site from the templates: TLS, static files, no keepalive pool, longer timeouts", async () => {
  const dir = initAppDir();
  const files = await initDryRun(
    [
      ...['--workers', '2', '--tls', '--server-name', 'shop.example.com www.shop.example.com', '--static', 'public/'],
      ...['--keep-alive', '1', '--timeout', '100', '--client-max-body-size', '64m', '--socket', '/srv/shop/app.sock'],
    ],
    dir,
  );
  assert.fixture(
    files['shop.nginx.conf']!,
    fromTemplates({
      ...defaults,
      socket: '/srv/shop/app.sock',
      pool: false,
      keepalive_connections: 8,
      keepalive_timeout: 1,
      app_keep_alive: 1,
      app_timeout: 100,
      read_timeout: 105,
      server_name: 'shop.example.com www.shop.example.com',
      client_max_body_size: '64m',
      tls: true,
      ssl_certificate: '/etc/letsencrypt/live/shop.example.com/fullchain.pem',
      ssl_certificate_key: '/etc/letsencrypt/live/shop.example.com/privkey.pem',
      static: true,
      static_dir: join(dir, 'public'),
    }),
  );
});

test("kubernetes: the ConfigMap's site is the same templates, listening on the pod's port", async () => {
  const files = await initDryRun(['--target', 'kubernetes']);
  const configMap = parseAllDocuments(files['shop.k8s.yaml']!)[0]!.toJS() as { data: Record<string, string> };
  assert.fixture(
    configMap.data['default.conf']!,
    fromTemplates({
      ...defaults,
      keepalive_connections: 8,
      listen_http: [{ address: '8080' }],
      command: 'ws-proxy-kit init --target kubernetes',
      generated_with: "the app container's command line in the same Deployment",
    }),
  );
});

test('hosts: the same templates around its own upstream, with failover and a 2 s connect timeout', async () => {
  const files = await initDryRun(['--target', 'hosts', '--hosts', '10.0.0.2:8000,10.0.0.3:8000', '--proxy-address', '10.0.0.1']);
  const site = files['shop.nginx.conf']!;
  const upstream = /^# The app hosts:[^]*?\n}\n/m.exec(site)?.[0];
  assert.ok(upstream, site);
  assert.match(upstream, /^ {4}server 10\.0\.0\.2:8000 max_fails=1 fail_timeout=5s;$/m);
  assert.fixture(
    site,
    fromTemplates(
      {
        ...defaults,
        connect_timeout: 2,
        failover: true,
        command: 'ws-proxy-kit init --target hosts',
        generated_with: 'the units and config files of its 2 app host(s)',
      },
      { 'upstream.conf': upstream },
    ),
  );
});

test('nginx/ holds these templates; nginx/README.md documents every placeholder they use, and no other', () => {
  assert.equal(readdirSync(join(ROOT, 'nginx')).sort(), ['README.md', ...TEMPLATES].sort());
  const used = new Set(TEMPLATES.flatMap((f) => [...templateNames(template(f))]));
  const readme = readFileSync(join(ROOT, 'nginx/README.md'), 'utf8');
  const documented = new Set([...readme.matchAll(/^\| `\{\{[#^]?(\w+)\}\}`/gm)].map((m) => m[1]!));
  assert.equal([...used].sort(), [...documented].sort(), 'the placeholder table in nginx/README.md');
  for (const f of TEMPLATES.slice(1)) assert.match(readme, `### \`${f}\``, `nginx/README.md has a section on ${f}`);
});

test('the engine: sections, lists, and an error for a placeholder without a value', () => {
  const text = 'a {{x}}\n{{#on}}\nb\n{{/on}}\n{{^on}}\nc\n{{/on}}\n{{#items}}\n  - {{v}} {{x}}\n{{/items}}\n';
  assert.is(fillTemplate(text, { x: 1, on: true, items: [{ v: 'p' }, { v: 'q' }] }), 'a 1\nb\n  - p 1\n  - q 1\n');
  assert.is(fillTemplate(text, { x: 1, on: false, items: [] }), 'a 1\nc\n');
  assert.throws(() => fillTemplate('{{y}}', {}, 'nginx/t.conf'), /nginx\/t\.conf: no value for \{\{y\}\}/);
  assert.throws(() => fillTemplate('{{#y}}\n', { y: true }), /never closed/);
  assert.throws(() => fillTemplate('{{y}}', { y: 'two\nlines' }), /one-line/);
});

testWithTool(test, 'the npm package ships the templates', hasCommand('npm') ? null : 'npm is not installed', () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const shipped = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  for (const f of TEMPLATES) assert.ok(shipped.includes(`nginx/${f}`), `nginx/${f} is in the package`);
});

test.run();
