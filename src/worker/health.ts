// Health endpoints answered by the worker itself, before the app (and so before its
// middleware, auth or logging): liveness and readiness for load balancers and Kubernetes.
//
// - liveness (--health-path): 200 whenever the worker answers at all — a blocked event
//   loop answers nothing, and the probe times out;
// - readiness (--ready-path): 200 once the arbiter says the whole pool is booted, 503 while
//   it boots, and from the first instant of a stop (SIGTERM: the drain window) or of this
//   worker's own draining.
// With --health-bind the master binds one more socket (like an app bind) and every worker
// serves only these two paths on it (default /health and /ready), so probes never reach the
// app's address and an app bind can stay a UNIX socket that only nginx can open.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Settings } from '../config/settings.js';
import type { Logger } from '../log/logger.js';

export class HealthResponder {
  private poolReady = false;
  private notReadyReason = 'booting';

  constructor(
    private readonly healthPath: string | null,
    private readonly readyPath: string | null,
    /** This worker is draining (stop, reload, recycling): not ready whatever the pool says. */
    private readonly workerDraining: () => boolean,
  ) {}

  /** Responders for a worker, or undefined when no health setting is on (then nothing is checked per request). */
  static fromSettings(s: Pick<Settings, 'healthPath' | 'readyPath'>, workerDraining: () => boolean): HealthResponder | undefined {
    if (!s.healthPath && !s.readyPath) return undefined;
    return new HealthResponder(s.healthPath, s.readyPath, workerDraining);
  }

  /** What the arbiter said (MasterMessage 'readiness'). */
  setPoolReadiness(ready: boolean, reason: string): void {
    this.poolReady = ready;
    this.notReadyReason = reason;
  }

  get ready(): boolean {
    return this.poolReady && !this.workerDraining();
  }

  /** Answers the request when its path is a health path (GET/HEAD); returns whether it did. */
  answer(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path === this.healthPath) {
      send(res, 200, 'ok\n', this.workerDraining());
      return true;
    }
    if (path === this.readyPath) {
      if (this.ready) send(res, 200, 'ready\n', false);
      else send(res, 503, `not ready: ${this.workerDraining() ? 'draining' : this.notReadyReason}\n`, this.workerDraining());
      return true;
    }
    return false;
  }
}

function send(res: ServerResponse, status: number, body: string, close: boolean): void {
  if (close) res.shouldKeepAlive = false;
  res.writeHead(status, { 'content-type': 'text/plain', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * Serves the health paths on the extra fd the master bound for --health-bind; anything
 * else is 404. The server lives as long as the worker (it is not closed when draining:
 * a probe then reads 503, not a refused connection).
 */
export async function serveHealthBind(
  settings: Pick<Settings, 'healthPath' | 'readyPath' | 'backlog'>,
  fd: number,
  workerDraining: () => boolean,
  log: Logger,
): Promise<HealthResponder> {
  const responder = new HealthResponder(settings.healthPath ?? '/health', settings.readyPath ?? '/ready', workerDraining);
  const server = http.createServer({ keepAliveTimeout: 5000 }, (req, res) => {
    if (responder.answer(req, res)) return;
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('Not Found: this address only answers the health paths\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd, backlog: settings.backlog }, () => {
      server.off('error', reject);
      server.on('error', (err) => log.error({ err }, 'health endpoint error'));
      resolve();
    });
  });
  server.unref(); // never what keeps a draining worker alive
  return responder;
}
