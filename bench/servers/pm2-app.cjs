// The PM2 cluster-mode entry: PM2 forks this file in node:cluster workers; each listens on
// the UNIX socket given in BENCH_SOCKET (PM2's God daemon is the cluster primary).
// eslint-disable-next-line @typescript-eslint/no-require-imports -- PM2's cluster mode require()s its script
const http = require('node:http');

import('../app.mjs').then(({ default: app }) => {
  http.createServer({ keepAliveTimeout: 5000 }, app).listen(process.env.BENCH_SOCKET);
});
