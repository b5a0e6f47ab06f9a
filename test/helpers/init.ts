// `ws-proxy-kit init` as the tests run it: an app directory and the files of a dry run.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { runCli, tempDir } from './server.js';

/** An app directory whose package.json names the app "shop", its module server.mjs. */
export function initAppDir(prefix = 'wspk-init-'): string {
  const dir = tempDir(prefix);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'shop', main: 'server.mjs' }));
  writeFileSync(join(dir, 'server.mjs'), 'export default (req, res) => res.end("hi");\n');
  return dir;
}

/** The files of an `init --dry-run`, by path below the output directory (./deploy). */
export async function initDryRun(args: string[], cwd = initAppDir()): Promise<Record<string, string>> {
  const r = await runCli(['init', '--dry-run', ...args], { cwd });
  assert.is(r.code, 0, r.stderr);
  const files: Record<string, string> = {};
  for (const part of r.stdout.split(/^# ---- /m).filter(Boolean))
    files[part.slice(0, part.indexOf('\n')).split('/deploy/')[1]!] = part.slice(part.indexOf('\n') + 1).replace(/\n$/, '');
  return files;
}

/**
 * The values of nginx/*.conf's placeholders for the app "shop" on /run/shop/app.sock with
 * 3 workers, --keep-alive 5 and --timeout 30, as init fills them (worked out by hand).
 */
export const shopTemplateValues = {
  name: 'shop',
  socket: '/run/shop/app.sock',
  pool: true,
  keepalive_connections: 12,
  keepalive_timeout: 4,
  app_keep_alive: 5,
  app_timeout: 30,
  connect_timeout: 5,
  read_timeout: 60,
  server_name: '_',
  client_max_body_size: '10m',
  listen_http: [{ address: '80' }, { address: '[::]:80' }],
  listen_https: [{ address: '443' }, { address: '[::]:443' }],
  tls: false,
  static: false,
  failover: false,
  generated: true,
  command: 'ws-proxy-kit init',
  generated_with: 'the units and the config file generated with it',
};
