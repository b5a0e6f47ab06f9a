// The smallest app: a Node request listener.
export default function hello(req, res) {
  res.setHeader('content-type', 'text/plain');
  res.end(`Hello from ws-proxy-kit worker ${process.pid}\n`);
}
