// Keeps the last lines a process writes to stdout and stderr (while the app boots), passing
// everything through unchanged. stop() puts the original writers back.

type Write = typeof process.stdout.write;

export function tapOutput(keep: number): { lines(): string[]; stop(): void } {
  const lines: string[] = [];
  let partial = '';
  const record = (chunk: unknown) => {
    const text =
      partial +
      (typeof chunk === 'string'
        ? chunk
        : Buffer.isBuffer(chunk) || chunk instanceof Uint8Array
          ? Buffer.from(chunk).toString('utf8')
          : '');
    const parts = text.split('\n');
    partial = parts.pop()!.slice(-2000);
    for (const p of parts) lines.push(p.slice(0, 2000));
    if (lines.length > keep) lines.splice(0, lines.length - keep);
  };
  const streams = [process.stdout, process.stderr];
  const originals = streams.map((s) => s.write);
  streams.forEach((s, i) => {
    const original = originals[i]!;
    s.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
      record(chunk);
      return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as Write;
  });
  return {
    lines: () => (partial ? [...lines, partial] : [...lines]).slice(-keep),
    stop: () => streams.forEach((s, i) => (s.write = originals[i]!)),
  };
}
