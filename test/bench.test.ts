// Smoke test of the benchmark: a tiny run (two engines, one path, one shape) prints a table
// with numbers and leaves no process, socket or temporary directory behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir, cleanup, onCleanup, isAlive } from './helpers/server.js';

test.after.each(cleanup);

interface BenchJson {
  markdown: string;
  rows: { engine: string; rps: number; p99: number; errors: number; ratio: { rps: number } | null }[];
  engines: { engine: string; readyMs: number; pids: number[]; reloadMs: number[] }[];
  skipped: { engine: string; reason: string }[];
}

function runBench(args: string[], timeoutMs = 90_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/run.ts'), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const kill = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {}
  };
  onCleanup(kill);
  const timer = setTimeout(kill, timeoutMs);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => {
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('a tiny bench run prints a table with numbers and stops everything it started', async () => {
  const dir = tempDir('wspk-bench-test-');
  const { code, stdout, stderr } = await runBench([
    '--engines',
    'cluster-rr,ws-proxy-kit',
    '--paths',
    'socket',
    '--shapes',
    'keepalive',
    '--duration',
    '0.5',
    '--rounds',
    '1',
    '--warmup',
    '0',
    '--reloads',
    '1',
    '--json',
    '--tmpdir',
    dir,
  ]);
  assert.equal(code, 0, `bench failed:\n${stderr.slice(-3000)}`);
  const out = JSON.parse(stdout) as BenchJson;
  assert.equal(out.skipped, [], 'no engine skipped');
  for (const engine of ['cluster-rr', 'ws-proxy-kit']) {
    const row = out.rows.find((r) => r.engine === engine);
    assert.ok(row, `a row for ${engine}`);
    assert.ok(row.rps > 0, `${engine} served requests`);
    assert.ok(Number.isFinite(row.p99), `${engine} has a p99`);
    assert.ok(row.ratio && row.ratio.rps > 0, `${engine} has a ratio to the best cluster run`);
    // The markdown table has the same row, with numbers in it.
    assert.match(out.markdown, new RegExp(`^\\| socket \\| keepalive \\| ${engine} \\| \\d+ \\| [\\d.]+× \\|`, 'm'));
  }
  const wspk = out.engines.find((e) => e.engine === 'ws-proxy-kit')!;
  assert.ok(wspk.readyMs > 0);
  assert.equal(wspk.reloadMs.length, 1, 'one HUP reload timed');
  const pids = out.engines.flatMap((e) => e.pids);
  assert.ok(pids.length >= 6, `masters and workers recorded: ${pids.join(' ')}`);
  for (const pid of pids) assert.not.ok(isAlive(pid), `process ${pid} is still running after the bench`);
  assert.equal(readdirSync(dir), [], 'the temporary directory with sockets was removed');
});

test('unknown engine is an error that names the choices', async () => {
  const { code, stderr } = await runBench(['--engines', 'nope', '--paths', 'socket']);
  assert.not.equal(code, 0);
  assert.match(stderr, /unknown engine nope: use .*ws-proxy-kit/);
});

test.run();
