// One nginx (temporary prefix, foreground) in front of every engine: per engine one port
// whose upstream keeps connections alive, and one without upstream keepalive (churn).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { start, type Proc } from './procs.js';
import type { Shape } from './load.js';

export interface NginxFront {
  proc: Proc;
  url(engine: string, shape: Shape): string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The fields the site of `ws-proxy-kit init` sets (nginx/proxy-params.conf), so that the nginx
 * path costs what a deployment pays: ws-proxy-kit trusts them and takes the request id; the
 * other servers receive them too and ignore them.
 */
const FORWARDING = [
  'Host $host',
  'X-Forwarded-For $remote_addr',
  'X-Real-IP $remote_addr',
  'X-Forwarded-Proto $scheme',
  'X-Forwarded-Host $host',
  'X-Forwarded-Port $server_port',
  'X-Request-Id $request_id',
]
  .map((field) => `proxy_set_header ${field};`)
  .join(' ');

export async function startNginx(dir: string, upstreams: { name: string; socket: string }[], workers: number): Promise<NginxFront> {
  const prefix = join(dir, 'nginx');
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  const ports = new Map<string, { keep: number; noKeep: number }>();
  let servers = '';
  for (const u of upstreams) {
    const p = { keep: await freePort(), noKeep: await freePort() };
    ports.set(u.name, p);
    const id = u.name.replace(/[^A-Za-z0-9]/g, '_');
    servers += `
  upstream ${id}_keep { server unix:${u.socket}; keepalive 64; keepalive_timeout 1s; }
  upstream ${id}_nokeep { server unix:${u.socket}; }
  server { listen 127.0.0.1:${p.keep} backlog=4096; location / { proxy_pass http://${id}_keep; proxy_http_version 1.1; proxy_set_header Connection ""; ${FORWARDING} } }
  server { listen 127.0.0.1:${p.noKeep} backlog=4096; location / { proxy_pass http://${id}_nokeep; ${FORWARDING} } }
`;
  }
  // As root, nginx's workers would drop to "nobody" and could not connect to root's sockets.
  const user = process.getuid?.() === 0 ? 'user root root;' : '';
  const conf = `${user}
worker_processes ${workers};
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
${servers}
}
`;
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  const proc = start('nginx', 'nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')]);
  // Ready when every port accepts.
  const deadline = Date.now() + 10_000;
  for (const p of ports.values()) {
    for (const port of [p.keep, p.noKeep]) {
      while (!(await canConnect(port))) {
        if (proc.done) throw new Error(`nginx exited: ${proc.text}`);
        if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port} within 10 s: ${proc.text}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
  return {
    proc,
    url: (engine, shape) => {
      const p = ports.get(engine)!;
      return `http://127.0.0.1:${shape === 'churn' ? p.noKeep : p.keep}`;
    },
    stop: () => proc.stop('SIGQUIT', 5000),
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}
