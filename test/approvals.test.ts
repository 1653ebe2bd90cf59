/**
 * Approvals: an `ask` rule pauses the run (the guest blocks in its worker) while the host's approver
 * decides; no answer within the rule's timeout is a denial; the ledger records who answered. Real
 * guests, real worker execution, a real server on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoadError, compilePolicy, type ApprovalRequest, type Approver, type Host } from '../host/src/index.js';
import type { LedgerCall } from '../host/src/ledger/index.js';
import { echoServer, type TestServer } from './egress-servers.js';
import { callGroups, line, parseDriverOutput } from './driver.js';
import { callsOf, freshHost } from './helpers.js';
import { HostGateway } from '../host/src/sandbox/host-gateway.js';
import { secretSource } from '../host/src/capabilities/secrets.js';
import { guestWasm } from './paths.js';

let server: TestServer;
const hosts: Host[] = [];

beforeAll(async () => {
  server = await echoServer();
});
afterAll(async () => {
  for (const host of hosts) host.close();
  await server.close();
});

async function hostWith(approve?: Approver, extra: Record<string, unknown> = {}): Promise<{ host: Host; asked: ApprovalRequest[] }> {
  const asked: ApprovalRequest[] = [];
  const { host } = await freshHost(undefined, {
    ...(approve
      ? {
          approve: (request: ApprovalRequest) => {
            asked.push(request);
            return approve(request);
          },
          approverName: 'test-callback',
        }
      : {}),
    ...extra,
  });
  hosts.push(host);
  return { host, asked };
}

function httpPolicy(askTimeoutMs = 5000, timeoutMs = 10_000) {
  return {
    version: 1,
    component: 'asker',
    limits: { timeoutMs },
    grants: {
      log: {},
      http: {
        allow: [{ url: `${server.origin}/echo` }],
        ask: [{ url: `${server.origin}/*`, methods: ['GET', 'POST'], askTimeoutMs }],
      },
    },
  };
}

async function drive(host: Host, policy: object, lines: string[]) {
  const agent = await host.load(guestWasm('http-driver'), policy);
  const result = await agent.run(lines.join('\n'));
  if (!result.ok) throw new Error(result.error);
  return { out: parseDriverOutput(result.output), groups: callGroups(host.readRun(result.runId)), result };
}

describe('approvals (library callback)', () => {
  it('asks only for what no allow rule covers, and records who approved', async () => {
    const { host, asked } = await hostWith((r) => ({ approved: r.summary.includes('/yes'), by: 'alice' }));
    const { out, groups } = await drive(host, httpPolicy(), [
      line('GET', `${server.origin}/echo`),
      line('POST', `${server.origin}/yes`, 'b:x'),
      line('POST', `${server.origin}/no`, 'b:x'),
    ]);
    expect(out.map((l) => (l.ok ? `ok ${l.status}` : l.kind))).toEqual(['ok 200', 'ok 200', 'denied']);
    expect(asked.map((r) => [r.call, r.rule, r.summary])).toEqual([
      ['http.fetch', 'grants.http.ask[0]', `POST ${server.origin}/yes`],
      ['http.fetch', 'grants.http.ask[0]', `POST ${server.origin}/no`],
    ]);
    const [plain, yes, no] = groups.map((g) => g[0]!) as [LedgerCall, LedgerCall, LedgerCall];
    expect(plain.approval).toBeUndefined();
    expect(yes).toMatchObject({ decision: 'allow', rule: 'grants.http.ask[0]', approval: { by: 'alice', answer: 'approved' } });
    expect(no).toMatchObject({ decision: 'deny', rule: 'grants.http.ask[0]', approval: { by: 'alice', answer: 'denied' } });
    expect(out[2]!.ok ? '' : out[2]!.message).toContain('needs approval under grants.http.ask[0] and was not approved');
    // The denied request never reached the server.
    expect(server.seen.filter((r) => r.url === '/no')).toHaveLength(0);
  });

  it('denies when no answer comes within the rule\'s timeout', async () => {
    const { host } = await hostWith(() => new Promise(() => undefined));
    const started = performance.now();
    const { out, groups } = await drive(host, httpPolicy(300), [line('POST', `${server.origin}/late`, 'b:x')]);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(out[0]).toMatchObject({ ok: false, kind: 'denied' });
    expect(groups[0]![0]).toMatchObject({ decision: 'deny', approval: { by: 'test-callback', answer: 'timeout' } });
    expect(groups[0]![0]!.approval!.waitedMs).toBeGreaterThanOrEqual(290);
  });

  it('stops the run\'s deadline while it waits for the approver', async () => {
    // The approver answers after 1.5 s; the run may only take 1 s of its own time.
    const { host } = await hostWith(() => new Promise((resolve) => setTimeout(() => resolve(true), 1500)));
    const { out, result } = await drive(host, httpPolicy(5000, 1000), [line('POST', `${server.origin}/slow-yes`, 'b:x')]);
    expect(result.outcome).toBe('ok');
    expect(out[0]).toMatchObject({ ok: true, status: 200 });
  });

  it('denies every ask when the host has no approver', async () => {
    const { host } = await hostWith();
    const { out, groups } = await drive(host, httpPolicy(), [line('POST', `${server.origin}/nobody`, 'b:x')]);
    expect(out[0]).toMatchObject({ ok: false, kind: 'denied' });
    expect(groups[0]![0]).toMatchObject({ approval: { by: 'none', answer: 'denied' } });
  });

  it('treats an approver that throws as a denial', async () => {
    const { host } = await hostWith(() => {
      throw new Error('approver crashed');
    });
    const { out } = await drive(host, httpPolicy(), [line('POST', `${server.origin}/crash`, 'b:x')]);
    expect(out[0]).toMatchObject({ ok: false, kind: 'denied' });
  });

  it('asks again for a redirect hop that only an ask rule covers', async () => {
    const { host, asked } = await hostWith(() => true);
    const policy = {
      ...httpPolicy(),
      grants: { log: {}, http: { allow: [{ url: `${server.origin}/redirect` }], ask: [{ url: `${server.origin}/echo` }] } },
    };
    const { out, groups } = await drive(host, policy, [line('GET', `${server.origin}/redirect?to=/echo`)]);
    expect(out[0]).toMatchObject({ ok: true, status: 200 });
    expect(asked.map((r) => r.call)).toEqual(['http.fetch (redirect)']);
    expect(groups[0]!.map((r) => [r.decision, r.rule, r.hop, r.approval?.answer])).toEqual([
      ['allow', 'grants.http.allow[0]', undefined, undefined],
      ['allow', 'grants.http.ask[0]', 1, 'approved'],
    ]);
  });

  it('asks before a kv write an ask rule covers, outside any transaction, and writes only what was approved', async () => {
    const { host, asked } = await hostWith((r) => r.summary.includes('"count"'));
    const agent = await host.load(guestWasm('counter'), {
      version: 1,
      component: 'counter',
      grants: { log: {}, kv: { read: ['*'], write: [], ask: ['count', 'history/*'], askTimeoutMs: 2000 } },
    });
    const result = await agent.run('');
    expect(result).toMatchObject({ ok: true, output: 'count=1' });
    expect(asked.map((r) => [r.call, r.summary])).toEqual([
      ['kv.set', 'set "count"'],
      ['kv.set', 'set "history/1"'],
    ]);
    const again = await agent.run('keys:');
    expect(again).toMatchObject({ ok: true, output: 'count' });
    // Each ask is an intent and its result; the run replays from them, answers and all.
    expect(host.readRun(result.runId).map((r) => r.record.type)).toEqual(['run-start', 'call', 'intent', 'result', 'intent', 'result', 'run-end']);
    expect(await host.replay(result.runId)).toMatchObject({ matches: true, calls: 3 });
  });
});

describe('a run blocked on the host thread', () => {
  it('is still stopped at its deadline while a fetch stalls, and the host serves the next run', async () => {
    const { host } = await hostWith();
    const policy = { ...httpPolicy(5000, 600), grants: { log: {}, http: { allow: [{ url: `${server.origin}/*` }], timeoutMs: 20_000 } } };
    const agent = await host.load(guestWasm('http-driver'), policy);
    const started = performance.now();
    const stalled = await agent.run([line('GET', `${server.origin}/echo?before`), line('GET', `${server.origin}/stall`)].join('\n'));
    expect(performance.now() - started).toBeLessThan(5000);
    expect(stalled).toMatchObject({ ok: false, outcome: 'limit', limit: 'timeout' });
    // The call made before the stall is in the ledger, and so is the stalled one's intent: its outcome is
    // unknown (the request was sent; no answer was recorded), and the run-end says so and why it stopped.
    const calls = callsOf(host, stalled.runId);
    expect(calls.map((c) => [c.decision, c.outcome === undefined ? 'unknown' : 'ok' in c.outcome ? 'ok' : 'err'])).toEqual([
      ['allow', 'ok'],
      ['allow', 'unknown'],
    ]);
    expect(host.readRun(stalled.runId).at(-1)!.record).toMatchObject({ type: 'run-end', outcome: 'limit', limit: 'timeout', unknown: [calls[1]!.seq] });
    const next = await agent.run(line('GET', `${server.origin}/echo?after`));
    expect(next).toMatchObject({ ok: true });
    expect(parseDriverOutput(next.ok ? next.output : '')[0]).toMatchObject({ ok: true, status: 200 });
  });
});

describe('the host gateway', () => {
  it('serves only runs that are executing, and only the operations the registry declares', async () => {
    const gateway = new HostGateway({ secrets: secretSource({}, {}) });
    const request = { method: 'GET', url: `${server.origin}/echo`, headers: [], body: null };
    const before = server.seen.length;
    await expect(gateway.serve('http.fetch', { runId: 'not-a-run', seq: 1, request })).rejects.toThrow(
      'run not-a-run is not executing; its request to the host thread is refused',
    );
    await expect(gateway.serve('approve', { runId: 'not-a-run', seq: undefined, request: { runId: 'not-a-run' } })).rejects.toThrow('is not executing');
    await expect(gateway.serve('shell', {})).rejects.toThrow('unknown host operation "shell"');
    expect(server.seen.length).toBe(before);
    gateway.close();
  });

  it('refuses a host effect for a capability the run\'s policy does not grant', async () => {
    const gateway = new HostGateway({ secrets: secretSource({}, {}) });
    gateway.begin('a-run', compilePolicy({ version: 1, component: 'no-http', grants: { log: {}, http: 'deny' } }));
    const request = { method: 'GET', url: `${server.origin}/echo`, headers: [], body: null };
    const before = server.seen.length;
    await expect(gateway.serve('http.fetch', { runId: 'a-run', seq: 1, request })).rejects.toThrow('http.fetch is not granted to component "no-http" (grants.http)');
    expect(server.seen.length).toBe(before);
    gateway.close();
  });
});

describe('load-time refusals', () => {
  it('refuses http, model and ask rules in in-process execution, naming the fix', async () => {
    const { host } = await hostWith(undefined, { execution: 'in-process' });
    const error = await host.load(guestWasm('http-driver'), httpPolicy()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoadError);
    expect((error as LoadError).code).toBe('needs-worker');
    expect((error as LoadError).message).toContain('grants.http');
  });

  it('refuses a policy whose rule injects a secret the host does not have', async () => {
    const { host } = await hostWith();
    const policy = {
      version: 1,
      component: 'needs-secret',
      grants: { log: {}, http: { allow: [{ url: `${server.origin}/*`, inject: { header: 'X-Api-Key', secret: 'ICE_TEST_SURELY_UNSET_SECRET' } }] } },
    };
    const error = await host.load(guestWasm('http-driver'), policy).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoadError);
    expect((error as LoadError).code).toBe('missing-secret');
    expect((error as LoadError).message).toContain('grants.http.allow[0].inject needs the secret ICE_TEST_SURELY_UNSET_SECRET');
  });
});

describe('an ask flood', () => {
  it('is bounded by limits.maxAsks: past it a call gets limit without the approver being asked', async () => {
    const { host, asked } = await hostWith(() => true);
    const policy = { ...httpPolicy(), limits: { timeoutMs: 10_000, maxAsks: 3 } };
    const { out, groups } = await drive(host, policy, Array.from({ length: 6 }, (_, i) => line('POST', `${server.origin}/ask-${i}`, 'b:x')));
    expect(out.map((l) => (l.ok ? `ok ${l.status}` : l.kind))).toEqual(['ok 200', 'ok 200', 'ok 200', 'limit', 'limit', 'limit']);
    expect(asked).toHaveLength(3);
    expect(groups[3]![0]).toMatchObject({
      decision: 'limit',
      rule: 'limits.maxAsks',
      outcome: { err: { kind: 'limit', message: 'http.fetch needs approval under grants.http.ask[0], but this run already asked 3 times, the most limits.maxAsks (3) allows' } },
    });
  });

  it('counts redirect-hop asks on the host thread against the same bound', async () => {
    const { host, asked } = await hostWith(() => true);
    const policy = {
      version: 1,
      component: 'asker',
      limits: { maxAsks: 2 },
      grants: { log: {}, http: { allow: [{ url: `${server.origin}/redirect` }], ask: [{ url: `${server.origin}/echo` }] } },
    };
    const { out } = await drive(host, policy, [1, 2, 3].map(() => line('GET', `${server.origin}/redirect?to=/echo`)));
    expect(out.map((l) => (l.ok ? `ok ${l.status}` : l.kind))).toEqual(['ok 200', 'ok 200', 'denied']);
    expect(asked).toHaveLength(2);
    expect(out[2]).toMatchObject({ message: expect.stringContaining('(denied by ice)') });
  });
});
