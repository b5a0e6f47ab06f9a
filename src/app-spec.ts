// The app argument, "path/to/module[:export]" or "module:factory()" (DESIGN.md, "The app
// contract"): read by the worker that loads the app, the arbiter that watches its directory
// (--reload) and `init`. A module of its own, so that src/arbiter and src/worker need not
// import each other.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

export interface AppSpec {
  module: string;
  exportName: string;
  /** "module:factory()": the export is called and its result is the app. */
  call: boolean;
}

/** "path/to/module[:export]" or "module:factory()" */
export function parseAppSpec(spec: string): AppSpec {
  const m = /^(.*?)(?::([A-Za-z_$][\w$]*)(\(\))?)?$/.exec(spec)!;
  return { module: m[1]!, exportName: m[2] ?? 'default', call: Boolean(m[3]) };
}

/**
 * Where the app module was looked for when it is neither a file under `cwd` nor a package
 * found from it; null when it is there. A package that exists but has no CommonJS entry
 * (ERR_PACKAGE_PATH_NOT_EXPORTED) is there: the worker imports it.
 */
export function missingAppModule(app: string, cwd: string): string | null {
  const { module } = parseAppSpec(app);
  const asPath = resolve(cwd, module);
  if (existsSync(asPath)) return null;
  if (!module.startsWith('.') && !module.startsWith('/')) {
    try {
      createRequire(join(cwd, 'noop.js')).resolve(module);
      return null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') return null;
    }
  }
  return asPath;
}
