// `ws-proxy-kit init --target kubernetes`: a Deployment whose pod runs nginx and the app as
// two containers sharing the app's UNIX socket through an emptyDir volume, a Service, a
// PodDisruptionBudget and the nginx site as a ConfigMap. The timings agree with each other:
//
//   SIGTERM ─► readiness 503 at once ─► drain window (--drain-seconds, app keeps serving,
//   the endpoints controller removes the pod) ─► graceful stop (--graceful-timeout)
//   terminationGracePeriodSeconds = drain + graceful + margin; nginx's preStop keeps nginx
//   up through the drain window, then quits gracefully (it waits for in-flight requests).
//
// Tested by test/kubernetes.test.ts (schema validation) and e2e/k8s-pod.serial.test.ts.
import { join } from 'node:path';
import { Document } from 'yaml';
import { ConfigError } from '../config/load.js';
import { renderNginxSite, type NginxSiteOptions } from './nginx-site.js';
import { deployOptionsFrom, type DeployOptions } from './options.js';
import type { DeployPlan } from './plan.js';
import { nginxCheck } from './validate.js';

export interface KubernetesOptions extends NginxSiteOptions {
  /** The app's container image (it holds the app and node_modules/ws-proxy-kit under /app). */
  image: string;
  /** nginx image running as a non-root user, so fsGroup reaches its workers (see below). */
  nginxImage: string;
  replicas: number;
  /** --drain-seconds for the app: at least the time Kubernetes needs to stop routing to the pod. */
  drainSeconds: number;
}

/** nginx-unprivileged listens here and runs as uid/gid 101 (no `user` switch that would drop groups). */
export const NGINX_PORT = 8080;
export const NGINX_UID = 101;
/** The app's health endpoints (--health-bind): probes never go through nginx or the app bind. */
export const HEALTH_PORT = 9000;
/** The app runs as this uid/gid; the socket's group is the pod's fsGroup, which nginx also has. */
export const APP_UID = 1000;
export const SOCKET_GID = 2000;
/** Readiness probing: a pod stops being ready within PERIOD × FAILURES of its SIGTERM. */
export const READINESS_PERIOD = 2;
export const READINESS_FAILURES = 2;
/** Time for the endpoints controller and kube-proxy / ingress to drop a pod that went unready. */
export const ENDPOINTS_PROPAGATION = 5;
/** terminationGracePeriodSeconds beyond drain + graceful (the master itself waits graceful + 1). */
export const TERMINATION_MARGIN = 5;

/** The shortest drain window that lets Kubernetes stop routing to a pod before it stops accepting. */
export function minimumDrainSeconds(): number {
  return READINESS_PERIOD * READINESS_FAILURES + ENDPOINTS_PROPAGATION;
}

export function terminationGracePeriod(o: Pick<KubernetesOptions, 'drainSeconds' | 'gracefulTimeout'>): number {
  return Math.ceil(o.drainSeconds) + Math.ceil(o.gracefulTimeout) + TERMINATION_MARGIN;
}

/** The socket lives in the emptyDir mounted at its directory in both containers. */
function socketDir(o: DeployOptions): string {
  return o.socketPath.slice(0, o.socketPath.lastIndexOf('/')) || '/';
}

/** The app container's command line: every timing the other manifests rely on is explicit. */
export function appArgs(o: KubernetesOptions): string[] {
  return [
    'serve',
    o.app,
    '--bind',
    `unix:${o.socketPath}`,
    '--socket-mode',
    '0660',
    '--socket-group',
    String(SOCKET_GID),
    '--workers',
    String(o.workers),
    '--timeout',
    String(o.timeout),
    '--graceful-timeout',
    String(o.gracefulTimeout),
    '--keep-alive',
    String(o.keepAlive),
    '--drain-seconds',
    String(o.drainSeconds),
    '--health-bind',
    `0.0.0.0:${HEALTH_PORT}`,
    '--log-format',
    'json',
  ];
}

