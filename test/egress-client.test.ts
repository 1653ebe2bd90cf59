/**
 * One egress hop against real servers on 127.0.0.1. A check that only looked right would pass a
 * unit test, so each guarantee is observed where it matters: what the server received, whether it
 * saw a connection at all, and which addresses Node attempted to connect to.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseCidr, type Cidr } from '../host/src/capabilities/http/address.js';
import { EgressPool, type EgressPoolOptions, type Header, type HopResult, type OutboundRequest } from '../host/src/capabilities/http/client.js';

const LOOPBACK: readonly Cidr[] = [cidr('127.0.0.1/32')];
const LIMITS = { timeoutMs: 2000, maxResponseBytes: 1 << 20 };
const SECRET = 'sk-live-TOPSECRET-0123456789';

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new Error(`test range ${text} did not parse`);
  return c;
}

interface TestServer {
  readonly port: number;
  readonly connections: number;
  readonly requests: number;
  /** Resolves once every socket the server has accepted so far is closed (rejects after 1 s). */
  allClosed(): Promise<void>;
}

const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listen(server: http.Server): Promise<TestServer> {
  let connections = 0;
  let requests = 0;
  const closes: Promise<void>[] = [];
  // TLS servers report the TCP socket on 'connection' too, so this counts TCP connections either way.
  server.on('connection', (socket: net.Socket) => {
    connections++;
    closes.push(new Promise((resolve) => socket.once('close', () => resolve())));
  });
  server.on('request', () => requests++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get connections() {
      return connections;
    },
    get requests() {
      return requests;
    },
    allClosed: () =>
      Promise.race([
        Promise.all(closes).then(() => undefined),
        new Promise<void>((_, reject) => setTimeout(() => reject(new Error('server socket still open')), 1000)),
      ]),
  };
}

function serve(handler: http.RequestListener): Promise<TestServer> {
  return listen(http.createServer(handler));
}

function pool(options: Partial<EgressPoolOptions> = {}): EgressPool {
  const p = new EgressPool({ allowedFor: () => [], ...options });
  cleanups.push(() => p.close());
  return p;
}

/** A resolver from a fixed table, recording every question it is asked. */
function resolver(table: Record<string, readonly string[]>): { resolve: (host: string) => Promise<readonly string[]>; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    resolve: async (host) => {
      asked.push(host);
      const answer = table[host];
      if (!answer) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return answer;
    },
  };
}

function get(url: string, headers: Header[] = []): OutboundRequest {
  return { method: 'GET', url: new URL(url), headers };
}

/** Every address Node attempted to connect to from now on (happy-eyeballs and single-address paths both emit it). */
function watchConnectionAttempts(): string[] {
  const attempts: string[] = [];
  const original = net.Socket.prototype.emit;
  vi.spyOn(net.Socket.prototype, 'emit').mockImplementation(function (this: net.Socket, event: string | symbol, ...args: unknown[]) {
    if (event === 'connectionAttempt') attempts.push(String(args[0]));
    return original.apply(this, [event, ...args] as Parameters<typeof original>);
  });
  return attempts;
}

function text(result: HopResult): string {
  if (!result.ok) throw new Error(`expected a response, got ${result.kind}: ${result.message}`);
  return Buffer.from(result.body).toString('utf8');
}

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 30));

const hello: http.RequestListener = (_req, res) => res.end('hello');

