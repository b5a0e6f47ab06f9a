// How a setting's value reads for people (--print-config, `ctl status`, `ctl config`, docs):
// the row's display().
import { displayOf, kebab, settingsByName, settingsTable, type SettingDef } from './settings.js';
import type { LoadedConfig } from './load.js';

export function displayValue(name: string, value: unknown): string {
  return displayOf(settingsByName.get(name), value);
}

/** Every setting as [flag name, value, where it came from]. */
export function configRows(config: LoadedConfig): [string, string, string][] {
  return (settingsTable as readonly SettingDef[])
    .filter((s) => !s.action)
    .map((s) => {
      const src = config.sources[s.name as keyof typeof config.sources];
      return [
        kebab(s.name),
        displayOf(s, (config.settings as Record<string, unknown>)[s.name]),
        src.origin === 'default' || src.origin === src.where ? src.where : `${src.origin}: ${src.where}`,
      ];
    });
}

/** The rows as --print-config prints them: aligned columns. */
export function formatConfigRows(rows: readonly (readonly [string, string, string])[]): string {
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.min(40, Math.max(...rows.map((r) => r[1].length)));
  return rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`).join('\n') + '\n';
}
