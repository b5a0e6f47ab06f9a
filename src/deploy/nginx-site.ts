// The nginx site of a deployment, rendered from the templates in nginx/: site.conf, with
// the three files it includes (websocket-map.conf, upstream.conf, proxy-params.conf)
// filled with the same values and written inline, so the site is one file. Every value
// below is a placeholder of those files (nginx/README.md lists them).
import type { DeployOptions } from './options.js';
import { fillTemplate, nginxTemplate, type TemplateScope } from './template.js';

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
  /** The upstream block in place of nginx/upstream.conf (the hosts target's, over TCP). */
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

/** The files site.conf includes, in the order it includes them. */
const SITE_INCLUDES = ['websocket-map.conf', 'upstream.conf', 'proxy-params.conf'] as const;

/** nginx's upstream keepalive_timeout: below the app's keep-alive so nginx closes idle connections first. */
export function upstreamKeepaliveTimeout(keepAlive: number): number {
  return Math.max(1, Math.ceil(keepAlive) - 1);
}

/** How long nginx waits for the app's response: longer than --timeout, so ws-proxy-kit kills a stuck worker (and logs why) first. */
export function proxyReadTimeout(timeout: number): number {
  return Math.max(60, Math.ceil(timeout) + 5);
}

/** The value of every placeholder in nginx/*.conf for these options. */
function siteTemplateValues(o: NginxSiteOptions, v: SiteVariant = {}): TemplateScope {
  const listen = (addresses: readonly string[]) => addresses.map((address) => ({ address }));
  const firstName = o.serverName.split(/\s+/)[0] ?? o.serverName;
  return {
    name: o.name,
    socket: o.socketPath,
    pool: o.keepAlive > 1,
    keepalive_connections: Math.max(8, o.workers * 4),
    keepalive_timeout: upstreamKeepaliveTimeout(o.keepAlive),
    app_keep_alive: o.keepAlive,
    app_timeout: o.timeout,
    connect_timeout: v.connectTimeout ?? 5,
    read_timeout: proxyReadTimeout(o.timeout),
    server_name: o.serverName,
    client_max_body_size: o.clientMaxBodySize,
    listen_http: listen(o.listenHttp ?? ['80', '[::]:80']),
    listen_https: listen(o.listenHttps ?? ['443', '[::]:443']),
    tls: o.tls,
    ssl_certificate: o.tlsCertificate ?? `/etc/letsencrypt/live/${firstName}/fullchain.pem`,
    ssl_certificate_key: o.tlsCertificateKey ?? `/etc/letsencrypt/live/${firstName}/privkey.pem`,
    static: o.staticDir !== undefined,
    ...(o.staticDir !== undefined ? { static_dir: o.staticDir.replace(/\/+$/, '') } : {}),
    failover: v.failover ?? false,
    generated: true,
    command: v.command ?? 'ws-proxy-kit init',
    generated_with: v.generatedWith ?? 'the units and the config file generated with it',
  };
}

/** nginx/FILE filled with `values`. */
function renderNginxTemplate(file: string, values: TemplateScope): string {
  return fillTemplate(nginxTemplate(file), values, `nginx/${file}`);
}

/**
 * `site` with each `include ws-proxy-kit/NAME/FILE;` line replaced by `files[FILE]`, indented
 * like the line. An include of anything else is left alone; one of a file not given is an error.
 */
function inlineIncludes(site: string, name: string, files: Readonly<Record<string, string>>): string {
  const include = new RegExp(`^([ \\t]*)include ws-proxy-kit/${name}/([\\w.-]+);[ \\t]*$`);
  return site
    .split('\n')
    .map((line) => {
      const m = include.exec(line);
      if (!m) return line;
      const text = files[m[2]!];
      if (text === undefined) throw new Error(`nginx/site.conf includes ${m[2]}, which is not one of ${Object.keys(files).join(', ')}`);
      return text
        .replace(/\n$/, '')
        .split('\n')
        .map((l) => (l ? m[1]! + l : l))
        .join('\n');
    })
    .join('\n');
}

/** The nginx site (a file for sites-available) for this deployment. */
export function renderNginxSite(o: NginxSiteOptions, variant: SiteVariant = {}): string {
  const values = siteTemplateValues(o, variant);
  const pieces: Record<string, string> = {};
  for (const file of SITE_INCLUDES) pieces[file] = renderNginxTemplate(file, values);
  if (variant.upstream !== undefined) pieces['upstream.conf'] = variant.upstream;
  return inlineIncludes(renderNginxTemplate('site.conf', values), o.name, pieces);
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