/** The pod's nginx site (nginx/site.conf, as for one host), listening on NGINX_PORT. */
function renderPodSite(o: KubernetesOptions): string {
  return renderNginxSite(
    { ...o, serverName: '_', tls: false, listenHttp: [String(NGINX_PORT)] },
    { command: 'ws-proxy-kit init --target kubernetes', generatedWith: "the app container's command line in the same Deployment" },
  );
}

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [k: string]: unknown };

/** The manifests, as plain objects in apply order. */
export function kubernetesManifests(o: KubernetesOptions): Manifest[] {
  const labels = { 'app.kubernetes.io/name': o.name, 'app.kubernetes.io/managed-by': 'ws-proxy-kit-init' };
  const selector = { 'app.kubernetes.io/name': o.name };
  const dir = socketDir(o);
  const socketVolume = { name: 'app-socket', mountPath: dir };
  const mb = (n: number) => `${n}Mi`;

  const configMap: Manifest = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: `${o.name}-nginx`, labels },
    data: { 'default.conf': renderPodSite(o) },
  };

  const deployment: Manifest = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: o.name, labels },
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: selector },
      // A new pod is ready before an old one stops: capacity never drops during a rollout.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: terminationGracePeriod(o),
          securityContext: {
            runAsNonRoot: true,
            // The emptyDir is group-owned by SOCKET_GID (setgid), and every container's processes
            // get it as a supplementary group: the app creates the socket 0660 in that group and
            // nginx's workers (uid 101, no user switch in the unprivileged image) can connect.
            fsGroup: SOCKET_GID,
            supplementalGroups: [SOCKET_GID],
            seccompProfile: { type: 'RuntimeDefault' },
          },
          volumes: [
            // The app's socket: memory-backed, private to the pod, gone with it.
            { name: 'app-socket', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
            { name: 'nginx-site', configMap: { name: `${o.name}-nginx` } },
          ],
          containers: [
            {
              name: 'app',
              image: o.image,
              workingDir: o.workingDirectory,
              command: ['node', o.cliPath],
              args: appArgs(o),
              ports: [{ name: 'health', containerPort: HEALTH_PORT, protocol: 'TCP' }],
              volumeMounts: [socketVolume],
              securityContext: { runAsUser: APP_UID, runAsGroup: APP_UID, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
              resources: {
                requests: { cpu: `${o.workers * 250}m`, memory: mb(64 + o.workers * 128) },
                limits: { memory: mb(128 + o.workers * 256) },
              },
              // Probes go to --health-bind, answered by the workers before the app.
              startupProbe: { httpGet: { path: '/health', port: 'health' }, periodSeconds: 2, failureThreshold: 30, timeoutSeconds: 2 },
              // 503 from the first instant of SIGTERM: the pod leaves the Service's endpoints
              // while the app still serves (drain window).
              readinessProbe: { httpGet: { path: '/ready', port: 'health' }, periodSeconds: READINESS_PERIOD, failureThreshold: READINESS_FAILURES, successThreshold: 1, timeoutSeconds: 1 },
              // Liveness: a worker's event loop answers. (A worker blocked past --timeout is
              // already replaced by the master; this catches a stuck pod as a whole.)
              livenessProbe: { httpGet: { path: '/health', port: 'health' }, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 5 },
              // No preStop: SIGTERM itself starts the drain window (--drain-seconds).
            },
            {
              name: 'nginx',
              image: o.nginxImage,
              ports: [{ name: 'http', containerPort: NGINX_PORT, protocol: 'TCP' }],
              volumeMounts: [socketVolume, { name: 'nginx-site', mountPath: '/etc/nginx/conf.d', readOnly: true }],
              securityContext: { runAsUser: NGINX_UID, runAsGroup: NGINX_UID, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
              resources: { requests: { cpu: '50m', memory: '32Mi' }, limits: { memory: '128Mi' } },
              readinessProbe: { tcpSocket: { port: 'http' }, periodSeconds: 5 },
              livenessProbe: { tcpSocket: { port: 'http' }, periodSeconds: 10, failureThreshold: 3 },
              lifecycle: {
                // nginx's SIGTERM is a fast shutdown: keep it serving through the drain window,
                // then quit gracefully (it waits for in-flight requests; the app finishes them
                // within --graceful-timeout). The kubelet's SIGTERM comes after this returns.
                preStop: {
                  exec: { command: ['/bin/sh', '-c', `sleep ${Math.ceil(o.drainSeconds)}; nginx -s quit; while [ -e /tmp/nginx.pid ]; do sleep 1; done`] },
                },
              },
            },
          ],
        },
      },
    },
  };

  const service: Manifest = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: o.name, labels },
    spec: { selector, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
  };

  const pdb: Manifest = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: o.name, labels },
    // Voluntary evictions (node drains, upgrades) take one pod at a time.
    spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
  };

  return [configMap, deployment, service, pdb];
}

