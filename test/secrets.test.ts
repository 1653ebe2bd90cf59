/**
 * Secrets never reach the guest (issue 14, class 1). A local server echoes the Authorization header the
 * host injected back in every common form (raw, compressed, base64, percent, JSON escapes, hex, in a
 * redirect's Location); real guests in both languages fetch it; neither what the guest gets, nor ice's
 * output, nor any ledger record may hold the secret in any form, while the server got it exactly.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redactor } from '../host/src/capabilities/http/redact.js';
import type { Host } from '../host/src/index.js';
import type { LedgerCall } from '../host/src/ledger/index.js';
import { callGroups, line, parseDriverOutput } from './driver.js';
import { callsOf, freshHost } from './helpers.js';
import { fakeOpenAi, type FakeModel } from './egress-servers.js';
import { guestWasm } from './paths.js';

/** Short ones (every byte of them matters), long ones, and ones a `String.replace` pattern would rewrite. */
const SECRETS = ['Q', 'zX', 'q$&', 'sk-live-7Hq2mP9xWv', "t$&$`$'/\"é-9f3K", 'ab$`cd$\'ef'];
const LONG = (s: string) => Buffer.byteLength(s) >= 8;

// ---- forms, built independently of the module under test ------------------------------------------

const pctAll = (b: Buffer, lower: boolean) => [...b].map((x) => `%${x.toString(16).padStart(2, '0')}`).map((s) => (lower ? s : s.toUpperCase())).join('');
const uEsc = (s: string, lower: boolean) =>
  [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).map((e) => (lower ? e : e.slice(0, 2) + e.slice(2).toUpperCase())).join('');
const unpad = (s: string) => s.replace(/=+$/u, '');

