// How a setting's value reads for people (--print-config, `ctl status`, docs).
import { formatBind, type BindSpec } from '../listeners/bind-spec.js';

export function displayValue(name: string, value: unknown): string {
  if (name === 'bind') return (value as BindSpec[]).map(formatBind).join(', ');
  if (name === 'socketMode' && typeof value === 'number') return '0' + value.toString(8);
  if (value === null) return '(none)';
  if (Array.isArray(value)) return value.length ? value.join(', ') : '(none)';
  return String(value);
}
