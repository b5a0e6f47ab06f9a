// Bounded HTTP fuzz run against the real server on a UNIX socket: random and mutated
// requests, valid requests checked in between. Ends with zero worker crashes, the master
// alive and valid requests answered, or exits 1.
// Usage: npm run build && npm run fuzz -- [--duration 30] [--seed N] [--concurrency 8] [--workers 2]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { jsonLines, type JsonLine } from './json-lines.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '30' },
    seed: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    workers: { type: 'string', default: '2' },
  },
});
const durationMs = Number(opts.duration) * 1000;
const seed = opts.seed !== undefined ? Number(opts.seed) : Date.now() % 2 ** 31;
const concurrency = Number(opts.concurrency);

// mulberry32: small, seedable, good enough to replay a run.
let state = seed >>> 0;
function rand(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

const SEEDS = [
  'GET / HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /seen?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n',
  'POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello',
  'POST /body HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Sum: 8\r\n\r\n',
  'PUT /body HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc',
  'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
  'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
];
const TOKENS = [
  '\r\n',
  '\n',
  '\r',
  '\0',
  ' ',
  '\t',
  ':',
  ',',
  ';',
  '%',
  '#',
  '?',
  '*',
  'Host: b\r\n',
  'Content-Length: 3\r\n',
  'Content-Length: -1\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: gzip\r\n',
  ' HTTP/1.0',
  ' HTTP/2.0',
  'HTTP/1.1',
  '\r\n\r\n',
  '0\r\n\r\n',
  'ffffffffffff\r\n',
  '\xff\xfe',
  '\x16\x03\x01',
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  'CONNECT a:443 HTTP/1.1\r\n',
  'Expect: 100-continue\r\n',
  ' folded\r\n',
];

function mutate(input: string): string {
  let s = input;
  const rounds = 1 + int(4);
  for (let r = 0; r < rounds; r++) {
    const at = int(s.length + 1);
    switch (int(8)) {
      case 0: // flip a byte
        s = s.slice(0, at) + String.fromCharCode(int(256)) + s.slice(at + 1);
        break;
      case 1: // insert a token
        s = s.slice(0, at) + pick(TOKENS) + s.slice(at);
        break;
      case 2: // delete a run
        s = s.slice(0, at) + s.slice(at + 1 + int(8));
        break;
      case 3: // duplicate a line
        {
          const lines = s.split('\r\n');
          const i = int(lines.length);
          lines.splice(i, 0, lines[i] ?? '');
          s = lines.join('\r\n');
        }
        break;
      case 4: // repeat a run many times (long lines, many fields)
        s = s.slice(0, at) + s.slice(at, at + 1 + int(16)).repeat(1 + int(2000)) + s.slice(at);
        break;
      case 5: // truncate
        s = s.slice(0, at);
        break;
      case 6: // change the case of a run
        s = s.slice(0, at) + s.slice(at, at + 8).toUpperCase() + s.slice(at + 8);
        break;
      default: // splice another seed in
        s = s.slice(0, at) + pick(SEEDS).slice(int(40)) + s.slice(at);
    }
  }
  return s;
}

function randomBytes(): string {
  let s = '';
  const n = int(600);
  for (let i = 0; i < n; i++) s += String.fromCharCode(int(256));
  return s;
}

const counts = { sent: 0, answered: 0, closedUnanswered: 0, timedOut: 0, clientErrors: 0, validChecks: 0, validFailures: 0 };
const byStatus = new Map<number, number>();

/** Sends bytes (sometimes in pieces), resolves with the first status seen or 0. */
function send(sockPath: string, data: string, timeoutMs = 4000): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const c = net.connect(sockPath);
    let text = '';
    let done = false;
    const finish = (why: 'closed' | 'timeout' | 'answered') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      c.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text.replace(/^HTTP\/1\.1 100 [^]*?\r\n\r\n/, ''));
      if (why === 'timeout' && !m) counts.timedOut++;
      resolve({ status: m ? Number(m[1]) : 0, text });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    c.setEncoding('latin1');
    c.on('data', (d: string) => {
      text += d;
      // A complete non-100 response head is enough.
      if (/^HTTP\/1\.[01] (?!100)\d{3}[^]*?\r\n\r\n/.test(text.replace(/^HTTP\/1\.1 100 [^]*?\r\n\r\n/, '')))
        setTimeout(() => finish('answered'), 5);
    });
    c.on('error', () => counts.clientErrors++);
    c.on('close', () => finish('closed'));
    const buf = Buffer.from(data, 'latin1');
    // Mostly half-close after the request (the server sees EOF: no wait for a timeout);
    // sometimes keep the connection open, or send the request in two pieces.
    const halfClose = rand() < 0.8;
    const last = (b: Buffer) => (halfClose ? c.end(b) : c.write(b));
    if (rand() < 0.2 && buf.length > 2) {
      const cut = 1 + int(buf.length - 1);
      c.write(buf.subarray(0, cut));
      setTimeout(() => c.writable && last(buf.subarray(cut)), int(30));
    } else last(buf);
  });
}

