// Settings loading without starting a server: precedence, sources, config file forms,
// environment variables, WS_PROXY_KIT_CMD_ARGS, and the error messages a user sees.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, ConfigError, defaultConfigNames, envLayer, type LoadedConfig } from '../src/config/load.js';
import { parseArgs, splitCommandLine } from '../src/cli/args.js';
import { settingsByName, settingsTable, envNamesOf, isConfigKey, type SettingDef } from '../src/config/settings.js';
import { defineConfig } from '../src/index.js';
import { printConfig } from '../src/cli/print-config.js';
import { formatBind } from '../src/listeners/bind-spec.js';
import { tempDir, cleanup } from './helpers/server.js';

test.after.each(cleanup);

/** What cli/main.ts does: argv and WS_PROXY_KIT_CMD_ARGS into layers, then loadConfig. */
async function load(argv: string[], env: NodeJS.ProcessEnv = {}, cwd = tempDir()): Promise<LoadedConfig> {
  const parsed = parseArgs(argv, { command: 'serve' });
  const cli = new Map(parsed.layer);
  if (parsed.positionals[0])
    cli.set('app', { value: parsed.positionals[0], source: { origin: 'command line', where: 'the APP argument' } });
  const cmd = env.WS_PROXY_KIT_CMD_ARGS;
  const cmdArgs = cmd
    ? parseArgs(splitCommandLine(cmd), { command: 'serve', origin: 'environment', via: 'WS_PROXY_KIT_CMD_ARGS' }).layer
    : undefined;
  return loadConfig({ cli, ...(cmdArgs ? { cmdArgs } : {}), env, cwd });
}

