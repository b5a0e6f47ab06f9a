// The human-readable log as a person sees it on a terminal: one line per event, colour unless
// NO_COLOR, and expected mistakes in one clear line without a stack (the JSON log keeps it).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CLI, FIXTURES, runCli, tempDir, cleanup } from './helpers/server.js';
import { hasCommand, testWithTool } from './helpers/tools.js';

test.after.each(cleanup);
const APP = join(FIXTURES, 'app.mjs');
const LINE = /^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) \(\d+\): /;

/** Runs the CLI on a pseudo-terminal (script(1)), as a person at a shell would; its output. */
function onTerminal(args: string[], env: NodeJS.ProcessEnv = {}): string {
  const cmd = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('script', ['-qefc', `timeout 10 ${cmd}`, '/dev/null'], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '', FORCE_COLOR: '', ...env },
    timeout: 20_000,
  });
  return r.stdout;
}

const noScript = hasCommand('script', ['--version']) ? null : 'script(1) is not installed (apt-get install bsdutils)';

testWithTool(test, 'on a terminal, logs are in colour; NO_COLOR turns it off', noScript, () => {
  const dir = tempDir();
  const args = [APP, '-b', `unix:${join(dir, 'missing-dir', 'app.sock')}`];
  const coloured = onTerminal(args);
  const plain = onTerminal(args, { NO_COLOR: '1' });
  assert.match(coloured, /\x1b\[\d+m/, 'ANSI colours on a terminal');
  assert.not.match(plain, /\x1b\[/, 'no escape sequence with NO_COLOR');
  assert.match(plain, /FATAL \(\d+\): unix:.*missing-dir\/app\.sock: the directory .* does not exist\./);
});

test('pretty logs: one line per event, and an expected mistake is one line without a stack', async () => {
  const dir = tempDir();
  const r = await runCli([APP, '-b', `unix:${join(dir, 'missing-dir', 'app.sock')}`, '--log-format', 'pretty']);
  assert.is(r.code, 1);
  const lines = r.stderr.trimEnd().split('\n');
  for (const line of lines) assert.match(line, LINE, `not one event per line: ${JSON.stringify(line)}`);
  assert.is(lines.length, 2, r.stderr); // "starting", then the mistake
  assert.match(lines[1]!, /FATAL .*the directory .*missing-dir does not exist\. Create it/);
  assert.not.match(r.stderr, /^\s+at /m, 'no stack trace');
  // The JSON log keeps the detail.
  const json = await runCli([APP, '-b', `unix:${join(dir, 'missing-dir', 'app.sock')}`, '--log-format', 'json']);
  assert.match(json.stderr, /"stack":"Error: unix:/);
});

test('pretty logs: an unexpected error keeps its stack, under its line', async () => {
  const dir = tempDir();
  const r = await runCli([join(FIXTURES, 'boot-fail.mjs'), '-b', `unix:${join(dir, 'app.sock')}`, '--log-format', 'pretty']);
  assert.is(r.code, 3);
  assert.match(r.stderr, /ERROR \(\d+\): worker failed to boot: could not load the app .*\n\s+err: Error: boom at import/);
});

test('an app module that is not there: one line, exit 3, before any worker starts', async () => {
  const r = await runCli(['no-such-app.mjs', '-b', `unix:${join(tempDir(), 'app.sock')}`, '--log-format', 'pretty']);
  assert.is(r.code, 3);
  const lines = r.stderr.trimEnd().split('\n');
  assert.is(lines.length, 2, r.stderr); // "starting", then the mistake
  assert.match(lines[1]!, /FATAL .*The app module "no-such-app\.mjs" was not found \(looked for .*no-such-app\.mjs\)/);
  assert.not.match(r.stderr, /worker spawned/);
});

test.run();