/** The manifests as one multi-document YAML file, each with a comment saying what it is for. */
export function renderKubernetes(o: KubernetesOptions): string {
  const notes: Record<string, string> = {
    ConfigMap: ` The nginx site (nginx/site.conf, as for one host), mounted as nginx's conf.d.`,
    Deployment: [
      ` ${o.name}: nginx and ws-proxy-kit in one pod, sharing ${o.socketPath} through an emptyDir.`,
      ` Stop timeline: SIGTERM -> /ready answers 503 (pod leaves the endpoints within`,
      ` ${READINESS_PERIOD * READINESS_FAILURES} s + propagation) while the app serves ${o.drainSeconds} s more (--drain-seconds),`,
      ` then finishes in-flight requests within ${o.gracefulTimeout} s (--graceful-timeout);`,
      ` terminationGracePeriodSeconds = ${terminationGracePeriod(o)}. Generated by \`ws-proxy-kit init --target kubernetes\`.`,
    ].join('\n'),
    Service: ` Routes to ready pods only (readiness = the app's /ready).`,
    PodDisruptionBudget: ` Node drains evict at most one ${o.name} pod at a time.`,
  };
  return kubernetesManifests(o)
    .map((m) => {
      const doc = new Document(m, { aliasDuplicateObjects: false });
      doc.commentBefore = notes[m.kind] ?? null;
      return doc.toString({ lineWidth: 0 });
    })
    .join('---\n');
}

export const kubernetesPlan: DeployPlan<KubernetesOptions> = {
  target: 'kubernetes',

  options(flags, cwd, settings) {
    const drainSeconds = settings.drainSeconds ?? 10;
    if (drainSeconds < minimumDrainSeconds()) {
      throw new ConfigError(
        `--drain-seconds ${drainSeconds} is shorter than Kubernetes needs to stop routing to a stopping pod (${minimumDrainSeconds()} s: readiness probes, then endpoint updates). Use at least ${minimumDrainSeconds()}.`,
      );
    }
    const replicas = flags.replicas === undefined ? 2 : Number(flags.replicas);
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 1000)
      throw new ConfigError(`--replicas ${flags.replicas}: give an integer from 1 to 1000.`);
    const o = deployOptionsFrom(flags, cwd, settings);
    return {
      ...o,
      workers: flags.workers === undefined ? 2 : o.workers,
      // Paths inside the app image, not on this machine.
      workingDirectory: '/app',
      cliPath: '/app/node_modules/ws-proxy-kit/dist/cli/main.js',
      nodePath: 'node',
      image: flags.image ?? `${o.name}:latest`,
      nginxImage: flags.nginxImage ?? 'nginxinc/nginx-unprivileged:1.27-alpine',
      replicas,
      drainSeconds,
    };
  },

  files: (o) => [{ name: `${o.name}.k8s.yaml`, content: renderKubernetes(o) }],

  validate: (_files, o) => [nginxCheck({ ...o, tls: false }, renderPodSite)],

  nextSteps: (_o, files, outDir) =>
    `Next: build an image with the app and node_modules/ws-proxy-kit in /app, then\n  kubectl apply -f ${join(outDir, files[0]!.name)}\n`,
};
