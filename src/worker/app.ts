// Loads the user's app and tells what kind it is (DESIGN.md, "The app contract").
import { existsSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
// @hono/node-server is imported only for fetch handlers: it weighs ~4 MB and ~90 ms per worker.
import type { getRequestListener as GetRequestListener } from '@hono/node-server';
import { trustedUrl, type ClientInfo, type RequestWithClientInfo } from '../proxy/trust.js';
import { parseAppSpec } from '../app-spec.js';

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => unknown;
export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => unknown;
export type AppKind = 'listener' | 'fetch' | 'node' | 'koa';

/** What an app's drain hook hears: why its worker drains, and the window to close its WebSocket clients in. */
export interface DrainInfo {
  reason: 'reload' | 'recycle' | 'stop';
  windowMs: number;
}
export type DrainListener = (info: DrainInfo) => unknown;

export interface LoadedApp {
  kind: AppKind;
  request: RequestListener | null;
  upgrade: UpgradeListener | null;
  /** `{ ..., drain(info) }`: told when its worker starts draining (WebSocket clients to close). */
  drain: DrainListener | null;
  /** For the boot log: "app.mjs:default (fetch handler)". */
  description: string;
}

export class AppLoadError extends Error {
  readonly code = 'EWSPK_APP';
}

function resolveModule(module: string, cwd: string): string {
  const asPath = resolve(cwd, module);
  if (existsSync(asPath)) return pathToFileURL(asPath).href;
  if (!module.startsWith('.') && !module.startsWith('/')) {
    try {
      return pathToFileURL(createRequire(join(cwd, 'noop.js')).resolve(module)).href;
    } catch {
      // reported below
    }
  }
  throw new AppLoadError(`The app module "${module}" was not found (looked for ${asPath}).`);
}

type FetchCallback = Parameters<typeof GetRequestListener>[0];

/** What a fetch handler gets as its second argument: @hono/node-server's bindings plus the resolved client. */
export interface FetchInfo {
  incoming: IncomingMessage;
  outgoing: ServerResponse;
  /** The client as resolved from the socket, PROXY header and trusted forwarding headers (docs/proxies.md). */
  clientInfo: ClientInfo;
}

/** Hands the fetch handler `info.clientInfo`, and a Request whose URL has the trusted scheme and host. */
function withClientInfo(fetch: FetchCallback): FetchCallback {
  return (request, env) => {
    const clientInfo = (env.incoming as Partial<RequestWithClientInfo>).clientInfo;
    if (!clientInfo) return fetch(request, env);
    const url = trustedUrl(request.url, clientInfo);
    const info: typeof env & { clientInfo: ClientInfo } = { ...env, clientInfo };
    return fetch(url ? new Request(url, request) : request, info);
  };
}

function drainOf(obj: Record<string, unknown>): DrainListener | null {
  return isFunction(obj.drain) ? (obj.drain.bind(obj) as DrainListener) : null;
}

function isFunction(v: unknown): v is (...args: unknown[]) => unknown {
  return typeof v === 'function';
}

export async function loadApp(spec: string, cwd: string, onFetchError?: (err: unknown) => void): Promise<LoadedApp> {
  const { module, exportName, call } = parseAppSpec(spec);
  const url = resolveModule(module, cwd);
  const ns = (await import(url)) as Record<string, unknown>;
  if (!(exportName in ns)) {
    const names = Object.keys(ns).join(', ') || 'none';
    throw new AppLoadError(`The module ${module} has no export "${exportName}" (its exports: ${names}).`);
  }
  let value = ns[exportName];
  if (call) {
    if (!isFunction(value)) throw new AppLoadError(`${module}:${exportName}() is not a function to call.`);
    value = value();
  }
  value = await value;
  const where = `${module}:${exportName}${call ? '()' : ''}`;
  const obj = value as Record<string, unknown> | null;
  if (obj && (typeof obj === 'object' || isFunction(obj)) && isFunction(obj.fetch)) {
    const fetch = withClientInfo(obj.fetch.bind(obj) as FetchCallback);
    const { getRequestListener } = await import('@hono/node-server');
    const request = getRequestListener(fetch, {
      errorHandler: (err) => {
        onFetchError?.(err);
        return new Response('Internal Server Error\n', { status: 500, headers: { 'content-type': 'text/plain' } });
      },
    }) as RequestListener;
    const upgrade = isFunction(obj.upgrade) ? (obj.upgrade.bind(obj) as UpgradeListener) : null;
    return { kind: 'fetch', request, upgrade, drain: drainOf(obj), description: `${where} (fetch handler)` };
  }
  if (isFunction(value)) {
    return { kind: 'listener', request: value as RequestListener, upgrade: null, drain: null, description: `${where} (request listener)` };
  }
  if (obj && typeof obj === 'object') {
    if (isFunction(obj.callback) && isFunction(obj.listen) && !isFunction(obj.request)) {
      // A Koa application: its callback() is the request listener.
      return { kind: 'koa', request: obj.callback() as RequestListener, upgrade: null, drain: null, description: `${where} (Koa app)` };
    }
    if (isFunction(obj.request) || isFunction(obj.upgrade)) {
      return {
        kind: 'node',
        request: isFunction(obj.request) ? (obj.request.bind(obj) as RequestListener) : null,
        upgrade: isFunction(obj.upgrade) ? (obj.upgrade.bind(obj) as UpgradeListener) : null,
        drain: drainOf(obj),
        description: `${where} (request/upgrade handlers)`,
      };
    }
  }
  throw new AppLoadError(
    `${where} is not an app: export a request listener (req, res) => ..., an object with fetch(request), or { request, upgrade } (got ${value === null ? 'null' : typeof value}).`,
  );
}
