// An Express app: Express's `app` is a Node request listener, so it is the export as is.
// Run: npx ws-proxy-kit examples/express/app.mjs
import express from 'express';

const app = express();
// Behind nginx: trust exactly one proxy hop (nginx, usually over a UNIX socket, which has
// no peer address) for req.ip and req.protocol, from the X-Forwarded-* headers it sets.
app.set('trust proxy', 1);

app.get('/', (req, res) => {
  res.type('text/plain').send(`Hello from Express in worker ${process.pid}\n`);
});

app.get('/whoami', (req, res) => {
  res.json({ ip: req.ip ?? null, protocol: req.protocol, host: req.hostname });
});

export default app;
