// The real CLI as a user runs it: exit codes and messages for bad input, --print-config,
// check, --help/--version, log formats and destinations, the access log, README reference.
import { test } from 'uvu';
import { ctlCommandRows } from '../src/arbiter/control.js';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  startServer,
  runCli,
  request,
  tempDir,
  cleanup,
  onCleanup,
  until,
  ServerProcess,
  CLI,
  FIXTURES,
  ROOT,
  type LogLine,
} from './helpers/server.js';
import { README, readmeWithReference } from '../scripts/settings-doc.js';
import { settingsTable, kebab, type SettingDef } from '../src/config/settings.js';
import { initFlags } from '../src/cli/init.js';
import { ctlFlags } from '../src/cli/ctl.js';
import { helpText } from '../src/cli/help.js';

test.after.each(cleanup);

const APP = join(FIXTURES, 'app.mjs');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

function jsonLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogLine);
}

// ---- errors ------------------------------------------------------------------------

test('an unknown flag exits 2 and names the flag with a "did you mean"', async () => {
  const r = await runCli([APP, '--wokers', '2']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /Unknown flag --wokers\. Did you mean --workers\?/);
  const s = await runCli([APP, '--graceful-timout', '5']);
  assert.is(s.code, 2);
  assert.match(s.stderr, /Did you mean --graceful-timeout\?/);
});

test('a bad value exits 2 naming setting, value, source and what is accepted (flag, env, config file)', async () => {
  const flag = await runCli([APP, '--workers', 'zero']);
  assert.is(flag.code, 2);
  assert.match(flag.stderr, /Invalid value for workers \(--workers\): "zero"\. Accepted: an integer from 1 to 1024\./);

  const env = await runCli([APP], { env: { WS_PROXY_KIT_WORKERS: '0' } });
  assert.is(env.code, 2);
  assert.match(env.stderr, /Invalid value for workers \(WS_PROXY_KIT_WORKERS\): "0"\. Accepted: an integer from 1 to 1024\./);

  const dir = tempDir();
  writeFileSync(join(dir, 'ws-proxy-kit.config.mjs'), 'export default { workers: -1 };\n');
  const file = await runCli([APP], { cwd: dir });
  assert.is(file.code, 2);
  assert.match(
    file.stderr,
    /Invalid value for workers \(workers in .*ws-proxy-kit\.config\.mjs\): -1\. Accepted: an integer from 1 to 1024\./,
  );

  const cmdArgs = await runCli([APP], { env: { WS_PROXY_KIT_CMD_ARGS: '--socket-mode 0999' } });
  assert.is(cmdArgs.code, 2);
  assert.match(cmdArgs.stderr, /socketMode \(--socket-mode in WS_PROXY_KIT_CMD_ARGS\): "0999"/);

  const unknownEnv = await runCli([APP], { env: { WS_PROXY_KIT_WORKER: '2' } });
  assert.is(unknownEnv.code, 2);
  assert.match(unknownEnv.stderr, /Unknown environment variable WS_PROXY_KIT_WORKER\. Did you mean WS_PROXY_KIT_WORKERS\?/);
  // Nothing was started: no JSON log lines, just the one message.
  assert.is(unknownEnv.stderr.trim().split('\n').length, 1);
});

test('no app given: a clear error, exit 2', async () => {
  const r = await runCli([], { cwd: tempDir() });
  assert.is(r.code, 2);
  assert.match(r.stderr, /No app given\. Usage: ws-proxy-kit/);
  const two = await runCli([APP, APP]);
  assert.is(two.code, 2);
  assert.match(two.stderr, /Expected one app, got 2/);
});

// ---- --print-config, --help, --version -------------------------------------------------

