/**
 * Ledger v2: consecutive call records committed together are one `batch` row, hashed once. The hostile
 * cases first: any edit of a batch, its removal, a batch rehashed without the key, a forged batch with
 * it, records moved in or out; then that readers see the same records as from version-1 rows, that a
 * store mixing both formats verifies, and that exports of batched runs verify offline.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStateDb, type StateDb } from '../host/src/storage/db.js';
import {
  BufferedRunWriter,
  LedgerStore,
  capture,
  expandRow,
  ledgerCalls,
  newRunId,
  sha256Hex,
  type LedgerRow,
} from '../host/src/ledger/index.js';
import { exportJsonl, verifyExport } from '../host/src/ledger/export.js';
import { ServeMetrics } from '../host/src/serve/metrics.js';
import type { ServeRuntime } from '../host/src/serve/runtime.js';
import { key, keyedHash, verifyRun, verifyStore, call } from './ledger-keyed.js';

const dirs: string[] = [];
const opened: StateDb[] = [];
afterEach(() => {
  for (const state of opened.splice(0)) if (state.db.open) state.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function open(): StateDb {
  const dir = mkdtempSync(join(tmpdir(), 'ice-batch-'));
  dirs.push(dir);
  const state = openStateDb(dir);
  opened.push(state);
  return state;
}

/**
 * A run written as the runtime writes one: calls queued in batches of `maxPending`, an intent and its
 * result between them (version-1 rows), the run-end. Calls 1..n, then the intent at n+1, result n+2,
 * then calls n+3..2n+2.
 */
function writeRun(ledger: LedgerStore, n = 5, maxPending = 256): { run: string; root: string } {
  const inner = ledger.startRun({
    run: newRunId(),
    component: { name: 'batcher', digest: sha256Hex('c') },
    policy: { digest: sha256Hex('p'), source: 'policy.yaml', document: {} },
    input: capture('in', 'full'),
    host: { ice: 'test' },
  });
  const writer = new BufferedRunWriter(inner, ledger.state, { maxPending });
  for (let i = 1; i <= n; i++) writer.appendCall(call(i));
  const intent = writer.appendIntent({ call: 'ice:agent/http@0.1.0#fetch', args: [capture('https://example.org', 'full')], decision: 'allow', rule: 'grants.http.allow[0]' });
  writer.appendResult({ call: 'ice:agent/http@0.1.0#fetch', intent, decision: 'allow', rule: 'grants.http.allow[0]', outcome: { ok: null }, durationUs: 9 });
  for (let i = n + 3; i <= 2 * n + 2; i++) writer.appendCall(call(i));
  const root = writer.end({ outcome: 'ok', output: capture('out', 'full'), durationUs: 100 });
  return { run: inner.run, root };
}

function rows(state: StateDb, run: string): LedgerRow[] {
  return state.db.prepare('SELECT id, run, seq, type, hash, body FROM ledger WHERE run = ? ORDER BY seq').all(run) as LedgerRow[];
}

function dropTriggers(state: StateDb): void {
  state.db.exec('DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete;');
}

const setBody = (state: StateDb, id: number, body: string, hash?: string) =>
  hash === undefined
    ? state.db.prepare('UPDATE ledger SET body = ? WHERE id = ?').run(body, id)
    : state.db.prepare('UPDATE ledger SET body = ?, hash = ? WHERE id = ?').run(body, hash, id);

function leafEdits(value: unknown, path: Array<string | number> = []): Array<{ path: Array<string | number>; replacement: unknown }> {
  if (Array.isArray(value)) return value.flatMap((item, i) => leafEdits(item, [...path, i]));
  if (typeof value === 'object' && value !== null) return Object.entries(value).flatMap(([k, item]) => leafEdits(item, [...path, k]));
  return [{ path, replacement: typeof value === 'number' ? value + 1 : typeof value === 'boolean' ? !value : value === null ? 'x' : `${String(value)}x` }];
}

function setAt(target: unknown, path: Array<string | number>, replacement: unknown): void {
  let node = target as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = replacement;
}

/** A written run (n calls each side of an intent) whose ledger has lost its append-only triggers, and its first batch row. */
function tamperable(n: number) {
  const state = open();
  const ledger = new LedgerStore(state);
  const { run } = writeRun(ledger, n);
  dropTriggers(state);
  const batch = rows(state, run).find((r) => r.type === 'batch')!;
  return { state, ledger, run, batch };
}

