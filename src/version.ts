import { createRequire } from 'node:module';

/** Our package.json: the version and the description that --help prints. */
export const PACKAGE = createRequire(import.meta.url)('../package.json') as {
  name: string;
  version: string;
  description: string;
  bin: Record<string, string>;
};
export const VERSION: string = PACKAGE.version;