test('--print-config shows every value with its source, and exits 0', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'ws-proxy-kit.config.json'), '{ "keepAlive": 8 }');
  const r = await runCli(['--print-config', APP, '-w', '3'], { cwd: dir, env: { WEB_CONCURRENCY: '5', WS_PROXY_KIT_LOG_LEVEL: 'warn' } });
  assert.is(r.code, 0, r.stderr);
  const rows = Object.fromEntries(
    r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => [l.split(/\s+/)[0], l]),
  );
  assert.match(rows.app!, new RegExp(`^app\\s+${APP}\\s+command line: the APP argument$`));
  assert.match(rows.workers!, /^workers\s+3\s+command line: --workers$/);
  assert.match(rows['keep-alive']!, /^keep-alive\s+8\s+config file: keepAlive in .*ws-proxy-kit\.config\.json$/);
  assert.match(rows['log-level']!, /^log-level\s+warn\s+environment: WS_PROXY_KIT_LOG_LEVEL$/);
  assert.match(rows['socket-mode']!, /^socket-mode\s+0660\s+default$/);
  assert.match(rows['log-format']!, /^log-format\s+json\s+environment: WS_PROXY_KIT_LOG_FORMAT$/, 'the test helper sets json');
  assert.match(rows.bind!, /^bind\s+127\.0\.0\.1:8000\s+default$/);
  assert.is(r.stderr, '', 'nothing is started, nothing logged');
  const web = await runCli(['--print-config', APP], { cwd: dir, env: { WEB_CONCURRENCY: '5' } });
  assert.match(web.stdout, /^workers\s+5\s+environment: WEB_CONCURRENCY$/m);
});

test('--help and -h print usage and exit 0; --version prints the package version', async () => {
  for (const flag of ['--help', '-h']) {
    const r = await runCli([flag]);
    assert.is(r.code, 0, flag);
    assert.match(r.stdout, /Usage\s+\$ ws-proxy-kit/);
    assert.match(r.stdout, /-w, --workers VALUE/);
    assert.match(r.stdout, /--access-logfile VALUE/);
    assert.match(r.stdout, /check\s+validate the configuration/);
  }
  const check = await runCli(['check', '--help']);
  assert.is(check.code, 0);
  assert.match(check.stdout, /\$ ws-proxy-kit check/);
  const v = await runCli(['--version']);
  assert.is(v.code, 0);
  assert.is(v.stdout.trim(), pkg.version);
});

