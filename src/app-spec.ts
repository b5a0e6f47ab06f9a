// The app argument, "path/to/module[:export]" or "module:factory()" (DESIGN.md, "The app
// contract"): read by the worker that loads the app, the arbiter that watches its directory
// (--reload) and `init`. A module of its own, so that src/arbiter and src/worker need not
// import each other.

export interface AppSpec {
  module: string;
  exportName: string;
  /** "module:factory()": the export is called and its result is the app. */
  call: boolean;
}

/** "path/to/module[:export]" or "module:factory()" */
export function parseAppSpec(spec: string): AppSpec {
  const m = /^(.*?)(?::([A-Za-z_$][\w$]*)(\(\))?)?$/.exec(spec)!;
  return { module: m[1]!, exportName: m[2] ?? 'default', call: Boolean(m[3]) };
}