describe('connect-time address check', () => {
  it('connects to 127.0.0.1 when allowedFor names it, and reports the address used', async () => {
    const server = await serve(hello);
    const attempts = watchConnectionAttempts();
    const result = await pool({ allowedFor: () => LOOPBACK }).send(get(`http://127.0.0.1:${server.port}/`), LIMITS);
    expect(text(result)).toBe('hello');
    expect(result).toMatchObject({ ok: true, status: 200, address: '127.0.0.1' });
    expect(attempts).toEqual(['127.0.0.1']); // the spy itself works, so the empty lists below mean something
  });

  it('refuses 127.0.0.1 by default, naming the class and the fix, and the server sees no connection', async () => {
    const server = await serve(hello);
    const attempts = watchConnectionAttempts();
    const result = await pool().send(get(`http://127.0.0.1:${server.port}/`), LIMITS);
    expect(result).toMatchObject({ ok: false, kind: 'address', address: '127.0.0.1' });
    if (result.ok) return;
    expect(result.message).toContain('loopback');
    expect(result.message).toContain('addresses: ["127.0.0.1/32"]');
    await settle();
    expect(server.connections).toBe(0);
    expect(attempts).toEqual([]);
  });

  it('refuses the IPv6 literal [::1] before dispatch (Node skips lookup for literals)', async () => {
    const attempts = watchConnectionAttempts();
    const result = await pool().send(get('http://[::1]:9/'), LIMITS);
    expect(result).toMatchObject({ ok: false, kind: 'address', address: '::1' });
    expect(!result.ok && result.message).toContain('addresses: ["::1/128"]');
    expect(attempts).toEqual([]);
  });

  it('refuses a host name that resolves to loopback, and never connects', async () => {
    const server = await serve(hello);
    const { resolve } = resolver({ 'api.test': ['127.0.0.1'] });
    const result = await pool({ resolve }).send(get(`http://api.test:${server.port}/`), LIMITS);
    expect(result).toMatchObject({ ok: false, kind: 'address', address: '127.0.0.1' });
    expect(!result.ok && result.message).toMatch(/^api\.test resolved to 127\.0\.0\.1: .*loopback.*addresses: \["127\.0\.0\.1\/32"\] to the rule for api\.test/);
    await settle();
    expect(server.connections).toBe(0);
  });

  it('refuses a mixed answer [8.8.8.8, 127.0.0.1] before attempting either address', async () => {
    const attempts = watchConnectionAttempts();
    const { resolve } = resolver({ 'api.test': ['8.8.8.8', '127.0.0.1'] });
    const result = await pool({ resolve }).send(get('http://api.test:9/'), LIMITS);
    expect(result).toMatchObject({ ok: false, kind: 'address', address: '127.0.0.1' });
    expect(attempts).toEqual([]);
  });

  it('refuses a mixed answer even when its first address is allowed and listening', async () => {
    const server = await serve(hello);
    const { resolve } = resolver({ 'api.test': ['127.0.0.1', '10.0.0.7'] });
    const result = await pool({ resolve, allowedFor: () => LOOPBACK }).send(get(`http://api.test:${server.port}/`), LIMITS);
    expect(result).toMatchObject({ ok: false, kind: 'address', address: '10.0.0.7' });
    expect(!result.ok && result.message).toContain('private');
    await settle();
    expect(server.connections).toBe(0);
  });

  it('unmaps an IPv4-mapped answer ::ffff:127.0.0.1 and refuses it as loopback', async () => {
    const attempts = watchConnectionAttempts();
    const { resolve } = resolver({ 'api.test': ['::ffff:127.0.0.1'] });
    const result = await pool({ resolve }).send(get('http://api.test:9/'), LIMITS);
    expect(result).toMatchObject({ ok: false, kind: 'address' });
    expect(!result.ok && result.message).toContain('127.0.0.1 (written ::ffff:7f00:1)');
    expect(!result.ok && result.message).toContain('addresses: ["127.0.0.1/32"]');
    expect(attempts).toEqual([]);
  });

  it('refuses the metadata address, resolved or literal, without attempting a connection', async () => {
    const attempts = watchConnectionAttempts();
    const { resolve } = resolver({ 'metadata.test': ['169.254.169.254'] });
    const p = pool({ resolve });
    for (const url of ['http://metadata.test/latest/meta-data/', 'http://169.254.169.254/latest/meta-data/']) {
      const result = await p.send(get(url), LIMITS);
      expect(result).toMatchObject({ ok: false, kind: 'address', address: '169.254.169.254' });
      expect(!result.ok && result.message).toContain('cloud metadata');
    }
    expect(attempts).toEqual([]);
  });

  it('rebinding: the one resolution per connection is the one checked and the one connected to', async () => {
    const server = await serve(hello);
    const { resolve, asked } = resolver({ 'api.test': ['127.0.0.1'] });
    const hosts: string[] = [];
    const denied = await pool({ resolve, allowedFor: (h) => (hosts.push(h), []) }).send(get(`http://api.test:${server.port}/`), LIMITS);
    expect(denied).toMatchObject({ ok: false, kind: 'address', address: '127.0.0.1' });
    expect(hosts).toEqual(['api.test']);

    asked.length = 0;
    const allowed = await pool({ resolve, allowedFor: (h) => (h === 'api.test' ? LOOPBACK : []) }).send(
      get(`http://api.test:${server.port}/`),
      LIMITS,
    );
    expect(text(allowed)).toBe('hello');
    expect(allowed).toMatchObject({ address: '127.0.0.1' });
    expect(asked).toEqual(['api.test']); // no second resolution that could answer differently
  });

  it.each(['http', 'https'])('re-checks the peer of a new %s connection before writing a byte (request line or ClientHello)', async (scheme) => {
    // A raw TCP server: it counts bytes, whatever protocol they belong to.
    let received = 0;
    let accepted = 0;
    const raw = net.createServer((socket) => {
      accepted++;
      socket.on('data', (d: Buffer) => (received += d.length));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => raw.close(resolve)));
    const { port } = raw.address() as net.AddressInfo;
    // Allowed when the lookup asks, denied when the connected socket is checked: only the
    // connect-time check can refuse this one.
    let calls = 0;
    const p = pool({ resolve: resolver({ 'api.test': ['127.0.0.1'] }).resolve, allowedFor: () => (calls++ === 0 ? LOOPBACK : []) });
    const result = await p.send(get(`${scheme}://api.test:${port}/`), LIMITS);
    expect(result).toMatchObject({ ok: false, kind: 'address', address: '127.0.0.1' });
    expect(calls).toBe(2);
    await settle();
    expect(accepted).toBe(1);
    expect(received).toBe(0);
  });

  it('works with the single-address lookup form too (autoSelectFamily off)', async () => {
    const server = await serve(hello);
    const before = net.getDefaultAutoSelectFamily();
    net.setDefaultAutoSelectFamily(false);
    cleanups.push(() => net.setDefaultAutoSelectFamily(before));
    const { resolve } = resolver({ 'api.test': ['127.0.0.1'], 'mixed.test': ['127.0.0.1', '192.168.1.1'] });
    const p = pool({ resolve, allowedFor: () => LOOPBACK });
    expect(text(await p.send(get(`http://api.test:${server.port}/`), LIMITS))).toBe('hello');
    const mixed = await p.send(get(`http://mixed.test:${server.port}/`), LIMITS);
    expect(mixed).toMatchObject({ ok: false, kind: 'address', address: '192.168.1.1' });
    expect(server.connections).toBe(1);
  });
});

