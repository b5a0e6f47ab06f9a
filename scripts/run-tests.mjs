#!/usr/bin/env node
// Runs every test suite and ends with one line: "N passed, N failed, N skipped".
// Each test file is its own uvu process (TypeScript through tsx); files run a few at a
// time, except *.serial.test.ts (load and container suites), which run one by one after.
// Usage: node scripts/run-tests.mjs [substring ...]   (only files whose path contains one)
// TEST_ALSO_NODE=/path/to/node: the unit suites (test/, not the serial ones) run once more
// on that Node (CI: Node 22, next to the whole suite on Node 24); the last line sums both.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { availableParallelism } from 'node:os';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);
const concurrency = Number(process.env.TEST_CONCURRENCY) || Math.max(2, availableParallelism() + 1);
const fileTimeoutMs = Number(process.env.TEST_FILE_TIMEOUT_MS) || 15 * 60_000;

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];

function findTests(dir) {
  const out = [];
  let entries = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'fixtures') continue;
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

/** A check that is not a uvu file (build, typecheck, lint) counts as one test. */
function check(name, cmd, args) {
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ok = r.status === 0;
  process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  if (!ok) {
    process.stdout.write((r.stdout ?? '') + (r.stderr ?? '') + '\n');
    failed++;
    failures.push(name);
  } else passed++;
  return ok;
}

const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

function runFile(file, node = process.execPath, label = '') {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(node, ['--import', 'tsx', file], {
      cwd: root,
      // The second Node's directory first, so that the CLI the suites start runs on it too.
      env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1', ...(label ? { PATH: `${dirname(node)}:${process.env.PATH ?? ''}` } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      out += `\n[runner] ${relative(root, file)} took longer than ${fileTimeoutMs / 1000} s: killed\n`;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, fileTimeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Whatever the file started in its own process group goes with it.
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
      const text = strip(out);
      const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? NaN);
      const ok = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? NaN);
      const skip = Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0);
      const name = `${label}${relative(root, file)}`;
      let fileFailed;
      if (Number.isNaN(total) || Number.isNaN(ok)) {
        // The file died before uvu could report: count it as one failure.
        fileFailed = 1;
        failed++;
      } else {
        fileFailed = total - ok + (code !== 0 && total === ok ? 1 : 0);
        passed += ok;
        failed += fileFailed;
        skipped += skip;
      }
      if (fileFailed) failures.push(name);
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      process.stdout.write(`\n${fileFailed ? 'FAIL' : 'ok  '} ${name} (${secs} s${signal ? `, ${signal}` : ''})\n`);
      process.stdout.write(text.replace(/^\s*\n/, '').replace(/\n+$/, '') + '\n');
      resolve();
    });
  });
}

async function pool(files, n, node, label) {
  const queue = [...files];
  await Promise.all(
    Array.from({ length: Math.min(n, queue.length) }, async () => {
      while (queue.length) await runFile(queue.shift(), node, label);
    }),
  );
}

const started = Date.now();
const files = [...findTests(join(root, 'test')), ...findTests(join(root, 'e2e'))]
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();

const built = check('build (tsc)', process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json']);
if (filters.length === 0) {
  check('typecheck (tsc --noEmit, tests included)', process.execPath, [
    join(root, 'node_modules/typescript/bin/tsc'),
    '-p',
    'tsconfig.json',
    '--noEmit',
  ]);
  check('lint (eslint)', process.execPath, [join(root, 'node_modules/eslint/bin/eslint.js'), '.']);
  check('format (prettier --check; npm run format fixes)', process.execPath, [
    join(root, 'node_modules/prettier/bin/prettier.cjs'),
    '--check',
    '.',
  ]);
  check('package-lock.json lists every platform build (npm ci)', process.execPath, [join(root, 'scripts/complete-lock.mjs'), '--check']);
}
if (built) {
  await pool(
    files.filter((f) => !f.endsWith('.serial.test.ts')),
    concurrency,
  );
  await pool(
    files.filter((f) => f.endsWith('.serial.test.ts')),
    1,
  );
  const also = process.env.TEST_ALSO_NODE;
  if (also) {
    const version = spawnSync(also, ['--version'], { encoding: 'utf8' }).stdout.trim() || 'unknown';
    process.stdout.write(`\n---- the unit suites again on Node ${version} (${also})\n`);
    const units = files.filter((f) => f.startsWith(join(root, 'test')) && !f.endsWith('.serial.test.ts'));
    await pool(units, concurrency, also, `[node ${version}] `);
  }
}
process.stdout.write(
  `\nfinished in ${((Date.now() - started) / 1000).toFixed(0)} s${failures.length ? `; failing: ${failures.join(', ')}` : ''}\n`,
);
process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed ? 1 : 0);
