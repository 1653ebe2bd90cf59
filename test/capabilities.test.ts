/**
 * Capability definitions on their own (no guest, no kernel): each operation's `decide` against a
 * compiled grant, with the exact rule and message a guest and the ledger would get; `perform` against a
 * real state database. (test/kernel.test.ts drives the same operations through the kernel.)
 */
import { describe, expect, it } from 'vitest';
import type { CallContext, RunContext } from '../host/src/capabilities/define.js';
import { RefusedEffect } from '../host/src/capabilities/define.js';
import { events as eventsCapability, type EventsGrant } from '../host/src/capabilities/events/index.js';
import { kv as kvCapability, KV_KEYS_MAX, type KvGrant } from '../host/src/capabilities/kv/index.js';
import { log as logCapability, type LogGrant } from '../host/src/capabilities/log/index.js';
import { compilePolicy } from '../host/src/capabilities/policy.js';
import { random as randomCapability, type RandomGrant } from '../host/src/capabilities/random/index.js';
import type { RunServices } from '../host/src/capabilities/run-services.js';
import { DEFAULT_LIMITS } from '../host/src/policy/index.js';
import { openStateDb } from '../host/src/storage/db.js';
import { KvStore } from '../host/src/views/kv-store.js';
import { tempDir } from './helpers.js';

const run = (services: RunServices = {}): RunContext => ({ component: 'probe', runId: 'run-1', capture: 'full', maxCaptureBytes: 65_536, limits: DEFAULT_LIMITS, services });
/** perform's call context: these capabilities never reach the host thread. */
const local: CallContext = {
  seq: undefined,
  host: () => {
    throw new Error('a local operation reached for the host thread');
  },
};
function grants(grants: object) {
  return compilePolicy({ version: 1, component: 'probe', grants }).grants;
}
const createKv = (grant: KvGrant, store: KvStore) => kvCapability.operations(grant, run({ kv: store }));

describe('kv', () => {
  const store = new KvStore(openStateDb(tempDir()));
  const kv = createKv(grants({ kv: { read: ['count', 'history/*'], write: ['count'], maxKeyBytes: 16, maxValueBytes: 4 } }).kv as KvGrant, store);

  it('allows reads by the first matching rule, and denies others naming the fix', () => {
    expect(kv.get.decide(['history/7'])).toEqual({ decision: 'allow', rule: 'grants.kv.read[1]' });
    expect(kv.get.decide(['historyX'])).toEqual({
      decision: 'deny',
      rule: 'grants.kv.read',
      error: { tag: 'denied', val: 'kv.get("historyX") denied for component "probe": no read rule matches; add "historyX" to grants.kv.read' },
    });
  });

  it('treats delete as a write', () => {
    expect(kv.delete.decide(['count'])).toMatchObject({ decision: 'allow', rule: 'grants.kv.write[0]' });
    expect(kv.delete.decide(['history/1'])).toMatchObject({ decision: 'deny', rule: 'grants.kv.write' });
  });

  it('refuses empty and oversized keys as invalid, oversized values as limit', () => {
    expect(kv.get.decide([''])).toMatchObject({ decision: 'invalid', error: { tag: 'invalid' } });
    expect(kv.get.decide(['history/ääääääää'])).toMatchObject({ decision: 'invalid', rule: 'grants.kv.maxKeyBytes' });
    expect(kv.set.decide(['count', 'ü-ü'])).toMatchObject({
      decision: 'limit',
      error: { val: 'kv.set("count"): the value is 5 bytes, over grants.kv.maxValueBytes (4)' },
    });
  });

  it('quotes and shortens a hostile key in messages', () => {
    const key = `a"\n${'x'.repeat(500)}`;
    const wide = createKv(grants({ kv: { read: ['count'], maxKeyBytes: 4096 } }).kv as KvGrant, store);
    const verdict = wide.get.decide([key]);
    expect(verdict.decision).toBe('deny');
    expect(verdict.decision === 'deny' && verdict.error.val).toContain('"a\\"\\nxxxxxxxx');
    expect(verdict.decision === 'deny' && verdict.error.val.length).toBeLessThan(250);
  });

  it('lists a prefix only when a read rule can cover it, and only readable keys', () => {
    expect(kv.keys.decide(['hist'])).toMatchObject({ decision: 'allow', rule: 'grants.kv.read[1]' });
    expect(kv.keys.decide(['history/1'])).toMatchObject({ decision: 'allow', rule: 'grants.kv.read[1]' });
    expect(kv.keys.decide(['cou'])).toMatchObject({ decision: 'allow', rule: 'grants.kv.read[0]' });
    expect(kv.keys.decide(['secrets/'])).toMatchObject({ decision: 'deny', rule: 'grants.kv.read' });
    for (const key of ['count', 'history/1', 'secret', 'history']) store.set('probe', key, 'v');
    expect(kv.keys.perform([''], local)).toEqual(['count', 'history/1']);
  });

  it('refuses a listing larger than the host answers', () => {
    const many = new KvStore(openStateDb(tempDir()));
    many.set('probe', 'seed', 'x');
    const all = createKv(grants({ kv: { read: ['*'] } }).kv as KvGrant, many);
    for (let i = 0; i <= KV_KEYS_MAX; i++) many.set('probe', `k${i}`, '');
    const answer = all.keys.perform(['k'], local);
    expect(answer).toBeInstanceOf(RefusedEffect);
    expect((answer as RefusedEffect).refusal).toMatchObject({ decision: 'limit', rule: 'grants.kv.keys' });
  });

  it('keeps namespaces apart', () => {
    store.set('other', 'count', 'theirs');
    store.set('probe', 'count', 'ours');
    expect(kv.get.perform(['count'], local)).toBe('ours');
  });
});