describe('keep-alive', () => {
  it('reuses one TCP connection for two sends, and still checks the address of the reused socket', async () => {
    const server = await serve(hello);
    const { resolve, asked } = resolver({ 'api.test': ['127.0.0.1'] });
    let allowed: readonly Cidr[] = LOOPBACK;
    const p = pool({ resolve, allowedFor: () => allowed });
    const url = `http://api.test:${server.port}/`;
    expect(text(await p.send(get(url), LIMITS))).toBe('hello');
    expect(text(await p.send(get(url), LIMITS))).toBe('hello');
    expect(server.connections).toBe(1);
    expect(asked).toEqual(['api.test']);

    // The policy no longer allows loopback: no lookup happens for a reused socket, so only the
    // per-request peer check stands between this request and the open connection.
    allowed = [];
    const result = await p.send(get(url), LIMITS);
    expect(result).toMatchObject({ ok: false, kind: 'address', address: '127.0.0.1' });
    await server.allClosed();
    expect(server.requests).toBe(2);
    expect(server.connections).toBe(1);
  });

  it('close() destroys idle sockets, and the pool refuses to send afterwards', async () => {
    const server = await serve(hello);
    const p = pool({ allowedFor: () => LOOPBACK });
    expect(text(await p.send(get(`http://127.0.0.1:${server.port}/`), LIMITS))).toBe('hello');
    p.close();
    await server.allClosed();
    const after = await p.send(get(`http://127.0.0.1:${server.port}/`), LIMITS);
    expect(after).toMatchObject({ ok: false, kind: 'network', message: 'the egress pool is closed' });
    expect(server.connections).toBe(1);
  });
});