test('--help: every command with a line, the settings by section with their defaults, wrapped to 80 columns off a terminal', async () => {
  const r = await runCli(['--help']);
  assert.is(r.code, 0);
  const lines = r.stdout.split('\n');
  for (const line of lines) assert.ok(line.length <= 80, `at most 80 columns: ${JSON.stringify(line)}`);
  for (const [command, doc] of [
    ['serve \\(default\\)', 'run the server'],
    ['check', 'validate the configuration'],
    ['init', 'generate the nginx site'],
    ['ctl', 'steer a running server'],
  ])
    assert.match(r.stdout, new RegExp(`^    ${command}\\s+${doc}`, 'm'));
  const sections = [...new Set((settingsTable as readonly SettingDef[]).map((s) => s.section))];
  const at = sections.map((s) => lines.indexOf(`  ${s}`));
  assert.ok(
    at.every((i, n) => i > 0 && (n === 0 || i > at[n - 1]!)),
    `sections in table order: ${sections.join(', ')}`,
  );
  for (const s of settingsTable as readonly SettingDef[]) {
    if (s.positional) assert.not.match(r.stdout, new RegExp(`--${kebab(s.name)}\\b`), 'the positional setting has no flag');
    else assert.ok(r.stdout.includes(`--${kebab(s.name)}`), `--${kebab(s.name)} listed`);
  }
  assert.match(r.stdout, /-w, --workers VALUE\s+Number of worker processes\. One or two per\s+core is a good start\. \[default: 1\]/);
  assert.match(r.stdout, /--socket-mode VALUE\s+Permissions[^[]+\[default: 0660\]/);
  assert.match(r.stdout, /--forwarded-allow-ips VALUE\n\s+Peers trusted/, 'a long flag has the description on the next line');

  const wide = helpText({ command: 'serve', width: 120 });
  assert.ok(Math.max(...wide.split('\n').map((l) => l.length)) <= 120);
  assert.ok(
    wide.split('\n').some((l) => l.length > 80),
    'a wider terminal gets longer lines',
  );
});

test('-v, -V and --version print the version; init, check and ctl --help list their own flags', async () => {
  for (const flag of ['-v', '-V', '--version']) {
    const r = await runCli([flag]);
    assert.is(r.code, 0, flag);
    assert.is(r.stdout, `${pkg.version}\n`, flag);
  }
  const init = await runCli(['init', '--help']);
  assert.is(init.code, 0);
  assert.match(init.stdout, /\$ ws-proxy-kit init/);
  for (const name of Object.keys(initFlags)) assert.ok(init.stdout.includes(`--${kebab(name)}`), `init --help lists --${kebab(name)}`);
  assert.match(init.stdout, /--keep-alive VALUE/, 'and the server settings its files follow');
  assert.not.match(init.stdout, /--access-logfile/);

  const check = await runCli(['check', '--help']);
  assert.match(check.stdout, /Options\n\s+--proxy-user VALUE\s+tell whether this user/);
  assert.match(check.stdout, /-w, --workers VALUE/);

  const ctl = await runCli(['ctl', '--help']);
  assert.is(ctl.code, 0);
  assert.match(ctl.stdout, /\$ ws-proxy-kit ctl/);
  for (const name of Object.keys(ctlFlags)) assert.match(ctl.stdout, new RegExp(`--${kebab(name)}\\b`));
  assert.not.match(ctl.stdout, /--access-logfile/);
  // ... and every ctl command, from the command table.
  for (const [usage] of ctlCommandRows()) assert.match(ctl.stdout, new RegExp(`^ {4}${usage.replace(/[[\]|]/g, '\\$&')}\\s`, 'm'));
  // In WS_PROXY_KIT_CMD_ARGS, --help and --version do nothing.
  const env = await runCli(['--print-config', APP], { env: { WS_PROXY_KIT_CMD_ARGS: '--help -v' } });
  assert.is(env.code, 0);
  assert.match(env.stdout, /^workers\s+1\s+default$/m);
});

test('a ws-proxy-kit.config.ts with defineConfig from the package is found and loaded by Node itself', async () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules/ws-proxy-kit'));
  writeFileSync(
    join(dir, 'ws-proxy-kit.config.ts'),
    [
      "import { defineConfig, type UserConfig } from 'ws-proxy-kit';",
      'const workers: number = 3;',
      "const shared: UserConfig = { socketMode: '0600' };",
      "export default defineConfig({ ...shared, workers, bind: ['unix:/tmp/wspk-config-ts.sock'] });",
      '',
    ].join('\n'),
  );
  const r = await runCli(['--print-config', APP], { cwd: dir });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^workers\s+3\s+config file: workers in .*ws-proxy-kit\.config\.ts$/m);
  assert.match(r.stdout, /^socket-mode\s+0600\s+config file/m);
  assert.match(r.stdout, /^bind\s+unix:\/tmp\/wspk-config-ts\.sock\s+config file/m);
  assert.is(r.stderr, '');
});

