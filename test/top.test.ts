// `ws-proxy-kit ctl top` as a person sees it: in a real terminal (tmux), typed at a shell,
// read back from the pane. --once without a terminal.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { CLI, FIXTURES, onCleanup, request, runCli, startServer, tempDir, cleanup, until } from './helpers/server.js';
import { hasCommand, testWithTool } from './helpers/tools.js';

test.after.each(cleanup);
const APP = join(FIXTURES, 'app.mjs');

const noTmux = hasCommand('tmux', ['-V']) ? null : 'tmux is not installed (apt-get install tmux)';

/** A shell in a detached tmux session of `width` columns; killed at cleanup. */
function terminal(width: number, env: Record<string, string> = {}) {
  const name = `wspk-top-${process.pid}-${Date.now()}`;
  const vars = Object.entries({ NO_COLOR: '', ...env }).map(([k, v]) => `${k}=${v}`);
  execFileSync('tmux', ['new-session', '-d', '-s', name, '-x', String(width), '-y', '30', 'env', ...vars, 'bash', '--norc', '--noprofile']);
  onCleanup(() => {
    try {
      execFileSync('tmux', ['kill-session', '-t', name], { stdio: 'ignore' });
    } catch {
      // gone
    }
  });
  return {
    type: (keys: string, enter = true) => execFileSync('tmux', ['send-keys', '-t', name, keys, ...(enter ? ['Enter'] : [])]),
    screen: (escapes = false) => execFileSync('tmux', ['capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', name], { encoding: 'utf8' }),
  };
}

async function serve(): Promise<{ sock: string; ctl: string }> {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const server = startServer([APP, '-b', `unix:${sock}`, '-w', '2']);
  await server.ready();
  return { sock, ctl: join(dir, 'app.ctl') };
}

testWithTool(test, 'ctl top in a terminal: a header and a row per worker, refreshed; q gives the screen back', noTmux, async () => {
  const { sock, ctl } = await serve();
  const t = terminal(100);
  t.type(`echo BEFORE-TOP; '${process.execPath}' '${CLI}' ctl --socket '${ctl}' top; echo AFTER-TOP=$?`);
  const first = (await until(() => (/PID +GEN +STATE +REQ\/S/.test(t.screen()) ? t.screen() : null), 15_000, 'the first frame'))!;
  assert.match(first, /ws-proxy-kit \d+\.\d+\.\d+ +up \d+s +unix:.*app\.sock +pool 2 \(fixed\)/);
  assert.equal(first.split('\n').filter((l) => /^\d+ +1 +ready /.test(l)).length, 2, first);
  assert.ok(
    first.split('\n').every((l) => l.length <= 100),
    'fits 100 columns',
  );
  assert.not.match(first, /BEFORE-TOP/, 'drawn on the alternate screen');
  // Requests show up in the next frames: req/s and the sparkline.
  for (let i = 0; i < 30; i++) await request({ socketPath: sock }, '/');
  await until(() => /[1-9]\d* req\/s/.test(t.screen()) && /req\/s, last \d+ s: [▁▂▃▄▅▆▇█]+/.test(t.screen()), 10_000, 'a non-zero req/s');
  assert.match(t.screen(true), /\x1b\[/, 'colour on a terminal');
  t.type('q', false);
  const after = (await until(() => (/AFTER-TOP=0/.test(t.screen()) ? t.screen() : null), 10_000, 'top to quit on q'))!;
  assert.match(after, /BEFORE-TOP/, 'the screen from before is back');
  assert.not.match(after, /PID +GEN +STATE/, 'nothing of top is left on it');
});

testWithTool(test, 'ctl top: NO_COLOR means no colour; a narrow terminal gets lines cut to its width', noTmux, async () => {
  const { ctl } = await serve();
  const t = terminal(60, { NO_COLOR: '1' });
  t.type(`'${process.execPath}' '${CLI}' ctl --socket '${ctl}' top`);
  const screen = (await until(() => (/PID +GEN +STATE/.test(t.screen()) ? t.screen(true) : null), 15_000, 'the first frame'))!;
  assert.not.match(screen.replace(/\x1b\[\?[\d;]*[hl]/g, ''), /\x1b\[[\d;]*m/, 'no colour with NO_COLOR');
  assert.ok(
    t
      .screen()
      .split('\n')
      .every((l) => l.length <= 60),
    'fits 60 columns',
  );
  t.type('q', false);
});

test('ctl top --once prints one frame without a terminal, with rates over one second', async () => {
  const { sock, ctl } = await serve();
  const load = Promise.all(Array.from({ length: 20 }, () => request({ socketPath: sock }, '/slow?ms=200')));
  const r = await runCli(['ctl', '--socket', ctl, 'top', '--once']);
  await load;
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ws-proxy-kit \d+\.\d+\.\d+ +up /);
  assert.match(r.stdout, /^\d+ req\/s +(-|[\d.]+) 5xx\/s +busy \d+ %/m);
  assert.match(r.stdout, /^PID +GEN +STATE +REQ\/S +BUSY % +CPU % +RSS MB +IN-FL +CONNS +AGE +RESTARTS$/m);
  assert.equal(r.stdout.split('\n').filter((l) => /^\d+ +1 +ready /.test(l)).length, 2);
  assert.not.match(r.stdout, /\x1b/, 'no escape sequence when not a terminal');
  const extra = await runCli(['ctl', '--socket', ctl, 'top', 'now']);
  assert.is(extra.code, 2);
});

test.run();
