// One plan per `init --target`: it works out its options from the flags, renders its files
// from those options (each renderer takes parameters; none edits another's text), checks
// them with the real tools where they are installed, and says what to do next. The CLI
// (src/cli/init.ts) only parses the flags, writes or prints the files and prints the rest.
import type { InitFlags } from '../cli/init.js';
import type { DeployOptions } from './options.js';

export interface GeneratedFile {
  /** Path relative to the output directory (--out). */
  name: string;
  content: string;
  mode?: number;
}

export interface ValidationResult {
  /** What checked, e.g. "nginx -t". */
  check: string;
  /** skipped: the tool is not installed here. */
  status: 'ok' | 'failed' | 'skipped';
  output: string;
  /** A failure that only warns: init still exits 0. */
  advisory?: boolean;
}

/** Server settings the generated files must agree on; --keep-alive etc. given to init override the defaults. */
export const ALIGNED_SETTINGS = ['keepAlive', 'timeout', 'gracefulTimeout', 'drainSeconds'] as const;
export type AlignedSettings = Partial<Record<(typeof ALIGNED_SETTINGS)[number], number>>;

export interface DeployPlan<O extends DeployOptions = DeployOptions> {
  /** The --target value that picks this plan. */
  readonly target: string;
  /** The options the files are rendered from; throws a ConfigError that says what to pass. */
  options(flags: InitFlags, cwd: string, settings: AlignedSettings): O;
  files(o: O): GeneratedFile[];
  validate(files: readonly GeneratedFile[], o: O): ValidationResult[];
  /** What to run once the files are written; `outDir` as the user should type it. */
  nextSteps(o: O, files: readonly GeneratedFile[], outDir: string): string;
}
