/**
 * Storage quotas, through the real path (the hostile guest in both languages, real policies, a real
 * state database): a kv flood stops at the component's `grants.kv.maxKeys` / `maxTotalBytes`, an event
 * flood at the run's `limits.maxLedgerBytes`, each with a `limit` error at the exact budget; the
 * ledger verifies, the next run sees the quota state, and the host keeps serving.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Host, RunResult } from '../host/src/index.js';
import { type CallRecord, type RunEndRecord, type StoredRecord } from '../host/src/ledger/index.js';
import { LEDGER_RESERVE_BYTES } from '../host/src/ledger/budget.js';
import { freshHost, tempDir, writePolicy } from './helpers.js';
import { LANGUAGES, guestWasm, type Language } from './paths.js';

const VALUE_BYTES = 1000;

function policy(kv: string, limits = '{}', events = '{ kinds: ["flood.*"] }'): string {
  return writePolicy(`version: 1\ncomponent: flooder\nlimits: ${limits}\ngrants:\n  log: {}\n  clock: { maxCalls: 1000000000 }\n  kv: ${kv}\n  events: ${events}\n`);
}

const bytesOf = (records: readonly StoredRecord[]) => records.reduce((sum, r) => sum + Buffer.byteLength(r.body, 'utf8'), 0);

async function attack(host: Host, language: Language, policyPath: string, input: string): Promise<{ result: RunResult; records: StoredRecord[] }> {
  const agent = await host.load(guestWasm('hostile', language), policyPath);
  const result = await agent.run(input);
  const records = host.readRun(result.runId);
  expect(records.at(-1)!.record.type).toBe('run-end');
  expect(host.verify(result.runId)).toMatchObject({ ok: true });
  return { result, records };
}

async function healthy(host: Host, language: Language): Promise<void> {
  const { result } = await attack(host, language, policy('{}'), 'ok');
  expect(result).toMatchObject({ ok: true, output: 'still here' });
}

/** The kv usage the host keeps, and what the kv table really holds, for one component. */
function usage(stateDir: string, component = 'flooder') {
  const db = new Database(join(stateDir, 'ice.db'), { readonly: true });
  try {
    const kept = db.prepare('SELECT keys, bytes FROM kv_usage WHERE namespace = ?').get(component) as { keys: number; bytes: number } | undefined;
    const real = db
      .prepare('SELECT count(*) AS keys, coalesce(sum(octet_length(key) + octet_length(value)), 0) AS bytes FROM kv WHERE namespace = ?')
      .get(component) as { keys: number; bytes: number };
    return { kept: kept ?? { keys: 0, bytes: 0 }, real };
  } finally {
    db.close();
  }
}

/** A run's output, or its outcome and error (so a test shows what came back either way). */
const out = (result: RunResult): string => (result.ok ? result.output : `${result.outcome}: ${result.error}`);

const lastCall = (records: readonly StoredRecord[]) => records.filter((r) => r.record.type === 'call').at(-1)!.record as CallRecord;

