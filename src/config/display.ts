// How a setting's value reads for people (--print-config, `ctl status`, docs): the row's display().
import { displayOf, settingsByName } from './settings.js';

export function displayValue(name: string, value: unknown): string {
  return displayOf(settingsByName.get(name), value);
}
