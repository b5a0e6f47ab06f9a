// Raw node:http in one process: the baseline every ratio is read against.
// usage: node raw.mjs SOCKET_PATH
import http from 'node:http';
import { unlinkSync } from 'node:fs';
import app from '../app.mjs';

const path = process.argv[2];
try {
  unlinkSync(path);
} catch {}
const server = http.createServer({ keepAliveTimeout: 5000 }, app);
server.listen(path, () => console.error(JSON.stringify({ msg: 'ready', pid: process.pid })));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