describe('ledger v2 batches: tampering', () => {
  it('detects an edit to any field of a batch, named by the batch (its first seq and range)', () => {
    const { state, ledger, run, batch } = tamperable(3);
    expect(JSON.parse(batch.body)).toMatchObject({ v: 2, type: 'batch', first: 1, seq: 3 });
    let edits = 0;
    for (const { path, replacement } of leafEdits(JSON.parse(batch.body))) {
      const tampered = JSON.parse(batch.body) as unknown;
      setAt(tampered, path, replacement);
      setBody(state, batch.id, JSON.stringify(tampered));
      const found = verifyStore(ledger);
      expect(found, path.join('.')).toMatchObject({ ok: false, run, seq: 1 });
      expect((found as { reason: string }).reason, path.join('.')).toMatch(/^hash does not match body/u);
      expect(verifyRun(ledger.readRun(run), { run }), path.join('.')).toMatchObject({ ok: false, run, seq: 1 });
      edits++;
    }
    expect(edits).toBeGreaterThan(30);
    setBody(state, batch.id, batch.body);
    expect(verifyStore(ledger)).toEqual({ ok: true, records: 10, runs: 1 });
  });

  it('detects a batch rehashed without the key, and one rehashed with it at the next row', () => {
    const { state, ledger, run, batch } = tamperable(4);
    const allowed = batch.body.replace('"decision":"deny"', '"decision":"allow"');
    setBody(state, batch.id, allowed, sha256Hex(allowed));
    expect(verifyStore(ledger)).toMatchObject({ ok: false, run, seq: 1, reason: expect.stringContaining('the batch of seq 1–4') });
    // With the key, the batch itself checks, and the next row's link does not.
    setBody(state, batch.id, allowed, keyedHash(allowed));
    expect(verifyStore(ledger)).toEqual({ ok: false, run, seq: 5, reason: 'prev does not match the hash of seq 4' });
  });

  it('detects a removed batch at its first seq, and a batch that hides a call', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 4);
    dropTriggers(state);
    const [, batch] = rows(state, run);
    state.db.prepare('DELETE FROM ledger WHERE id = ?').run(batch!.id);
    expect(verifyStore(ledger)).toMatchObject({ ok: false, run, seq: 1 });

    const other = writeRun(ledger, 4).run;
    const second = rows(state, other)[1]!;
    // A call dropped from the batch, the batch rehashed with the key and its seq fixed: the run's seqs no longer line up.
    const parsed = JSON.parse(second.body) as { seq: number; records: unknown[] };
    parsed.records.splice(1, 1);
    parsed.seq -= 1;
    const body = JSON.stringify(parsed);
    state.db.prepare('UPDATE ledger SET body = ?, hash = ?, seq = ? WHERE id = ?').run(body, keyedHash(body), parsed.seq, second.id);
    const found = verifyRun(ledger.readRun(other), { run: other });
    expect(found).toMatchObject({ ok: false, run: other });
    expect(found.ok === false && found.reason).toMatch(/seq|prev/u);
  });

  it('lists and resumes a run whose batch is garbage without failing, and verify names it', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const inner = ledger.startRun({ run: newRunId(), component: { name: 'cut', digest: sha256Hex('c') }, policy: { digest: sha256Hex('p'), source: 'p', document: {} }, input: capture('', 'full'), host: { ice: 't' } });
    const writer = new BufferedRunWriter(inner, state);
    for (let i = 1; i <= 4; i++) writer.appendCall(call(i));
    writer.flush();
    dropTriggers(state);
    state.db.prepare("UPDATE ledger SET body = 'not json' WHERE run = ? AND type = 'batch'").run(inner.run);
    expect(ledger.listRuns(5)).toMatchObject([{ run: inner.run, outcome: 'unfinished' }]);
    state.db.prepare('UPDATE running SET tally = NULL WHERE run = ?').run(inner.run);
    expect(() => ledger.resumeRun(inner.run)).not.toThrow();
    expect(verifyStore(ledger, { inFlight: new Set([inner.run]) })).toMatchObject({ ok: false, run: inner.run, seq: 1, reason: 'hash does not match body' });
  });

  it('refuses, with the key, a batch whose records do not line up or are not calls', () => {
    const { state, ledger, run, batch } = tamperable(3);
    const forge = (edit: (b: { seq: number; first: number; records: Array<Record<string, unknown>> }) => void) => {
      const parsed = JSON.parse(batch.body) as { seq: number; first: number; records: Array<Record<string, unknown>> };
      edit(parsed);
      const body = JSON.stringify(parsed);
      setBody(state, batch.id, body, keyedHash(body));
      return verifyStore(ledger);
    };
    expect(forge((b) => (b.records[1]!.seq = 7))).toEqual({ ok: false, run, seq: 2, reason: 'expected seq 2, found 7' });
    expect(forge((b) => (b.records[2]!.type = 'run-end'))).toEqual({ ok: false, run, seq: 3, reason: 'a batch holds call records, found "run-end"' });
    expect(forge((b) => (b.records[0]!.decision = 'maybe'))).toEqual({ ok: false, run, seq: 1, reason: 'malformed call record: decision' });
    expect(forge((b) => (b.first = 2))).toMatchObject({ ok: false, run, seq: 1, reason: 'expected seq 1, found a batch from seq 2' });
    expect(forge((b) => (b.records = b.records.slice(0, 1)))).toMatchObject({ ok: false, run, seq: 1, reason: 'malformed batch: records' });
  });
});

