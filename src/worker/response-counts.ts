// Server errors this worker answered (5xx, whoever wrote them: the app, a framework, us),
// for the heartbeat: the canary's comparison of a new version with the old (--reload-canary),
// `ctl top`'s 5xx/s. Counted only with --reload-canary or --metrics-bind. Counted where every response's status goes out, ServerResponse.prototype.writeHead
// (res.end() without writeHead() calls it too), wrapped once per process: a comparison per
// response, no listener and no allocation.
import { ServerResponse } from 'node:http';

let serverErrors = 0;
let installed = false;

/** Starts counting (idempotent). */
export function countServerErrors(): void {
  if (installed) return;
  installed = true;
  const writeHead = ServerResponse.prototype.writeHead;
  const original = writeHead as (this: ServerResponse, code: number, reason: unknown, headers: unknown) => ServerResponse;
  // Fixed parameters, no rest array: writeHead(statusCode, [reason], [headers]) treats a
  // missing argument and an undefined one alike.
  ServerResponse.prototype.writeHead = function (this: ServerResponse, statusCode: number, reason?: unknown, headers?: unknown) {
    if (statusCode >= 500) serverErrors++;
    return original.call(this, statusCode, reason, headers);
  } as typeof writeHead;
}

/** 5xx answers so far; null when they are not counted (countServerErrors() was not called). */
export function serverErrorCount(): number | null {
  return installed ? serverErrors : null;
}
