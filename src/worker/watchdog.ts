// The watchdog thread of a worker (a worker_threads thread, started at boot when --hang-stacks
// is on): when the master asks, it pauses the main thread through the inspector session that
// Node gives a thread of the same process (Session.connectToMainThread) and sends back the
// JavaScript frames the main thread is stuck in. Inspector messages interrupt running
// JavaScript, so this works while the event loop is blocked. The channel is a socketpair the
// master created at spawn (a stdio pipe): nothing listens, and no other process can reach it.
//
// Protocol: one JSON line each way. Master: {"id":N,"op":"stack"}. Thread:
// {"id":N,"frames":[{functionName,url,line,column}]} or {"id":N,"error":"..."}.
import { parentPort, workerData } from 'node:worker_threads';
import { Session } from 'node:inspector';
import net from 'node:net';

interface Frame {
  functionName: string;
  url: string;
  line: number;
  column: number;
}

interface PausedEvent {
  params: {
    callFrames: { functionName: string; url?: string; location: { scriptId: string; lineNumber: number; columnNumber: number } }[];
  };
}

/** Longest wait for the main thread to pause: it does not when blocked inside native code. */
const PAUSE_TIMEOUT_MS = 2000;

const { fd } = workerData as { fd: number };
const channel = new net.Socket({ fd, readable: true, writable: true });
channel.setEncoding('utf8');
channel.on('error', () => {}); // the master went away: the process is ending anyway

let buffered = '';
channel.on('data', (chunk: string) => {
  buffered += chunk;
  for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    let id = 0;
    try {
      const req = JSON.parse(line) as { id?: unknown; op?: unknown };
      id = Number(req.id) || 0;
      if (req.op !== 'stack') throw new Error(`unknown op ${String(req.op)}`);
    } catch (err) {
      reply({ id, error: (err as Error).message });
      continue;
    }
    captureMainThreadStack().then(
      (frames) => reply({ id, frames }),
      (err: unknown) => reply({ id, error: (err as Error).message }),
    );
  }
});

parentPort?.postMessage('started'); // the worker listens only once this thread is up

function reply(message: object): void {
  channel.write(JSON.stringify(message) + '\n');
}

function captureMainThreadStack(): Promise<Frame[]> {
  const session = new Session();
  session.connectToMainThread();
  const scripts = new Map<string, string>();
  session.on('Debugger.scriptParsed', (m: { params: { scriptId: string; url: string } }) => scripts.set(m.params.scriptId, m.params.url));
  return new Promise<Frame[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      session.disconnect();
      reject(new Error(`the main thread did not pause within ${PAUSE_TIMEOUT_MS} ms (blocked inside native code?)`));
    }, PAUSE_TIMEOUT_MS);
    session.once('Debugger.paused', (m: PausedEvent) => {
      clearTimeout(timer);
      resolve(
        m.params.callFrames.map((f) => ({
          functionName: f.functionName,
          url: f.url || scripts.get(f.location.scriptId) || '<unknown>',
          line: f.location.lineNumber + 1,
          column: f.location.columnNumber + 1,
        })),
      );
      // If the master lets it live after all, the app goes on where it was.
      session.post('Debugger.resume', () => session.disconnect());
    });
    session.post('Debugger.enable', (err) => {
      if (err) reject(err);
      else session.post('Debugger.pause');
    });
  });
}
