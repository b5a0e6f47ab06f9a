// --print-config: every setting, its effective value and where it came from.
import { settingsTable, kebab, displayOf, type SettingDef } from '../config/settings.js';
import type { LoadedConfig } from '../config/load.js';

export function printConfig(config: LoadedConfig): string {
  const rows = (settingsTable as readonly SettingDef[])
    .filter((s) => !s.action)
    .map((s) => {
      const src = config.sources[s.name as keyof typeof config.sources];
      return [
        kebab(s.name),
        displayOf(s, (config.settings as Record<string, unknown>)[s.name]),
        src.origin === 'default' ? src.where : `${src.origin}: ${src.where}`,
      ];
    });
  const w0 = Math.max(...rows.map((r) => r[0]!.length));
  const w1 = Math.min(40, Math.max(...rows.map((r) => r[1]!.length)));
  return rows.map(([a, b, c]) => `${a!.padEnd(w0)}  ${b!.padEnd(w1)}  ${c}`).join('\n') + '\n';
}
