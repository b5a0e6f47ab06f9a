// `ws-proxy-kit ctl [--socket PATH] [--json] COMMAND [ARGS]`: talks to a running server's
// control socket. Without --socket, the path is worked out from the same settings the
// server uses (flags, config file, environment), so running it where the server runs works.
import { controlSocketPath, sendControl } from '../arbiter/control-socket.js';
import { ConfigError, type LoadedConfig } from '../config/load.js';
import type { ExtraFlags } from './args.js';

export const ctlFlags: ExtraFlags = {
  socket: { type: 'string', doc: 'the control socket (default: worked out from the settings, as the server does)' },
  json: { type: 'boolean', doc: 'print the raw JSON answer' },
};

function table(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return '(no workers)\n';
  const cols = Object.keys(rows[0]!);
  const cells = rows.map((r) => cols.map((c) => String(r[c] ?? '')));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

function human(command: string, result: unknown): string {
  if (command === 'workers' && Array.isArray(result)) return table(result as Record<string, unknown>[]);
  if (result && typeof result === 'object') {
    const lines: string[] = [];
    for (const [k, v] of Object.entries(result as Record<string, unknown>)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        lines.push(`${k}:`);
        for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) lines.push(`  ${k2}: ${String(v2)}`);
      } else lines.push(`${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`);
    }
    return lines.join('\n') + '\n';
  }
  return String(result) + '\n';
}

export async function runCtl(positionals: string[], extra: { socket?: string; json?: boolean }, config: LoadedConfig): Promise<number> {
  const [command, ...args] = positionals;
  if (!command)
    throw new ConfigError(
      'ctl needs a command: status, workers, reload, workers add [N], workers remove [N], worker kill PID, reopen-logs, shutdown [graceful|quick].',
    );
  const path = extra.socket ?? controlSocketPath(config.settings);
  if (!path) throw new ConfigError('The control socket is off (--control-socket off); give --socket PATH.');
  let reply;
  try {
    reply = await sendControl(path, { command, args });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such socket (is the server running, with the same settings?)'
        : code === 'ECONNREFUSED'
          ? 'nobody listens on it (stale socket file)'
          : code === 'EACCES'
            ? "permission denied (the socket is mode 0600: run as the server's user)"
            : (err as Error).message;
    process.stderr.write(`ws-proxy-kit ctl: cannot reach ${path}: ${why}\n`);
    return 1;
  }
  if (!reply.ok) {
    process.stderr.write(`ws-proxy-kit ctl: ${reply.error}\n`);
    return 1;
  }
  process.stdout.write(extra.json ? JSON.stringify(reply.result, null, 2) + '\n' : human(command, reply.result));
  return 0;
}