describe('the request sent is the one decided on', () => {
  interface Echo {
    method: string;
    url: string;
    rawHeaders: string[];
    body: string;
  }
  const echo: http.RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () =>
      res.end(JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks).toString() })),
    );
  };
  const parse = (result: HopResult): Echo => JSON.parse(text(result)) as Echo;

  it('sends Host = url.host, path + search without the fragment, and exactly the given headers in order', async () => {
    const server = await serve(echo);
    const { resolve } = resolver({ 'api.test': ['127.0.0.1'] });
    const p = pool({ resolve, allowedFor: () => LOOPBACK });
    const request: OutboundRequest = {
      method: 'POST',
      url: new URL(`http://api.test:${server.port}/v1/a%20b/?q=1&r=%2F&q=2#fragment`),
      headers: [
        { name: 'X-B', value: '2' },
        { name: 'x-a', value: '1' },
        { name: 'X-B', value: '3' },
        { name: 'Authorization', value: `Bearer ${SECRET}` },
      ],
      body: new TextEncoder().encode('hello'),
    };
    const seen = parse(await p.send(request, LIMITS));
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/v1/a%20b/?q=1&r=%2F&q=2');
    expect(seen.body).toBe('hello');
    // No Accept-Encoding, User-Agent or anything else the caller did not give; Node's Connection is the one addition.
    expect(seen.rawHeaders).toEqual([
      'Host', `api.test:${server.port}`,
      'X-B', '2',
      'x-a', '1',
      'X-B', '3',
      'Authorization', `Bearer ${SECRET}`,
      'Content-Length', '5',
      'Connection', 'keep-alive',
    ]);
  });

  it('sends Content-Length: 0 for a body-less POST instead of Node\'s chunked encoding, and nothing for GET', async () => {
    const server = await serve(echo);
    const p = pool({ allowedFor: () => LOOPBACK });
    const url = new URL(`http://127.0.0.1:${server.port}/`);
    const post = parse(await p.send({ method: 'POST', url, headers: [] }, LIMITS));
    expect(post.rawHeaders).toEqual(['Host', `127.0.0.1:${server.port}`, 'Content-Length', '0', 'Connection', 'keep-alive']);
    const plain = parse(await p.send({ method: 'GET', url, headers: [] }, LIMITS));
    expect(plain.rawHeaders).toEqual(['Host', `127.0.0.1:${server.port}`, 'Connection', 'keep-alive']);
  });

  it('refuses caller-supplied Host or Content-Length rather than sending two', async () => {
    const server = await serve(echo);
    const p = pool({ allowedFor: () => LOOPBACK });
    for (const name of ['Host', 'content-length', 'Transfer-Encoding']) {
      const result = await p.send(get(`http://127.0.0.1:${server.port}/`, [{ name, value: 'evil.test' }]), LIMITS);
      expect(result).toMatchObject({ ok: false, kind: 'network' });
    }
    await settle();
    expect(server.connections).toBe(0);
  });

  it('ignores HTTP_PROXY and friends in the environment', async () => {
    const proxy = await serve((_req, res) => res.end('via proxy'));
    const target = await serve(hello);
    const names = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'];
    const saved = names.map((n) => [n, process.env[n]] as const);
    cleanups.push(() => {
      for (const [n, v] of saved) if (v === undefined) delete process.env[n];
      else process.env[n] = v;
    });
    for (const n of names) process.env[n] = `http://127.0.0.1:${proxy.port}`;
    const { resolve } = resolver({ 'api.test': ['127.0.0.1'] });
    const result = await pool({ resolve, allowedFor: () => LOOPBACK }).send(get(`http://api.test:${target.port}/`), LIMITS);
    expect(text(result)).toBe('hello');
    expect(target.requests).toBe(1);
    expect(proxy.connections).toBe(0);
  });

  it('returns the raw response headers in order and the body as sent, not decompressed', async () => {
    const gz = gzipSync('compressed');
    const server = await serve((_req, res) => {
      res.writeHead(201, ['X-Z', '1', 'Content-Encoding', 'gzip', 'x-a', '2', 'X-Z', '3', 'Content-Length', String(gz.length)]);
      res.end(gz);
    });
    const result = await pool({ allowedFor: () => LOOPBACK }).send(get(`http://127.0.0.1:${server.port}/`), LIMITS);
    if (!result.ok) throw new Error(result.message);
    expect(result.status).toBe(201);
    expect(result.headers.filter((h) => h.name !== 'Date' && h.name !== 'Connection' && h.name !== 'Keep-Alive')).toEqual([
      { name: 'X-Z', value: '1' },
      { name: 'Content-Encoding', value: 'gzip' },
      { name: 'x-a', value: '2' },
      { name: 'X-Z', value: '3' },
      { name: 'Content-Length', value: String(gz.length) },
    ]);
    expect(Buffer.from(result.body).equals(gz)).toBe(true);
  });
});

