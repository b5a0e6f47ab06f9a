// What `ws-proxy-kit init` knows about a deployment; every generated file (nginx site,
// systemd units, config file, manifests) is rendered from one of these so they agree.
export interface DeployOptions {
  /** Service name: unit names, nginx upstream name, runtime directory. [a-z0-9-] */
  name: string;
  /** App module path as given to ws-proxy-kit, relative to workingDirectory. */
  app: string;
  /** Where the app lives on the server (WorkingDirectory=). */
  workingDirectory: string;
  /** The user and group the app runs as. */
  user: string;
  group: string;
  /** The group nginx's workers run in (www-data on Debian): owns the socket so nginx can connect. */
  proxyGroup: string;
  /** The app's UNIX socket, e.g. /run/NAME/app.sock. */
  socketPath: string;
  workers: number;
  /** Seconds; mirror the server settings of the same names. */
  gracefulTimeout: number;
  timeout: number;
  keepAlive: number;
  /** nginx server_name. */
  serverName: string;
  tls: boolean;
  /** Absolute path of the node binary on the server. */
  nodePath: string;
  /** Absolute path of the ws-proxy-kit CLI entry on the server. */
  cliPath: string;
  /** Path of the generated ws-proxy-kit.config.mjs on the server. */
  configPath: string;
  /** Largest request body nginx accepts, nginx syntax (e.g. "10m"). */
  clientMaxBodySize: string;
}

/**
 * The directory the server itself writes to under systemd (control socket, pidfile): a
 * subdirectory of the socket's. systemd re-owns a RuntimeDirectory= and everything in it
 * to User= on every start, which must never reach the socket file: its group is nginx's.
 * null when the socket is not under /run (no RuntimeDirectory= then).
 */
export function serverRuntimeDir(socketPath: string): string | null {
  const dir = socketPath.slice(0, socketPath.lastIndexOf('/'));
  if (!dir.startsWith('/run/') || dir === '/run') return null;
  return `${dir}/server`;
}
