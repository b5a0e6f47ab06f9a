// --reload (development): watch the app's directory and the config file with chokidar and
// ask for a graceful reload on change. node_modules and dot-directories are ignored.
import { watch } from 'chokidar';
import { dirname, resolve, sep } from 'node:path';
import { parseAppSpec } from '../app-spec.js';
import type { Logger } from '../log/logger.js';

export function watchForReload(opts: {
  app: string;
  cwd: string;
  configPath: string | null;
  log: Logger;
  onChange: (file: string) => void;
}): () => Promise<void> {
  const appDir = dirname(resolve(opts.cwd, parseAppSpec(opts.app).module));
  const paths = [appDir, ...(opts.configPath ? [opts.configPath] : [])];
  const watcher = watch(paths, {
    ignoreInitial: true,
    ignored: (path: string) => path.split(sep).some((part) => part === 'node_modules' || (part.startsWith('.') && part.length > 1)),
  });
  let timer: NodeJS.Timeout | null = null;
  const changed = new Set<string>();
  watcher.on('all', (_event: string, file: string) => {
    changed.add(file);
    // Editors write a file in several steps; one reload per burst.
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      const files = [...changed];
      changed.clear();
      opts.log.info({ files: files.slice(0, 10) }, 'files changed: reloading workers (--reload)');
      opts.onChange(files[0]!);
    }, 200);
  });
  watcher.on('error', (err: unknown) => opts.log.warn({ err: String(err) }, '--reload: file watcher error'));
  opts.log.info({ watching: paths }, '--reload: watching for changes');
  return async () => {
    if (timer) clearTimeout(timer);
    await watcher.close();
  };
}