describe('log', () => {
  it('filters by level and size', () => {
    const seen: string[] = [];
    const log = logCapability.operations(grants({ log: { levels: ['warn', 'error'], maxMessageBytes: 8 } }).log as LogGrant, run({ guestLog: (e) => seen.push(e.message) }));
    expect(log.write.decide(['info', 'hi'])).toMatchObject({
      decision: 'deny',
      rule: 'grants.log.levels',
      error: { val: 'log.write at level "info" denied for component "probe": grants.log.levels is [warn, error]; add info to allow it' },
    });
    expect(log.write.decide(['warn', '123456789'])).toMatchObject({ decision: 'limit', rule: 'grants.log.maxMessageBytes' });
    expect(log.write.decide(['warn', '12345678'])).toMatchObject({ decision: 'allow' });
    log.write.perform(['warn', 'hello'], local);
    expect(seen).toEqual(['hello']);
  });
});

describe('random', () => {
  it('bounds bytes per call and returns exactly len bytes', () => {
    const random = randomCapability.operations(grants({ random: { maxBytes: 32 } }).random as RandomGrant, run());
    expect(random.bytes.decide([33])).toMatchObject({ decision: 'limit', rule: 'grants.random.maxBytes' });
    expect(random.bytes.decide([32])).toMatchObject({ decision: 'allow' });
    expect((random.bytes.perform([32], local) as Uint8Array).length).toBe(32);
    expect((random.bytes.perform([0], local) as Uint8Array).length).toBe(0);
  });
});

describe('events', () => {
  const events = eventsCapability.operations(grants({ events: { kinds: ['counter.*'], maxPayloadBytes: 4 } }).events as EventsGrant, run());
  it('matches kinds by typed prefix, never by loose glob', () => {
    expect(events.emit.decide(['counter.incremented', '{}'])).toMatchObject({ decision: 'allow', rule: 'grants.events.kinds[0]' });
    expect(events.emit.decide(['counterX.incremented', '{}'])).toMatchObject({ decision: 'deny' });
    expect(events.emit.decide(['counter', '{}'])).toMatchObject({ decision: 'deny' });
  });
  it('refuses malformed kinds and oversized payloads', () => {
    for (const kind of ['', ' counter.x', 'counter.\n', 'x'.repeat(129), 'counter.ü']) {
      expect(events.emit.decide([kind, ''])).toMatchObject({ decision: 'invalid' });
    }
    expect(events.emit.decide(['counter.x', '12345'])).toMatchObject({ decision: 'limit', rule: 'grants.events.maxPayloadBytes' });
  });
});
