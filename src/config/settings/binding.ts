// Settings table, section Binding: where the server listens, and its UNIX socket files.
import { formatBind, parseBind, type BindSpec } from '../../listeners/bind-spec.js';
import { passedSockets } from '../../listeners/systemd.js';
import { def } from './definition.js';
import { bindList, fileMode, integer, InvalidValue, octal, optionalText } from './parsers.js';

/** PORT (Heroku-style) sets the default bind; a PORT that is not a port is an error, not ignored. */
function portFromEnv(env: NodeJS.ProcessEnv): number {
  const raw = env.PORT;
  if (raw === undefined || raw.trim() === '') return 8000;
  const port = /^\s*\d{1,5}\s*$/.test(raw) ? Number(raw) : NaN;
  if (port >= 1 && port <= 65535) return port;
  throw new InvalidValue(
    `PORT is ${JSON.stringify(raw)} in the environment, which is not a TCP port (an integer from 1 to 65535). PORT sets the default bind 127.0.0.1:$PORT: fix or unset PORT, or give --bind.`,
  );
}

/** The sockets systemd passed, if any; else 127.0.0.1:8000, or 127.0.0.1:$PORT. */
function defaultBind(env: NodeJS.ProcessEnv, note: (what: string) => void): BindSpec[] {
  if (passedSockets(env).length > 0) return [parseBind('systemd')];
  const port = portFromEnv(env);
  if (env.PORT?.trim()) note(`PORT=${env.PORT.trim()}`);
  return [parseBind(`127.0.0.1:${port}`)];
}

export const bindingSettings = [
  def({
    name: 'bind',
    section: 'Binding',
    short: 'b',
    kind: 'list',
    default: defaultBind,
    defaultDoc: 'the sockets systemd passed, if any; else 127.0.0.1:8000 (127.0.0.1:$PORT when PORT is set)',
    accepted: 'unix:PATH, HOST:PORT, [IPv6]:PORT, fd://N, systemd or systemd:NAME; repeat the flag for several',
    parse: bindList,
    doc: 'Where to listen. Repeat for several binds; all workers serve all of them.',
    display: (binds) => binds.map(formatBind).join(', '),
  }),
  def({
    name: 'backlog',
    section: 'Binding',
    kind: 'value',
    default: 2048,
    accepted: 'an integer from 1 to 65535 (the kernel caps it at net.core.somaxconn)',
    parse: integer(1, 65535),
    doc: 'Length of the listen queue: connections waiting while every worker is busy or restarting.',
  }),
  def({
    name: 'socketMode',
    section: 'Binding',
    kind: 'value',
    default: 0o660,
    accepted: 'an octal file mode such as 0660 or 0600 (no more than 4 octal digits)',
    parse: fileMode,
    doc: 'Permissions of UNIX socket files. 0660 lets a proxy user in the socket group connect and nobody else.',
    display: octal,
  }),
  def({
    name: 'socketUser',
    section: 'Binding',
    kind: 'value',
    default: null as string | null,
    accepted: 'a user name or numeric uid',
    parse: optionalText,
    doc: 'Owner of UNIX socket files (needs privileges to change).',
  }),
  def({
    name: 'socketGroup',
    section: 'Binding',
    kind: 'value',
    default: null as string | null,
    accepted: 'a group name or numeric gid',
    parse: optionalText,
    doc: "Group of UNIX socket files: the proxy's group (e.g. www-data) so that nginx can connect.",
  }),
];
