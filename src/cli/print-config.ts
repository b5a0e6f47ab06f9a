// --print-config: every setting, its effective value and where it came from.
import { configRows, formatConfigRows } from '../config/display.js';
import type { LoadedConfig } from '../config/load.js';

export function printConfig(config: LoadedConfig): string {
  return formatConfigRows(configRows(config));
}
