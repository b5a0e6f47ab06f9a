// Splits a text stream (a child's log output) into lines and parses each as JSON, for the
// test helpers and the bench, which both follow the server's pino output.

export type JsonLine = Record<string, unknown> & { msg?: string };

/**
 * Returns a 'data' listener for a utf8 stream: every complete line goes to onLine, parsed as
 * JSON, or as `{ msg: line, raw: true }` when it is not JSON. One per stream (it keeps the
 * unfinished line).
 */
export function jsonLines(onLine: (line: JsonLine) => void): (chunk: string) => void {
  let buf = '';
  return (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let parsed: JsonLine;
      try {
        parsed = JSON.parse(line) as JsonLine;
      } catch {
        parsed = { msg: line, raw: true };
      }
      onLine(parsed);
    }
  };
}
