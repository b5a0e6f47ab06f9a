// Which version of the app a generation of workers runs.
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Settings } from '../config/settings.js';
import { parseAppSpec } from '../app-spec.js';

/**
 * A generation's settings with the version on disk pinned: `chdir` (the directory the workers
 * load the app from) by its real path, so that a deploy that switches a symlink (current ->
 * releases/N) is picked up by the next reload, while a worker of the running generation that
 * crashes is replaced with the version it ran. A file edited in place cannot be pinned.
 */
export function pinnedVersion(settings: Settings): Settings {
  let chdir: string;
  try {
    chdir = realpathSync(resolve(settings.chdir ?? process.cwd()));
  } catch {
    return settings; // the directory is gone: the worker says so when it starts
  }
  let app = settings.app;
  if (app) {
    // An app named by a path through a symlink (/srv/app/current/server.js) is pinned too.
    const { module } = parseAppSpec(app);
    try {
      if (module.startsWith('/') || module.startsWith('.')) app = realpathSync(resolve(chdir, module)) + app.slice(module.length);
    } catch {
      // not there: the worker says so
    }
  }
  return { ...settings, chdir, app };
}
