// The ws-proxy-kit.config.mjs `init` writes, for every target: the settings init decides,
// each under its one-line doc from the settings table (src/config/settings.ts) and, where
// the value is a deployment decision, a line on why. Each value is checked by the
// setting's own parser, so a generated file always loads.
import { ConfigError } from '../config/load.js';
import { settingsByName, type SettingName } from '../config/settings.js';

type ConfigValue = string | number | boolean | readonly string[];

interface ConfigEntry {
  setting: SettingName;
  value: ConfigValue;
  /** Why init chose this value, when it follows from the rest of the deployment. */
  why?: string;
}

const WIDTH = 96;

/** `text` as `// ` comment lines of at most WIDTH characters (code in backticks kept whole), indented by `indent`. */
function comment(text: string, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.match(/`[^`]*`\S*|\S+/g) ?? []) {
    if (line && indent.length + 3 + line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.map((l) => `${indent}// ${l}`);
}

function literal(value: ConfigValue): string {
  return Array.isArray(value) ? `[${value.map((v) => JSON.stringify(v)).join(', ')}]` : JSON.stringify(value);
}

/** The config file: `header` as its opening comment, then one documented key per entry. */
export function renderConfigFile(header: string, entries: readonly ConfigEntry[]): string {
  const body = entries.map(({ setting, value, why }) => {
    const def = settingsByName.get(setting)!;
    try {
      def.parse(value);
    } catch {
      throw new ConfigError(`${setting}: ${JSON.stringify(value)} is not ${def.accepted}.`);
    }
    return [...comment(def.doc, '  '), ...(why ? comment(why, '  ') : []), `  ${setting}: ${literal(value)},`].join('\n');
  });
  return `${comment(header, '').join('\n')}\nexport default {\n${body.join('\n\n')}\n};\n`;
}