/** Writes to `res` until the client goes away. */
function flood(res: http.ServerResponse): void {
  const chunk = Buffer.alloc(16 * 1024, 0x78);
  const pump = (): void => {
    while (!res.destroyed && res.write(chunk));
    if (!res.destroyed) res.once('drain', pump);
  };
  pump();
}

describe('response size', () => {
  const small = { timeoutMs: 2000, maxResponseBytes: 1000 };

  it('aborts on a declared Content-Length over the limit, and the server sees the socket closed', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': String(50_000_000) });
      flood(res);
    });
    const result = await pool({ allowedFor: () => LOOPBACK }).send(get(`http://127.0.0.1:${server.port}/`), small);
    expect(result).toMatchObject({ ok: false, kind: 'too-large' });
    expect(!result.ok && result.message).toContain('grants.http.maxResponseBytes (1000 bytes): it declares Content-Length 50000000');
    await server.allClosed();
  });

  it('aborts a chunked body the moment it passes the limit, and the server sees the socket closed', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200);
      flood(res);
    });
    const result = await pool({ allowedFor: () => LOOPBACK }).send(get(`http://127.0.0.1:${server.port}/`), small);
    expect(result).toMatchObject({ ok: false, kind: 'too-large' });
    expect(!result.ok && result.message).toContain('grants.http.maxResponseBytes (1000 bytes): more than 1000 bytes arrived');
    await server.allClosed();
  });

  it('accepts a body of exactly the limit and refuses one byte more, declared or streamed', async () => {
    const server = await serve((req, res) => {
      const body = req.url === '/five' ? 'hello' : 'hello!';
      if (req.headers['x-declare'] === 'yes') res.setHeader('Content-Length', body.length);
      res.end(body);
    });
    const p = pool({ allowedFor: () => LOOPBACK });
    const limits = { timeoutMs: 2000, maxResponseBytes: 5 };
    for (const declare of ['yes', 'no']) {
      const header = [{ name: 'X-Declare', value: declare }];
      expect(text(await p.send(get(`http://127.0.0.1:${server.port}/five`, header), limits))).toBe('hello');
      expect(await p.send(get(`http://127.0.0.1:${server.port}/six`, header), limits)).toMatchObject({ ok: false, kind: 'too-large' });
    }
  });

  it('does not hold the Content-Length of a HEAD response against the limit', async () => {
    const server = await serve((_req, res) => {
      res.setHeader('Content-Length', 50_000_000);
      res.end();
    });
    const result = await pool({ allowedFor: () => LOOPBACK }).send(
      { method: 'HEAD', url: new URL(`http://127.0.0.1:${server.port}/`), headers: [] },
      small,
    );
    expect(result).toMatchObject({ ok: true, status: 200 });
  });
});

