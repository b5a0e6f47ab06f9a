// A WebSocket echo app with the `ws` package: export { request, upgrade, drain } so the worker
// hands HTTP requests to `request`, Upgrade requests (with their socket) to `upgrade`, and
// tells `drain` when it drains: closeWebSockets asks the clients to leave (1012 on a reload,
// they reconnect to the new workers; 1001 on a stop), spread over --ws-drain-seconds.
// Run: npx ws-proxy-kit examples/websocket/app.mjs, then connect to ws://127.0.0.1:8000/echo
// (a message "pid" is answered with the worker's pid).
import { WebSocketServer } from 'ws';
import { closeWebSockets } from 'ws-proxy-kit/ws';

// noServer: ws-proxy-kit owns the HTTP server; we only complete handshakes it passes us.
const wss = new WebSocketServer({ noServer: true });

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(!isBinary && String(data) === 'pid' ? `pid ${process.pid}` : data, { binary: isBinary }));
  // Pings keep the connection alive through nginx's proxy_read_timeout.
  const ping = setInterval(() => ws.ping(), 30_000);
  ws.on('close', () => clearInterval(ping));
});

export function request(req, res) {
  res.setHeader('content-type', 'text/plain');
  res.end(`WebSocket echo server: connect to ws://${req.headers.host ?? 'localhost'}/echo\n`);
}

export function upgrade(req, socket, head) {
  if (new URL(req.url, 'http://x').pathname !== '/echo') {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
}

export const drain = closeWebSockets(wss);

export default { request, upgrade, drain };