/** The ConfigError message load() fails with (fails the test if it succeeds). */
async function loadError(argv: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<string> {
  try {
    await load(argv, env, cwd);
  } catch (err) {
    assert.instance(err, ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.is((err as ConfigError).exitCode, 2);
    return (err as Error).message;
  }
  throw new assert.Assertion({
    message: `expected ${JSON.stringify(argv)} ${JSON.stringify(env)} to be rejected`,
    operator: 'throws',
    expects: 'ConfigError',
    actual: 'success',
  });
}

function writeConfig(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

// ---- precedence --------------------------------------------------------------

test('precedence: defaults < config file < env < WS_PROXY_KIT_CMD_ARGS < command line', async () => {
  const dir = tempDir();
  writeConfig(dir, 'ws-proxy-kit.config.mjs', 'export default { workers: 2, keepAlive: 7 };\n');
  const env = { WS_PROXY_KIT_WORKERS: '3', WS_PROXY_KIT_CMD_ARGS: '--workers 4' };

  let c = await load(['--workers', '5'], env, dir);
  assert.is(c.settings.workers, 5);
  assert.equal(c.sources.workers, { origin: 'command line', where: '--workers' });
  // Settings set at fewer levels are unaffected by the others.
  assert.is(c.settings.keepAlive, 7);
  assert.is(c.sources.keepAlive.origin, 'config file');

  c = await load([], env, dir);
  assert.is(c.settings.workers, 4);
  assert.equal(c.sources.workers, { origin: 'environment', where: '--workers in WS_PROXY_KIT_CMD_ARGS' });

  c = await load([], { WS_PROXY_KIT_WORKERS: '3' }, dir);
  assert.is(c.settings.workers, 3);
  assert.equal(c.sources.workers, { origin: 'environment', where: 'WS_PROXY_KIT_WORKERS' });

  c = await load([], {}, dir);
  assert.is(c.settings.workers, 2);
  assert.is(c.sources.workers.origin, 'config file');
  assert.match(c.sources.workers.where, /^workers in .*ws-proxy-kit\.config\.mjs$/);

  c = await load([], {}, tempDir());
  assert.is(c.settings.workers, 1);
  assert.equal(c.sources.workers, { origin: 'default', where: 'default' });
  assert.is(c.configPath, null);
});

test('WEB_CONCURRENCY sets workers, below WS_PROXY_KIT_WORKERS', async () => {
  let c = await load([], { WEB_CONCURRENCY: '6' });
  assert.is(c.settings.workers, 6);
  assert.equal(c.sources.workers, { origin: 'environment', where: 'WEB_CONCURRENCY' });
  c = await load([], { WEB_CONCURRENCY: '6', WS_PROXY_KIT_WORKERS: '2' });
  assert.is(c.settings.workers, 2);
  assert.is(c.sources.workers.where, 'WS_PROXY_KIT_WORKERS');
  c = await load(['-w', '3'], { WEB_CONCURRENCY: '6' });
  assert.is(c.settings.workers, 3);
  // An empty WEB_CONCURRENCY (as some platforms export) is ignored.
  c = await load([], { WEB_CONCURRENCY: '' });
  assert.is(c.settings.workers, 1);
  const msg = await loadError([], { WEB_CONCURRENCY: 'lots' });
  assert.match(msg, /workers \(WEB_CONCURRENCY\): "lots"/);
  assert.match(msg, /Accepted: an integer from 1 to 1024/);
});

test('PORT changes the default bind only; a bad PORT is an error that names it', async () => {
  let c = await load([], { PORT: '5123' });
  assert.equal(c.settings.bind.map(formatBind), ['127.0.0.1:5123']);
  assert.is(c.sources.bind.origin, 'default');
  assert.match(c.sources.bind.where, /PORT/);
  c = await load([], {});
  assert.equal(c.settings.bind.map(formatBind), ['127.0.0.1:8000']);
  c = await load(['-b', 'unix:/tmp/x.sock'], { PORT: '5123' });
  assert.equal(c.settings.bind.map(formatBind), ['unix:/tmp/x.sock']);
  // Ignored when a bind is given, so a platform's PORT never gets in the way.
  c = await load(['-b', 'unix:/tmp/x.sock'], { PORT: 'nonsense' });
  assert.equal(c.settings.bind.map(formatBind), ['unix:/tmp/x.sock']);
  for (const bad of ['abc', '99999', '0']) {
    const msg = await loadError([], { PORT: bad });
    assert.match(msg, /PORT/);
    assert.ok(msg.includes(JSON.stringify(bad)), msg);
    assert.match(msg, /1 to 65535/);
  }
});

// ---- WS_PROXY_KIT_CMD_ARGS ------------------------------------------------------

test('splitCommandLine splits like a shell: quotes, backslashes, empty arguments', () => {
  assert.equal(splitCommandLine('  --workers 3   -b unix:/a.sock '), ['--workers', '3', '-b', 'unix:/a.sock']);
  assert.equal(splitCommandLine(`--bind "unix:/tmp/a b.sock" --pid '/tmp/x y.pid'`), [
    '--bind',
    'unix:/tmp/a b.sock',
    '--pid',
    '/tmp/x y.pid',
  ]);
  assert.equal(splitCommandLine('a\\ b "c\\"d" \'e\\f\''), ['a b', 'c"d', 'e\\f']);
  assert.equal(splitCommandLine(`--x "" ''`), ['--x', '', '']);
  assert.equal(splitCommandLine('--a="1 2"x'), ['--a=1 2x']);
  assert.equal(splitCommandLine(''), []);
  assert.throws(
    () => splitCommandLine('--bind "unix:/a'),
    (err: Error) => err instanceof ConfigError && /unclosed " quote/.test(err.message),
  );
});

test('boolean flags: --x, --no-x and --x=VALUE with the values the setting accepts; a repeated flag is refused', async () => {
  assert.is((await load(['--reload'], {})).settings.reload, true);
  assert.is((await load(['--reload=yes'], {})).settings.reload, true);
  assert.is((await load(['--reload=false'], {})).settings.reload, false);
  assert.is((await load(['--reload', 'false', 'app.mjs'], {})).settings.reload, false, 'a following true/false is the value');
  assert.is((await load(['--reload', 'true'], {})).settings.reload, true);
  assert.is((await load(['--no-balance-connections'], {})).settings.balanceConnections, false);
  assert.match(await loadError(['--reload=maybe'], {}), /reload \(--reload\): "maybe"\. Accepted: true or false/);
  assert.match(await loadError(['--workers', '2', '-w', '3'], {}), /The flag --workers can only be set once/);
  assert.equal((await load(['-b', 'unix:/tmp/a.sock', '--bind=127.0.0.1:9'], {})).settings.bind.map(formatBind), [
    'unix:/tmp/a.sock',
    '127.0.0.1:9',
  ]);
});

test("--log-level takes Gunicorn's names too: warning is warn, critical is fatal", async () => {
  assert.is((await load(['--log-level', 'warning'], {})).settings.logLevel, 'warn');
  assert.is((await load(['--log-level', 'CRITICAL'], {})).settings.logLevel, 'fatal');
  assert.is((await load([], { WS_PROXY_KIT_LOG_LEVEL: 'warning' })).settings.logLevel, 'warn');
  assert.match(await loadError(['--log-level', 'loud'], {}), /one of trace, debug, info, warn, error, fatal/);
});

test('WS_PROXY_KIT_CMD_ARGS: several flags, quoted values, and its errors name it', async () => {
  const c = await load([], { WS_PROXY_KIT_CMD_ARGS: `-w 2 --bind "unix:/tmp/a b.sock" --bind 127.0.0.1:9001 --log-level=debug` });
  assert.is(c.settings.workers, 2);
  assert.equal(c.settings.bind.map(formatBind), ['unix:/tmp/a b.sock', '127.0.0.1:9001']);
  assert.is(c.settings.logLevel, 'debug');
  assert.equal(c.sources.logLevel, { origin: 'environment', where: '--log-level in WS_PROXY_KIT_CMD_ARGS' });
  // It sits above the plain variables.
  const d = await load([], { WS_PROXY_KIT_CMD_ARGS: '--log-level warn', WS_PROXY_KIT_LOG_LEVEL: 'error' });
  assert.is(d.settings.logLevel, 'warn');

  const bad = await loadError([], { WS_PROXY_KIT_CMD_ARGS: '--workers many' });
  assert.match(bad, /workers \(--workers in WS_PROXY_KIT_CMD_ARGS\): "many"/);
  let unknown = '';
  try {
    parseArgs(splitCommandLine('--wokers 2'), { command: 'serve', origin: 'environment', via: 'WS_PROXY_KIT_CMD_ARGS' });
  } catch (err) {
    unknown = (err as Error).message;
  }
  assert.match(unknown, /Unknown flag --wokers\. Did you mean --workers\?/);
});

// ---- config files --------------------------------------------------------------

test('config file forms: .mjs default object, async factory, named exports, .cjs, .json', async () => {
  const dir = tempDir();
  const forms: [string, string][] = [
    ['object.mjs', 'export default { workers: 2, bind: ["unix:/tmp/o.sock"] };\n'],
    ['factory.mjs', 'export default async () => { await new Promise((r) => setTimeout(r, 5)); return { workers: 3 }; };\n'],
    ['named.mjs', 'export const workers = 4;\nexport const logLevel = "warn";\n'],
    ['common.cjs', 'module.exports = { workers: 5 };\n'],
    ['plain.json', '{ "workers": 6, "socketMode": "0600" }\n'],
  ];
  const got: Record<string, number> = {};
  for (const [name, text] of forms) {
    const path = writeConfig(dir, name, text);
    const c = await load(['--config', path], {}, dir);
    got[name] = c.settings.workers;
    assert.is(c.configPath, path);
    assert.is(c.settings.config, path);
    assert.is(c.sources.workers.where, `workers in ${path}`);
  }
  assert.equal(got, { 'object.mjs': 2, 'factory.mjs': 3, 'named.mjs': 4, 'common.cjs': 5, 'plain.json': 6 });
  const obj = await load(['-c', join(dir, 'object.mjs')], {}, dir);
  assert.equal(obj.settings.bind.map(formatBind), ['unix:/tmp/o.sock']);
  const json = await load(['-c', 'plain.json'], {}, dir);
  assert.is(json.settings.socketMode, 0o600, 'a relative --config resolves against the working directory');
  const named = await load(['-c', 'named.mjs'], {}, dir);
  assert.is(named.settings.logLevel, 'warn');
});

test('the default ./ws-proxy-kit.config.* is used when present (.mjs first); WS_PROXY_KIT_CONFIG names one', async () => {
  const dir = tempDir();
  writeConfig(dir, 'ws-proxy-kit.config.json', '{ "workers": 2 }');
  let c = await load([], {}, dir);
  assert.is(c.configPath, join(dir, 'ws-proxy-kit.config.json'));
  assert.is(c.settings.workers, 2);
  writeConfig(dir, 'ws-proxy-kit.config.mjs', 'export default { workers: 3 };');
  c = await load([], {}, dir);
  assert.is(c.configPath, join(dir, 'ws-proxy-kit.config.mjs'));
  assert.is(c.settings.workers, 3);
  // An explicit file wins over the default lookup.
  mkdirSync(join(dir, 'etc'));
  writeConfig(dir, 'etc/prod.json', '{ "workers": 7 }');
  c = await load([], { WS_PROXY_KIT_CONFIG: 'etc/prod.json' }, dir);
  assert.is(c.settings.workers, 7);
  c = await load(['-c', 'etc/prod.json'], {}, dir);
  assert.is(c.settings.workers, 7);
});

test('a config file that changed is read again (reload)', async () => {
  const dir = tempDir();
  const path = writeConfig(dir, 'ws-proxy-kit.config.mjs', 'export default { workers: 2 };');
  assert.is((await load([], {}, dir)).settings.workers, 2);
  writeConfig(dir, 'ws-proxy-kit.config.mjs', 'export default { workers: 3 };');
  assert.is((await load([], {}, dir)).settings.workers, 3);
  const cjs = writeConfig(dir, 'c.cjs', 'module.exports = { workers: 2 };');
  assert.is((await load(['-c', cjs], {}, dir)).settings.workers, 2);
  writeConfig(dir, 'c.cjs', 'module.exports = { workers: 4 };');
  assert.is((await load(['-c', cjs], {}, dir)).settings.workers, 4);
  assert.ok(path);
});

test('config file errors: missing file, syntax error, throwing factory, not an object, bad key, bad value', async () => {
  const dir = tempDir();
  let msg = await loadError(['-c', 'nope.mjs'], {}, dir);
  assert.match(msg, /config file nope\.mjs \(--config\) does not exist/);

  writeConfig(dir, 'broken.json', '{ "workers": 2, }');
  msg = await loadError(['-c', 'broken.json'], {}, dir);
  assert.match(msg, /Could not load the config file .*broken\.json/);

  writeConfig(dir, 'broken.mjs', 'export default { workers: 2 ');
  msg = await loadError(['-c', 'broken.mjs'], {}, dir);
  assert.match(msg, /Could not load the config file .*broken\.mjs/);

  writeConfig(dir, 'throws.mjs', 'export default async () => { throw new Error("vault unreachable"); };');
  msg = await loadError(['-c', 'throws.mjs'], {}, dir);
  assert.match(msg, /throws\.mjs: vault unreachable/);

  writeConfig(dir, 'array.json', '[1, 2]');
  msg = await loadError(['-c', 'array.json'], {}, dir);
  assert.match(msg, /must export an object of settings/);

  writeConfig(dir, 'typo.mjs', 'export default { wokers: 2 };');
  msg = await loadError(['-c', 'typo.mjs'], {}, dir);
  assert.match(msg, /Unknown setting "wokers" in .*typo\.mjs\. Did you mean "workers"\?/);

  writeConfig(dir, 'typo2.mjs', 'export default { keepalive: 2 };');
  msg = await loadError(['-c', 'typo2.mjs'], {}, dir);
  assert.match(msg, /Did you mean "keepAlive"\?/);

  writeConfig(dir, 'cli-only.mjs', 'export default { printConfig: true };');
  msg = await loadError(['-c', 'cli-only.mjs'], {}, dir);
  assert.match(msg, /"printConfig" .* can only be given on the command line \(--print-config\)/);

  writeConfig(dir, 'neg.mjs', 'export default { workers: -1 };');
  msg = await loadError(['-c', 'neg.mjs'], {}, dir);
  assert.match(msg, /^Invalid value for workers \(workers in .*neg\.mjs\): -1\. Accepted: an integer from 1 to 1024\.$/);

  writeConfig(dir, 'float.mjs', 'export default { workers: 2.5 };');
  msg = await loadError(['-c', 'float.mjs'], {}, dir);
  assert.match(msg, /workers .*: 2\.5\. Accepted/);

  writeConfig(dir, 'hook.mjs', 'export default { onStarting: 42 };');
  msg = await loadError(['-c', 'hook.mjs'], {}, dir);
  assert.match(msg, /Hook onStarting in .*hook\.mjs must be a function/);
});

test('config file hooks are collected, not treated as settings', async () => {
  const dir = tempDir();
  writeConfig(dir, 'ws-proxy-kit.config.mjs', 'export default { workers: 2, onStarting() { return "hi"; } };');
  const c = await load([], {}, dir);
  assert.is(typeof c.hooks.onStarting, 'function');
  assert.is(c.settings.workers, 2);
});

// ---- bad values -------------------------------------------------------------------

test('a bad value names the setting, the value, where it came from and what is accepted', async () => {
  const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
    [['--workers', 'zero'], {}, /^Invalid value for workers \(--workers\): "zero"\. Accepted: an integer from 1 to 1024\.$/],
    [['-w', '0'], {}, /^Invalid value for workers \(--workers\): "0"\. Accepted: an integer from 1 to 1024\.$/],
    [['--workers', '-1'], {}, /^Invalid value for workers \(--workers\): "-1"\./],
    [
      [],
      { WS_PROXY_KIT_WORKERS: '0' },
      /^Invalid value for workers \(WS_PROXY_KIT_WORKERS\): "0"\. Accepted: an integer from 1 to 1024\.$/,
    ],
    [['--timeout', 'soon'], {}, /timeout \(--timeout\): "soon"\. Accepted: a number of seconds/],
    [[], { WS_PROXY_KIT_GRACEFUL_TIMEOUT: '-5' }, /gracefulTimeout \(WS_PROXY_KIT_GRACEFUL_TIMEOUT\): "-5"/],
    [
      ['--log-level', 'loud'],
      {},
      /logLevel \(--log-level\): "loud"\. Accepted: one of trace, debug, info, warn, error, fatal \(Gunicorn's warning and critical too\)\.$/,
    ],
    [['--log-format', 'xml'], {}, /logFormat \(--log-format\): "xml"\. Accepted: one of auto, json, pretty\.$/],
    [['--backlog', '70000'], {}, /backlog \(--backlog\): "70000"\. Accepted: an integer from 1 to 65535/],
    [['--limit-request-line', '9000'], {}, /limitRequestLine \(--limit-request-line\): "9000"\. Accepted: an integer from 0/],
  ];
  for (const [argv, env, re] of cases) assert.match(await loadError(argv, env), re);
});

test('invalid bind forms are rejected with the reason; valid ones parse', async () => {
  const good = await load([
    '-b',
    'unix:/run/app.sock',
    '-b',
    '127.0.0.1:8001',
    '-b',
    '[::1]:8002',
    '-b',
    'fd://3',
    '-b',
    ':8003',
    '-b',
    'localhost:8004',
  ]);
  assert.equal(good.settings.bind.map(formatBind), [
    'unix:/run/app.sock',
    '127.0.0.1:8001',
    '[::1]:8002',
    'fd://3',
    '0.0.0.0:8003',
    'localhost:8004',
  ]);
  assert.equal(good.sources.bind, { origin: 'command line', where: '--bind' });
  const bad: [string, RegExp][] = [
    ['127.0.0.1:99999', /port must be at most 65535/],
    ['unix:', /unix: needs a path/],
    ['fd://x', /fd:\/\/ needs a file descriptor number/],
    ['[::zz]:80', /is not an IPv6 address|is not a bind/],
    ['localhost', /is not a bind/],
    ['http://127.0.0.1:80', /is not a bind/],
    [`unix:/tmp/${'x'.repeat(120)}.sock`, /at most 107 bytes/],
  ];
  for (const [value, reason] of bad) {
    const msg = await loadError(['--bind', '127.0.0.1:8000', '--bind', value]);
    assert.match(msg, /^Invalid value for bind \(--bind\): /);
    assert.ok(msg.includes(value), `message names the value: ${msg}`);
    assert.match(msg, reason);
    assert.match(msg, /Accepted: unix:PATH, HOST:PORT, \[IPv6\]:PORT, fd:\/\/N/);
  }
  // From the environment, a list separated by commas or spaces.
  const env = await load([], { WS_PROXY_KIT_BIND: 'unix:/tmp/e.sock, 127.0.0.1:8005' });
  assert.equal(env.settings.bind.map(formatBind), ['unix:/tmp/e.sock', '127.0.0.1:8005']);
  assert.match(await loadError([], { WS_PROXY_KIT_BIND: ' ' }), /bind \(WS_PROXY_KIT_BIND\)/);
});

test('socket mode: octal strings with or without 0 / 0o, numbers from a config file; bad modes rejected', async () => {
  const parse = settingsByName.get('socketMode')!.parse;
  assert.is(parse('0660'), 0o660);
  assert.is(parse('660'), 0o660);
  assert.is(parse('0o660'), 0o660);
  assert.is(parse('600'), 0o600);
  assert.is(parse(0o660), 0o660);
  assert.is(parse('0'), 0);
  assert.is(parse('1777 '), 0o1777, 'surrounding whitespace is trimmed; 4 octal digits are allowed');
  for (const bad of ['0999', '8888', '17777', 'rw-rw----', '', '-660', '0x1b0', 0o10000, -1, 1.5, null, true]) {
    assert.throws(() => parse(bad), undefined, `socketMode ${String(bad)} must be rejected`);
  }
  const msg = await loadError(['--socket-mode', '0999']);
  assert.match(msg, /^Invalid value for socketMode \(--socket-mode\): "0999"\. Accepted: an octal file mode/);
  const dir = tempDir();
  writeConfig(dir, 'ws-proxy-kit.config.mjs', 'export default { socketMode: 0o640 };');
  assert.is((await load([], {}, dir)).settings.socketMode, 0o640);
  assert.is((await load([], { WS_PROXY_KIT_SOCKET_MODE: '0600' }, dir)).settings.socketMode, 0o600);
});

test('flag values: "-" and negative numbers are values; every short and long form gives the same', async () => {
  const parsed = parseArgs(['app.mjs', '--access-logfile', '-', '--error-logfile', '-', '-w', '2'], { command: 'serve' });
  assert.equal(parsed.positionals, ['app.mjs']);
  assert.is(parsed.layer.get('accessLogfile')?.value, '-');
  assert.is(parsed.layer.get('errorLogfile')?.value, '-');
  for (const argv of [['-w', '3'], ['-w3'], ['-w=3'], ['--workers', '3'], ['--workers=3']]) {
    assert.is((await load(argv)).settings.workers, 3, argv.join(' '));
  }
  assert.equal((await load(['-b', 'unix:/a', '-bunix:/b', '--bind', '[::1]:80', '--bind=127.0.0.1:81'])).settings.bind.map(formatBind), [
    'unix:/a',
    'unix:/b',
    '[::1]:80',
    '127.0.0.1:81',
  ]);
  assert.match(await loadError(['--workers', '-1']), /workers \(--workers\): "-1"/);
  const afterDashes = parseArgs(['app.mjs', '--', '-w'], { command: 'serve' });
  assert.equal(afterDashes.positionals, ['app.mjs', '-w']);
  assert.is(afterDashes.layer.get('workers'), undefined);
});

test('booleans, lists and optional values from env and flags', async () => {
  const c = await load(['--import', 'tsx', '--import', './setup.mjs'], {
    WS_PROXY_KIT_ACCESS_LOGFILE: '-',
    WS_PROXY_KIT_KEEP_ALIVE: '2.5',
  });
  assert.equal(c.settings.import, ['tsx', './setup.mjs']);
  assert.is(c.settings.accessLogfile, '-');
  assert.is(c.settings.keepAlive, 2.5);
  assert.is((await load(['--print-config'])).settings.printConfig, true);
  assert.is((await load([])).settings.printConfig, false);
  assert.is((await load([])).settings.accessLogfile, null, 'the access log is off by default');
});

// ---- unknown names -------------------------------------------------------------

test('unknown flags are errors with a "did you mean"', async () => {
  const unknown = (argv: string[]) => {
    try {
      parseArgs(argv, { command: 'serve' });
    } catch (err) {
      assert.instance(err, ConfigError);
      return (err as Error).message;
    }
    return 'accepted';
  };
  assert.match(unknown(['app.mjs', '--wokers', '2']), /^Unknown flag --wokers\. Did you mean --workers\? See --help\.$/);
  assert.match(unknown(['--worker=2']), /Did you mean --workers\?/);
  assert.match(unknown(['--bnid', 'unix:/a']), /Did you mean --bind\?/);
  assert.match(unknown(['--graceful-timout', '3']), /Did you mean --graceful-timeout\?/);
  assert.match(unknown(['--keepalive', '3']), /Did you mean --keep-alive\?/);
  assert.match(unknown(['--frobnicate']), /^Unknown flag --frobnicate\. See --help\.$/);
  assert.match(unknown(['-z']), /Unknown flag -z/);
  // A value flag with no value, or followed by another flag, says so instead of going empty.
  assert.match(unknown(['--workers']), /^--workers needs a value\./);
  assert.match(
    unknown(['--pid', '--odd-name.pid', 'app.mjs']),
    /--pid needs a value, but the next argument --odd-name\.pid is a flag\. .* write --pid=VALUE/,
  );
  assert.match(unknown(['-b', '-w', '2']), /-b needs a value/);
  assert.is(unknown(['--pid=--odd-name.pid', 'app.mjs']), 'accepted');
  // After --, everything is positional.
  assert.is(unknown(['--', '--not-a-flag']), 'accepted');
});

test('unknown WS_PROXY_KIT_* variables are errors with a "did you mean"; other variables are ignored', async () => {
  assert.match(
    await loadError([], { WS_PROXY_KIT_WORKER: '2' }),
    /^Unknown environment variable WS_PROXY_KIT_WORKER\. Did you mean WS_PROXY_KIT_WORKERS\?/,
  );
  assert.match(await loadError([], { WS_PROXY_KIT_LOGLEVEL: 'info' }), /Did you mean WS_PROXY_KIT_LOG_LEVEL\?/);
  assert.match(await loadError([], { WS_PROXY_KIT_CMD_ARG: '-w 2' }), /Did you mean WS_PROXY_KIT_CMD_ARGS\?/);
  const far = await loadError([], { WS_PROXY_KIT_FROBNICATE: '1' });
  assert.match(far, /Unknown environment variable WS_PROXY_KIT_FROBNICATE\./);
  assert.not.match(far, /Did you mean/, 'no far-fetched suggestion');
  // CLI-only settings have no variable (except the config path).
  assert.match(await loadError([], { WS_PROXY_KIT_PRINT_CONFIG: '1' }), /Unknown environment variable WS_PROXY_KIT_PRINT_CONFIG/);
  const c = await load([], { GUNICORN_CMD_ARGS: '--nonsense', WS_PROXY_KIT_INTERNAL_BOOT: '{}', HOME: '/root' });
  assert.is(c.settings.workers, 1);
});

// ---- sources and --print-config ------------------------------------------------

test('every setting reports its source; --print-config shows value and source', async () => {
  const dir = tempDir();
  writeConfig(dir, 'ws-proxy-kit.config.mjs', 'export default { keepAlive: 9 };');
  const c = await load(['app.mjs', '-w', '3', '--socket-mode', '600'], { WS_PROXY_KIT_LOG_LEVEL: 'debug', PORT: '8123' }, dir);
  for (const name of settingsByName.keys()) assert.ok(c.sources[name as keyof typeof c.sources], `source of ${name}`);
  assert.equal(c.sources.app, { origin: 'command line', where: 'the APP argument' });
  const lines = Object.fromEntries(
    printConfig(c)
      .trimEnd()
      .split('\n')
      .map((l) => [l.split(/\s+/)[0], l]),
  );
  assert.match(lines.app!, /^app\s+app\.mjs\s+command line: the APP argument$/);
  assert.match(lines.workers!, /^workers\s+3\s+command line: --workers$/);
  assert.match(lines['socket-mode']!, /^socket-mode\s+0600\s+command line: --socket-mode$/);
  assert.match(lines['keep-alive']!, /^keep-alive\s+9\s+config file: keepAlive in .*ws-proxy-kit\.config\.mjs$/);
  assert.match(lines['log-level']!, /^log-level\s+debug\s+environment: WS_PROXY_KIT_LOG_LEVEL$/);
  assert.match(lines.bind!, /^bind\s+127\.0\.0\.1:8123\s+default \(PORT=8123\)$/);
  assert.match(lines.timeout!, /^timeout\s+30\s+default$/);
  assert.match(lines.config!, /ws-proxy-kit\.config\.mjs/);
  assert.not.ok('print-config' in lines, '--print-config itself is not listed');
});

// ---- the table is the single source ----------------------------------------------

test('each row says how it is given: its flag, variables, config key, positional and --no- form', async () => {
  const rows = settingsTable as readonly SettingDef[];
  for (const s of rows) {
    for (const name of envNamesOf(s)) {
      // Every variable a row names is read (a bad value would be its error, not "unknown variable").
      const layer = envLayer({ [name]: 'x' });
      assert.is(layer.get(s.name)?.source.where, name, `${name} sets ${s.name}`);
    }
  }
  assert.equal(envNamesOf(settingsByName.get('workers')!), ['WS_PROXY_KIT_WORKERS', 'WEB_CONCURRENCY']);
  assert.equal(envNamesOf(settingsByName.get('config')!), ['WS_PROXY_KIT_CONFIG']);
  assert.equal(envNamesOf(settingsByName.get('printConfig')!), [], 'an action has no variable');
  assert.equal(
    rows.filter((s) => !isConfigKey(s)).map((s) => s.name),
    ['config', 'printConfig'],
  );
  // The positional setting has no flag.
  assert.match(
    (() => {
      try {
        parseArgs(['--app', 'x.mjs'], { command: 'serve' });
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    })(),
    /^Unknown flag --app\./,
  );
  // offValue: --no-control-socket is --control-socket off; it takes no value itself.
  const off = await load(['--no-control-socket']);
  assert.is(off.settings.controlSocket, 'off');
  assert.equal(off.sources.controlSocket, { origin: 'command line', where: '--control-socket' });
  assert.throws(() => parseArgs(['--no-control-socket=yes'], { command: 'serve' }), /--no-control-socket takes no value/);
  assert.throws(() => parseArgs(['--no-reload=true'], { command: 'serve' }), /--no-reload takes no value/);
  // display(): bind and socket mode read as written.
  const shown = printConfig(await load(['-b', 'unix:/tmp/s.sock', '--socket-mode', '0o640']));
  assert.match(shown, /^bind\s+unix:\/tmp\/s\.sock\s+command line: --bind$/m);
  assert.match(shown, /^socket-mode\s+0640\s+command line: --socket-mode$/m);
});

test("a platform's variable counts only when not empty; ours count when empty (and WS_PROXY_KIT_* wins)", async () => {
  let c = await load([], { FORWARDED_ALLOW_IPS: '10.0.0.0/8', WS_PROXY_KIT_FORWARDED_ALLOW_IPS: '192.168.0.1' });
  assert.equal(c.settings.forwardedAllowIps, ['192.168.0.1']);
  c = await load([], { FORWARDED_ALLOW_IPS: '10.0.0.0/8' });
  assert.equal(c.settings.forwardedAllowIps, ['10.0.0.0/8']);
  assert.equal(c.sources.forwardedAllowIps, { origin: 'environment', where: 'FORWARDED_ALLOW_IPS' });
  c = await load([], { FORWARDED_ALLOW_IPS: '' });
  assert.equal(c.settings.forwardedAllowIps, ['127.0.0.1', '::1']);
  c = await load([], { WS_PROXY_KIT_ACCESS_LOGFILE: '' });
  assert.is(c.settings.accessLogfile, null);
  assert.is(c.sources.accessLogfile.where, 'WS_PROXY_KIT_ACCESS_LOGFILE');
});

test('boolean flags read their value as the setting does; a command flag takes true or false', async () => {
  for (const [value, expected] of [
    ['yes', true],
    ['on', true],
    ['1', true],
    ['no', false],
    ['off', false],
    ['0', false],
  ] as const) {
    assert.is((await load([`--reload=${value}`])).settings.reload, expected, `--reload=${value}`);
  }
  assert.is((await load(['--no-hang-stacks'])).settings.hangStacks, false);
  assert.is((await load(['--hang-stacks', 'false'])).settings.hangStacks, false);
  const extra = { tls: { type: 'boolean' as const }, out: { type: 'string' as const } };
  assert.equal(parseArgs(['--tls=yes', '--out', '-'], { command: 'init', extra }).extra, { tls: true, out: '-' });
  assert.equal(parseArgs(['--no-tls'], { command: 'init', extra }).extra, { tls: false, out: undefined });
  assert.throws(
    () => parseArgs(['--tls=maybe'], { command: 'init', extra }),
    (err: Error) => err instanceof ConfigError && err.message === 'Invalid value for --tls: "maybe". Accepted: true or false.',
  );
  assert.match(await loadError(['--print-config', '--print-config']), /The flag --print-config can only be set once/);
  assert.match(await loadError(['--log-level', 'info', '--log-level=warn']), /^The flag --log-level can only be set once\.$/);
});

test('a did-you-mean counts a swapped pair of letters as one typo', () => {
  const unknown = (argv: string[]) => {
    try {
      parseArgs(argv, { command: 'serve' });
    } catch (err) {
      return (err as Error).message;
    }
    return 'accepted';
  };
  assert.match(unknown(['--wrokers', '2']), /Did you mean --workers\?/);
  assert.match(unknown(['--timeuot', '2']), /Did you mean --timeout\?/);
  assert.match(unknown(['--relaod']), /Did you mean --reload\?/);
});

// ---- TypeScript config files -------------------------------------------------------

test('ws-proxy-kit.config.ts and .mts are default names where Node strips types, after .mjs, .js, .cjs', async () => {
  assert.equal(defaultConfigNames(false), [
    'ws-proxy-kit.config.mjs',
    'ws-proxy-kit.config.js',
    'ws-proxy-kit.config.cjs',
    'ws-proxy-kit.config.json',
  ]);
  assert.equal(defaultConfigNames(true), [
    'ws-proxy-kit.config.mjs',
    'ws-proxy-kit.config.js',
    'ws-proxy-kit.config.cjs',
    'ws-proxy-kit.config.ts',
    'ws-proxy-kit.config.mts',
    'ws-proxy-kit.config.json',
  ]);
  assert.is(defaultConfigNames().includes('ws-proxy-kit.config.ts'), Boolean(process.features.typescript));
  const dir = tempDir();
  writeConfig(dir, 'ws-proxy-kit.config.json', '{ "workers": 2 }');
  writeConfig(
    dir,
    'ws-proxy-kit.config.ts',
    `import type { UserConfig } from '${join(import.meta.dirname, '../src/index.js')}';\nconst workers: number = 3;\nexport default { workers, socketMode: '0600' } satisfies UserConfig;\n`,
  );
  const c = await load([], {}, dir);
  assert.is(c.configPath, join(dir, 'ws-proxy-kit.config.ts'), '.ts before .json');
  assert.is(c.settings.workers, 3);
  assert.is(c.settings.socketMode, 0o600);
  const mts = writeConfig(dir, 'prod.mts', 'export default async (): Promise<{ workers: number }> => ({ workers: 5 });\n');
  assert.is((await load(['-c', mts], {}, dir)).settings.workers, 5);
});

test('defineConfig returns the config it is given', () => {
  const config = { workers: 2, bind: ['unix:/run/app.sock'], onStarting() {} };
  assert.is(defineConfig(config), config);
  const factory = async () => ({ workers: 3 });
  assert.is(defineConfig(factory), factory);
});

test.run();