test("the master's command line stays what was run (ps, systemctl status)", async () => {
  if (!existsSync('/proc/self/cmdline')) return;
  const dir = tempDir();
  const sock = join(dir, 't.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '--log-level', 'warn']);
  await until(() => existsSync(sock), 15_000, 'the socket');
  const cmdline = readFileSync(`/proc/${server.pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  assert.is(cmdline, [process.execPath, CLI, APP, '-b', `unix:${sock}`, '--log-level', 'warn'].join(' '));
  assert.is((await server.stop()).code, 0);
});

// ---- check -------------------------------------------------------------------------

test('check APP: exit 0 for a good app, 1 for a missing module, an import that throws, a non-app export', async () => {
  const ok = await runCli(['check', APP]);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^ok: configuration valid; app .*app\.mjs:default \(request listener\)/);
  const fetchApp = await runCli(['check', join(FIXTURES, 'fetch-app.mjs')]);
  assert.is(fetchApp.code, 0);
  assert.match(fetchApp.stdout, /fetch handler/);

  const missing = await runCli(['check', join(FIXTURES, 'does-not-exist.mjs')]);
  assert.is(missing.code, 1);
  assert.match(missing.stderr, /does-not-exist\.mjs.* was not found/);

  const throws = await runCli(['check', join(FIXTURES, 'boot-fail.mjs')]);
  assert.is(throws.code, 1);
  assert.match(throws.stderr, /boom at import: DATABASE_URL is not set/);

  const notApp = await runCli(['check', `${join(FIXTURES, 'named.mjs')}:notAnApp`]);
  assert.is(notApp.code, 1);
  assert.match(notApp.stderr, /notAnApp is not an app/);

  const noExport = await runCli(['check', `${join(FIXTURES, 'named.mjs')}:nope`]);
  assert.is(noExport.code, 1);
  assert.match(noExport.stderr, /has no export "nope" \(its exports: api, createApp, notAnApp\)/);

  // A UNIX bind in a directory that does not exist: the same error as serving gives.
  const noDir = await runCli(['check', APP, '-b', 'unix:/nonexistent-wspk-dir/app.sock']);
  const served = await runCli([APP, '-b', 'unix:/nonexistent-wspk-dir/app.sock', '--log-format', 'json']);
  assert.is(noDir.code, 1);
  assert.match(noDir.stderr, /unix:\/nonexistent-wspk-dir\/app\.sock: the directory \/nonexistent-wspk-dir does not exist\./);
  assert.is(served.code, 1);
  assert.ok(served.stderr.includes(noDir.stderr.replace(/^ws-proxy-kit: /, '').trim()), served.stderr);

  // check validates the configuration too (exit 1 for check, as documented).
  const badConfig = await runCli(['check', APP, '--workers', 'zero']);
  assert.is(badConfig.code, 1);
  assert.match(badConfig.stderr, /Invalid value for workers/);
});

// ---- logging ------------------------------------------------------------------------

test('--log-format pretty gives human-readable lines', async () => {
  const dir = tempDir();
  const sock = join(dir, 'p.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '--log-format', 'pretty']);
  await server.waitForLog((l) => typeof l.msg === 'string' && /ready: serving/.test(l.msg), 15_000, 'the pretty ready line');
  assert.is((await request({ socketPath: sock }, '/')).status, 200);
  assert.is((await server.stop()).code, 0);
  const lines = server.stderrText.split('\n').filter((l) => l.trim() !== '');
  assert.ok(
    lines.some((l) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(\d+\): ready: serving/.test(l)),
    server.stderrText.slice(0, 2000),
  );
  assert.ok(lines.some((l) => /^\[[\d:.]+\] INFO \(\d+\): stopped/.test(l)));
  for (const l of lines) assert.not.ok(l.startsWith('{'), `no JSON line in pretty mode: ${l}`);
  assert.not.match(server.stderrText, /\u001b\[/, 'no colours when stderr is not a terminal');
});

test('by default (not a terminal) logs are JSON lines', async () => {
  const dir = tempDir();
  const sock = join(dir, 'j.sock');
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('WS_PROXY_KIT_') || k === 'WEB_CONCURRENCY' || k === 'PORT') delete env[k];
  // Started without the helper, which forces json; nothing here sets the format.
  const child = spawn(process.execPath, [CLI, APP, '-b', `unix:${sock}`], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const server = new ServerProcess(child);
  onCleanup(async () => {
    if (!server.exitInfo) {
      server.killGroup();
      await server.exited;
    }
  });
  await server.ready();
  assert.is((await server.stop()).code, 0);
  const lines = jsonLines(server.stderrText);
  assert.ok(lines.length >= 4);
  for (const l of lines) {
    assert.type(l.level, 'number');
    assert.type(l.time, 'string');
    assert.type(l.msg, 'string');
    assert.type(l.pid, 'number');
  }
});

test('--error-logfile FILE: the server log goes to the file, not stderr', async () => {
  const dir = tempDir();
  const sock = join(dir, 'e.sock');
  const logfile = join(dir, 'logs/error.log');
  const server = startServer([APP, '-b', `unix:${sock}`, '--error-logfile', logfile, '-w', '2']);
  await until(
    () => existsSync(logfile) && /"msg":"ready: serving/.test(readFileSync(logfile, 'utf8')),
    15_000,
    'ready in the error log file',
  );
  assert.is((await request({ socketPath: sock }, '/throw')).status, 500);
  await until(() => /thrown by the app/.test(readFileSync(logfile, 'utf8')), 10_000, 'the worker error in the file');
  assert.is((await server.stop()).code, 0);
  const lines = jsonLines(readFileSync(logfile, 'utf8'));
  assert.ok(lines.some((l) => l.msg === 'stopped'));
  assert.ok(
    lines.some((l) => typeof l.worker === 'number' && l.pid !== server.pid),
    'workers write to the file too',
  );
  assert.is(server.stderrText, '', 'nothing on stderr');
});

test('--access-logfile FILE: one JSON line per request with the documented fields; X-Request-Id is reused', async () => {
  const dir = tempDir();
  const sock = join(dir, 'a.sock');
  const access = join(dir, 'access.log');
  const server = startServer([APP, '-b', `unix:${sock}`, '-b', '127.0.0.1:0', '--access-logfile', access]);
  const ready = await server.ready();
  const port = Number(
    String((ready.binds as string[])[1])
      .split(':')
      .pop(),
  );
  assert.ok(port > 0, `TCP bind reported: ${JSON.stringify(ready.binds)}`);
  const a = await request({ socketPath: sock }, '/hello?x=1', { headers: { 'x-request-id': 'req-from-nginx-42' } });
  const b = await request({ port }, '/upload', { method: 'POST', body: 'x'.repeat(1000) });
  const c = await request({ socketPath: sock }, '/throw');
  assert.equal([a.status, b.status, c.status], [200, 200, 500]);
  // Lines reach the file while the server runs (a quiet server's lines are not held back).
  const lines = (await until(
    () => {
      const text = existsSync(access) ? readFileSync(access, 'utf8') : '';
      return text.split('\n').filter(Boolean).length >= 3 ? jsonLines(text) : null;
    },
    10_000,
    'three access log lines',
  ))!;
  assert.is(lines.length, 3, 'one line per request');
  const byPath = Object.fromEntries(lines.map((l) => [l.path, l]));
  const hello = byPath['/hello?x=1']!;
  assert.is(hello.method, 'GET');
  assert.is(hello.status, 200);
  assert.is(hello.bytes, Buffer.byteLength(a.body));
  assert.type(hello.duration_ms, 'number');
  assert.ok((hello.duration_ms as number) >= 0);
  assert.type(hello.remote, 'string');
  assert.is(hello.request_id, 'req-from-nginx-42');
  const upload = byPath['/upload']!;
  assert.is(upload.method, 'POST');
  assert.is(upload.remote, '127.0.0.1');
  assert.is(upload.bytes, Buffer.byteLength(b.body));
  assert.match(String(upload.request_id), /^[0-9a-f]{12}-[0-9a-z]+$/, 'a generated id when the client sent none');
  assert.is(byPath['/throw']!.status, 500);
  for (const l of lines) {
    assert.type(l.time, 'string');
    assert.type(l.pid, 'number');
    assert.type(l.worker, 'number');
  }
  // The same request id is in the error log line for the failed request.
  // (The error line comes through the stderr pipe, which may trail the access log file.)
  const errLine = await server.waitForLog((l) => l.msg === 'app error: answered 500', 10_000, 'the app error line').catch(() => undefined);
  assert.ok(errLine, 'the app error is logged');
  assert.is(errLine!.requestId, byPath['/throw']!.request_id);
  assert.is((await server.stop()).code, 0);
  // Access lines never go to the error log.
  assert.not.ok(server.logs.some((l) => 'status' in l && 'request_id' in l));
});

test('--access-logfile - writes the access log to stdout; fields are those the README documents', async () => {
  const dir = tempDir();
  const sock = join(dir, 's.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '--access-logfile', '-']);
  await server.ready();
  assert.is((await request({ socketPath: sock }, '/', { headers: { 'user-agent': 'cli-test', referer: 'http://ref/' } })).status, 200);
  const line = (await until(
    () => (server.stdout.includes('\n') ? jsonLines(server.stdout)[0] : null),
    10_000,
    'an access line on stdout',
  ))!;
  assert.equal(Object.keys(line).sort(), [
    'bytes',
    'completed',
    'duration_ms',
    'method',
    'path',
    'pid',
    'protocol',
    'referer',
    'remote',
    'request_id',
    'status',
    'time',
    'user_agent',
    'worker',
  ]);
  assert.is(line.remote, 'unix');
  assert.is(line.user_agent, 'cli-test');
  assert.is(line.referer, 'http://ref/');
  assert.is(line.completed, true);
  assert.is(line.protocol, 'HTTP/1.1');
  const readme = readFileSync(README, 'utf8');
  for (const key of Object.keys(line)) assert.ok(readme.includes(`\`${key}\``), `README documents the access log field ${key}`);
  assert.is((await server.stop()).code, 0);
});

