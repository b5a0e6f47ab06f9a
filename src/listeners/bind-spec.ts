// Parsing of --bind values. Kept free of I/O so the settings table can validate with it.
import { isIP } from 'node:net';

export type BindSpec =
  | { kind: 'unix'; path: string; text: string }
  | { kind: 'tcp'; host: string; port: number; text: string }
  | { kind: 'fd'; fd: number; text: string }
  | { kind: 'systemd'; name: string | null; text: string };

export class BindSyntaxError extends Error {}

export function parseBind(value: string): BindSpec {
  const text = value.trim();
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (!path.startsWith('/') && !path.startsWith('.')) {
      // Relative paths are allowed but must be explicit about it, like Gunicorn's unix:./x.sock.
      if (path === '') throw new BindSyntaxError(`"${text}": unix: needs a path`);
    }
    if (Buffer.byteLength(path) > 107) throw new BindSyntaxError(`"${text}": a UNIX socket path must be at most 107 bytes`);
    return { kind: 'unix', path, text };
  }
  if (text.startsWith('fd://')) {
    const fd = Number(text.slice('fd://'.length));
    if (!Number.isInteger(fd) || fd < 0) throw new BindSyntaxError(`"${text}": fd:// needs a file descriptor number`);
    return { kind: 'fd', fd, text };
  }
  if (text === 'systemd' || text.startsWith('systemd:')) {
    const name = text === 'systemd' ? null : text.slice('systemd:'.length) || null;
    return { kind: 'systemd', name, text };
  }
  const m = /^(?:\[([0-9a-fA-F:.%\w]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (m) {
    const host = m[1] ?? (m[2] || '0.0.0.0');
    const port = Number(m[3]);
    if (port > 65535) throw new BindSyntaxError(`"${text}": port must be at most 65535`);
    if (m[1] !== undefined && isIP(host) !== 6) throw new BindSyntaxError(`"${text}": [${host}] is not an IPv6 address`);
    return { kind: 'tcp', host, port, text };
  }
  throw new BindSyntaxError(`"${text}" is not a bind`);
}

export function formatBind(spec: BindSpec): string {
  switch (spec.kind) {
    case 'unix':
      return `unix:${spec.path}`;
    case 'tcp':
      return isIP(spec.host) === 6 ? `[${spec.host}]:${spec.port}` : `${spec.host}:${spec.port}`;
    case 'fd':
      return `fd://${spec.fd}`;
    case 'systemd':
      return spec.name ? `systemd:${spec.name}` : 'systemd';
  }
}
