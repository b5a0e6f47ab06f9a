// Renders the nginx site for a deployment: the file goes in /etc/nginx/sites-available
// (it is included inside nginx's `http {}` block). Every directive says why it is there,
// so the generated file doubles as documentation. See nginx/README.md.
import type { DeployOptions } from './options.js';

export interface NginxSiteOptions extends DeployOptions {
  /** Directory served by nginx itself at /static/ (absolute path), if any. */
  staticDir?: string;
  /** `listen` addresses; defaults 80 and 443 on IPv4 and IPv6. Tests use 127.0.0.1:PORT. */
  listenHttp?: string[];
  listenHttps?: string[];
  /** TLS certificate and key; default: certbot's paths for the first server name. */
  tlsCertificate?: string;
  tlsCertificateKey?: string;
}

/** What a target changes in the site beyond the options: its upstream, failover, provenance. */
export interface SiteVariant {
  /** The upstream block in place of the one-socket upstream (the hosts target's, over TCP). */
  upstream?: string;
  /** proxy_connect_timeout in seconds (default 5: a local socket). */
  connectTimeout?: number;
  /** proxy_next_upstream to the next server for requests that were not sent (several hosts). */
  failover?: boolean;
  /** The command line that generated the site, for its header. */
  command?: string;
  /** What the site agrees with, for its header. */
  generatedWith?: string;
}

/** nginx's upstream keepalive_timeout: below the app's keep-alive so nginx closes idle connections first. */
export function upstreamKeepaliveTimeout(keepAlive: number): number {
  return Math.max(1, Math.ceil(keepAlive) - 1);
}

/** How long nginx waits for the app's response: longer than --timeout, so ws-proxy-kit kills a stuck worker (and logs why) first. */
export function proxyReadTimeout(timeout: number): number {
  return Math.max(60, Math.ceil(timeout) + 5);
}

const indent = (text: string, n: number): string =>
  text
    .split('\n')
    .map((l) => (l ? ' '.repeat(n) + l : l))
    .join('\n');

function upstreamBlock(o: NginxSiteOptions): string {
  const pooled = o.keepAlive > 1;
  const lines = [
    `# The app: ws-proxy-kit workers all accept on this one UNIX socket (no TCP port to protect).`,
    `upstream ${o.name} {`,
    `    # One server; max_fails=0: never mark it down. During a restart connections wait in the`,
    `    # socket's listen backlog instead of failing.`,
    `    server unix:${o.socketPath} max_fails=0;`,
  ];
  if (pooled) {
    lines.push(
      `    # Reuse connections to the app instead of one connect per request (needs`,
      `    # proxy_http_version 1.1 and an empty Connection header, set below).`,
      `    # Idle connections kept per nginx worker process:`,
      `    keepalive ${Math.max(8, o.workers * 4)};`,
      `    # Below the app's --keep-alive (${o.keepAlive} s): the side that closes an idle connection`,
      `    # must be nginx, or a request sent just as the app closes it would fail (docs/decisions.md).`,
      `    keepalive_timeout ${upstreamKeepaliveTimeout(o.keepAlive)}s;`,
    );
  } else {
    lines.push(`    # No keepalive pool: the app's --keep-alive (${o.keepAlive} s) is too short to reuse connections safely.`);
  }
  lines.push('}');
  return lines.join('\n');
}