/** The forms a server could echo `value` in, as strings (compared against UTF-8 and latin1 readings). */
function forms(value: string): string[] {
  const out = new Set<string>();
  for (const bytes of [Buffer.from(value, 'utf8'), Buffer.from(value, 'latin1')]) {
    out.add(bytes.toString('latin1'));
    out.add(bytes.toString('hex'));
    out.add(bytes.toString('hex').toUpperCase());
    out.add(unpad(bytes.toString('base64')));
    out.add(unpad(bytes.toString('base64url')));
    out.add(pctAll(bytes, true));
    out.add(pctAll(bytes, false));
  }
  out.add(value);
  out.add(encodeURIComponent(value));
  out.add(encodeURIComponent(value).replace(/%[0-9A-F]{2}/gu, (m) => m.toLowerCase()));
  out.add(JSON.stringify(value).slice(1, -1));
  out.add(JSON.stringify(value).slice(1, -1).replace(/\//gu, '\\/'));
  out.add(uEsc(value, true));
  out.add(uEsc(value, false));
  return [...out];
}

const allForms = (secret: string) => [...forms(secret), ...forms(`Bearer ${secret}`)];

/** Every form found in `text`, read as UTF-8 and as latin1 bytes. */
/** The test servers' own origins (`http://127.0.0.1:<random port>`): not echoed content, so never a leak — a 1-byte secret's hex form ("51") can occur in a port. */
const ORIGINS = new Set<string>();

function leaks(text: string | Uint8Array, secret: string): string[] {
  const unlinked = (reading: string) => [...ORIGINS].reduce((r, origin) => r.replaceAll(origin, '<origin>'), reading);
  const readings = (typeof text === 'string' ? [text, Buffer.from(text, 'latin1').toString('utf8')] : [Buffer.from(text).toString('latin1'), Buffer.from(text).toString('utf8')]).map(unlinked);
  return allForms(secret).filter((f) => readings.some((r) => r.includes(f)));
}

// ---- the echo server ---------------------------------------------------------------------------------

const ENCODERS: Record<string, (b: Buffer) => Buffer> = { gzip: gzipSync, deflate: deflateSync, 'deflate-raw': deflateRawSync, br: brotliCompressSync };
const CODING: Record<string, string> = { gzip: 'gzip', deflate: 'deflate', 'deflate-raw': 'deflate', br: 'br' };

/** What the server did with `v` (the whole header value, or the secret after "Bearer "), per form. */
function render(form: string, v: string): string | Buffer {
  switch (form) {
    case 'raw': return v;
    case 'latin1': return Buffer.from(v, 'latin1');
    case 'base64': return Buffer.from(v).toString('base64');
    case 'base64url': return Buffer.from(v).toString('base64url');
    case 'base64-latin1': return Buffer.from(v, 'latin1').toString('base64');
    case 'pct': return `https://x.test/?t=${encodeURIComponent(v)}`;
    case 'pct-lower': return encodeURIComponent(v).replace(/%[0-9A-F]{2}/gu, (m) => m.toLowerCase());
    case 'json': return JSON.stringify({ auth: v });
    case 'json-slash': return JSON.stringify({ auth: v }).replace(/\//gu, '\\/');
    case 'json-u': return `{"auth":"${uEsc(v, true)}"}`;
    case 'json-U': return `{"auth":"${uEsc(v, false)}"}`;
    case 'hex': return Buffer.from(v).toString('hex');
    case 'HEX': return Buffer.from(v).toString('hex').toUpperCase();
    default: return `unknown form ${form}`;
  }
}

const TEXT_FORMS = ['raw', 'latin1', 'base64', 'base64url', 'base64-latin1', 'pct', 'pct-lower', 'json', 'json-slash', 'json-u', 'json-U', 'hex', 'HEX'];
const CODED = ['gzip-asked', 'gzip', 'deflate', 'deflate-raw', 'br'];

interface Seen { authorization: string | undefined; acceptEncoding: string | undefined }

async function echoForms(): Promise<{ origin: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const auth = req.headers.authorization ?? '';
      seen.push({ authorization: req.headers.authorization, acceptEncoding: req.headers['accept-encoding'] as string | undefined });
      const [, , form = 'raw', which = 'secret'] = (req.url ?? '/').split('?')[0]!.split('/');
      const v = which === 'header' ? auth : auth.replace(/^Bearer /u, '');
      if (form === 'location') {
        res.writeHead(302, { location: `/landing?t=${encodeURIComponent(v)}` });
        res.end();
        return;
      }
      if (form === 'unknown-coding') {
        res.writeHead(200, { 'content-encoding': 'zstd' });
        res.end(v);
        return;
      }
      if (CODED.includes(form)) {
        const asked = form === 'gzip-asked';
        const coding = asked ? 'gzip' : form;
        // gzip-asked: what a well-behaved server does (encode only when asked); the rest encode regardless.
        if (asked && !/gzip/u.test(String(req.headers['accept-encoding'] ?? ''))) {
          res.writeHead(200, { 'x-echo': Buffer.from(v).toString('base64') });
          res.end(v);
          return;
        }
        res.writeHead(200, { 'content-encoding': CODING[coding]! });
        res.end(ENCODERS[coding]!(Buffer.from(v)));
        return;
      }
      const body = render(form, v);
      // The header gets the same form (as latin1 bytes, which is how Node writes a header).
      res.writeHead(200, { 'x-echo': Buffer.from(body).toString('latin1') });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  ORIGINS.add(origin);
  return {
    origin,
    seen,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const policy = (origin: string) => ({
  version: 1,
  component: 'secrets',
  limits: { timeoutMs: 30_000 },
  grants: {
    log: { levels: ['info'] },
    model: { models: ['local/echo'], maxTokensPerCall: 64 },
    http: {
      allow: [{ url: `${origin}/*`, inject: { header: 'Authorization', secret: 'API_TOKEN', format: 'Bearer {}' } }],
      maxRedirects: 0,
      maxResponseBytes: 65536,
    },
  },
});

/** Every string and every hex-recorded byte string in a ledger value. */
function walk(value: unknown, out: (string | Uint8Array)[] = []): (string | Uint8Array)[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) walk(v, out);
  else if (value !== null && typeof value === 'object') {
    const hex = (value as { hex?: unknown }).hex;
    if (typeof hex === 'string') out.push(new Uint8Array(Buffer.from(hex, 'hex')));
    for (const v of Object.values(value)) walk(v, out);
  }
  return out;
}

function ledgerLeaks(host: Host, runId: string, secret: string, calls: readonly LedgerCall[]): string[] {
  const found = new Set<string>();
  // The http calls' requests and answers, field by field: what the guest was given, as recorded.
  for (const call of calls) for (const piece of walk([call.args, call.outcome])) for (const f of leaks(piece, secret)) found.add(f);
  // A long secret cannot occur in a record by chance (hashes, timestamps): search every record whole.
  if (LONG(secret)) {
    for (const stored of host.readRun(runId)) {
      for (const f of leaks(stored.body, secret)) found.add(`record: ${f}`);
      for (const piece of walk(stored.record)) for (const f of leaks(piece, secret)) found.add(`record: ${f}`);
    }
  }
  return [...found];
}

const ROUTES = [
  ...TEXT_FORMS.flatMap((f) => [`/f/${f}/secret`, `/f/${f}/header`]),
  ...CODED.flatMap((f) => [`/f/${f}/secret`, `/f/${f}/header`]),
  '/f/location/secret',
  '/f/location/header',
];

describe.each(SECRETS)('secret %j echoed back by the server', (secret) => {
  let server: Awaited<ReturnType<typeof echoForms>>;
  let host: Host;

  beforeAll(async () => {
    server = await echoForms();
    ({ host } = await freshHost(undefined, { secrets: { API_TOKEN: secret } }));
  });
  afterAll(async () => {
    host?.close();
    await server?.close();
  });

  it('http-driver (AssemblyScript): in no form in the body, headers, Location, output or ledger', async () => {
    const agent = await host.load(guestWasm('http-driver'), policy(server.origin));
    // The guest asks for gzip on every request: the host must not let it pick the encoding.
    const input = [...ROUTES.map((r) => line('GET', `${server.origin}${r}`, 'h:Accept-Encoding:gzip, deflate, br')), line('GET', `${server.origin}/f/unknown-coding/header`)];
    const result = await agent.run(input.join('\n'));
    expect(result.ok, result.ok ? '' : result.error).toBe(true);
    const output = result.ok ? result.output : '';
    const lines = parseDriverOutput(output);
    expect(lines).toHaveLength(input.length);
    lines.slice(0, ROUTES.length).forEach((got, i) => {
      expect(got.ok, `${ROUTES[i]}: ${got.ok ? '' : got.message}`).toBe(true);
      if (!got.ok) return;
      expect(leaks(got.headers, secret), `${ROUTES[i]} headers`).toEqual([]);
      expect(leaks(got.body, secret), `${ROUTES[i]} body`).toEqual([]);
      // The echo was found and replaced (a compressed body was decoded to find it), not just garbled.
      expect(got.headers + got.body, ROUTES[i]).toMatch(/\[secret API_TOKEN\]|\[redacted\]|\*\*\*/u);
      expect(got.headers.toLowerCase(), ROUTES[i]).not.toContain('content-encoding');
    });
    // An encoding the host cannot decode: refused, not passed on.
    const unknown = lines.at(-1)!;
    expect(unknown).toMatchObject({ ok: false, kind: 'failed' });
    expect(unknown.ok ? '' : unknown.message).toContain('"zstd" (Content-Encoding), which the host cannot decode');
    expect(leaks(unknown.ok ? '' : unknown.message, secret)).toEqual([]);
    if (LONG(secret)) expect(leaks(output, secret)).toEqual([]);

    const calls = callGroups(host.readRun(result.runId)).flat();
    expect(calls).toHaveLength(input.length);
    expect(ledgerLeaks(host, result.runId, secret, calls)).toEqual([]);
    // The server did get the exact secret, inserted literally, and was asked for no encoding.
    expect(server.seen).toHaveLength(input.length);
    for (const seen of server.seen) expect(seen).toEqual({ authorization: `Bearer ${secret}`, acceptEncoding: 'identity' });
    expect(JSON.stringify(calls)).toContain('Accept-Encoding: identity');
  });

  it('fetcher (Rust): in no form in its output (the body goes through the model), error or ledger', async () => {
    server.seen.length = 0;
    const agent = await host.load(guestWasm('fetcher', 'rust'), policy(server.origin));
    for (const route of [...ROUTES.filter((r) => !r.startsWith('/f/location')), '/f/unknown-coding/secret']) {
      const result = await agent.run(`${server.origin}${route}`);
      const said = result.ok ? result.output : result.error;
      expect(leaks(said, secret), `${route}: ${said}`).toEqual([]);
      if (route.includes('unknown-coding')) expect(said).toContain('which the host cannot decode');
      else expect(said, route).toMatch(/^status=200 .*(\[secret API_TOKEN\]|\[redacted\]|\*\*\*)/u);
      const calls = callsOf(host, result.runId);
      expect(ledgerLeaks(host, result.runId, secret, calls), route).toEqual([]);
    }
    for (const seen of server.seen) expect(seen).toEqual({ authorization: `Bearer ${secret}`, acceptEncoding: 'identity' });
  });
});

describe('Redactor', () => {
  const secret = "t$&$`$'/\"é-9f3K";
  const r = new Redactor([{ name: 'T', value: secret, sent: `Bearer ${secret}` }]);
  const replaced = (input: string | Buffer) => Buffer.from(r.bytes(Buffer.isBuffer(input) ? input : Buffer.from(input))!).toString('latin1');

  it.each(TEXT_FORMS)('replaces the %s form of the secret and of the header value', (form) => {
    for (const v of [secret, `Bearer ${secret}`]) {
      const out = replaced(Buffer.concat([Buffer.from('<<'), Buffer.from(render(form, v)), Buffer.from('>>')]));
      expect(out).toContain('[secret T]');
      expect(leaks(out, secret)).toEqual([]);
    }
  });

  it('finds base64 of the secret inside a longer base64 run at any offset', () => {
    for (const prefix of ['', 'u', 'us', 'use', 'user:']) {
      const out = replaced(Buffer.from(`${prefix}${secret}`).toString('base64'));
      expect(out, prefix).toContain('[secret T]');
    }
  });

  it('redacts a 1-byte secret everywhere, with a marker that does not spell it', () => {
    const one = new Redactor([{ name: 'S', value: 'e', sent: 'Bearer e' }]);
    const out = Buffer.from(one.bytes(Buffer.from('here: e, 65, ZQ, %65, \\u0065'))!).toString();
    expect(out).not.toMatch(/e|65|ZQ/u);
    expect(out).toContain('***');
  });

  it('is linear: 1 MiB with many near-misses and hits', () => {
    const chunk = `${secret.slice(0, -1)}x ${Buffer.from(secret).toString('hex').slice(0, -2)} ${secret} `;
    const body = Buffer.from(chunk.repeat(Math.ceil((1 << 20) / Buffer.byteLength(chunk)))).subarray(0, 1 << 20);
    r.bytes(body);
    const started = performance.now();
    const out = r.bytes(body)!;
    const ms = performance.now() - started;
    console.log(`redact 1 MiB: ${ms.toFixed(1)} ms`);
    expect(leaks(Buffer.from(out), secret)).toEqual([]);
    expect(ms).toBeLessThan(1000);
  });
});

describe.each(['sk-test-9d1e0c4b7a2f', 'q$&', "k$'/\"é-$`x"])('model provider key %j echoed back by the provider', (key) => {
  let provider: FakeModel;
  let host: Host;
  beforeAll(async () => {
    provider = await fakeOpenAi(key);
    ({ host } = await freshHost(undefined, { secrets: { OPENAI_API_KEY: key }, models: { openai: { baseUrl: `${provider.origin}/v1` } } }));
  });
  afterAll(async () => {
    host?.close();
    await provider?.close();
  });

  it('model-driver: in no form in the answer, the error message or the ledger', async () => {
    const prompts = ['base64', 'hex', 'pct', 'u'].flatMap((form) => [`leak:${form}`, `leak-error:${form}`]);
    const agent = await host.load(guestWasm('model-driver'), { version: 1, component: 'thinker', grants: { log: {}, model: { models: ['gpt-test'] } } });
    const result = await agent.run(prompts.map((p) => `gpt-test\t32\t${p}`).join('\n'));
    expect(result.ok, result.ok ? '' : result.error).toBe(true);
    const answers = (result.ok ? result.output : '').split('\n').map((l) => {
      const [tag, , b = '', c = ''] = l.split(' ');
      return { tag, said: Buffer.from(tag === 'ok' ? c : b, 'hex').toString('utf8') };
    });
    expect(answers).toHaveLength(prompts.length);
    answers.forEach(({ tag, said }, i) => {
      expect(tag, prompts[i]).toBe(prompts[i]!.startsWith('leak-error') ? 'err' : 'ok');
      expect(leaks(said, key), `${prompts[i]}: ${said}`).toEqual([]);
      expect(said, prompts[i]).toContain('[secret OPENAI_API_KEY]');
    });
    const calls = callsOf(host, result.runId).filter((c) => c.call.includes('/model@'));
    expect(calls).toHaveLength(prompts.length);
    expect(ledgerLeaks(host, result.runId, key, calls)).toEqual([]);
    expect(provider.seen.every((s) => s.headers.authorization === `Bearer ${key}`)).toBe(true);
  });
});
