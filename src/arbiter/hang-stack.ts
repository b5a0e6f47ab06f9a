// Where was a hung worker stuck? A blocked event loop can't run JS, but Node starts its
// inspector on SIGUSR1 from a separate thread, and inspector messages interrupt running
// JS. So: SIGUSR1 the worker (started with --inspect-port on loopback), attach, pause,
// read the call frames. The worker is killed right after, so the inspector lives only
// for the capture (and any process able to signal the worker could already open it:
// that is Node's default SIGUSR1 behaviour).
import WebSocket from 'ws';

export interface StackFrame {
  functionName: string;
  url: string;
  line: number;
  column: number;
}

export function formatFrames(frames: StackFrame[]): string {
  return frames.map((f) => `    at ${f.functionName || '<anonymous>'} (${f.url}:${f.line}:${f.column})`).join('\n');
}

async function debuggerUrl(port: number, deadline: number): Promise<string> {
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) });
      const list = (await res.json()) as { webSocketDebuggerUrl?: string }[];
      const url = list[0]?.webSocketDebuggerUrl;
      if (url) return url;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the worker's inspector did not open on 127.0.0.1:${port}${lastError ? ` (${(lastError as Error).message})` : ''}`);
}

/** The JS stack of a worker whose event loop is blocked. Rejects after timeoutMs. */
export async function captureBlockedStack(pid: number, port: number, timeoutMs = 3000): Promise<StackFrame[]> {
  const deadline = Date.now() + timeoutMs;
  process.kill(pid, 'SIGUSR1');
  const url = await debuggerUrl(port, deadline);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const scripts = new Map<string, string>();
    let id = 0;
    const send = (method: string) => ws.send(JSON.stringify({ id: ++id, method, params: {} }));
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('the worker did not pause in time'));
    }, Math.max(1, deadline - Date.now()));
    ws.on('open', () => {
      send('Debugger.enable');
      send('Debugger.pause');
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on('message', (data: WebSocket.RawData) => {
      const m = JSON.parse(String(data)) as { method?: string; params?: Record<string, unknown> };
      if (m.method === 'Debugger.scriptParsed') {
        const p = m.params as { scriptId: string; url: string };
        scripts.set(p.scriptId, p.url);
      } else if (m.method === 'Debugger.paused') {
        clearTimeout(timer);
        const frames = (m.params as { callFrames: { functionName: string; url: string; location: { scriptId: string; lineNumber: number; columnNumber: number } }[] }).callFrames;
        resolve(
          frames.map((f) => ({
            functionName: f.functionName,
            url: f.url || scripts.get(f.location.scriptId) || '<unknown>',
            line: f.location.lineNumber + 1,
            column: f.location.columnNumber + 1,
          })),
        );
        ws.terminate();
      }
    });
  });
}