describe('timeout bounds the whole hop', () => {
  const limits = { timeoutMs: 200, maxResponseBytes: 1000 };
  const SLACK = 600;

  async function timed(send: () => Promise<HopResult>): Promise<{ result: HopResult; ms: number }> {
    const started = performance.now();
    const result = await send();
    return { result, ms: performance.now() - started };
  }

  it('ends a server that accepts and never answers', async () => {
    const server = await serve(() => {});
    const { result, ms } = await timed(() => pool({ allowedFor: () => LOOPBACK }).send(get(`http://127.0.0.1:${server.port}/`), limits));
    expect(result).toMatchObject({ ok: false, kind: 'timeout' });
    expect(!result.ok && result.message).toContain('grants.http.timeoutMs (200 ms), stopped while waiting for the response headers');
    expect(ms).toBeGreaterThanOrEqual(190);
    expect(ms).toBeLessThan(200 + SLACK);
    await server.allClosed();
  });

  it('ends a server that stalls mid-body', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': '100' });
      res.write('partial');
    });
    const { result, ms } = await timed(() => pool({ allowedFor: () => LOOPBACK }).send(get(`http://127.0.0.1:${server.port}/`), limits));
    expect(result).toMatchObject({ ok: false, kind: 'timeout' });
    expect(!result.ok && result.message).toContain('stopped while reading the response body');
    expect(ms).toBeLessThan(200 + SLACK);
    await server.allClosed();
  });

  it('ends a DNS resolution that never answers', async () => {
    const { result, ms } = await timed(() =>
      pool({ resolve: () => new Promise(() => {}) }).send(get('http://api.test/'), limits),
    );
    expect(result).toMatchObject({ ok: false, kind: 'timeout' });
    expect(!result.ok && result.message).toContain('stopped while connecting');
    expect(ms).toBeLessThan(200 + SLACK);
  });
});

describe('network failures', () => {
  const auth = [{ name: 'Authorization', value: `Bearer ${SECRET}` }];

  function expectClean(result: HopResult, kind: string, pattern: RegExp): void {
    expect(result).toMatchObject({ ok: false, kind });
    if (result.ok) return;
    expect(result.message).toMatch(pattern);
    expect(result.message).not.toContain('\n');
    expect(result.message).not.toContain(' at ');
  }

  it('reports refused, reset and DNS failures with short messages', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const reset = await serve((req) => req.socket.destroy());
    const p = pool({ allowedFor: () => LOOPBACK, resolve: resolver({}).resolve });
    expectClean(await p.send(get(`http://127.0.0.1:${deadPort}/`, auth), LIMITS), 'network', new RegExp(`^connection to http://127.0.0.1:${deadPort} refused \\(ECONNREFUSED\\)$`));
    expectClean(await p.send(get(`http://127.0.0.1:${reset.port}/`, auth), LIMITS), 'network', /closed the connection without a complete response \(ECONNRESET\)$/);
    expectClean(await p.send(get('http://nowhere.test/', auth), LIMITS), 'network', /^DNS lookup for nowhere\.test failed \(ENOTFOUND\)$/);
  });

  it('never puts a request header value in any message', async () => {
    const stall = await serve(() => {});
    const big = await serve((_req, res) => flood(res));
    const p = pool({ allowedFor: (h) => (h === '127.0.0.1' ? LOOPBACK : []), resolve: resolver({ 'api.test': ['127.0.0.1'] }).resolve });
    const results = await Promise.all([
      p.send(get(`http://127.0.0.1:${stall.port}/`, auth), { timeoutMs: 100, maxResponseBytes: 10 }),
      p.send(get(`http://127.0.0.1:${big.port}/`, auth), { timeoutMs: 2000, maxResponseBytes: 10 }),
      p.send(get('http://api.test/', auth), LIMITS),
      p.send(get('http://127.0.0.1:1/', [{ name: 'X-Secret', value: '\u0000' + SECRET }]), LIMITS),
      p.send(get('http://127.0.0.1:1/', [{ name: 'Host', value: SECRET }]), LIMITS),
    ]);
    expect(results.map((r) => (r.ok ? 'ok' : r.kind))).toEqual(['timeout', 'too-large', 'address', 'network', 'network']);
    for (const result of results) expect(JSON.stringify(result)).not.toContain('TOPSECRET');
  });
});