function proxyDirectives(o: NginxSiteOptions, v: SiteVariant): string {
  return [
    `# HTTP/1.1 to the app: required for upstream keepalive and for WebSocket upgrades.`,
    `proxy_http_version 1.1;`,
    `# "upgrade" for WebSocket handshakes, empty otherwise so the connection stays in the`,
    `# keepalive pool (nginx would send "Connection: close" by default).`,
    `proxy_set_header Upgrade $http_upgrade;`,
    `proxy_set_header Connection $connection_upgrade;`,
    `# The host the client asked for (proxy_pass would send the upstream's name).`,
    `proxy_set_header Host $host;`,
    `# nginx is the edge: the client address is the peer nginx sees. Overwriting (rather than`,
    `# appending to) X-Forwarded-For means a client cannot forge it. Behind another proxy, use`,
    `# $proxy_add_x_forwarded_for and set_real_ip_from instead.`,
    `proxy_set_header X-Forwarded-For $remote_addr;`,
    `proxy_set_header X-Real-IP $remote_addr;`,
    `# Scheme, host and port the client used, so the app builds correct absolute URLs and`,
    `# knows a request came over TLS.`,
    `proxy_set_header X-Forwarded-Proto $scheme;`,
    `proxy_set_header X-Forwarded-Host $host;`,
    `proxy_set_header X-Forwarded-Port $server_port;`,
    `# One id per request, in nginx's and the app's access logs alike.`,
    `proxy_set_header X-Request-Id $request_id;`,
    ``,
    `# A local socket connects at once: a slow connect means its backlog is full. Over the`,
    `# network, a host that does not accept in time counts as down (nginx tries the next one).`,
    `proxy_connect_timeout ${v.connectTimeout ?? 5}s;`,
    `# Longer than the app's --timeout (${o.timeout} s): a stuck worker is killed and logged by`,
    `# ws-proxy-kit before nginx gives up. WebSocket connections idle longer than this are`,
    `# closed: have the app ping more often.`,
    `proxy_read_timeout ${proxyReadTimeout(o.timeout)}s;`,
    `proxy_send_timeout 60s;`,
    ``,
    `# Buffering on (nginx's default, stated on purpose): nginx reads the whole request body`,
    `# and absorbs the response, so a slow client never holds an app worker. Responses that`,
    `# must stream (server-sent events, long polls) send "X-Accel-Buffering: no".`,
    `proxy_buffering on;`,
    `proxy_request_buffering on;`,
    `# Only nginx's own errors (app down) get the error page; the app's 5xx pass through.`,
    `proxy_intercept_errors off;`,
    ...(v.failover
      ? [
          `# Failover: a request that could not be sent, or whose connection failed before any`,
          `# response, is retried on the next host. nginx never retries non-idempotent requests`,
          `# (POST, PATCH, LOCK) once they were sent: only idempotent ones are replayed.`,
          `proxy_next_upstream error timeout;`,
          `proxy_next_upstream_tries 3;`,
          `proxy_next_upstream_timeout 10s;`,
        ]
      : []),
    `proxy_pass http://${o.name};`,
  ].join('\n');
}

function serverBody(o: NginxSiteOptions, v: SiteVariant): string {
  const parts = [
    `server_name ${o.serverName};`,
    ``,
    `# Largest request body; bigger gets 413 from nginx before the app sees it.`,
    `client_max_body_size ${o.clientMaxBodySize};`,
    ``,
    `# While the app is down or restarting past the backlog, answer a short 503 page with`,
    `# Retry-After rather than nginx's bare 502.`,
    `# ("=503": the status nginx sends; without it the original 502 would stay.)`,
    `error_page 502 503 =503 @${o.name}_unavailable;`,
    `location @${o.name}_unavailable {`,
    `    default_type text/html;`,
    `    add_header Retry-After 5 always;`,
    `    return 503 '<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1><p>${o.name} is restarting; please retry in a few seconds.</p>\\n';`,
    `}`,
  ];
  if (o.staticDir) {
    parts.push(
      ``,
      `# Static files served by nginx directly: no app worker involved. nginx's worker user`,
      `# needs read access to ${o.staticDir} (and search access to its parents).`,
      `location /static/ {`,
      `    alias ${o.staticDir.replace(/\/+$/, '')}/;`,
      `    expires 1h;`,
      `    access_log off;`,
      `}`,
    );
  }
  parts.push(``, `location / {`, indent(proxyDirectives(o, v), 4), `}`);
  return parts.join('\n');
}

