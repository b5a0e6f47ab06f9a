// The real tools on the generated files, when they are installed: `nginx -t` in a
// throwaway prefix (its own pid, logs and temp paths; nothing under /etc is read or
// written) and `systemd-analyze verify` on the units in a throwaway directory.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nginxMainConf, type NginxSiteOptions } from './nginx-site.js';
import type { GeneratedFile, ValidationResult } from './plan.js';

const installed = (cmd: string, args: string[]) => !spawnSync(cmd, args, { stdio: 'ignore' }).error;

function inTempDir<T>(prefix: string, fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `nginx -t` on the site `render` makes from `o`. A TLS site is rendered with a throwaway
 * self-signed certificate: the real one lives on the server.
 */
export function nginxCheck<O extends NginxSiteOptions>(o: O, render: (o: O) => string): ValidationResult {
  const check = 'nginx -t';
  if (!installed('nginx', ['-v'])) return { check, status: 'skipped', output: 'nginx is not installed here: not validated' };
  return inTempDir('wspk-nginx-t-', (dir) => {
    let site = o;
    if (o.tls) {
      site = { ...o, tlsCertificate: join(dir, 'cert.pem'), tlsCertificateKey: join(dir, 'key.pem') };
      const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1'];
      const r = spawnSync('openssl', [...args, '-keyout', site.tlsCertificateKey!, '-out', site.tlsCertificate!], { encoding: 'utf8' });
      if (r.status !== 0)
        return { check, status: 'skipped', output: 'openssl is needed to validate the TLS block with a throwaway certificate: not validated' };
    }
    writeFileSync(join(dir, 'site.conf'), render(site));
    writeFileSync(join(dir, 'nginx.conf'), nginxMainConf(dir, join(dir, 'site.conf')));
    const r = spawnSync('nginx', ['-t', '-p', dir + '/', '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { encoding: 'utf8' });
    const output = (r.stderr || r.stdout || '').trim().split(dir).join('<tmp>');
    return { check, status: r.status === 0 ? 'ok' : 'failed', output };
  });
}

/** `systemd-analyze verify` on the .socket and .service files among `files`. */
export function unitsCheck(files: readonly GeneratedFile[]): ValidationResult {
  const check = 'systemd-analyze verify';
  if (!installed('systemd-analyze', ['--version'])) return { check, status: 'skipped', output: 'systemd-analyze is not installed here: not validated' };
  return inTempDir('wspk-units-', (dir) => {
    const units = files.filter((f) => /\.(socket|service)$/.test(f.name));
    const paths = units.map((f) => join(dir, f.name.replace(/.*\//, '')));
    units.forEach((f, i) => writeFileSync(paths[i]!, f.content));
    const r = spawnSync('systemd-analyze', ['verify', ...paths], { encoding: 'utf8' });
    const output = `${r.stdout}${r.stderr}`.trim().split(dir).join('<tmp>');
    return { check, status: r.status === 0 ? 'ok' : 'failed', output };
  });
}
