// An app deployed as releases behind a `current` symlink, as deploy tools do: for the canary
// reload tests (a good new version, one that answers 5xx, one that crashes on its 3rd request).
import { mkdirSync, symlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './server.js';

export type Release = 'v1' | 'good' | 'errors' | 'crash';

const VERSIONS: Record<Release, string> = {
  v1: `export default (req, res) => res.end('ok v1 ' + process.pid + '\\n');`,
  good: `export default (req, res) => res.end('ok v2 ' + process.pid + '\\n');`,
  errors: `export default (req, res) => { res.statusCode = 500; res.end('error v2 ' + process.pid + '\\n'); };`,
  crash: `let n = 0; export default (req, res) => { if (++n === 3) process.exit(1); res.end('ok v2 ' + process.pid + '\\n'); };`,
};

/** dir/releases/NAME/app.mjs for each version, and dir/current -> releases/v1. */
export function releases(): { dir: string; current: string; deploy(name: Release): void } {
  const dir = tempDir();
  for (const [name, code] of Object.entries(VERSIONS)) {
    mkdirSync(join(dir, 'releases', name), { recursive: true });
    writeFileSync(join(dir, 'releases', name, 'app.mjs'), code);
  }
  const current = join(dir, 'current');
  symlinkSync(join(dir, 'releases', 'v1'), current);
  return {
    dir,
    current,
    // As deploy tools switch a release: a new symlink renamed over the old one.
    deploy(name: Release) {
      symlinkSync(join(dir, 'releases', name), `${current}.new`);
      renameSync(`${current}.new`, current);
    },
  };
}
