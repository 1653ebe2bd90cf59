/**
 * Egress end to end: the http-driver guest makes every request of the table in ONE run (the hostile guest
 * that tries every bypass class), through the real path — worker, bridge, mediator, host-thread egress
 * with its connect-time address checks — against real servers on 127.0.0.1. Each row asserts the guest's
 * exact answer and the ledger records of that call (one per hop).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LedgerCall, type StoredRecord } from '../host/src/ledger/index.js';
import type { Agent, Host, RunResult } from '../host/src/index.js';
import { echoServer, type TestServer } from './egress-servers.js';
import { freshHost } from './helpers.js';
import { guestWasm } from './paths.js';
import { callGroups, line, parseDriverOutput, type Line } from './driver.js';

const SECRET = 'tok-3f9a1c77e2b54d08a1';

const ADDRESSES: Record<string, string[]> = {
  'api.test': ['127.0.0.1'],
  'rebind.test': ['127.0.0.1'],
  'mixed.test': ['127.0.0.1', '10.0.0.7'],
  'meta.test': ['169.254.169.254'],
  'mapped.test': ['::ffff:127.0.0.1'],
};

/** DNS for the tests: fixed answers, never the network. */
async function resolve(hostname: string): Promise<readonly string[]> {
  const found = ADDRESSES[hostname];
  if (found) return found;
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
}

type Expect = {
  /** `ok 200`, or `<kind>` of the error. */
  answer: string;
  message?: string;
  /** decision:rule of each record of the call, hops included. */
  records: string[];
  check?: (got: Line, s1: TestServer, s2: TestServer) => void;
};

let s1: TestServer;
let s2: TestServer;
let host: Host;
let result: RunResult;
let lines: Line[];
let groups: LedgerCall[][];
let records: StoredRecord[];

const o1 = () => s1.origin;
const o2 = () => s2.origin;
const p1 = () => s1.port;

function echoed(got: Line): { method: string; url: string; headers: Record<string, string>; body: string } {
  if (!got.ok) throw new Error(`expected a response, got ${got.kind}: ${got.message}`);
  return JSON.parse(got.body);
}

