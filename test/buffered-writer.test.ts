/** The batched ledger writer: what it commits when, and that batches chain exactly like single appends. */
import { describe, expect, it } from 'vitest';
import { BufferedRunWriter, LedgerStore, capture, newRunId, verifyRun, type CallInput } from '../host/src/ledger/index.js';
import { openStateDb } from '../host/src/storage/db.js';
import { tempDir } from './helpers.js';

const call = (i: number): CallInput => ({
  call: 'ice:agent/kv@0.1.0#get',
  args: [capture(`key-${i}`, 'full')],
  decision: i % 3 === 0 ? 'deny' : 'allow',
  rule: 'grants.kv.read[0]',
  outcome: i % 3 === 0 ? { err: { kind: 'denied', message: 'no' } } : { ok: capture(String(i), 'full') },
  durationUs: 2,
});

function start() {
  const state = openStateDb(tempDir());
  const ledger = new LedgerStore(state);
  const inner = ledger.startRun({
    run: newRunId(),
    component: { name: 'w', digest: '0'.repeat(64) },
    policy: { digest: '0'.repeat(64), source: 't', document: {} },
    input: capture('', 'full'),
    host: { ice: 't' },
  });
  return { state, ledger, inner };
}

describe('BufferedRunWriter', () => {
  it('commits nothing until a flush, then every queued record, chained, with the time of its call', async () => {
    const { state, ledger, inner } = start();
    const writer = new BufferedRunWriter(inner, state, { maxPending: 1000 });
    writer.appendCall(call(1));
    const queuedAt = writer.pending()[0]!.at;
    expect(ledger.readRun(inner.run)).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (let i = 2; i <= 100; i++) writer.appendCall(call(i));
    writer.flush();
    const records = ledger.readRun(inner.run);
    expect(records).toHaveLength(101);
    expect(records[1]!.record.at).toBe(queuedAt);
    expect(writer.counts).toEqual({ calls: 100, allowed: 67, denied: 33, limited: 0, invalid: 0 });
    writer.end({ outcome: 'ok', durationUs: 1 });
    expect(verifyRun(ledger.readRun(inner.run), { key: state.ledgerKey.key })).toMatchObject({ ok: true, records: 102 });
    state.close();
  });

  it('flushes by itself every maxPending records, and commits the rest with the run-end', () => {
    const { state, ledger, inner } = start();
    const writer = new BufferedRunWriter(inner, state, { maxPending: 10 });
    for (let i = 1; i <= 25; i++) writer.appendCall(call(i));
    expect(ledger.readRun(inner.run)).toHaveLength(21);
    writer.end({ outcome: 'ok', durationUs: 1 });
    expect(ledger.readRun(inner.run)).toHaveLength(27);
    state.close();
  });

  it('refuses to record inside a transaction while records are queued (they would commit out of order)', () => {
    const { state, inner } = start();
    const writer = new BufferedRunWriter(inner, state);
    writer.appendCall(call(1));
    expect(() => state.transaction(() => writer.appendCall(call(2)))).toThrow('appendCall: flush() before opening a transaction');
    writer.flush();
    state.transaction(() => writer.appendCall(call(3)));
    expect(writer.seq).toBe(2);
    state.close();
  });

  it('keeps the queue when a flush fails, and its counts follow the rollback', () => {
    const { state, ledger, inner } = start();
    const writer = new BufferedRunWriter(inner, state);
    writer.appendCall(call(1));
    writer.appendCall({ ...call(2), durationUs: -1 });
    expect(() => writer.flush()).toThrow(/durationUs/);
    expect(writer.pending()).toHaveLength(2);
    expect(ledger.readRun(inner.run)).toHaveLength(1);
    expect(inner.seq).toBe(0);
    state.close();
  });
});
