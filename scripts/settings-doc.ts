// Renders the README's settings reference from the settings table.
// `node --import tsx scripts/settings-doc.ts --write` updates README.md in place.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { settingsTable, kebab, envNamesOf, displayOf, type SettingDef } from '../src/config/settings.js';

export const README = fileURLToPath(new URL('../README.md', import.meta.url));
const START = '<!-- settings:start (generated from src/config/settings.ts by `npm run docs:settings`) -->';
const END = '<!-- settings:end -->';

function defaultText(s: SettingDef): string {
  if (s.defaultDoc) return s.defaultDoc;
  return typeof s.default === 'function' ? '(computed)' : displayOf(s, s.default);
}

export function renderSettingsReference(): string {
  const out: string[] = [];
  const sections = [...new Set((settingsTable as readonly SettingDef[]).map((s) => s.section))];
  for (const section of sections) {
    out.push(`### ${section}`, '', '| Setting | Flag | Environment | Default | Accepted | What it does |', '|---|---|---|---|---|---|');
    for (const s of (settingsTable as readonly SettingDef[]).filter((x) => x.section === section)) {
      const flag = s.positional ? `\`${s.positional}\` (positional)` : `\`--${kebab(s.name)}\`${s.short ? ` / \`-${s.short}\`` : ''}`;
      const env =
        envNamesOf(s)
          .map((e) => `\`${e}\``)
          .join(', ') || '—';
      const key = s.action ? `${s.name} (CLI only)` : s.cliOnly ? `${s.name} (not a config key)` : `\`${s.name}\``;
      const cell = (t: string) => t.replace(/\|/g, '\\|');
      out.push(`| ${key} | ${flag} | ${env} | ${cell(defaultText(s))} | ${cell(s.accepted)} | ${cell(s.doc)} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** README.md with the reference between the markers replaced by a fresh rendering. */
export function readmeWithReference(readme: string): string {
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md lacks the settings markers ${START} … ${END}`);
  return readme.slice(0, a + START.length) + '\n\n' + renderSettingsReference() + '\n' + readme.slice(b);
}

if (process.argv.includes('--write')) {
  const readme = readFileSync(README, 'utf8');
  writeFileSync(README, readmeWithReference(readme));
  console.log('README.md settings reference updated');
}