test('every worker log line carries pid and worker index', async () => {
  const dir = tempDir();
  const sock = join(dir, 'w.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2', '--log-level', 'debug']);
  await server.ready();
  for (let i = 0; i < 4; i++) assert.is((await request({ socketPath: sock }, '/throw')).status, 500);
  await until(() => server.logs.filter((l) => l.msg === 'app error: answered 500').length === 4, 10_000, 'four app error lines');
  assert.is((await server.stop()).code, 0);
  const spawned = server.logs.filter((l) => l.msg === 'worker spawned');
  const indexOf = new Map(spawned.map((l) => [l.workerPid as number, l.worker as number]));
  assert.is(indexOf.size, 2);
  let workerLines = 0;
  for (const l of server.logs) {
    assert.not.ok(l.raw, `every line is JSON: ${String(l.msg)}`);
    assert.type(l.pid, 'number', `pid on ${JSON.stringify(l)}`);
    if (l.pid === server.pid) {
      assert.is(l.role, 'master');
      continue;
    }
    workerLines++;
    assert.ok(indexOf.has(l.pid!), `line from a known worker: ${JSON.stringify(l)}`);
    assert.is(l.worker, indexOf.get(l.pid!), `worker index on ${JSON.stringify(l)}`);
  }
  assert.ok(workerLines >= 6, `workers logged (${workerLines} lines)`);
});

// ---- docs ------------------------------------------------------------------------------

test('the README settings reference is up to date (run `npm run docs:settings`)', () => {
  const readme = readFileSync(README, 'utf8');
  const fresh = readmeWithReference(readme);
  if (fresh !== readme) {
    const a = readme.split('\n');
    const b = fresh.split('\n');
    const i = a.findIndex((line, n) => line !== b[n]);
    assert.fixture(a.slice(i, i + 3).join('\n'), b.slice(i, i + 3).join('\n'), 'README.md is out of date: run `npm run docs:settings`');
  }
  assert.ok(fresh === readme);
});

test.run();
