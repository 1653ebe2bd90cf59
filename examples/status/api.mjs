// A stand-in for a third-party API on 127.0.0.1:8787: GET /v1/status needs `Authorization: Bearer <token>`
// (the token the host holds, from the secrets file). Everything else is 404.
import { createServer } from 'node:http';

const token = process.env.STATUS_API_TOKEN_EXPECTED ?? '';
const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/v1/status') {
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('missing or wrong token\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('all systems operational; 2 incidents resolved today');
    return;
  }
  res.writeHead(404).end();
});
server.listen(Number(process.env.PORT ?? 8787), '127.0.0.1', () => process.stdout.write('ready\n'));