async function validCheck(sockPath: string): Promise<void> {
  counts.validChecks++;
  const get = await send(sockPath, 'GET /fuzz-check HTTP/1.1\r\nHost: a\r\n\r\n', 10_000);
  const post = await send(sockPath, 'POST /body HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 10_000);
  if (get.status !== 200 || !get.text.includes('ok GET /fuzz-check') || post.status !== 200 || !post.text.includes('"bytes":3')) {
    counts.validFailures++;
    process.stderr.write(`valid request failed: ${JSON.stringify(get.text.slice(0, 120))} / ${JSON.stringify(post.text.slice(0, 120))}\n`);
  }
}

if (!existsSync(join(ROOT, 'dist/cli/main.js'))) {
  process.stderr.write('fuzz: dist/cli/main.js is missing: run `npm run build` first.\n');
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'wspk-fuzz-'));
const sockPath = join(dir, 'fuzz.sock');
const server = spawn(
  process.execPath,
  [
    join(ROOT, 'dist/cli/main.js'),
    join(ROOT, 'test/fixtures/hardening-app.mjs'),
    '-b',
    `unix:${sockPath}`,
    '-w',
    opts.workers!,
    '--headers-timeout',
    '2',
    '--request-timeout',
    '5',
    '--limit-request-body',
    '100000',
  ],
  { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, WS_PROXY_KIT_LOG_FORMAT: 'json', WS_PROXY_KIT_LOG_LEVEL: 'info' } },
);
const logLines: JsonLine[] = [];
server.stderr.setEncoding('utf8');
server.stderr.on(
  'data',
  jsonLines((line) => logLines.push(line)),
);
let masterExited = false;
server.once('exit', () => (masterExited = true));
const stopServer = () => {
  if (!masterExited) server.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', stopServer);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

const bootDeadline = Date.now() + 30_000;
while (!logLines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('ready'))) {
  if (masterExited || Date.now() > bootDeadline) {
    process.stderr.write(`fuzz: the server did not start:\n${logLines.map((l) => JSON.stringify(l)).join('\n')}\n`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 50));
}

console.log(`fuzz: seed ${seed}, ${opts.duration} s, concurrency ${concurrency}, ${opts.workers} workers, socket ${sockPath}`);
const started = Date.now();
let nextCheck = started + 1000;
async function lane(): Promise<void> {
  while (Date.now() - started < durationMs) {
    if (Date.now() >= nextCheck) {
      nextCheck = Date.now() + 1000;
      await validCheck(sockPath);
      continue;
    }
    const r = rand();
    const data = r < 0.1 ? randomBytes() : r < 0.2 ? pick(SEEDS) : mutate(pick(SEEDS));
    counts.sent++;
    const { status } = await send(sockPath, data);
    if (status) {
      counts.answered++;
      byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    } else counts.closedUnanswered++;
  }
}
await Promise.all(Array.from({ length: concurrency }, lane));
await validCheck(sockPath);

const workerExits = logLines.filter((l) => typeof l.msg === 'string' && /^worker exited/.test(l.msg)).length;
const fatal = logLines.filter((l) => l.level === 60 || (typeof l.msg === 'string' && /uncaught/.test(l.msg))).length;
const masterAlive = !masterExited;
const seconds = (Date.now() - started) / 1000;
const statuses = [...byStatus.entries()]
  .sort((a, b) => a[0] - b[0])
  .map(([s, n]) => `${s}: ${n}`)
  .join(', ');
console.log(`fuzz: ${counts.sent} requests in ${seconds.toFixed(1)} s (${Math.round(counts.sent / seconds)}/s)`);
console.log(
  `fuzz: answered ${counts.answered} (${statuses}); closed without an answer ${counts.closedUnanswered}; client timeouts ${counts.timedOut}`,
);
console.log(
  `fuzz: valid checks ${counts.validChecks}, failed ${counts.validFailures}; worker exits ${workerExits}; fatal log lines ${fatal}; master alive ${masterAlive}`,
);
const ok = workerExits === 0 && fatal === 0 && masterAlive && counts.validFailures === 0;
if (!ok) {
  for (const l of logLines.filter((x) => typeof x.level === 'number' && x.level >= 50))
    process.stderr.write(JSON.stringify(l).slice(0, 2000) + '\n');
}
console.log(`fuzz: ${ok ? 'PASS' : 'FAIL'} (replay with --seed ${seed})`);
server.kill('SIGTERM');
await new Promise((r) => {
  if (masterExited) r(undefined);
  else server.once('exit', r);
  setTimeout(r, 10_000).unref();
});
process.exit(ok ? 0 : 1);