describe('ledger v2 batches: reading', () => {
  it('stores consecutive calls as one row and reads them back as the records a version-1 store holds', () => {
    const v2 = open();
    const v1 = open();
    const batched = writeRun(new LedgerStore(v2), 5);
    const single = writeRun(new LedgerStore(v1, { format: 1 }), 5);
    expect(rows(v2, batched.run).map((r) => r.type)).toEqual(['run-start', 'batch', 'intent', 'result', 'batch', 'run-end']);
    expect(rows(v1, single.run).map((r) => r.type)).toEqual(['run-start', ...Array(5).fill('call'), 'intent', 'result', ...Array(5).fill('call'), 'run-end']);
    const strip = (records: ReturnType<LedgerStore['readRun']>) => records.map(({ record }) => ({ ...record, run: '', at: '', prev: '', v: 0 }));
    const a = new LedgerStore(v2).readRun(batched.run);
    const b = new LedgerStore(v1).readRun(single.run);
    expect(a.map((r) => r.record.seq)).toEqual([...Array(14).keys()]);
    expect(strip(a)).toEqual(strip(b));
    expect(ledgerCalls(a.map((r) => r.record))).toHaveLength(11);
    expect(verifyRun(a, { run: batched.run })).toMatchObject({ ok: true, records: 14 });
    expect(verifyStore(new LedgerStore(v2))).toEqual({ ok: true, records: 14, runs: 1 });
    // A row streamed to a reader (audit tail, the console) is one record per call, under the row's id.
    const streamed = rows(v2, batched.run).flatMap(expandRow);
    expect(streamed.map((r) => r.seq)).toEqual([...Array(14).keys()]);
    expect(JSON.parse(streamed[2]!.body)).toMatchObject({ v: 2, type: 'call', run: batched.run, seq: 2, call: 'ice:agent/kv@0.1.0#get' });
  });

  it('verifies a store of version-1 and version-2 runs chained together, and resumes a batched run from SQL', () => {
    const state = open();
    writeRun(new LedgerStore(state, { format: 1 }), 4);
    const ledger = new LedgerStore(state);
    writeRun(ledger, 4);
    writeRun(new LedgerStore(state, { format: 1 }), 2);
    // A run cut off after a batch: a survivor resumes it from its rows (tallies from the batch in SQL).
    const inner = ledger.startRun({ run: newRunId(), component: { name: 'cut', digest: sha256Hex('c') }, policy: { digest: sha256Hex('p'), source: 'p', document: {} }, input: capture('', 'full'), host: { ice: 't' } });
    const writer = new BufferedRunWriter(inner, state);
    for (let i = 1; i <= 6; i++) writer.appendCall(call(i));
    writer.flush();
    state.db.prepare('UPDATE running SET tally = NULL WHERE run = ?').run(inner.run);
    const resumed = ledger.resumeRun(inner.run);
    expect(resumed.seq).toBe(6);
    expect(resumed.counts).toEqual({ calls: 6, allowed: 4, denied: 2, limited: 0, invalid: 0 });
    resumed.end({ outcome: 'incomplete', durationUs: 1 });
    expect(verifyStore(ledger)).toEqual({ ok: true, records: 12 + 12 + 8 + 8, runs: 4 });
    expect(ledger.listRuns(10).map((r) => r.calls)).toEqual([6, 5, 9, 9]);
  });

  it('exports a batched run as lines a reader can verify offline, and names a tampered batch', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run, root } = writeRun(ledger, 5);
    const text = exportJsonl(ledger.readRun(run));
    expect(text.trim().split('\n').map((line) => (JSON.parse(line) as { type: string }).type)).toEqual(['run-start', 'batch', 'intent', 'result', 'batch', 'run-end']);
    expect(verifyExport(text, { key })).toEqual({ ok: true, run, records: 14, root, keyed: true });
    const tampered = text.replace('"k2"', '"k9"');
    expect(verifyExport(tampered, { key })).toMatchObject({ ok: false, run, seq: 1, reason: expect.stringContaining('the batch of seq 1–5') });
  });

  it('gives SQL readers one record per row (ledger_records) and counts batched calls in /metrics', async () => {
    const state = open();
    const ledger = new LedgerStore(state);
    // No agents are served: the metrics read the ledger, the gauges have nothing to show.
    const metrics = new ServeMetrics(state, () => ({ names: () => [] }) as unknown as ServeRuntime);
    const { run } = writeRun(ledger, 5);
    const viewed = state.db.prepare('SELECT seq, type, body FROM ledger_records WHERE run = ? ORDER BY seq').all(run) as Array<{ seq: number; type: string; body: string }>;
    expect(viewed.map((r) => [r.seq, r.type])).toEqual(ledger.readRun(run).map((r) => [r.record.seq, r.record.type]));
    expect(JSON.parse(viewed[3]!.body)).toMatchObject({ seq: 3, type: 'call', decision: 'deny', call: 'ice:agent/kv@0.1.0#get' });
    const text = await metrics.scrape();
    // Calls 1–5 and 8–12: every third denied (3, 9, 12); the http call's result is allowed.
    expect(text).toContain('ice_calls_total{component="batcher",interface="ice:agent/kv@0.1.0",decision="allow"} 7');
    expect(text).toContain('ice_calls_total{component="batcher",interface="ice:agent/kv@0.1.0",decision="deny"} 3');
    expect(text).toContain('ice_calls_total{component="batcher",interface="ice:agent/http@0.1.0",decision="allow"} 1');
  });
});