describe.each(LANGUAGES)('storage quotas (%s)', (language) => {
  it('kv-flood stops at grants.kv.maxKeys with limit, overwrites are free, deletes free quota, the next run sees it', async () => {
    const { host, stateDir } = await freshHost(tempDir());
    try {
      const kv = '{ read: ["flood/*"], write: ["flood/*"], maxKeys: 300 }';
      const first = await attack(host, language, policy(kv), 'kv-flood');
      expect(out(first.result)).toMatch(/^kv-flood: 300 set, then limit: kv\.set\("flood\/300"\): component "flooder" has 300 keys, grants\.kv\.maxKeys \(300\); /);
      expect(out(first.result)).toContain('raise grants.kv.maxKeys');
      expect(lastCall(first.records)).toMatchObject({ decision: 'limit', rule: 'grants.kv.maxKeys', outcome: { err: { kind: 'limit' } } });
      expect(usage(stateDir)).toEqual({ kept: { keys: 300, bytes: expect.any(Number) }, real: { keys: 300, bytes: expect.any(Number) } });
      expect(usage(stateDir).kept).toEqual(usage(stateDir).real);

      // The next run sees the 300 keys: overwriting them is free (same sizes), the 301st is refused.
      const again = await attack(host, language, policy(kv), 'kv-flood');
      expect(out(again.result)).toMatch(/^kv-flood: 300 set, then limit: kv\.set\("flood\/300"\)/);

      const drained = await attack(host, language, policy(kv), 'kv-drain');
      expect(out(drained.result)).toBe('kv-drain: 300 deleted');
      expect(usage(stateDir)).toEqual({ kept: { keys: 0, bytes: 0 }, real: { keys: 0, bytes: 0 } });
      const refilled = await attack(host, language, policy(kv), 'kv-flood');
      expect(out(refilled.result)).toMatch(/^kv-flood: 300 set, then limit/);
      await healthy(host, language);
    } finally {
      host.close();
    }
  }, 60_000);

  it('kv-flood stops at grants.kv.maxTotalBytes (keys and values, UTF-8) at the exact byte', async () => {
    const { host, stateDir } = await freshHost(tempDir());
    try {
      const max = 50_000;
      let fits = 0;
      for (let total = 0; total + VALUE_BYTES + `flood/${fits}`.length <= max; fits++) total += VALUE_BYTES + `flood/${fits}`.length;
      const { result, records } = await attack(host, language, policy(`{ read: ["flood/*"], write: ["flood/*"], maxTotalBytes: ${max} }`), 'kv-flood');
      expect(out(result)).toMatch(new RegExp(`^kv-flood: ${fits} set, then limit: kv\\.set\\("flood/${fits}"\\): .*grants\\.kv\\.maxTotalBytes \\(${max}; `));
      expect(lastCall(records)).toMatchObject({ decision: 'limit', rule: 'grants.kv.maxTotalBytes' });
      const { kept, real } = usage(stateDir);
      expect(kept).toEqual(real);
      expect(real.bytes).toBeLessThanOrEqual(max);
      expect(real.bytes + VALUE_BYTES + `flood/${fits}`.length).toBeGreaterThan(max);
      await healthy(host, language);
    } finally {
      host.close();
    }
  }, 60_000);

  it('two concurrent floods of one component keep the quota exact', async () => {
    const { host, stateDir } = await freshHost(tempDir(), { workers: 2 });
    try {
      const path = policy('{ read: ["flood/*"], write: ["flood/*"], maxKeys: 200 }');
      const agent = await host.load(guestWasm('hostile', language), path);
      const [a, b] = await Promise.all([agent.run('kv-flood'), agent.run('kv-flood')]);
      for (const r of [a, b]) expect(out(r)).toMatch(/^kv-flood: 200 set, then limit: kv\.set\("flood\/200"\)/);
      expect(usage(stateDir)).toEqual({ kept: { keys: 200, bytes: expect.any(Number) }, real: { keys: 200, bytes: expect.any(Number) } });
      expect(usage(stateDir).kept).toEqual(usage(stateDir).real);
    } finally {
      host.close();
    }
  }, 60_000);

  it('kv.keys caps the keys the guest can read, not the unreadable ones', async () => {
    const { host } = await freshHost(tempDir());
    try {
      const filled = await attack(host, language, policy('{ read: ["flood/*"], write: ["flood/*"], maxKeys: 10001 }'), 'kv-flood');
      expect(out(filled.result)).toMatch(/^kv-flood: 10001 set, then limit/);
      // 10,001 keys exist, none readable under this policy: the listing is empty, not refused.
      const listed = await attack(host, language, policy('{ read: ["visible/*"] }'), 'kv-keys');
      expect(out(listed.result)).toBe('kv-keys: 0');
      const all = await attack(host, language, policy('{ read: ["flood/*"] }'), 'kv-keys');
      expect(out(all.result)).toMatch(/^kv-keys: limit: kv\.keys\(""\) matches more than 10000 keys/);
    } finally {
      host.close();
    }
  }, 90_000);

  it('event-flood stops at limits.maxLedgerBytes with limit at the exact budget, recorded compactly', async () => {
    const { host } = await freshHost(tempDir());
    try {
      const max = 2_000_000;
      const { result, records } = await attack(host, language, policy('{}', `{ maxLedgerBytes: ${max} }`), 'event-flood');
      const match = /^event-flood: (\d+) emitted, then limit: (.*)$/.exec(out(result));
      expect(match, out(result)).not.toBeNull();
      const emitted = Number(match![1]);
      expect(match![2]).toContain("limits.maxLedgerBytes (2000000; ");
      const calls = records.filter((r) => r.record.type === 'call');
      expect(calls).toHaveLength(emitted + 1);
      const limitRecord = calls.at(-1)!;
      expect(limitRecord.record).toMatchObject({ decision: 'limit', rule: 'limits.maxLedgerBytes', args: [{ value: 'flood.tick' }, { sha256: expect.any(String), size: 60_000 }] });
      expect(Buffer.byteLength(limitRecord.body)).toBeLessThan(2048);
      // Exact: everything before the limit record fits, and one more event record would not have.
      const before = bytesOf(records.slice(0, -2));
      const oneEvent = Buffer.byteLength(calls.at(-2)!.body);
      expect(before).toBeLessThanOrEqual(max);
      expect(before + oneEvent).toBeGreaterThan(max);
      expect(bytesOf(records)).toBeLessThanOrEqual(max + LEDGER_RESERVE_BYTES);
      expect(records.at(-1)!.record).toMatchObject({ outcome: 'ok' });

      // The limit record replays: the replay compares its arguments as they were recorded.
      expect(await host.replay(result.runId)).toMatchObject({ matches: true, calls: emitted + 1, outcome: 'ok' });

      // A new run has its own budget.
      const next = await attack(host, language, policy('{}', `{ maxLedgerBytes: ${max} }`), 'event-flood');
      expect(out(next.result)).toMatch(new RegExp(`^event-flood: ${emitted} emitted, then limit`));
      await healthy(host, language);
    } finally {
      host.close();
    }
  }, 60_000);

  it('a guest that keeps calling past limits.maxLedgerBytes is stopped within the reserve', async () => {
    const { host } = await freshHost(tempDir());
    try {
      const max = 20_000;
      const { result, records } = await attack(host, language, policy('{}', `{ maxLedgerBytes: ${max}, fuel: 1000000000000 }`), 'loop-imports');
      expect(result).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest' });
      expect(out(result)).toContain('limits.maxLedgerBytes (20000)');
      const limited = records.filter((r) => r.record.type === 'call' && (r.record as CallRecord).decision === 'limit');
      expect(limited.length).toBeGreaterThan(0);
      expect(limited.every((r) => (r.record as CallRecord).rule === 'limits.maxLedgerBytes')).toBe(true);
      expect(bytesOf(records)).toBeLessThanOrEqual(max + LEDGER_RESERVE_BYTES);
      expect((records.at(-1)!.record as RunEndRecord).outcome).toBe('trap');
      expect(await host.replay(result.runId)).toMatchObject({ matches: true, outcome: 'trap' });
      await healthy(host, language);
    } finally {
      host.close();
    }
  }, 60_000);
});
