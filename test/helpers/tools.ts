// Tests that need an external tool: skipped with the reason outside CI, failed in CI.
import { spawnSync } from 'node:child_process';
import type { Test } from 'uvu';

export function hasCommand(cmd: string, args: string[] = ['--version']): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined;
}

/** Registers `fn` as a test when `missing` is null; otherwise skips (or fails under CI=true). */
export function testWithTool(test: Test, title: string, missing: string | null, fn: () => Promise<void> | void): void {
  if (missing === null) {
    test(title, fn);
  } else if (process.env.CI === 'true') {
    test(title, () => {
      throw new Error(`required in CI but missing: ${missing}`);
    });
  } else {
    console.log(`  SKIP ${title}: ${missing}`);
    test.skip(title, fn);
  }
}
