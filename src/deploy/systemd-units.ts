// The systemd .socket/.service pair for one app (rendered by `init`), and the generic
// ws-proxy-kit@.socket/.service templates in systemd/ (rendered from the same code, so a
// test can check that the checked-in templates are current). docs/systemd.md explains them.
import { posix } from 'node:path';
import { serverRuntimeDir, type DeployOptions } from './options.js';

export interface SystemdUnits {
  socketUnit: string;
  serviceUnit: string;
  /** File names to install under /etc/systemd/system/. */
  socketFile: string;
  serviceFile: string;
  /** Same as socketUnit / serviceUnit (shorter names some callers use). */
  socket: string;
  service: string;
}

/** Seconds systemd gives a stop beyond our graceful timeout (the arbiter itself waits +1 s). */
const STOP_MARGIN_SEC = 10;
/** systemd's TimeoutStopSec for a graceful timeout: above it, so a graceful stop is never cut short. */
export function timeoutStopSec(gracefulTimeout: number): number {
  return Math.ceil(gracefulTimeout) + STOP_MARGIN_SEC;
}
/** Watchdog slack beyond --timeout: a hung worker is detected after `timeout`, then replaced (one boot). */
const WATCHDOG_SLACK_SEC = 30;

interface RenderNames {
  socketFile: string;
  serviceFile: string;
  /** true for the @ templates: values may carry %i; false: % in values is escaped. */
  template: boolean;
}