const opensslMissing = spawnSync('openssl', ['version']).status !== 0;

describe.skipIf(opensslMissing)('TLS (skipped when the openssl command is not installed: it makes the test certificate)', () => {
  let dir = '';
  let key = '';
  let cert = '';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ice-egress-tls-'));
    const made = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=api.test',
      '-addext', 'subjectAltName=DNS:api.test,IP:127.0.0.1',
    ]);
    if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
    key = readFileSync(join(dir, 'key.pem'), 'utf8');
    cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function tlsServer(): Promise<TestServer> {
    return listen(
      https.createServer({ key, cert }, (req, res) => {
        res.end(JSON.stringify({ servername: (req.socket as TLSSocket).servername, host: req.headers.host }));
      }),
    );
  }

  it('verifies against the extra CA, sends SNI = url.hostname and Host = url.host', async () => {
    const server = await tlsServer();
    const { resolve } = resolver({ 'api.test': ['127.0.0.1'] });
    const result = await pool({ resolve, allowedFor: () => LOOPBACK, ca: cert }).send(get(`https://api.test:${server.port}/`), LIMITS);
    expect(JSON.parse(text(result))).toEqual({ servername: 'api.test', host: `api.test:${server.port}` });
  });

  it('sends no SNI for an IP-literal host', async () => {
    const server = await tlsServer();
    const result = await pool({ allowedFor: () => LOOPBACK, ca: cert }).send(get(`https://127.0.0.1:${server.port}/`), LIMITS);
    expect(JSON.parse(text(result))).toEqual({ servername: false, host: `127.0.0.1:${server.port}` });
  });

  it('fails as a network error when the certificate is not trusted', async () => {
    const server = await tlsServer();
    const { resolve } = resolver({ 'api.test': ['127.0.0.1'] });
    const result = await pool({ resolve, allowedFor: () => LOOPBACK }).send(
      get(`https://api.test:${server.port}/`, [{ name: 'Authorization', value: `Bearer ${SECRET}` }]),
      LIMITS,
    );
    expect(result).toMatchObject({ ok: false, kind: 'network' });
    expect(!result.ok && result.message).toMatch(/^TLS connection to https:\/\/api\.test:\d+ failed: self-signed certificate \(DEPTH_ZERO_SELF_SIGNED_CERT\)$/);
    expect(JSON.stringify(result)).not.toContain('TOPSECRET');
  });

  it('checks the address of a TLS connection before the handshake', async () => {
    const server = await tlsServer();
    const { resolve } = resolver({ 'api.test': ['127.0.0.1'] });
    const result = await pool({ resolve, ca: cert }).send(get(`https://api.test:${server.port}/`), LIMITS);
    expect(result).toMatchObject({ ok: false, kind: 'address', address: '127.0.0.1' });
    await settle();
    expect(server.connections).toBe(0);
  });
});
