#!/usr/bin/env node
// Adds to package-lock.json the platform builds of native packages that the registry this
// lock was made with does not have (node-unix-socket's darwin and arm builds are missing from
// some mirrors): npm install then leaves them out, and `npm ci` refuses such a lock
// ("Missing: node-unix-socket-darwin-arm64@ from lock file"). Each entry gets the os, cpu and
// libc that napi-rs encodes in the package name, so npm skips it on every other platform
// and fetches it only where it belongs. Run after `npm install` changes the lock:
//   node scripts/complete-lock.mjs          (writes the lock; prints what it added)
//   node scripts/complete-lock.mjs --check  (exit 1 if something is missing)
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;

/** os, cpu and libc from a napi-rs platform suffix such as linux-arm64-musl or darwin-x64. */
function platformOf(suffix) {
  const [os, arch, abi] = suffix.split('-');
  const cpu = { x64: 'x64', arm64: 'arm64', arm: 'arm', ia32: 'ia32' }[arch];
  if (!os || !cpu) return null;
  const out = { os: [os], cpu: [cpu] };
  if (abi === 'gnu' || abi === 'gnueabihf') out.libc = ['glibc'];
  if (abi === 'musl') out.libc = ['musl'];
  return out;
}

const added = [];
for (const [key, entry] of Object.entries(packages)) {
  if (!key.startsWith('node_modules/') || !entry.optionalDependencies) continue;
  const name = key.slice('node_modules/'.length);
  for (const [dep, version] of Object.entries(entry.optionalDependencies)) {
    if (!dep.startsWith(`${name}-`) || packages[`node_modules/${dep}`]) continue;
    const platform = platformOf(dep.slice(name.length + 1));
    if (!platform) continue;
    packages[`node_modules/${dep}`] = {
      version,
      ...platform,
      license: entry.license,
      optional: true,
      ...(entry.engines ? { engines: entry.engines } : {}),
    };
    added.push(`${dep}@${version}`);
  }
}
if (process.argv.includes('--check')) {
  if (added.length) {
    process.stderr.write(`package-lock.json lacks ${added.join(', ')}: run node scripts/complete-lock.mjs\n`);
    process.exit(1);
  }
  process.exit(0);
}
if (added.length) {
  const sorted = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
  lock.packages = sorted;
  writeFileSync(path, JSON.stringify(lock, null, 2) + '\n');
}
process.stdout.write(added.length ? `added to package-lock.json: ${added.join(', ')}\n` : 'package-lock.json lists every platform build\n');
