/**
 * Intent before effect, through the real path (the http-driver guest in a worker, the bridge, the host
 * thread's egress, a real server on 127.0.0.1): an effect that leaves the run is in the ledger before it
 * starts. The hostile case first — a POST the server acts on while the run is killed at its deadline —
 * then the idempotency key that lets such a server de-duplicate the effect if it is retried.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Host } from '../host/src/index.js';
import { verifyRun, type IntentRecord, type RunEndRecord } from '../host/src/ledger/index.js';
import { readLedgerKey } from '../host/src/storage/ledger-key.js';
import { line, parseDriverOutput } from './driver.js';
import { echoServer, type TestServer } from './egress-servers.js';
import { callsOf, freshHost, ice } from './helpers.js';
import { guestWasm } from './paths.js';

let server: TestServer;
let host: Host;
let stateDir: string;

beforeAll(async () => {
  server = await echoServer();
  ({ host, stateDir } = await freshHost());
});
afterAll(async () => {
  host?.close();
  await server?.close();
});

function policy(rule: Record<string, unknown>, limits: Record<string, number> = {}) {
  return {
    version: 1,
    component: 'poster',
    limits: { timeoutMs: 10_000, ...limits },
    grants: { log: {}, http: { allow: [{ url: `${server.origin}/*`, methods: ['GET', 'POST'], ...rule }], timeoutMs: 20_000 } },
  };
}

const seenAt = (path: string) => server.seen.filter((s) => new URL(s.url, 'http://x').pathname === path);

describe('a POST still in flight when the worker is killed at limits.timeoutMs', () => {
  it('reached the server and acted; the ledger shows its intent and outcome unknown, and verifies', async () => {
    const agent = await host.load(guestWasm('http-driver'), policy({ idempotencyKey: true }, { timeoutMs: 600 }));
    const before = seenAt('/stall').length;
    const result = await agent.run(line('POST', `${server.origin}/stall?order=42`, 'b:charge 42'));
    expect(result).toMatchObject({ ok: false, outcome: 'limit', limit: 'timeout', calls: 1, counts: { calls: 1, allowed: 0, unknown: 1 } });

    // The server did act on it.
    const acted = seenAt('/stall').slice(before);
    expect(acted).toHaveLength(1);
    expect(acted[0]).toMatchObject({ method: 'POST', body: 'charge 42' });

    // The ledger: the intent, committed before the request left, and a run-end naming it as unknown.
    const records = host.readRun(result.runId);
    expect(records.map((r) => r.record.type)).toEqual(['run-start', 'intent', 'run-end']);
    const intent = records[1]!.record as IntentRecord;
    expect(intent).toMatchObject({
      seq: 1,
      call: 'ice:agent/http@0.1.0#fetch',
      decision: 'allow',
      rule: 'grants.http.allow[0]',
      args: [{ fields: { method: { value: 'POST' }, url: { value: `${server.origin}/stall?order=42` }, body: { hex: Buffer.from('charge 42').toString('hex') } } }],
    });
    const end = records[2]!.record as RunEndRecord;
    expect(end).toMatchObject({ outcome: 'limit', limit: 'timeout', unknown: [1], counts: { calls: 1, allowed: 0, denied: 0, limited: 0, invalid: 0, unknown: 1 } });
    expect(verifyRun(records, { key: readLedgerKey(stateDir)!.key })).toMatchObject({ ok: true });
    // The key the server got names the recorded intent: a retry of this effect could be recognized.
    expect(acted[0]!.headers['idempotency-key']).toBe(`${result.runId}-1`);

    // What an auditor sees.
    expect(ice(['audit', 'verify', result.runId, '--state', stateDir])).toMatchObject({ code: 0 });
    const shown = ice(['audit', 'show', result.runId, '--state', stateDir]).stdout;
    expect(shown).toMatch(/^\s+1\s+http\.fetch\(POST http:\/\/127\.0\.0\.1:\d+\/…\s+allow\s+grants\.http\.allow\[0\]\s+\?\s+outcome unknown \(stopped during its effect\)$/mu);
    expect(shown).toContain('1 call: 0 allowed, 0 denied, 0 limited, 0 invalid, 1 outcome unknown (seq 1: the run stopped during their effect)');

    // Replay reaches the call and stops there, saying why; it does not pretend to know the answer.
    expect(await host.replay(result.runId)).toMatchObject({ matches: true, calls: 1, note: expect.stringContaining('seq 1 (http.fetch), whose outcome is unknown') });
  });

  it('records intent and result for a fetch that completes, and the host serves the next run', async () => {
    const agent = await host.load(guestWasm('http-driver'), policy({}));
    const result = await agent.run([line('GET', `${server.origin}/echo?a`), line('POST', `${server.origin}/echo?b`, 'b:x')].join('\n'));
    expect(result).toMatchObject({ ok: true, counts: { calls: 2, allowed: 2 } });
    expect(host.readRun(result.runId).map((r) => r.record.type)).toEqual(['run-start', 'intent', 'result', 'intent', 'result', 'run-end']);
    expect(callsOf(host, result.runId).map((c) => [c.seq, c.resultSeq, c.decision])).toEqual([
      [1, 2, 'allow'],
      [3, 4, 'allow'],
    ]);
    expect(await host.replay(result.runId)).toMatchObject({ matches: true, calls: 2 });
  });

  it('keeps a denied request a single record: nothing left the run', async () => {
    const agent = await host.load(guestWasm('http-driver'), policy({}));
    const result = await agent.run(line('DELETE', `${server.origin}/echo`));
    expect(host.readRun(result.runId).map((r) => r.record.type)).toEqual(['run-start', 'call', 'run-end']);
    expect(callsOf(host, result.runId)[0]).toMatchObject({ decision: 'deny', rule: 'grants.http.allow' });
  });
});

describe('Idempotency-Key: <run>-<seq>', () => {
  it('is sent with a body when the rule asks, names the intent in the ledger, and follows a 307', async () => {
    const agent = await host.load(guestWasm('http-driver'), policy({ idempotencyKey: true }));
    const result = await agent.run(
      [
        line('POST', `${server.origin}/echo?body`, 'b:one'),
        line('GET', `${server.origin}/echo?nobody`),
        line('POST', `${server.origin}/redirect?status=307&to=/echo?moved`, 'b:two'),
      ].join('\n'),
    );
    if (!result.ok) throw new Error(result.error);
    const [posted, got, moved] = parseDriverOutput(result.output).map((l) => (l.ok ? (JSON.parse(l.body) as { headers: Record<string, string> }) : undefined));
    const calls = callsOf(host, result.runId);
    expect(posted!.headers['idempotency-key']).toBe(`${result.runId}-${calls[0]!.seq}`);
    expect(got!.headers['idempotency-key']).toBeUndefined();
    // The 307 resends the same effect: the same key, the one of the guest's call.
    expect(moved!.headers['idempotency-key']).toBe(`${result.runId}-${calls[2]!.seq}`);
    // What the host added is in the ledger, beside the response it belongs to.
    const injected = (c: (typeof calls)[number]) => (c.outcome && 'ok' in c.outcome && c.outcome.ok && 'fields' in c.outcome.ok ? c.outcome.ok.fields.injected : undefined);
    expect(injected(calls[0]!)).toEqual({ value: [`Idempotency-Key: ${result.runId}-${calls[0]!.seq}`] });
    expect(injected(calls[1]!)).toBeUndefined();
  });

  it('is not sent when the rule does not ask for it', async () => {
    const agent = await host.load(guestWasm('http-driver'), policy({}));
    const result = await agent.run(line('POST', `${server.origin}/echo?plain`, 'b:x'));
    const [answer] = parseDriverOutput(result.ok ? result.output : '');
    expect(answer!.ok && (JSON.parse(answer!.body) as { headers: Record<string, string> }).headers['idempotency-key']).toBeUndefined();
  });

  it("refuses a guest's own Idempotency-Key where the host sets it, before anything is sent", async () => {
    const agent = await host.load(guestWasm('http-driver'), policy({ idempotencyKey: true }));
    const before = seenAt('/echo').length;
    const result = await agent.run(line('POST', `${server.origin}/echo?forged`, 'h:Idempotency-Key:other-run-1', 'b:x'));
    const [answer] = parseDriverOutput(result.ok ? result.output : '');
    expect(answer).toMatchObject({ ok: false, kind: 'invalid', message: expect.stringContaining('header "Idempotency-Key" is set by the host for this URL (grants.http.allow[0].idempotencyKey)') });
    expect(seenAt('/echo').length).toBe(before);
    expect(callsOf(host, result.runId)[0]).toMatchObject({ decision: 'invalid', rule: 'grants.http.allow[0].idempotencyKey' });
  });
});
