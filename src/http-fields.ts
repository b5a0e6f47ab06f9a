// Removing fields from a request as node:http hands it to the app. node keeps three views of
// the header (and of the trailer) section: the raw list, and two objects it builds lazily
// from that list the first time they are read (headers/headersDistinct,
// trailers/trailersDistinct). Shortening only the raw list would leave a later build reading
// past its end (it counts entries from when the section was parsed), so both objects are
// built from the full list first, then all three views are edited.
import type { IncomingMessage } from 'node:http';

type Section = 'headers' | 'trailers';

/**
 * Removes the fields whose lower-case name matches from every view of the header (or
 * trailer) section. Returns the lower-case names removed (empty when none matched).
 */
export function removeFields(msg: IncomingMessage, matches: (lowerName: string) => boolean, section: Section = 'headers'): string[] {
  const raw = section === 'headers' ? msg.rawHeaders : msg.rawTrailers;
  const removed: string[] = [];
  const kept: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (matches(lower)) removed.push(lower);
    else kept.push(raw[i]!, raw[i + 1]!);
  }
  if (removed.length === 0) return removed;
  const views: Record<string, unknown>[] =
    section === 'headers' ? [msg.headers, msg.headersDistinct] : [msg.trailers, msg.trailersDistinct];
  for (const view of views) if (view) for (const name of removed) delete view[name];
  if (section === 'headers') msg.rawHeaders = kept;
  else msg.rawTrailers = kept;
  return removed;
}
