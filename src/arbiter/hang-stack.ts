// Where was a hung worker stuck? A blocked event loop can't run JS, but the worker's
// watchdog thread (src/worker/watchdog.ts) can pause it through the inspector session Node
// gives a thread of the same process, and read its call frames. The master asks over the
// socketpair it created for that at spawn; no port is opened and no other process can ask.
import type { Socket } from 'node:net';

export interface StackFrame {
  functionName: string;
  url: string;
  line: number;
  column: number;
}

export function formatFrames(frames: StackFrame[]): string {
  return frames.map((f) => `    at ${f.functionName || '<anonymous>'} (${f.url}:${f.line}:${f.column})`).join('\n');
}

let lastId = 0;

/** The JS stack of a worker whose event loop is blocked, asked of its watchdog thread. Rejects after timeoutMs. */
export function captureBlockedStack(channel: Socket | null, timeoutMs = 3000): Promise<StackFrame[]> {
  if (!channel || channel.destroyed) return Promise.reject(new Error('the worker has no watchdog thread (--no-hang-stacks)'));
  const id = ++lastId;
  return new Promise((resolve, reject) => {
    let buffered = '';
    const done = (err: Error | null, frames?: StackFrame[]) => {
      clearTimeout(timer);
      channel.off('data', onData);
      channel.off('close', onClose);
      if (err) reject(err);
      else resolve(frames!);
    };
    const onData = (chunk: Buffer | string) => {
      buffered += String(chunk);
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let answer: { id?: number; frames?: StackFrame[]; error?: string };
        try {
          answer = JSON.parse(line) as typeof answer;
        } catch {
          continue;
        }
        if (answer.id !== id) continue;
        if (answer.frames) done(null, answer.frames);
        else done(new Error(answer.error ?? 'the watchdog thread sent no frames'));
        return;
      }
    };
    const onClose = () => done(new Error('the worker exited before its stack was read'));
    const timer = setTimeout(() => done(new Error(`the watchdog thread did not answer within ${timeoutMs} ms`)), timeoutMs);
    channel.on('data', onData);
    channel.once('close', onClose);
    channel.write(JSON.stringify({ id, op: 'stack' }) + '\n');
  });
}
