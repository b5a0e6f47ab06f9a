import { createRequire } from 'node:module';

/** Our package.json (also handed to meow, which would otherwise search for it on every start). */
export const PACKAGE = createRequire(import.meta.url)('../package.json') as { name: string; version: string; description: string; bin: Record<string, string> };
export const VERSION: string = PACKAGE.version;
