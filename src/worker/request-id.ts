// Request ids: a random per-process prefix and a counter, unique across workers and restarts
// like a UUID, at a fraction of randomUUID()'s cost on every request.
import { randomBytes } from 'node:crypto';

const ID_PREFIX = `${randomBytes(6).toString('hex')}-`;
let idCounter = 0;

/**
 * The next id this process generates: `<12 hex digits>-<counter in hex>`. Not decimal:
 * V8 keeps the decimal strings it makes from numbers in a cache that young-generation
 * collections treat as a root, so every id's digits would outlive the request by thousands
 * of requests and be promoted (a plain node:http server setting such an id went from no full
 * collection in 200 000 requests to one or two). Hex strings are not cached.
 */
export function nextRequestId(): string {
  return ID_PREFIX + (++idCounter).toString(16);
}
