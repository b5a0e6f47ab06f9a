// A Hono app: a WHATWG fetch handler ({ fetch }), served through @hono/node-server.
// Run: npx ws-proxy-kit examples/hono/app.mjs
import { Hono } from 'hono';

const app = new Hono();

app.get('/', (c) => c.text(`Hello from Hono in worker ${process.pid}\n`));
app.get('/json', (c) => c.json({ framework: 'hono', pid: process.pid, forwardedProto: c.req.header('x-forwarded-proto') ?? null }));

// The Hono instance has a fetch method; exporting it as the default export is enough.
export default app;
