// What `npm pack` ships: the license, the templates, and source maps that carry their sources
// (the package has dist/, not src/, so a map naming src/ files without them points nowhere).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers/server.js';

const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })) as {
  files: { path: string }[];
}[];
const files = packed[0]!.files.map((f) => f.path);

test('the package ships LICENSE, CHANGELOG.md, README.md, the CLI and the nginx and systemd templates', () => {
  for (const f of ['LICENSE', 'CHANGELOG.md', 'README.md', 'package.json', 'dist/cli/main.js', 'dist/index.d.ts'])
    assert.ok(files.includes(f), f);
  assert.ok(files.some((f) => f.startsWith('nginx/')));
  assert.ok(files.some((f) => f.startsWith('systemd/')));
  assert.not.ok(
    files.some((f) => f.startsWith('src/') || f.startsWith('test/')),
    'no sources or tests',
  );
});

test('every shipped source map carries the sources it names', () => {
  const maps = files.filter((f) => f.endsWith('.js.map'));
  assert.ok(maps.length > 10);
  for (const f of maps) {
    const map = JSON.parse(readFileSync(join(ROOT, f), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
    assert.is(map.sourcesContent?.length, map.sources.length, `${f}: sourcesContent`);
    assert.ok(
      map.sourcesContent!.every((s) => typeof s === 'string' && s.length > 0),
      `${f}: empty source`,
    );
  }
});

test.run();