/** The nginx site (a file for sites-available) for this deployment. */
export function renderNginxSite(o: NginxSiteOptions, v: SiteVariant = {}): string {
  const listenHttp = o.listenHttp ?? ['80', '[::]:80'];
  const listenHttps = o.listenHttps ?? ['443', '[::]:443'];
  const firstName = o.serverName.split(/\s+/)[0] ?? o.serverName;
  const out = [
    `# nginx site for ${o.name}, generated by \`${v.command ?? 'ws-proxy-kit init'}\`. Regenerate rather than edit: the`,
    `# socket path, names and timeouts here match ${v.generatedWith ?? 'the units and the config file generated with it'}.`,
    `# Goes in /etc/nginx/sites-available/.`,
    ``,
    `# $connection_upgrade: "upgrade" when the client asks for a WebSocket, else empty (which`,
    `# keeps the upstream connection reusable). Identical maps in other sites are harmless.`,
    `map $http_upgrade $connection_upgrade {`,
    `    default upgrade;`,
    `    ''      '';`,
    `}`,
    ``,
    v.upstream?.replace(/\n$/, '') ?? upstreamBlock(o),
    ``,
  ];
  if (!o.tls) {
    out.push(`server {`, ...listenHttp.map((l) => `    listen ${l};`), indent(serverBody(o, v), 4), `}`);
  } else {
    const cert = o.tlsCertificate ?? `/etc/letsencrypt/live/${firstName}/fullchain.pem`;
    const key = o.tlsCertificateKey ?? `/etc/letsencrypt/live/${firstName}/privkey.pem`;
    out.push(
      `# Plain HTTP only redirects to HTTPS (ACME http-01 challenges excepted, so certbot renews).`,
      `server {`,
      ...listenHttp.map((l) => `    listen ${l};`),
      `    server_name ${o.serverName};`,
      `    location /.well-known/acme-challenge/ {`,
      `        root /var/www/html;`,
      `    }`,
      `    location / {`,
      `        return 301 https://$host$request_uri;`,
      `    }`,
      `}`,
      ``,
      `server {`,
      `    # "listen ... ssl http2" works on Debian 12's nginx 1.22; nginx >= 1.25.1 prefers "http2 on;".`,
      ...listenHttps.map((l) => `    listen ${l} ssl http2;`),
      `    ssl_certificate ${cert};`,
      `    ssl_certificate_key ${key};`,
      `    # Modern protocols only; nginx's default ciphers are fine for these.`,
      `    ssl_protocols TLSv1.2 TLSv1.3;`,
      `    ssl_session_cache shared:ws_proxy_kit_tls:10m;`,
      `    ssl_session_timeout 1d;`,
      `    # Turn on HSTS once HTTPS works everywhere on this name (browsers remember it):`,
      `    # add_header Strict-Transport-Security "max-age=63072000" always;`,
      indent(serverBody(o, v), 4),
      `}`,
    );
  }
  return out.join('\n') + '\n';
}

/**
 * A minimal nginx.conf around one site, with every writable path (pid, logs, temp dirs)
 * under `prefix`: used to run `nginx -t` and the e2e nginx without touching /etc.
 */
export function nginxMainConf(prefix: string, siteFile: string, opts: { user?: string; workerProcesses?: number } = {}): string {
  const p = prefix.replace(/\/+$/, '');
  return [
    ...(opts.user ? [`user ${opts.user};`] : []),
    `worker_processes ${opts.workerProcesses ?? 1};`,
    `pid ${p}/nginx.pid;`,
    `error_log ${p}/error.log warn;`,
    `events { worker_connections 512; }`,
    `http {`,
    `    default_type application/octet-stream;`,
    `    access_log ${p}/access.log;`,
    `    client_body_temp_path ${p}/client_body;`,
    `    proxy_temp_path ${p}/proxy;`,
    `    fastcgi_temp_path ${p}/fastcgi;`,
    `    uwsgi_temp_path ${p}/uwsgi;`,
    `    scgi_temp_path ${p}/scgi;`,
    `    include ${siteFile};`,
    `}`,
    '',
  ].join('\n');
}
