// `export default defineConfig({ ... })`: a config file typed as a user writes it. The setting
// types come from the table (each row's parser says what it takes), the hooks from hooks.ts.
import type { SettingsInput } from './settings.js';
import type { ServerHooks } from './hooks.js';

/** What a config file's default export (or what its factory returns) may hold. */
export type UserConfig = SettingsInput & ServerHooks;

/** A config file's default export: the settings and hooks, or a function (also async) that returns them when the file is loaded. */
export type ConfigExport = UserConfig | (() => UserConfig | Promise<UserConfig>);

/** Types a config file's export (`export default defineConfig({ ... })`) and returns it unchanged. */
export function defineConfig<const C extends ConfigExport>(config: C & ConfigExport): C {
  return config;
}
