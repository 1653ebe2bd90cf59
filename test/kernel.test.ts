/**
 * The mediation kernel without a guest (test/harness.ts): import functions called as a guest's glue
 * calls them, against real policies, a real ledger and real kv. Decision cases (what is allowed, denied,
 * limited, invalid, and under which rule), record cases (exactly which records, committed when), answer
 * cases (what the guest gets), the intent committed before a host effect or an ask, faults, and the
 * recorded answerer replaying what the live one recorded.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FetchReply, WireRequest } from '../host/src/capabilities/http/wire.js';
import { CAPABILITIES, HOST_EFFECTS, ICE_CAPABILITY_NAMES } from '../host/src/capabilities/registry.js';
import { HostFault } from '../host/src/kernel/kernel.js';
import { ledgerCalls, verifyRun, type CallRecord, type IntentRecord, type ResultRecord } from '../host/src/ledger/index.js';
import { KvStore } from '../host/src/views/kv-store.js';
import { openStateDb } from '../host/src/storage/db.js';
import { durableRecords, harness, hostThread, replayHarness } from './harness.js';
import { tempDir } from './helpers.js';
import { ROOT } from './paths.js';

const policy = (grants: object, extra: object = {}) => ({ version: 1, component: 'probe', grants, ...extra });
const ok = (val: unknown = undefined) => ({ tag: 'ok', val });
const err = (tag: string, val: string | RegExp) => ({ tag: 'err', val: { tag, val: typeof val === 'string' ? val : expect.stringMatching(val) } });
const callRecords = (records: { record: { type: string } }[]) => records.filter((r) => r.record.type === 'call').map((r) => r.record as CallRecord);

describe('the registry', () => {
  it('has one capability per interface of the world in wit/, in WIT order, and nothing else', () => {
    const world = readFileSync(join(ROOT, 'wit', 'world.wit'), 'utf8');
    const imported = [...world.matchAll(/^\s*import\s+([a-z-]+);/gmu)].map((m) => m[1]);
    expect(ICE_CAPABILITY_NAMES).toEqual(imported);
    expect(CAPABILITIES.map((c) => c.name)).toEqual([...imported, 'wasi']);
  });

  it('declares the bridge to the host thread: exactly the host effects of the capabilities, each a host function', () => {
    expect([...HOST_EFFECTS.keys()]).toEqual(['http.fetch', 'model.complete']);
    for (const capability of CAPABILITIES) {
      if (capability.kind !== 'ice') continue;
      for (const [fn, spec] of Object.entries(capability.functions as Record<string, { effect: string }>)) {
        expect(HOST_EFFECTS.has(`${capability.name}.${fn}`), `${capability.name}.${fn}`).toBe(spec.effect === 'host');
      }
    }
  });
});

describe('decisions', () => {
  it('answers each call by its rule, and records the rule that decided', () => {
    const h = harness(policy({ log: { levels: ['warn', 'error'], maxMessageBytes: 8 } }));
    expect(h.call('log', 'write', 'warn', 'ok')).toEqual(ok());
    expect(h.call('log', 'write', 'info', 'no')).toEqual(
      err('denied', 'log.write at level "info" denied for component "probe": grants.log.levels is [warn, error]; add info to allow it'),
    );
    expect(h.call('log', 'write', 'warn', '123456789')).toEqual(err('limit', 'log.write message is 9 bytes, over grants.log.maxMessageBytes (8)'));
    expect(callRecords(h.end()).map((c) => [c.decision, c.rule])).toEqual([
      ['allow', 'grants.log.levels'],
      ['deny', 'grants.log.levels'],
      ['limit', 'grants.log.maxMessageBytes'],
    ]);
    expect(h.logs.map((l) => l.message)).toEqual(['ok']);
  });

  it('counts every call to a capability against its maxCalls, whatever the function', () => {
    const h = harness(policy({ kv: { read: ['*'], write: ['*'], maxCalls: 2 } }));
    expect(h.call('kv', 'set', 'a', '1')).toEqual(ok());
    expect(h.call('kv', 'get', 'a')).toEqual(ok('1'));
    expect(h.call('kv', 'get', 'a')).toEqual(err('limit', 'kv.get is call 3 to kv in this run, over grants.kv.maxCalls (2)'));
    expect(callRecords(h.end()).at(-1)).toMatchObject({ decision: 'limit', rule: 'grants.kv.maxCalls', args: [{ value: 'a' }] });
  });

  it('denies every function of an interface set to deny, naming the policy', () => {
    const h = harness(policy({ kv: 'deny', clock: {} }));
    for (const [fn, args] of [['get', ['k']], ['set', ['k', 'v']], ['delete', ['k']], ['keys', ['']]] as const) {
      expect(h.call('kv', fn, ...args)).toEqual(err('denied', `kv.${fn} denied for component "probe": grants.kv is deny in policy <inline>`));
    }
    expect(h.kv.get('probe', 'k')).toBeUndefined();
  });
});

describe('records', () => {
  it('queues plain calls, and commits a state write with its record and every record before it', () => {
    const h = harness(policy({ log: {}, kv: { read: ['*'], write: ['*'] } }));
    h.call('log', 'write', 'info', 'before');
    // Queued, not yet committed: the batch goes with the next state write (or the run-end).
    expect(h.committed().map((r) => r.type)).toEqual(['run-start']);
    h.call('kv', 'set', 'count', '1');
    expect(h.committed().map((r) => r.type)).toEqual(['run-start', 'call', 'call']);
    expect(h.kv.get('probe', 'count')).toBe('1');
    const records = h.end();
    expect(verifyRun(records, { key: h.state.ledgerKey.key })).toMatchObject({ ok: true, records: 4 });
  });

  it('keeps a state write\'s arguments whole, whatever audit.maxCaptureBytes says (the fold needs them)', () => {
    const h = harness(policy({ log: {}, kv: { read: ['*'], write: ['*'] } }, { audit: { maxCaptureBytes: 4 } }));
    h.call('kv', 'set', 'k', 'a long value');
    h.call('log', 'write', 'info', 'a long message');
    const [set, log] = callRecords(h.end());
    expect(set!.args).toEqual([{ value: 'k' }, { value: 'a long value' }]);
    expect(log!.args[1]).toMatchObject({ sha256: expect.any(String), size: 14 });
  });
});

describe('answers', () => {
  it('answers none as a value, a listing past the host bound as limit, and clock readings as u64', () => {
    const h = harness(policy({ clock: {}, kv: { read: ['*'] } }), { now: () => 1_700_000_000_123.7 });
    expect(h.call('kv', 'get', 'missing')).toEqual(ok(null));
    expect(h.call('clock', 'now')).toEqual(ok(1_700_000_000_123n));
    const [get, now] = callRecords(h.end());
    expect(get!.outcome).toEqual({ ok: { value: null } });
    expect(now!.outcome).toEqual({ ok: { value: '1700000000123' } });
  });

  it('traps with host blame when an effect fails, and records the failure', () => {
    const broken = new KvStore(openStateDb(tempDir()));
    broken.get = () => {
      throw new Error('disk on fire');
    };
    const h = harness(policy({ kv: { read: ['*'] } }), { kvStore: broken });
    expect(() => h.call('kv', 'get', 'k')).toThrow(HostFault);
    expect(h.kernel.hostFault?.message).toBe('host fault in kv.get: disk on fire');
    expect(callRecords(h.end())[0]).toMatchObject({ decision: 'allow', rule: 'grants.kv.read[0]', outcome: { err: { kind: 'failed', message: 'host fault in kv.get: disk on fire' } } });
  });
});

describe('intent before effect', () => {
  const fetchPolicy = policy({ http: { allow: [{ url: 'https://api.example/*', methods: ['POST'], idempotencyKey: true }] } });
  const request = { method: 'POST', url: 'https://api.example/orders', headers: [], body: new Uint8Array([1, 2]) };

  it('makes the intent durable before the host thread is asked, then records the result', () => {
    let seenByTheHostThread: string[] = [];
    const h = harness(fetchPolicy, {
      bridge: hostThread({
        'http.fetch': (wire, { seq }) => {
          // What would survive a kill of the process at the moment the effect starts.
          seenByTheHostThread = durableRecords(h.stateDir, h.runId);
          expect(seq).toBe(1);
          expect((wire as WireRequest).body).toBe(Buffer.from([1, 2]).toString('base64'));
          const reply: FetchReply = { first: { ok: { status: 201, headers: [], body: '', address: '203.0.113.7', injected: [`Idempotency-Key: ${h.runId}-1`] } }, hops: [] };
          return reply;
        },
      }),
    });
    expect(h.call('http', 'fetch', request)).toMatchObject(ok({ status: 201 }));
    expect(seenByTheHostThread).toEqual(['run-start:0', 'intent:1']);
    const records = h.end();
    const [intent, result] = [records[1]!.record as IntentRecord, records[2]!.record as ResultRecord];
    expect(intent).toMatchObject({ type: 'intent', seq: 1, call: 'ice:agent/http@0.1.0#fetch', decision: 'allow', rule: 'grants.http.allow[0]' });
    expect(result).toMatchObject({ type: 'result', seq: 2, intent: 1, decision: 'allow', outcome: { ok: { fields: { status: { value: 201 }, address: { value: '203.0.113.7' } } } } });
    expect(verifyRun(records, { key: h.state.ledgerKey.key })).toMatchObject({ ok: true });
  });

  it('records a refusal the host thread found, and a failure, as the result of the intent', () => {
    const replies: FetchReply[] = [
      { first: { refused: { decision: 'limit', rule: 'grants.http.timeoutMs', error: { tag: 'limit', val: 'too slow' } } }, hops: [] },
      { first: { failed: 'connection reset' }, hops: [] },
    ];
    const h = harness(fetchPolicy, { bridge: hostThread({ 'http.fetch': () => replies.shift() }) });
    expect(h.call('http', 'fetch', request)).toEqual(err('limit', 'too slow'));
    expect(h.call('http', 'fetch', request)).toEqual(err('failed', 'connection reset'));
    const calls = ledgerCalls(h.end().map((r) => r.record));
    expect(calls.map((c) => [c.seq, c.resultSeq, c.decision, c.rule])).toEqual([
      [1, 2, 'limit', 'grants.http.timeoutMs'],
      [3, 4, 'allow', 'grants.http.allow[0]'],
    ]);
  });

  it('puts an ask to the approver only after its intent is durable, and writes only what was approved', () => {
    const asked: string[] = [];
    let h!: ReturnType<typeof harness>;
    h = harness(policy({ kv: { read: ['*'], write: [], ask: ['config/*'] } }), {
      bridge: hostThread({}, (request) => {
        asked.push(`${request.call} ${request.summary} [${durableRecords(h.stateDir, h.runId).join(',')}]`);
        return { by: 'alice', answer: request.summary.includes('"config/a"') ? 'approved' : 'denied', waitedMs: 3 };
      }),
    });
    expect(h.call('kv', 'set', 'config/a', '1')).toEqual(ok());
    expect(h.call('kv', 'set', 'config/b', '2')).toEqual(err('denied', /^kv\.set needs approval under grants\.kv\.ask\[0\] and was not approved: the approver \(alice\) said no$/u));
    expect(asked).toEqual(['kv.set set "config/a" [run-start:0,intent:1]', 'kv.set set "config/b" [run-start:0,intent:1,result:2,intent:3]']);
    expect(h.kv.get('probe', 'config/a')).toBe('1');
    expect(h.kv.get('probe', 'config/b')).toBeUndefined();
    const records = h.end();
    expect(records.map((r) => r.record.type)).toEqual(['run-start', 'intent', 'result', 'intent', 'result', 'run-end']);
    expect(ledgerCalls(records.map((r) => r.record)).map((c) => [c.decision, c.rule, c.approval?.answer])).toEqual([
      ['allow', 'grants.kv.ask[0]', 'approved'],
      ['deny', 'grants.kv.ask[0]', 'denied'],
    ]);
  });

  it('fails closed without a host thread: the intent gets a failed result and the run traps', () => {
    const h = harness(fetchPolicy);
    expect(() => h.call('http', 'fetch', request)).toThrow('host fault in http.fetch: this execution has no host thread for http, model or approvals');
    const records = h.end();
    expect(records.map((r) => r.record.type)).toEqual(['run-start', 'intent', 'result', 'run-end']);
    expect(records[2]!.record).toMatchObject({ decision: 'allow', outcome: { err: { kind: 'failed' } } });
  });
});

describe('the recorded answerer', () => {
  it('answers a replay from the records, and stops at the first call that differs', () => {
    const h = harness(policy({ clock: {}, random: { maxBytes: 8 }, kv: { read: ['*'], write: ['k'] } }));
    const live = [h.call('clock', 'now'), h.call('random', 'bytes', 4), h.call('kv', 'set', 'k', 'v'), h.call('kv', 'set', 'x', 'y'), h.call('kv', 'get', 'k')];
    const records = h.end();
    const replay = replayHarness(h, records);
    expect([replay.call('clock', 'now'), replay.call('random', 'bytes', 4), replay.call('kv', 'set', 'k', 'v'), replay.call('kv', 'set', 'x', 'y'), replay.call('kv', 'get', 'k')]).toEqual(live);
    // Nothing was performed: the replay's write went nowhere.
    expect(h.kv.get('probe', 'k')).toBe('v');

    const diverging = replayHarness(h, records);
    diverging.call('clock', 'now');
    expect(() => diverging.call('random', 'bytes', 5)).toThrow('replay diverged');
    expect(diverging.answerer.divergence).toEqual({ seq: 2, expected: 'random.bytes(4)', actual: 'random.bytes(5)' });
  });
});
