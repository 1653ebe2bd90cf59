/**
 * Real HTTP servers for the egress tests, on 127.0.0.1 only (never any other address): an echo server
 * with redirecting, stalling and oversized routes, and a fake OpenAI-compatible model endpoint.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface TestServer {
  readonly port: number;
  readonly origin: string;
  /** Every request the server received, in order. */
  readonly seen: Seen[];
  close(): Promise<void>;
}

async function listen(handle: (req: IncomingMessage, body: Buffer, res: ServerResponse) => void): Promise<TestServer & { server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: body.toString('utf8') });
      handle(req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    origin: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Overlong forms, a surrogate, a code point past U+10FFFF, truncated sequences: every way UTF-8 goes wrong. */
export const BAD_UTF8 = Buffer.from('6869ffc080e08080f09f9821eda080f4908080e282', 'hex');

/**
 * Routes: /bad-utf8 · /redirect?to=<url>&status=<code> · /loop (redirects to itself) · /big?n=<bytes>[&chunked] ·
 * /stall (headers never come) · /stall-body (headers, then nothing) · /echo-secret?v=<text> (puts v in
 * a header and the body) · anything else: the request echoed back as JSON.
 */
export function echoServer(): Promise<TestServer> {
  return listen((req, body, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    switch (url.pathname) {
      case '/redirect':
        res.writeHead(Number(url.searchParams.get('status') ?? 302), { location: url.searchParams.get('to') ?? '/' });
        res.end('redirect body');
        return;
      case '/loop':
        res.writeHead(302, { location: '/loop' });
        res.end();
        return;
      case '/big': {
        const n = Number(url.searchParams.get('n') ?? 1_000_000);
        if (url.searchParams.has('chunked')) {
          res.writeHead(200);
          const chunk = Buffer.alloc(1024, 0x61);
          let sent = 0;
          const pump = () => {
            while (sent < n && res.write(chunk)) sent += chunk.length;
            if (sent >= n) res.end();
            else res.once('drain', pump);
          };
          res.on('error', () => undefined);
          pump();
        } else {
          res.writeHead(200, { 'content-length': n });
          res.end(Buffer.alloc(n, 0x62));
        }
        return;
      }
      case '/bad-utf8':
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(BAD_UTF8);
        return;
      case '/stall':
        return; // never answers
      case '/stall-body':
        res.writeHead(200, { 'content-length': 1000 });
        res.write('partial');
        return;
      default:
        res.writeHead(200, { 'content-type': 'application/json', 'x-server': 'echo' });
        res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString('utf8') }));
    }
  });
}

export interface FakeModel extends TestServer {
  /** The reply's usage; `null` leaves usage out (a provider that does not report it). */
  usage: { prompt_tokens: number; completion_tokens: number } | null;
}

/** An OpenAI-compatible `/v1/chat/completions`: answers `echo: <last message>`; 401 without the expected key. */
export async function fakeOpenAi(expectedKey: string): Promise<FakeModel> {
  const state = { usage: { prompt_tokens: 11, completion_tokens: 7 } as FakeModel['usage'] };
  const server = await listen((req, body, res) => {
    if (req.url !== '/v1/chat/completions' || req.method !== 'POST') {
      res.writeHead(404).end();
      return;
    }
    if (req.headers.authorization !== `Bearer ${expectedKey}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'bad key' } }));
      return;
    }
    const request = JSON.parse(body.toString('utf8')) as { model: string; messages: { content: string }[]; max_tokens: number };
    const last = request.messages.at(-1)?.content ?? '';
    // `leak` makes the fake echo the key it was sent: the host must not pass it on.
    // `leak:<form>` echoes it encoded (base64, hex, pct, or `u`: every char a \u escape in the JSON
    // text, which JSON.parse turns back into the key); `leak-error:<form>` does so in an error message.
    const leak = /^leak(-error)?:(base64|hex|pct|u)$/u.exec(last);
    if (leak) {
      const k = expectedKey;
      const form = leak[2];
      const said =
        form === 'base64' ? Buffer.from(k).toString('base64') : form === 'hex' ? Buffer.from(k).toString('hex') : form === 'pct' ? encodeURIComponent(k) : '\u0000';
      const text = form === 'u' ? [...k].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('') : JSON.stringify(said).slice(1, -1);
      const usage = state.usage ? `,"usage":${JSON.stringify(state.usage)}` : '';
      res.writeHead(leak[1] ? 400 : 200, { 'content-type': 'application/json' });
      res.end(leak[1] ? `{"error":{"message":"Incorrect API key provided: ${text}"}}` : `{"choices":[{"message":{"role":"assistant","content":"your key is ${text}"}}]${usage}}`);
      return;
    }
    const content = last === 'leak' ? `your key is ${expectedKey}` : `echo: ${last}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content } }], ...(state.usage ? { usage: state.usage } : {}), model: request.model }));
  });
  const fake = server as unknown as FakeModel;
  Object.defineProperty(fake, 'usage', {
    get: () => state.usage,
    set: (value: FakeModel['usage']) => {
      state.usage = value;
    },
  });
  return fake;
}
