// Mistakes the master can tell before it starts a worker: said in one sentence, with the exit
// code a pool that cannot boot has (3), and no worker started three times to find out.
import { EXIT_BOOT_ERROR } from '../protocol.js';
import { missingAppModule } from '../app-spec.js';

/** Throws when the app module is neither a file under `cwd` (where workers load it) nor a package found from there. */
export function assertAppFound(app: string, cwd: string): void {
  const lookedFor = missingAppModule(app, cwd);
  if (!lookedFor) return;
  throw Object.assign(
    new Error(
      `The app module "${app}" was not found (looked for ${lookedFor}). Give its path relative to --chdir or the current directory.`,
    ),
    { code: 'EWSPK_APP', exitCode: EXIT_BOOT_ERROR },
  );
}