// Built lazily: the rows need the servers' ports.
const ROWS: [string, () => string, Expect][] = [
  // Malformed requests: refused as invalid before any decision.
  ['relative URL', () => line('GET', '/echo'), { answer: 'invalid', message: 'only absolute http:// or https:// URLs', records: ['invalid:grants.http'] }],
  ['scheme-relative URL', () => line('GET', `//127.0.0.1:${p1()}/echo`), { answer: 'invalid', message: 'no relative or scheme-relative', records: ['invalid:grants.http'] }],
  ['userinfo', () => line('GET', `http://user:pw@127.0.0.1:${p1()}/echo`), { answer: 'invalid', message: 'user name or password', records: ['invalid:grants.http'] }],
  ['userinfo hiding the real host', () => line('GET', `http://127.0.0.1:${p1()}@evil.test/`), { answer: 'invalid', message: 'user name or password', records: ['invalid:grants.http'] }],
  ['file: scheme', () => line('GET', 'file:///etc/passwd'), { answer: 'invalid', message: 'the scheme "file" is not allowed', records: ['invalid:grants.http'] }],
  ['ftp: scheme', () => line('GET', `ftp://127.0.0.1:${p1()}/`), { answer: 'invalid', message: 'the scheme "ftp" is not allowed', records: ['invalid:grants.http'] }],
  ['CONNECT', () => line('CONNECT', `${o1()}/echo`), { answer: 'invalid', message: 'CONNECT, TRACE and TRACK are never allowed', records: ['invalid:grants.http'] }],
  ['TRACE', () => line('TRACE', `${o1()}/echo`), { answer: 'invalid', message: 'never allowed', records: ['invalid:grants.http'] }],
  ['TRACK', () => line('TRACK', `${o1()}/echo`), { answer: 'invalid', message: 'never allowed', records: ['invalid:grants.http'] }],
  ['lowercase method', () => line('get', `${o1()}/echo`), { answer: 'invalid', message: 'methods are case-sensitive; write "GET"', records: ['invalid:grants.http'] }],
  ['CR in the URL', () => line('GET', `${o1()}/echo\r`), { answer: 'invalid', message: 'control character U+000D', records: ['invalid:grants.http'] }],
  ['CR in a header value', () => line('GET', `${o1()}/echo`, 'h:X-Note:a\rInjected: 1'), { answer: 'invalid', message: 'CR, LF or NUL', records: ['invalid:grants.http'] }],
  ['Host header', () => line('GET', `${o1()}/echo`, 'h:Host:evil.test'), { answer: 'invalid', message: 'the host sets Host from the URL', records: ['invalid:grants.http'] }],
  ['Transfer-Encoding header', () => line('POST', `${o1()}/echo`, 'h:Transfer-Encoding:chunked', 'b:x'), { answer: 'invalid', message: 'hop-by-hop', records: ['invalid:grants.http'] }],
  ['Connection header', () => line('GET', `${o1()}/echo`, 'h:Connection:Upgrade'), { answer: 'invalid', message: 'hop-by-hop', records: ['invalid:grants.http'] }],
  ['Proxy-Authorization header', () => line('GET', `${o1()}/echo`, 'h:Proxy-Authorization:Basic eA=='), { answer: 'invalid', message: 'hop-by-hop', records: ['invalid:grants.http'] }],
  ['Content-Length header', () => line('POST', `${o1()}/echo`, 'h:Content-Length:0', 'b:smuggled'), { answer: 'invalid', message: 'set by the host', records: ['invalid:grants.http'] }],
  ['path starting with //', () => line('GET', `${o1()}//admin`), { answer: 'invalid', message: 'starts with "//"', records: ['invalid:grants.http'] }],
  ['encoded slash', () => line('GET', `${o1()}/v1%2F..%2Fadmin`), { answer: 'invalid', message: 'an encoded "/"', records: ['invalid:grants.http'] }],
  // Aliases of an address (the Deno class): refused, never decided on as something else.
  ['decimal IPv4 alias', () => line('GET', `http://2130706433:${p1()}/echo`), { answer: 'invalid', message: 'another spelling of the address 127.0.0.1', records: ['invalid:grants.http'] }],
  ['octal IPv4 alias', () => line('GET', `http://0177.0.0.1:${p1()}/echo`), { answer: 'invalid', message: 'another spelling', records: ['invalid:grants.http'] }],
  ['hex IPv4 alias', () => line('GET', `http://0x7f.1:${p1()}/echo`), { answer: 'invalid', message: 'another spelling', records: ['invalid:grants.http'] }],
  ['IPv4-mapped IPv6 spelling', () => line('GET', `http://[::ffff:127.0.0.1]:${p1()}/echo`), { answer: 'invalid', message: 'write [::ffff:7f00:1]', records: ['invalid:grants.http'] }],
  // Rules: deny wins; nothing matched is a denial naming the fix.
  ['dot segments into a denied path', () => line('GET', `${o1()}/x/../admin`), { answer: 'denied', message: 'matches the deny rule grants.http.deny[0]', records: ['deny:grants.http.deny[0]'] }],
  ['deny rule wins over allow', () => line('GET', `${o1()}/admin/users`), { answer: 'denied', message: 'deny rule', records: ['deny:grants.http.deny[0]'] }],
  ['method the rule does not grant', () => line('DELETE', `${o1()}/echo`), { answer: 'denied', message: 'with methods: [DELETE]', records: ['deny:grants.http.allow'] }],
  ['https where the rule says http', () => line('GET', `https://127.0.0.1:${p1()}/echo`), { answer: 'denied', message: 'matches no rule', records: ['deny:grants.http.allow'] }],
  ['IPv4-mapped literal of an allowed IP', () => line('GET', `http://[::ffff:7f00:1]:${p1()}/echo`), { answer: 'denied', message: 'matches no rule', records: ['deny:grants.http.allow'] }],
  ['unlisted host', () => line('GET', `http://localhost:${p1()}/echo`), { answer: 'denied', message: 'matches no rule', records: ['deny:grants.http.allow'] }],
  ['metadata IP, no rule', () => line('GET', 'http://169.254.169.254/latest/meta-data/'), { answer: 'denied', message: 'matches no rule', records: ['deny:grants.http.allow'] }],
  ['IPv6 metadata IP, no rule', () => line('GET', 'http://[fd00:ec2::254]/'), { answer: 'denied', message: 'matches no rule', records: ['deny:grants.http.allow'] }],
  // Addresses: what is connected to is checked, whatever the name's rule says.
  ['allowed name resolving to loopback (rebinding)', () => line('GET', `http://rebind.test:${p1()}/echo`), { answer: 'denied', message: 'loopback', records: ['deny:grants.http.allow[3].addresses'] }],
  ['one private answer among allowed ones', () => line('GET', `http://mixed.test:${p1()}/echo`), { answer: 'denied', message: '10.0.0.7', records: ['deny:grants.http.allow[4].addresses'] }],
  ['allowed name resolving to the metadata address', () => line('GET', `http://meta.test/`), { answer: 'denied', message: 'metadata', records: ['deny:grants.http.allow[5].addresses'] }],
  ['allowed name resolving to IPv4-mapped loopback', () => line('GET', `http://mapped.test:${p1()}/echo`), { answer: 'denied', message: 'loopback', records: ['deny:grants.http.allow[6].addresses'] }],
  ['name with an addresses grant', () => line('GET', `http://api.test:${p1()}/echo`), { answer: 'ok 200', records: ['allow:grants.http.allow[2]'], check: (got) => expect(echoed(got).headers.host).toBe(`api.test:${p1()}`) }],
  // Secrets.
  [
    'secret injected after the decision, redacted from the echo',
    () => line('GET', `${o1()}/echo`),
    {
      answer: 'ok 200',
      records: ['allow:grants.http.allow[0]'],
      check: (got, server) => {
        // The whole injected value is a form of the secret too (its base64 is not the secret's).
        expect(echoed(got).headers.authorization).toBe('[secret API_TOKEN]');
        expect(server.seen.some((r) => r.headers.authorization === `Bearer ${SECRET}`)).toBe(true);
      },
    },
  ],
  ['guest sets the header the rule injects', () => line('GET', `${o1()}/echo`, 'h:Authorization:Bearer mine'), { answer: 'invalid', message: 'set by the host for this URL', records: ['invalid:grants.http.allow[0].inject'] }],
  // Redirects: followed by ICE, every hop decided again and recorded.
  [
    'same-origin redirect keeps the secret',
    () => line('GET', `${o1()}/redirect?to=/echo?hop=same`),
    { answer: 'ok 200', records: ['allow:grants.http.allow[0]', 'allow:grants.http.allow[0]'], check: (got) => expect(echoed(got).headers.authorization).toBe('[secret API_TOKEN]') },
  ],
  [
    'cross-origin redirect drops the secret',
    () => line('GET', `${o1()}/redirect?to=${encodeURIComponent(`${o2()}/echo?hop=cross`)}`),
    {
      answer: 'ok 200',
      records: ['allow:grants.http.allow[0]', 'allow:grants.http.allow[1]'],
      check: (got, _s1, server2) => {
        expect(echoed(got).headers.authorization).toBeUndefined();
        expect(server2.seen.find((r) => r.url === '/echo?hop=cross')?.headers.authorization).toBeUndefined();
      },
    },
  ],
  [
    'a redirect back to the origin does not get the secret back',
    () => line('GET', `${o1()}/redirect?to=${encodeURIComponent(`${o2()}/redirect?to=${encodeURIComponent(`${o1()}/echo?hop=back`)}`)}`),
    {
      answer: 'ok 200',
      records: ['allow:grants.http.allow[0]', 'allow:grants.http.allow[1]', 'allow:grants.http.allow[0]'],
      check: (got, server1) => {
        expect(echoed(got).headers.authorization).toBeUndefined();
        expect(server1.seen.find((r) => r.url === '/echo?hop=back')?.headers.authorization).toBeUndefined();
      },
    },
  ],
  [
    'cross-origin redirect drops the guest\'s own credentials',
    () => line('GET', `${o2()}/redirect?to=${encodeURIComponent(`${o1()}/echo?hop=cookie`)}`, 'h:Cookie:session=abc'),
    { answer: 'ok 200', records: ['allow:grants.http.allow[1]', 'allow:grants.http.allow[0]'], check: (got) => expect(echoed(got).headers.cookie).toBeUndefined() },
  ],
  ['redirect to an unlisted host', () => line('GET', `${o1()}/redirect?to=${encodeURIComponent(`http://localhost:${p1()}/echo`)}`), { answer: 'denied', message: 'redirect not followed', records: ['allow:grants.http.allow[0]', 'deny:grants.http.allow'] }],
  ['redirect to the metadata address', () => line('GET', `${o1()}/redirect?to=${encodeURIComponent('http://169.254.169.254/latest/')}`), { answer: 'denied', message: 'redirect not followed', records: ['allow:grants.http.allow[0]', 'deny:grants.http.allow'] }],
  ['redirect to a denied path', () => line('GET', `${o1()}/redirect?to=/admin`), { answer: 'denied', message: 'deny rule', records: ['allow:grants.http.allow[0]', 'deny:grants.http.deny[0]'] }],
  ['redirect to file:', () => line('GET', `${o1()}/redirect?to=${encodeURIComponent('file:///etc/passwd')}`), { answer: 'invalid', message: 'redirect not followed', records: ['allow:grants.http.allow[0]', 'invalid:grants.http'] }],
  ['redirect loop', () => line('GET', `${o1()}/loop`), { answer: 'limit', message: 'maxRedirects (3)', records: ['allow:grants.http.allow[0]', 'allow:grants.http.allow[0]', 'allow:grants.http.allow[0]', 'allow:grants.http.allow[0]', 'limit:grants.http.maxRedirects'] }],
  [
    '303 turns a POST into a GET without its body',
    () => line('POST', `${o1()}/redirect?status=303&to=/echo`, 'h:Content-Type:text/plain', 'b:hello'),
    { answer: 'ok 200', records: ['allow:grants.http.allow[0]', 'allow:grants.http.allow[0]'], check: (got) => expect(echoed(got)).toMatchObject({ method: 'GET', body: '' }) },
  ],
  [
    '307 keeps the method and body',
    () => line('POST', `${o1()}/redirect?status=307&to=/echo`, 'b:hello'),
    { answer: 'ok 200', records: ['allow:grants.http.allow[0]', 'allow:grants.http.allow[0]'], check: (got) => expect(echoed(got)).toMatchObject({ method: 'POST', body: 'hello' }) },
  ],
  // Sizes and time.
  ['response over maxResponseBytes (Content-Length)', () => line('GET', `${o1()}/big?n=100000`), { answer: 'limit', message: 'maxResponseBytes', records: ['limit:grants.http.maxResponseBytes'] }],
  ['response over maxResponseBytes (chunked)', () => line('GET', `${o1()}/big?n=100000&chunked`), { answer: 'limit', message: 'maxResponseBytes', records: ['limit:grants.http.maxResponseBytes'] }],
  ['request body over maxRequestBytes', () => line('POST', `${o1()}/echo`, `b:${'x'.repeat(2000)}`), { answer: 'limit', message: 'maxRequestBytes (1024)', records: ['limit:grants.http.maxRequestBytes'] }],
  ['server never answers', () => line('GET', `${o1()}/stall`), { answer: 'limit', message: 'timeoutMs', records: ['limit:grants.http.timeoutMs'] }],
  ['server stalls mid-body', () => line('GET', `${o1()}/stall-body`), { answer: 'limit', message: 'timeoutMs', records: ['limit:grants.http.timeoutMs'] }],
];

function policy() {
  return {
    version: 1,
    component: 'egress-hostile',
    limits: { timeoutMs: 30_000 },
    grants: {
      log: {},
      http: {
        allow: [
          { url: `${o1()}/*`, methods: ['GET', 'POST', 'PUT'], inject: { header: 'Authorization', secret: 'API_TOKEN', format: 'Bearer {}' } },
          { url: `${o2()}/*`, methods: ['GET', 'POST'] },
          { url: `http://api.test:${p1()}/*`, addresses: ['127.0.0.1'] },
          { url: `http://rebind.test:${p1()}/*` },
          { url: `http://mixed.test:${p1()}/*`, addresses: ['127.0.0.1'] },
          { url: 'http://meta.test/*' },
          { url: `http://mapped.test:${p1()}/*` },
        ],
        deny: [{ url: `${o1()}/admin*` }],
        maxRedirects: 3,
        maxResponseBytes: 4096,
        maxRequestBytes: 1024,
        timeoutMs: 1500,
      },
    },
  };
}

beforeAll(async () => {
  [s1, s2] = await Promise.all([echoServer(), echoServer()]);
  ({ host } = await freshHost(undefined, { secrets: { API_TOKEN: SECRET }, resolve }));
  const agent: Agent = await host.load(guestWasm('http-driver'), policy());
  result = await agent.run(ROWS.map(([, make]) => make()).join('\n'));
  if (!result.ok) throw new Error(`the driver run failed: ${result.error}`);
  lines = parseDriverOutput(result.output);
  records = host.readRun(result.runId);
  groups = callGroups(records);
}, 60_000);

afterAll(async () => {
  host?.close();
  await Promise.all([s1?.close(), s2?.close()]);
});

describe('egress: every bypass class in one run of a hostile guest', () => {
  it('makes one call per row', () => {
    expect(lines).toHaveLength(ROWS.length);
    expect(groups).toHaveLength(ROWS.length);
  });

  it.each(ROWS.map(([name, , expected], index) => [name, index, expected] as const))('%s', (_name, index, expected) => {
    const got = lines[index]!;
    expect(got.ok ? `ok ${got.status}` : got.kind, got.ok ? '' : got.message).toBe(expected.answer);
    if (expected.message !== undefined) expect(got.ok ? '' : got.message).toContain(expected.message);
    expect(groups[index]!.map((r) => `${r.decision}:${r.rule}`)).toEqual(expected.records);
    groups[index]!.forEach((record, hop) => expect(record.hop).toBe(hop === 0 ? undefined : hop));
    expected.check?.(got, s1, s2);
  });

  it('never hands the secret to the guest nor writes it to the ledger', () => {
    expect(result.ok && result.output).not.toContain(SECRET);
    expect(lines.map((l) => (l.ok ? l.headers + l.body : l.message)).join('\n')).not.toContain(SECRET);
    // Bodies are recorded as hex: search that form too.
    for (const { body } of records) for (const form of [SECRET, Buffer.from(SECRET).toString('hex')]) expect(body).not.toContain(form);
    // ... while the server did receive it, and the ledger names it.
    expect(s1.seen.some((r) => r.headers.authorization === `Bearer ${SECRET}`)).toBe(true);
    expect(records.some(({ body }) => body.includes('Authorization ← secret API_TOKEN'))).toBe(true);
  });

  it('records the address actually connected to', () => {
    const allowed = groups.flat().filter((r) => r.decision === 'allow' && r.outcome !== undefined && 'ok' in r.outcome && r.outcome.ok && 'fields' in r.outcome.ok);
    expect(allowed.length).toBeGreaterThan(5);
    for (const record of allowed) {
      const ok = (record.outcome as { ok: { fields: Record<string, { value?: unknown }> } }).ok;
      expect(ok.fields.address?.value).toBe('127.0.0.1');
    }
  });

  it('keeps a chain that verifies, and the run replays from the ledger alone', async () => {
    expect(host.verify(result.runId)).toMatchObject({ ok: true, records: records.length });
    const replay = await host.replay(result.runId);
    expect(replay).toMatchObject({ matches: true });
  });

  it('let no refused request reach a server', () => {
    const paths = [...s1.seen, ...s2.seen].map((seen) => new URL(seen.url, 'http://x').pathname);
    for (const path of paths) expect(path.startsWith('/admin') || path.startsWith('//') || path.includes('%2F')).toBe(false);
    // The requests refused before sending never arrived: only allowed paths were served.
    expect(new Set(paths)).toEqual(new Set(['/echo', '/redirect', '/loop', '/big', '/stall', '/stall-body']));
  });
});