/** Escapes systemd specifiers (%) and quotes a value with spaces for an Exec line. */
function execArg(value: string, template: boolean): string {
  // $ would start a variable, % a specifier; quotes keep spaces in one argument.
  const v = (template ? value : value.replace(/%/g, '%%')).replace(/\$/g, '$$$$');
  return /[\s"'\\;]/.test(v) ? `"${v.replace(/(["\\])/g, '\\$1')}"` : v;
}

function plain(value: string, template: boolean): string {
  return template ? value : value.replace(/%/g, '%%');
}

/** The RuntimeDirectory= (relative to /run) for a socket under /run, or null if it lives elsewhere. */
function runtimeDirectoryOf(socketPath: string): string | null {
  const dir = serverRuntimeDir(socketPath);
  return dir === null ? null : posix.relative('/run', dir);
}

/** Where the .socket listens: the app's UNIX socket (default), or TCP on an app host that nginx reaches over the network. */
export interface TcpListen {
  /** HOST:PORT. */
  bind: string;
  /** The nginx host's address: the only peer the app trusts for X-Forwarded-*. */
  proxyAddress: string;
}

/** The [Socket] lines up to Backlog=: the listening address, its name and, for a UNIX socket, its owner and mode. */
function socketListen(o: DeployOptions, t: boolean, tcp: TcpListen | undefined): string {
  const named = `# The app finds it with --bind systemd (or --bind systemd:app).
FileDescriptorName=app
`;
  if (tcp)
    return `# TCP, reached by nginx on the proxy host (${tcp.proxyAddress}). Firewall it to that host:
# the app trusts X-Forwarded-For from ${tcp.proxyAddress} only.
ListenStream=${plain(tcp.bind, t)}
${named}`;
  return `ListenStream=${plain(o.socketPath, t)}
${named}# Owned by the app's user and nginx's group, mode 0660: nginx's workers can connect,
# other local users cannot.
SocketUser=${plain(o.user, t)}
SocketGroup=${plain(o.proxyGroup, t)}
SocketMode=0660
# Missing parent directories are created root-owned with this mode; nginx needs to
# traverse them (x), nothing else does.
DirectoryMode=0755
`;
}

function render(o: DeployOptions, names: RenderNames, listen?: TcpListen): { socketUnit: string; serviceUnit: string } {
  const t = names.template;
  const runtimeDir = runtimeDirectoryOf(o.socketPath);
  const stopSec = timeoutStopSec(o.gracefulTimeout);
  const watchdogSec = (o.timeout > 0 ? Math.ceil(o.timeout) : 0) + WATCHDOG_SLACK_SEC;
  const underHome = /^\/(home|root|run\/user)(\/|$)/.test(o.workingDirectory);
  const what = t ? 'ws-proxy-kit app %i' : `ws-proxy-kit app ${o.name}`;

  const socketUnit = `# ${names.socketFile}: the listening socket of the ${what}.
# systemd creates and holds it, so nginx can connect before the app runs (the first
# connection starts ${names.serviceFile}) and connections queue, not fail, while the app
# restarts. See docs/systemd.md.
[Unit]
Description=Socket of the ${what}
# No PartOf=${names.serviceFile}: restarting the service must not close the socket, or
# connections would be refused during the restart.

[Socket]
${socketListen(o, t, listen)}# Connections wait here while the app (re)starts.
Backlog=2048

[Install]
WantedBy=sockets.target
`;

  const serviceUnit = `# ${names.serviceFile}: the ${what}, a ws-proxy-kit master and its workers.
# Started by ${names.socketFile} (socket activation) or at boot when enabled. See docs/systemd.md.
[Unit]
Description=${what}
Requires=${names.socketFile}
After=${names.socketFile} network.target

[Service]
# The master says READY=1 once all workers serve, STATUS= with worker counts, STOPPING=1.
# (systemd 253+ may use Type=notify-reload and drop ExecReload: the master already answers
# SIGHUP with RELOADING=1, but a refused reload then shows only in STATUS=.)
Type=notify
# Only the master may notify; workers never see NOTIFY_SOCKET.
NotifyAccess=main
User=${plain(o.user, t)}
Group=${plain(o.group, t)}
WorkingDirectory=${plain(o.workingDirectory, t)}
Environment=NODE_ENV=production
# --bind systemd: serve the socket systemd passes (overrides bind in the config file).
ExecStart=${execArg(o.nodePath, t)} ${execArg(o.cliPath, t)} serve --config ${execArg(o.configPath, t)} --bind systemd
# Zero-downtime reload: new workers start, old ones drain once the new are ready. ctl waits
# for it: \`systemctl reload\` returns once the new workers serve, and fails when the reload
# was refused (new workers that cannot boot, a canary rolled back: --reload-canary).
ExecReload=${execArg(o.nodePath, t)} ${execArg(o.cliPath, t)} ctl --config ${execArg(o.configPath, t)} reload
# SIGTERM to the master only; it drains its workers (graceful timeout ${o.gracefulTimeout} s).
# Whatever is left when the master exits, or after TimeoutStopSec, gets SIGKILL.
KillMode=mixed
KillSignal=SIGTERM
# Above the graceful timeout, so systemd never cuts a graceful stop short.
TimeoutStopSec=${stopSec}
# The master pings every WatchdogSec/2 while a worker answers. A hung worker is replaced
# by the master after --timeout (${o.timeout} s); this is the net under the master itself.
WatchdogSec=${watchdogSec}
Restart=on-failure
RestartSec=1
${runtimeDir !== null ? `# /run/${plain(runtimeDir, t)}, owned by ${plain(o.user, t)}: the control socket. A subdirectory on purpose:
# systemd re-owns a RuntimeDirectory and all it holds to User= on every start, which
# would take the socket file (group ${plain(o.proxyGroup, t)}) away from nginx.
RuntimeDirectory=${plain(runtimeDir, t)}
RuntimeDirectoryMode=0755
RuntimeDirectoryPreserve=yes
` : `# The socket is not under /run, so no RuntimeDirectory= is managed here.
`}UMask=0027

# Hardening: what a Node.js HTTP server tolerates. It binds nothing itself (systemd
# passes the socket), needs no privileges and writes nowhere but its runtime directory.
# Cannot gain privileges through setuid binaries or file capabilities.
NoNewPrivileges=yes
# The whole file system is read-only except /dev, /proc, /sys and RuntimeDirectory=.
# If the app writes files, add StateDirectory=, LogsDirectory= or ReadWritePaths=.
ProtectSystem=strict
${underHome ? `# The app lives under a home directory: read-only rather than hidden.
ProtectHome=read-only` : `# /home, /root and /run/user are invisible.
ProtectHome=yes`}
# Private /tmp and /var/tmp, emptied when the service stops.
PrivateTmp=yes
# Only /dev/null, /dev/zero, /dev/urandom and the like.
PrivateDevices=yes
# No writes to /proc/sys, /sys, kernel modules, the kernel log, cgroups, the clock or
# the hostname: nothing an app server does.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# Other users' processes are invisible in /proc. (Not ProcSubset=pid: the master reads
# /proc/net/unix to name the socket it was passed.)
ProtectProc=invisible
# Node needs UNIX sockets (IPC with workers, the notify socket) and IP for outgoing
# connections. Add AF_NETLINK if the app calls os.networkInterfaces().
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
# No capabilities at all: the socket comes from systemd, ports below 1024 are not ours.
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
# The set systemd recommends for ordinary services; a call outside it fails with EPERM
# instead of killing the process.
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
# Not MemoryDenyWriteExecute=yes: V8's JIT needs writable and executable memory, and
# Node aborts at start-up without it.

[Install]
WantedBy=multi-user.target
Also=${names.socketFile}
`;
  return { socketUnit, serviceUnit };
}

/** The per-app pair `init` installs as NAME.socket and NAME.service; `tcp` for an app host of the hosts target. */
export function renderSystemdUnits(o: DeployOptions, tcp?: TcpListen): SystemdUnits {
  const socketFile = `${o.name}.socket`;
  const serviceFile = `${o.name}.service`;
  const { socketUnit, serviceUnit } = render(o, { socketFile, serviceFile, template: false }, tcp);
  return { socketUnit, serviceUnit, socketFile, serviceFile, socket: socketUnit, service: serviceUnit };
}

/** What the generic ws-proxy-kit@.socket/.service templates assume about an instance %i. */
export const TEMPLATE_OPTIONS: DeployOptions = {
  name: 'ws-proxy-kit@%i',
  app: 'app.mjs',
  workingDirectory: '/srv/%i',
  user: '%i',
  group: '%i',
  proxyGroup: 'www-data',
  socketPath: '/run/ws-proxy-kit-%i/app.sock',
  workers: 2,
  gracefulTimeout: 30,
  timeout: 30,
  keepAlive: 75,
  serverName: '_',
  tls: false,
  nodePath: '/usr/bin/node',
  cliPath: '/srv/%i/node_modules/ws-proxy-kit/dist/cli/main.js',
  configPath: '/srv/%i/ws-proxy-kit.config.mjs',
  clientMaxBodySize: '10m',
};

/** The checked-in systemd/ws-proxy-kit@.socket and @.service. */
export function renderTemplateUnits(): SystemdUnits {
  const socketFile = 'ws-proxy-kit@%i.socket';
  const serviceFile = 'ws-proxy-kit@%i.service';
  const { socketUnit, serviceUnit } = render(TEMPLATE_OPTIONS, { socketFile, serviceFile, template: true });
  return { socketUnit, serviceUnit, socketFile: 'ws-proxy-kit@.socket', serviceFile: 'ws-proxy-kit@.service', socket: socketUnit, service: serviceUnit };
}
