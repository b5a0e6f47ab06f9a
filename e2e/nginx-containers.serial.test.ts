// The nginx end-to-end cases (e2e/nginx-cases.ts) with nginx in a container built from
// Debian's nginx package (local/wspk-nginx:e2e, e2e/containers/setup.sh), in front of
// ws-proxy-kit running on this machine. The app's socket directory is bind-mounted at the
// same path, so the site `init` generated works unchanged; the container shares the host's
// network only so that the cases can reach nginx on 127.0.0.1 (the app is on the socket).
import { test } from 'uvu';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StartedTestContainer } from 'testcontainers';
import { cleanup, freePort } from '../test/helpers/server.js';
import { nginxMainConf } from '../src/deploy/nginx-site.js';
import { registerNginxCases, listenOn, PROXY_USER, type NginxBackend } from './nginx-cases.js';
import { containersMissing, startNginxContainer, shOk, NGINX_IMAGE } from './helpers/containers.js';

let container: StartedTestContainer | null = null;
let prefix = '';
let port = 0;

const containersBackend: NginxBackend = {
  name: 'containers',
  missing() {
    // The cases chown the socket directory to nginx's group and run the app as this user.
    if (process.getuid?.() !== 0) return 'the containers backend needs root (the Docker engine and the socket group)';
    return containersMissing([NGINX_IMAGE]);
  },
  async start(siteConfig, socketDir) {
    port = await freePort();
    // nginx's pid, logs and temp dirs live here; its workers (www-data) write request
    // bodies under it, so it must be searchable by them.
    prefix = mkdtempSync(join(tmpdir(), 'wspk-e2e-nginx-prefix-'));
    chmodSync(prefix, 0o755);
    const site = join(prefix, 'site.conf');
    writeFileSync(site, listenOn(siteConfig, `127.0.0.1:${port}`));
    writeFileSync(join(prefix, 'nginx.conf'), nginxMainConf(prefix, site, { user: PROXY_USER, workerProcesses: 2 }));
    const started = Date.now();
    container = await startNginxContainer({ confFile: join(prefix, 'nginx.conf'), binds: [prefix, socketDir], network: 'host' });
    console.log(`  [containers] nginx container ${container.getId().slice(0, 12)} ready in ${Date.now() - started} ms`);
  },
  async stop() {
    const c = container;
    container = null;
    if (c) await c.stop({ remove: true, timeout: 0 });
    if (prefix) rmSync(prefix, { recursive: true, force: true });
  },
  url: () => `http://127.0.0.1:${port}`,
  async workerUsers() {
    if (!container) return [];
    // No ps in a minbase image: read /proc. stat's owner of /proc/PID is the process's uid.
    const out = await shOk(
      container,
      `for f in /proc/[0-9]*/cmdline; do if tr '\\0' ' ' < "$f" | grep -q '^nginx: worker process'; then stat -c %U "\${f%/cmdline}"; fi; done`,
    );
    return out
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  },
};

await registerNginxCases(test, containersBackend);
// One nginx container and one app for the whole suite: removed once all cases ran.
test.after(cleanup);
test.run();
