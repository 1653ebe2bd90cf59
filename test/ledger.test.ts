import { describe, it, expect, afterEach } from 'vitest';
import { appendFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStateDb, STATE_SCHEMA_VERSION, type StateDb } from '../host/src/storage/db.js';
import { KvStore } from '../host/src/views/kv-store.js';
import {
  BufferedRunWriter,
  endInterruptedRuns,
  IntentLog,
  intentLogPath,
  LedgerError,
  LedgerStore,
  queuedType,
  readIntentLog,
  capture,
  formatRunTable,
  formatStoredRunTable,
  newRunId,
  sha256Hex,
  type CallInput,
  type RunWriter,
} from '../host/src/ledger/index.js';
import { keyedHash, verifyRun, verifyStore } from './ledger-keyed.js';

const dirs: string[] = [];
const opened: StateDb[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ice-ledger-'));
  dirs.push(dir);
  return dir;
}

function open(dir = tempDir()): StateDb {
  const state = openStateDb(dir);
  opened.push(state);
  return state;
}

afterEach(() => {
  for (const state of opened.splice(0)) if (state.db.open) state.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function startRun(ledger: LedgerStore, name = 'counter'): RunWriter {
  return ledger.startRun({
    run: newRunId(),
    component: { name, digest: sha256Hex(`component ${name}`) },
    policy: { digest: sha256Hex('policy'), source: 'policy.yaml', document: { grants: { kv: { read: ['*'] } } } },
    input: capture('hello', 'full'),
    host: { ice: '0.1.0' },
  });
}

const kvGet = (key: string, value: string | null): CallInput => ({
  call: 'kv.get',
  args: [capture(key, 'full')],
  decision: 'allow',
  rule: 'grants.kv.read[0]',
  outcome: { ok: value === null ? null : capture(value, 'full') },
  durationUs: 7,
});

const kvDenied = (key: string): CallInput => ({
  call: 'kv.get',
  args: [capture(key, 'full')],
  decision: 'deny',
  rule: 'grants.kv.read',
  outcome: { err: { kind: 'denied', message: `kv.get("${key}") denied: no read rule matches` } },
  durationUs: 2,
});

/** A finished run: run-start, `calls` call records (every third one denied), run-end. Returns its id and root. */
function writeRun(ledger: LedgerStore, calls = 4): { run: string; root: string } {
  const writer = startRun(ledger);
  for (let i = 1; i <= calls; i++) writer.appendCall(i % 3 === 0 ? kvDenied(`secret/${i}`) : kvGet(`k${i}`, `v${i}`));
  const root = writer.end({ outcome: 'ok', output: capture('done', 'full'), counts: writer.counts, durationUs: 120 });
  return { run: writer.run, root };
}

/** What an attacker with file access does first: drop the append-only triggers. */
function dropTriggers(state: StateDb): void {
  state.db.exec('DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete;');
}

function row(state: StateDb, run: string, seq: number): { id: number; hash: string; body: string } {
  return state.db.prepare('SELECT id, hash, body FROM ledger WHERE run = ? AND seq = ?').get(run, seq) as {
    id: number;
    hash: string;
    body: string;
  };
}

function setBody(state: StateDb, run: string, seq: number, body: string, rehash = false): void {
  if (rehash) {
    state.db.prepare('UPDATE ledger SET body = ?, hash = ? WHERE run = ? AND seq = ?').run(body, keyedHash(body), run, seq);
  } else {
    state.db.prepare('UPDATE ledger SET body = ? WHERE run = ? AND seq = ?').run(body, run, seq);
  }
}

/** Every leaf of a JSON value, as a path and a replacement value of a different content. */
function leafEdits(value: unknown, path: Array<string | number> = []): Array<{ path: Array<string | number>; replacement: unknown }> {
  if (Array.isArray(value)) return value.flatMap((item, i) => leafEdits(item, [...path, i]));
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([key, item]) => leafEdits(item, [...path, key]));
  }
  const replacement =
    typeof value === 'number' ? value + 1 : typeof value === 'boolean' ? !value : value === null ? 'x' : `${String(value)}x`;
  return [{ path, replacement }];
}

function setAt(target: unknown, path: Array<string | number>, replacement: unknown): void {
  let node = target as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = replacement;
}

describe('ledger tampering is detected at the right record', () => {
  it('detects an edit to any field of any stored body', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 3);
    dropTriggers(state);
    let edits = 0;
    for (let seq = 0; seq <= 4; seq++) {
      const original = row(state, run, seq).body;
      for (const { path, replacement } of leafEdits(JSON.parse(original))) {
        const tampered = JSON.parse(original) as unknown;
        setAt(tampered, path, replacement);
        setBody(state, run, seq, JSON.stringify(tampered));
        const expected = { ok: false, run, seq, reason: 'hash does not match body' };
        expect(verifyStore(ledger), `${seq}: ${path.join('.')}`).toEqual(expected);
        expect(verifyRun(ledger.readRun(run), { run }), `${seq}: ${path.join('.')}`).toEqual(expected);
        edits++;
      }
      // Whitespace alone changes the hash too: the body is hashed as stored, never re-serialized.
      setBody(state, run, seq, original + ' ');
      expect(verifyStore(ledger)).toEqual({ ok: false, run, seq, reason: 'hash does not match body' });
      setBody(state, run, seq, original);
    }
    expect(edits).toBeGreaterThan(40);
    expect(verifyStore(ledger)).toEqual({ ok: true, records: 5, runs: 1 });
  });

  it('detects a changed hash', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 3);
    dropTriggers(state);
    state.db.prepare('UPDATE ledger SET hash = ? WHERE run = ? AND seq = 2').run('0'.repeat(64), run);
    expect(verifyStore(ledger)).toEqual({ ok: false, run, seq: 2, reason: 'hash does not match body' });
  });

  it('detects an edited body whose hash was recomputed at the next record', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 3);
    dropTriggers(state);
    const body = row(state, run, 3).body.replace('"decision":"deny"', '"decision":"allow"');
    setBody(state, run, 3, body, true);
    const expected = { ok: false, run, seq: 4, reason: 'prev does not match the hash of seq 3' };
    expect(verifyStore(ledger)).toEqual(expected);
    expect(verifyRun(ledger.readRun(run))).toEqual(expected);
  });

  it('detects a run-end whose counts were rewritten and rehashed', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 3);
    dropTriggers(state);
    const body = row(state, run, 4).body.replace('"denied":1', '"denied":0').replace('"allowed":2', '"allowed":3');
    setBody(state, run, 4, body, true);
    expect(verifyStore(ledger)).toEqual({
      ok: false,
      run,
      seq: 4,
      reason: 'run-end counts do not match the call records (allowed 3 ≠ 2, denied 0 ≠ 1)',
    });
  });

  it('detects a deleted middle record at the missing seq', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 4);
    dropTriggers(state);
    state.db.prepare('DELETE FROM ledger WHERE run = ? AND seq = 2').run(run);
    const expected = { ok: false, run, seq: 2, reason: 'expected seq 2, found 3' };
    expect(verifyStore(ledger)).toEqual(expected);
    expect(verifyRun(ledger.readRun(run))).toEqual(expected);
  });

  it('detects a deleted run-start, in its own run before the next run', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const first = writeRun(ledger, 2);
    writeRun(ledger, 2);
    dropTriggers(state);
    state.db.prepare('DELETE FROM ledger WHERE run = ? AND seq = 0').run(first.run);
    const expected = { ok: false, run: first.run, seq: 0, reason: 'run has no run-start record' };
    expect(verifyStore(ledger)).toEqual(expected);
    expect(verifyRun(ledger.readRun(first.run))).toEqual(expected);
  });

  it('detects two records whose seq columns were swapped', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 4);
    dropTriggers(state);
    const swap = state.db.prepare('UPDATE ledger SET seq = ? WHERE run = ? AND seq = ?');
    state.db.transaction(() => {
      swap.run(-1, run, 2);
      swap.run(2, run, 3);
      swap.run(3, run, -1);
    })();
    // In append order the row now claims seq 3 while its body says 2; in seq order, seq 3's body sits at 2.
    expect(verifyStore(ledger)).toEqual({ ok: false, run, seq: 2, reason: 'seq column 3 does not match body seq 2' });
    expect(verifyRun(ledger.readRun(run))).toEqual({ ok: false, run, seq: 2, reason: 'expected seq 2, found 3' });
  });

  it('detects two records whose bodies were swapped', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 4);
    dropTriggers(state);
    const a = row(state, run, 1);
    const b = row(state, run, 2);
    const put = state.db.prepare('UPDATE ledger SET hash = ?, body = ? WHERE id = ?');
    state.db.transaction(() => {
      put.run('placeholder', a.body, a.id);
      put.run(a.hash, a.body, b.id);
      put.run(b.hash, b.body, a.id);
    })();
    expect(verifyStore(ledger)).toEqual({ ok: false, run, seq: 1, reason: 'seq column 1 does not match body seq 2' });
  });

  it('detects a forged record appended after the run-end', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run, root } = writeRun(ledger, 2);
    dropTriggers(state);
    const forged = JSON.stringify({ ...JSON.parse(row(state, run, 1).body), seq: 4, prev: root, at: new Date().toISOString() });
    state.db.prepare('INSERT INTO ledger (run, seq, type, hash, body) VALUES (?, 4, ?, ?, ?)').run(run, 'call', keyedHash(forged), forged);
    const expected = { ok: false, run, seq: 4, reason: 'record after run-end' };
    expect(verifyStore(ledger)).toEqual(expected);
    expect(verifyRun(ledger.readRun(run))).toEqual(expected);
  });

  it('detects a forged record inserted in the middle of a run', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 4);
    dropTriggers(state);
    // Make room at seq 3 (columns only), then insert a well-formed record chained to seq 2.
    state.db.prepare('UPDATE ledger SET seq = -seq - 1 WHERE run = ? AND seq >= 3').run(run);
    state.db.prepare('UPDATE ledger SET seq = -seq WHERE run = ? AND seq < 0').run(run);
    const forgedRecord = { ...JSON.parse(row(state, run, 1).body), seq: 3, prev: row(state, run, 2).hash };
    const forged = JSON.stringify(forgedRecord);
    state.db.prepare('INSERT INTO ledger (run, seq, type, hash, body) VALUES (?, 3, ?, ?, ?)').run(run, 'call', keyedHash(forged), forged);
    // Append order reaches the displaced record first; seq order accepts the forgery and breaks right after it.
    expect(verifyStore(ledger)).toEqual({ ok: false, run, seq: 3, reason: 'seq column 4 does not match body seq 3' });
    expect(verifyRun(ledger.readRun(run))).toEqual({ ok: false, run, seq: 4, reason: 'expected seq 4, found 3' });
  });

  it('detects a record moved into another run', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const first = writeRun(ledger, 2);
    const second = writeRun(ledger, 2);
    dropTriggers(state);
    state.db.prepare('UPDATE ledger SET run = ?, seq = 99 WHERE run = ? AND seq = 1').run(second.run, first.run);
    // In append order the moved row comes first in its new run.
    expect(verifyStore(ledger)).toEqual({ ok: false, run: second.run, seq: 0, reason: `record claims run "${first.run}"` });
    expect(verifyRun(ledger.readRun(first.run))).toEqual({ ok: false, run: first.run, seq: 1, reason: 'expected seq 1, found 2' });
    expect(verifyRun(ledger.readRun(second.run))).toEqual({
      ok: false,
      run: second.run,
      seq: 4,
      reason: `record claims run "${first.run}"`,
    });
  });

  it('detects a whole earlier run deleted, at the next run-start', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    writeRun(ledger, 1);
    const middle = writeRun(ledger, 2);
    const last = writeRun(ledger, 1);
    dropTriggers(state);
    state.db.prepare('DELETE FROM ledger WHERE run = ?').run(middle.run);
    expect(verifyStore(ledger)).toEqual({
      ok: false,
      run: last.run,
      seq: 0,
      reason: 'run-start prev does not match the previous run-start in the store',
    });
  });

  it('detects the first run ever deleted', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const first = writeRun(ledger, 1);
    const second = writeRun(ledger, 1);
    dropTriggers(state);
    state.db.prepare('DELETE FROM ledger WHERE run = ?').run(first.run);
    expect(verifyStore(ledger)).toMatchObject({ ok: false, run: second.run, seq: 0 });
    // verifyRun checks the run-start link only when told what it must be.
    expect(verifyRun(ledger.readRun(second.run))).toMatchObject({ ok: true });
    expect(verifyRun(ledger.readRun(second.run), { previousRunStart: null })).toMatchObject({ ok: false, seq: 0 });
  });

  it('detects a truncated run at the first missing seq', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 4);
    dropTriggers(state);
    state.db.prepare('DELETE FROM ledger WHERE run = ? AND seq >= 3').run(run);
    const expected = { ok: false, run, seq: 3, reason: 'run has no run-end record' };
    expect(verifyStore(ledger)).toEqual(expected);
    expect(verifyRun(ledger.readRun(run))).toEqual(expected);
  });

  it('reports garbage bodies whose hash matches', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 2);
    dropTriggers(state);
    setBody(state, run, 1, '{"v":1,', true);
    expect(verifyStore(ledger)).toEqual({ ok: false, run, seq: 1, reason: 'body is not valid JSON' });
    setBody(state, run, 1, JSON.stringify({ ...JSON.parse(row(state, run, 2).body), seq: 1, prev: row(state, run, 0).hash, decision: 'maybe' }), true);
    expect(verifyStore(ledger)).toEqual({ ok: false, run, seq: 1, reason: 'malformed call record: decision' });
  });

  it('refuses UPDATE and DELETE of ledger rows through the append-only triggers', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeRun(ledger, 2);
    expect(() => state.db.prepare('UPDATE ledger SET body = ? WHERE run = ? AND seq = 1').run('{}', run)).toThrow(
      'ledger is append-only: UPDATE refused',
    );
    expect(() => state.db.prepare('DELETE FROM ledger WHERE run = ?').run(run)).toThrow('ledger is append-only: DELETE refused');
    expect(() => state.db.prepare('DELETE FROM ledger').run()).toThrow('ledger is append-only: DELETE refused');
    expect(verifyStore(ledger)).toEqual({ ok: true, records: 4, runs: 1 });
  });
});

describe('ledger runs', () => {
  it('chains records within a run and run-starts across runs', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const first = writeRun(ledger, 3);
    const second = writeRun(ledger, 1);
    const a = ledger.readRun(first.run);
    const b = ledger.readRun(second.run);
    expect(a.map((r) => [r.record.seq, r.record.type])).toEqual([
      [0, 'run-start'],
      [1, 'call'],
      [2, 'call'],
      [3, 'call'],
      [4, 'run-end'],
    ]);
    expect(a[0]!.record.prev).toBeNull();
    for (let i = 1; i < a.length; i++) expect(a[i]!.record.prev).toBe(a[i - 1]!.hash);
    for (const r of [...a, ...b]) expect(r.hash).toBe(keyedHash(r.body));
    expect(b[0]!.record.prev).toBe(a[0]!.hash);
    expect(a[4]!.hash).toBe(first.root);
    expect(a[4]!.record).toMatchObject({ outcome: 'ok', counts: { calls: 3, allowed: 2, denied: 1, limited: 0, invalid: 0 } });
    expect(verifyRun(a, { previousRunStart: null })).toEqual({ ok: true, records: 5, runs: 1 });
    expect(verifyRun(b, { previousRunStart: a[0]!.hash })).toEqual({ ok: true, records: 3, runs: 1 });
    expect(verifyStore(ledger)).toEqual({ ok: true, records: 8, runs: 2 });
  });

  it('writes the exact record bodies, keys in a fixed order', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const writer = startRun(ledger);
    writer.appendCall(kvGet('count', '41'));
    writer.end({ outcome: 'trap', blame: 'guest', reason: 'unreachable', counts: writer.counts, durationUs: 5 });
    const [start, call, end] = ledger.readRun(writer.run).map((r) => r.record);
    expect(Object.keys(start!)).toEqual(['v', 'type', 'run', 'seq', 'at', 'prev', 'component', 'policy', 'input', 'host', 'chain']);
    expect(call).toEqual({
      v: 1,
      type: 'call',
      run: writer.run,
      seq: 1,
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      prev: ledger.readRun(writer.run)[0]!.hash,
      call: 'kv.get',
      args: [{ value: 'count' }],
      decision: 'allow',
      rule: 'grants.kv.read[0]',
      outcome: { ok: { value: '41' } },
      durationUs: 7,
    });
    expect(end).toMatchObject({ type: 'run-end', seq: 2, outcome: 'trap', blame: 'guest', reason: 'unreachable' });
    expect('output' in end!).toBe(false);
    // Bodies are plain JSON.stringify text of the record, keys in this order.
    for (const r of ledger.readRun(writer.run)) expect(r.body).toBe(JSON.stringify(r.record));
  });

  it('continues the chain from a second connection, open at the same time and after reopening', () => {
    const dir = tempDir();
    const one = open(dir);
    const two = open(dir);
    const ledgerOne = new LedgerStore(one);
    const ledgerTwo = new LedgerStore(two);
    const a = writeRun(ledgerOne, 1);
    // Interleaved runs from two connections stay one chain of run-starts.
    const w1 = startRun(ledgerTwo);
    const w2 = startRun(ledgerOne);
    w1.appendCall(kvGet('a', null));
    w2.appendCall(kvGet('b', null));
    w2.end({ outcome: 'ok', counts: w2.counts, durationUs: 1 });
    w1.end({ outcome: 'error', output: capture('boom', 'full'), counts: w1.counts, durationUs: 1 });
    one.close();
    two.close();

    const three = open(dir);
    const ledger = new LedgerStore(three);
    expect(ledger.lastRunId()).toBe(w2.run);
    const d = writeRun(ledger, 1);
    expect(ledger.readRun(d.run)[0]!.record.prev).toBe(ledger.readRun(w2.run)[0]!.hash);
    expect(ledger.readRun(w1.run)[0]!.record.prev).toBe(ledger.readRun(a.run)[0]!.hash);
    expect(verifyStore(ledger)).toEqual({ ok: true, records: 3 + 3 + 3 + 3, runs: 4 });
  });

  it('reports an unfinished run and lets a survivor resume it to write the run-end', () => {
    const dir = tempDir();
    const worker = open(dir);
    const writer = startRun(new LedgerStore(worker));
    writer.appendCall(kvGet('a', 'x'));
    writer.appendCall(kvDenied('b'));
    worker.close(); // the worker thread was terminated mid-run

    const main = open(dir);
    const ledger = new LedgerStore(main);
    expect(verifyStore(ledger)).toEqual({ ok: false, run: writer.run, seq: 3, reason: 'run has no run-end record' });
    expect(ledger.listRuns(10)[0]).toMatchObject({ run: writer.run, outcome: 'unfinished', calls: 2, root: null });
    const resumed = ledger.resumeRun(writer.run);
    expect(resumed.seq).toBe(2);
    expect(resumed.counts).toEqual({ calls: 2, allowed: 1, denied: 1, limited: 0, invalid: 0 });
    const root = resumed.end({ outcome: 'limit', limit: 'timeout', reason: 'deadline of 50 ms exceeded', counts: resumed.counts, durationUs: 50_000 });
    expect(verifyStore(ledger)).toEqual({ ok: true, records: 4, runs: 1 });
    expect(ledger.listRuns(10)[0]).toMatchObject({ outcome: 'limit', calls: 2, root });
    expect(() => ledger.resumeRun(writer.run)).toThrow(LedgerError);
  });

  it('resumes a run from its saved tally, or from SQL aggregates when the tally is missing or disagrees', () => {
    const dir = tempDir();
    const worker = open(dir);
    const writer = startRun(new LedgerStore(worker));
    writer.appendCall(kvGet('a', 'x'));
    writer.appendCall(kvDenied('b'));
    writer.appendCall(kvDenied('c'));
    const bytes = writer.bytes;
    worker.close();

    const main = open(dir);
    const ledger = new LedgerStore(main);
    const expected = { calls: 3, allowed: 1, denied: 2, limited: 0, invalid: 0 };
    expect(JSON.parse((main.db.prepare('SELECT tally FROM running WHERE run = ?').get(writer.run) as { tally: string }).tally)).toEqual(expected);
    expect(ledger.resumeRun(writer.run)).toMatchObject({ seq: 3, counts: expected, bytes });
    expect(bytes).toBe(ledger.readRun(writer.run).reduce((sum, r) => sum + Buffer.byteLength(r.body, 'utf8'), 0));
    main.db.prepare('UPDATE running SET tally = ? WHERE run = ?').run(JSON.stringify({ ...expected, calls: 9, denied: 8 }), writer.run);
    expect(ledger.resumeRun(writer.run).counts).toEqual(expected);
    main.db.prepare('UPDATE running SET tally = NULL WHERE run = ?').run(writer.run);
    const resumed = ledger.resumeRun(writer.run);
    expect(resumed.counts).toEqual(expected);
    resumed.end({ outcome: 'limit', limit: 'timeout', reason: 'stopped', durationUs: 1 });
    expect(verifyStore(ledger)).toEqual({ ok: true, records: 5, runs: 1 });
  });

  it('refuses misuse: appending after end, wrong counts, a duplicate run id', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const writer = startRun(ledger);
    writer.appendCall(kvGet('a', null));
    expect(() => writer.end({ outcome: 'ok', counts: { calls: 2, allowed: 2, denied: 0, limited: 0, invalid: 0 }, durationUs: 1 })).toThrow(
      /counts\.calls is 2 but run .* has 1; pass writer\.counts/,
    );
    writer.end({ outcome: 'ok', durationUs: 1 }); // counts default to the writer's tally
    expect(ledger.readRun(writer.run)[2]!.record).toMatchObject({ counts: { calls: 1, allowed: 1 } });
    expect(() => writer.appendCall(kvGet('b', null))).toThrow('has already ended');
    expect(() => writer.end({ outcome: 'ok', counts: writer.counts, durationUs: 1 })).toThrow('has already ended');
    expect(() =>
      ledger.startRun({
        run: writer.run,
        component: { name: 'c', digest: 'd' },
        policy: { digest: 'p', source: 's', document: {} },
        input: capture(null, 'full'),
        host: { ice: '0.1.0' },
      }),
    ).toThrow(`run ${writer.run} already exists`);
    expect(verifyStore(ledger)).toMatchObject({ ok: true, runs: 1 });
  });

  it('lists runs newest first and names the last run', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    expect(ledger.lastRunId()).toBeUndefined();
    expect(ledger.listRuns(5)).toEqual([]);
    const runs = [writeRun(ledger, 1), writeRun(ledger, 2), writeRun(ledger, 3)];
    expect(ledger.lastRunId()).toBe(runs[2]!.run);
    const listed = ledger.listRuns(2);
    expect(listed.map((r) => [r.run, r.calls, r.root, r.outcome])).toEqual([
      [runs[2]!.run, 3, runs[2]!.root, 'ok'],
      [runs[1]!.run, 2, runs[1]!.root, 'ok'],
    ]);
    expect(listed[0]).toMatchObject({ component: { name: 'counter' }, durationUs: 120, policyDigest: sha256Hex('policy') });
  });
});

describe('a kv write and its ledger record share one transaction', () => {
  it('rolls back both when the transaction throws, and the writer keeps chaining from the last committed record', () => {
    const state = open();
    const kv = new KvStore(state);
    const ledger = new LedgerStore(state);
    const writer = startRun(ledger);
    const set = (value: string): CallInput => ({
      call: 'kv.set',
      args: [capture('count', 'full'), capture(value, 'full')],
      decision: 'allow',
      rule: 'grants.kv.write[0]',
      outcome: { ok: null },
      durationUs: 3,
    });
    state.transaction(() => {
      kv.set('counter', 'count', '1');
      writer.appendCall(set('1'));
    });
    const headAfterFirst = writer.head;
    expect(() =>
      state.transaction(() => {
        kv.set('counter', 'count', '2');
        writer.appendCall(set('2'));
        throw new Error('effect failed after recording');
      }),
    ).toThrow('effect failed after recording');
    expect(kv.get('counter', 'count')).toBe('1');
    expect(ledger.readRun(writer.run)).toHaveLength(2);
    expect(writer.seq).toBe(1);
    expect(writer.head).toBe(headAfterFirst);
    expect(writer.counts.calls).toBe(1);
    writer.appendCall(kvGet('count', '1'));
    writer.end({ outcome: 'ok', counts: writer.counts, durationUs: 9 });
    expect(verifyStore(ledger)).toEqual({ ok: true, records: 4, runs: 1 });
  });

  it('undoes only the inner part when a nested transaction throws and the outer one commits', () => {
    const state = open();
    const kv = new KvStore(state);
    const ledger = new LedgerStore(state);
    const writer = startRun(ledger);
    state.transaction(() => {
      kv.set('ns', 'a', '1');
      writer.appendCall(kvGet('a', null));
      try {
        state.transaction(() => {
          kv.set('ns', 'b', '2');
          writer.appendCall(kvGet('b', null));
          throw new Error('inner');
        });
      } catch {
        // the outer transaction carries on
      }
      writer.appendCall(kvGet('c', null));
    });
    expect(kv.keys('ns', '', 10)).toEqual(['a']);
    expect(ledger.readRun(writer.run).map((r) => r.record.seq)).toEqual([0, 1, 2]);
    writer.end({ outcome: 'ok', counts: writer.counts, durationUs: 1 });
    expect(verifyStore(ledger)).toEqual({ ok: true, records: 4, runs: 1 });
  });

  it('rolls back a run-start with its transaction and refuses to write to that run afterwards', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    let writer: RunWriter | undefined;
    expect(() =>
      state.transaction(() => {
        writer = startRun(ledger);
        throw new Error('load failed');
      }),
    ).toThrow('load failed');
    expect(ledger.lastRunId()).toBeUndefined();
    expect(() => writer!.appendCall(kvGet('a', null))).toThrow('its run-start record was rolled back');
  });

  it('refuses to append inside a transaction it cannot follow', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const writer = startRun(ledger);
    expect(() => state.db.transaction(() => writer.appendCall(kvGet('a', null)))()).toThrow(
      'inside a transaction not opened by StateDb.transaction',
    );
    expect(writer.seq).toBe(0);
  });
});

describe('capture', () => {
  it('keeps values in full mode and digests free text in digest mode', () => {
    const bytes = new Uint8Array([0, 1, 254, 255]);
    expect(capture('héllo', 'full')).toEqual({ value: 'héllo' });
    expect(capture('héllo', 'digest')).toEqual({ sha256: sha256Hex(Buffer.from('héllo', 'utf8')), size: 6 });
    expect(capture(bytes, 'full')).toEqual({ hex: '0001feff' });
    expect(capture(bytes.subarray(1, 3), 'full')).toEqual({ hex: '01fe' });
    expect(capture(bytes, 'digest')).toEqual({ sha256: sha256Hex(bytes), size: 4 });
    expect(capture(['a', 'b'], 'full')).toEqual({ value: ['a', 'b'] });
    expect(capture(['a', 'b'], 'digest')).toEqual({ sha256: sha256Hex('["a","b"]'), size: 9 });
    expect(capture('', 'digest')).toEqual({ sha256: sha256Hex(''), size: 0 });
  });

  it('keeps numbers, bigints, booleans and null as values in both modes', () => {
    for (const mode of ['full', 'digest'] as const) {
      expect(capture(42, mode)).toEqual({ value: 42 });
      expect(capture(18446744073709551615n, mode)).toEqual({ value: '18446744073709551615' });
      expect(capture(true, mode)).toEqual({ value: true });
      expect(capture(null, mode)).toEqual({ value: null });
      expect(capture(undefined, mode)).toEqual({ value: null });
      expect(capture(Number.NaN, mode)).toEqual({ value: 'NaN' });
      expect(capture(-Infinity, mode)).toEqual({ value: '-Infinity' });
    }
    expect(JSON.parse(JSON.stringify(capture(2n ** 64n - 1n, 'full')))).toEqual({ value: '18446744073709551615' });
  });
});

describe('newRunId', () => {
  it('makes unique ids that sort in creation order', () => {
    const ids = Array.from({ length: 2000 }, () => newRunId());
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids) expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(newRunId(Date.now() + 10_000) > ids[ids.length - 1]!).toBe(true);
  });
});

describe('formatRunTable', () => {
  it('renders header, one row per call and a footer with the root', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const writer = startRun(ledger);
    writer.appendCall(kvGet('count', '41'));
    writer.appendCall(kvDenied('secrets/api-key'));
    writer.appendCall({
      call: 'log.info',
      args: [capture('\u001b[2J\u202eevil and a very long line that goes on', 'full')],
      decision: 'limit',
      rule: 'grants.log.maxCalls',
      outcome: { err: { kind: 'limit', message: 'log.info: grants.log.maxCalls (2) reached' } },
      durationUs: 0.4,
    });
    writer.appendCall({
      call: 'events.emit',
      args: [capture('counter.incremented', 'full'), capture('{"count":42}', 'digest')],
      decision: 'allow',
      rule: 'grants.events.kinds[0]',
      outcome: { ok: null },
      durationUs: 1500,
    });
    const root = writer.end({ outcome: 'ok', output: capture('count is 42', 'full'), counts: writer.counts, durationUs: 2_345 });
    const text = formatStoredRunTable(ledger.readRun(writer.run));
    const lines = text.split('\n');
    expect(lines[0]).toBe(`run        ${writer.run}`);
    expect(lines[1]).toBe(`component  counter  sha256:${sha256Hex('component counter').slice(0, 12)}`);
    expect(text).toContain('outcome    ok  output "count is 42"  in 2.35 ms');
    expect(text).toMatch(/^seq {2}call +decision {2}rule +duration {2}result$/m);
    expect(text).toMatch(/^ {2}1 {2}kv\.get\("count"\) +allow {5}grants\.kv\.read\[0\] +7 µs {2}"41"$/m);
    expect(text).toMatch(/^ {2}2 {2}kv\.get\("secrets\/api-key"\) +deny .* denied: kv\.get\("secrets\/api-key"\) denied: no read rule matc…$/m);
    expect(text).toContain('0.4 µs  limit: log.info: grants.log.maxCalls (2) reached');
    expect(text).toMatch(/events\.emit\("counter\.incremented", sha2…/);
    expect(text).toContain('1.50 ms  ok');
    expect(text).toContain('4 calls: 2 allowed, 1 denied, 1 limited, 0 invalid');
    expect(text).toContain(`ledger root ${root}`);
    // Hostile text cannot reach the terminal raw.
    expect(text).not.toMatch(/[\u001b\u202e]/);
    expect(text).toContain('\\u001b');
    // Columns line up: every row is as wide as the header up to the result column.
    const table = lines.filter((l) => /^ *\d+  /.test(l) || l.startsWith('seq'));
    const resultColumn = table[0]!.indexOf('result');
    for (const line of table) expect(line[resultColumn - 1]).toBe(' ');
    expect(formatRunTable(ledger.readRun(writer.run).map((r) => r.record))).toContain('ledger root (not given)');
  });

  it('renders an unfinished run', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const writer = startRun(ledger);
    writer.appendCall(kvGet('a', null));
    const text = formatStoredRunTable(ledger.readRun(writer.run));
    expect(text).toContain('outcome    unfinished (no run-end record)');
    expect(text).toContain('1 call: 1 allowed, 0 denied, 0 limited, 0 invalid');
    expect(text).not.toContain('ledger root');
  });
});

describe('state database', () => {
  it('opens in WAL mode with synchronous NORMAL, and commits durable() writes with FULL', () => {
    const state = open();
    expect(state.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(state.db.pragma('synchronous', { simple: true })).toBe(1);
    expect(state.durable(() => state.db.pragma('synchronous', { simple: true }))).toBe(2);
    expect(state.db.pragma('synchronous', { simple: true })).toBe(1);
    expect(state.db.pragma('user_version', { simple: true })).toBe(STATE_SCHEMA_VERSION);
    expect(Number(state.db.pragma('busy_timeout', { simple: true }))).toBeGreaterThan(0);
    expect(state.path).toBe(join(state.dir, 'ice.db'));
  });

  it('creates a missing state directory', () => {
    const state = open(join(tempDir(), 'nested', 'state'));
    expect(state.db.open).toBe(true);
  });

  it('migrates a version-1 state (before runs in flight were tracked) to the current version, keeping its ledger and counting its kv', () => {
    const dir = tempDir();
    const state = open(dir);
    const ledger = new LedgerStore(state);
    const writer = startRun(ledger);
    writer.end({ outcome: 'ok', durationUs: 1 });
    const before = ledger.readRun(writer.run).map((r) => r.hash);
    state.close();
    // What ICE 0.1.0's schema v1 looked like: no `running` table, no kv usage (v3), no serve tables (v4), no ledger_records (v5), and kv data to count.
    const raw = new Database(join(dir, 'ice.db'));
    raw.exec('DROP TABLE running; DROP TRIGGER kv_usage_insert; DROP TRIGGER kv_usage_update; DROP TRIGGER kv_usage_delete; DROP TABLE kv_usage');
    raw.exec('DROP TABLE agents; DROP TABLE subscriptions; DROP TABLE deliveries; DROP INDEX ledger_cause; DROP VIEW ledger_records');
    raw.exec("INSERT INTO kv (namespace, key, value) VALUES ('c', 'k1', 'héllo'), ('c', 'k2', 'x')");
    raw.pragma('user_version = 1');
    raw.close();

    const reopened = open(dir);
    expect(reopened.db.pragma('user_version', { simple: true })).toBe(STATE_SCHEMA_VERSION);
    // v3 counts what the kv table already held (UTF-8 bytes of keys and values).
    expect(reopened.db.prepare('SELECT keys, bytes FROM kv_usage WHERE namespace = ?').get('c')).toEqual({ keys: 2, bytes: 2 + 6 + 2 + 1 });
    expect(reopened.db.prepare('SELECT count(*) AS n FROM running').get()).toEqual({ n: 0 });
    expect(new LedgerStore(reopened).readRun(writer.run).map((r) => r.hash)).toEqual(before);
  });

  it('refuses a database written by a newer schema version, naming both versions', () => {
    const dir = tempDir();
    open(dir).close();
    const raw = new Database(join(dir, 'ice.db'));
    raw.pragma('user_version = 7');
    raw.close();
    expect(() => openStateDb(dir)).toThrow(new RegExp(`has schema version 7, but this ICE understands up to version ${STATE_SCHEMA_VERSION}`));
  });
});

describe('intents and results', () => {
  const fetchIntent = { call: 'ice:agent/http@0.1.0#fetch', args: [capture('POST https://api.example/orders', 'full')], decision: 'allow' as const, rule: 'grants.http.allow[0]' };
  const fetchResult = (intent: number) => ({
    call: 'ice:agent/http@0.1.0#fetch',
    intent,
    decision: 'allow' as const,
    rule: 'grants.http.allow[0]',
    outcome: { ok: capture('201', 'full') },
    durationUs: 900,
  });

  /** A run with one completed effect and one whose run stopped during it. */
  function writeStoppedRun(ledger: LedgerStore): { run: string; records: ReturnType<LedgerStore['readRun']> } {
    const writer = startRun(ledger);
    const first = writer.appendIntent(fetchIntent);
    writer.appendResult(fetchResult(first));
    writer.appendIntent(fetchIntent);
    writer.end({ outcome: 'limit', limit: 'timeout', reason: 'stopped', durationUs: 1000 });
    return { run: writer.run, records: ledger.readRun(writer.run) };
  }

  it('counts an intent as the call and its result as the decision; an intent left open is listed at the run-end', () => {
    const ledger = new LedgerStore(open());
    const { records } = writeStoppedRun(ledger);
    expect(records.map((r) => r.record.type)).toEqual(['run-start', 'intent', 'result', 'intent', 'run-end']);
    expect(records.at(-1)!.record).toMatchObject({ unknown: [3], counts: { calls: 2, allowed: 1, denied: 0, limited: 0, invalid: 0, unknown: 1 } });
    expect(verifyRun(records)).toMatchObject({ ok: true, records: 5 });
    expect(formatStoredRunTable(records)).toContain('2 calls: 1 allowed, 0 denied, 0 limited, 0 invalid, 1 outcome unknown (seq 3: the run stopped during their effect)');
  });

  it('ends a run its process left during an effect as incomplete, keeping the intent', () => {
    const state = open();
    const ledger = new LedgerStore(state);
    const writer = startRun(ledger);
    writer.appendIntent(fetchIntent);
    // The process is gone: a survivor (the host thread, or the next host to open the state) ends the run.
    const survivor = ledger.resumeRun(writer.run);
    expect([...survivor.openIntents]).toEqual([1]);
    survivor.end({ outcome: 'incomplete', reason: 'gone', durationUs: 0 });
    const records = ledger.readRun(writer.run);
    expect(records.at(-1)!.record).toMatchObject({ outcome: 'incomplete', unknown: [1], counts: { calls: 1, unknown: 1 } });
    expect(verifyStore(ledger)).toMatchObject({ ok: true });
  });

  it('refuses a result that completes no open intent, before writing it', () => {
    const writer = startRun(new LedgerStore(open()));
    expect(() => writer.appendResult(fetchResult(1))).toThrow('appendResult: seq 1 is not an open intent of run');
    const seq = writer.appendIntent(fetchIntent);
    writer.appendResult(fetchResult(seq));
    expect(() => writer.appendResult(fetchResult(seq))).toThrow(`appendResult: seq ${seq} is not an open intent`);
    expect(() => writer.appendIntent({ ...fetchIntent, decision: 'deny' as never })).toThrow('appendIntent: unknown decision "deny"');
  });

  // Each edit is rehashed, as a tamperer with the file would: the record's own check (which runs before
  // the next record's link) must name it.
  it.each([
    [
      'a run-end that no longer says a call is unknown',
      4,
      (body: Record<string, unknown>): void => {
        body.unknown = undefined;
        (body.counts as Record<string, unknown>).unknown = undefined;
      },
      'run-end counts do not match the call records (unknown 0 ≠ 1)',
    ],
    ['a run-end that lists a call as unknown whose result exists', 4, (body: Record<string, unknown>): void => void (body.unknown = [1, 3]), 'run-end lists [1,3] as calls of unknown outcome, but the intents without a result are [3]'],
    ['a result pointing at another record', 2, (body: Record<string, unknown>): void => void (body.intent = 3), 'result of seq 3, which is not an open intent of this run'],
    ['a result naming another call', 2, (body: Record<string, unknown>): void => void (body.call = 'ice:agent/kv@0.1.0#set'), 'result names "ice:agent/kv@0.1.0#set" but its intent (seq 1) is "ice:agent/http@0.1.0#fetch"'],
    ['an intent whose decision was rewritten', 1, (body: Record<string, unknown>): void => void (body.decision = 'deny'), 'malformed intent record: decision'],
  ] as const)('detects %s', (_name: string, seq: number, edit: (body: Record<string, unknown>) => void, reason: string) => {
    const state = open();
    const ledger = new LedgerStore(state);
    const { run } = writeStoppedRun(ledger);
    dropTriggers(state);
    const body = JSON.parse(row(state, run, seq).body) as Record<string, unknown>;
    edit(body);
    setBody(state, run, seq, JSON.stringify(body), true);
    expect(verifyRun(ledger.readRun(run))).toEqual({ ok: false, run, seq, reason });
  });
});

describe('the intent log', () => {
  it('holds an intent, and the records queued before it, until they are committed; recovery puts them in the ledger', () => {
    const dir = tempDir();
    const state = open(dir);
    const ledger = new LedgerStore(state);
    const inner = startRun(ledger);
    const writer = new BufferedRunWriter(inner, state, { intentLog: IntentLog.forRun(dir, inner.run) });
    writer.appendCall(kvGet('a', '1'));
    const seq = writer.appendIntent({ call: 'ice:agent/http@0.1.0#fetch', args: [capture('POST /orders', 'full')], decision: 'allow', rule: 'grants.http.allow[0]' });
    expect(seq).toBe(2);
    // Nothing committed yet; both in the log, in order.
    expect(ledger.readRun(inner.run).map((r) => r.record.type)).toEqual(['run-start']);
    expect(readIntentLog(dir, inner.run).map((e) => [e.seq, queuedType(e.record)])).toEqual([
      [1, 'call'],
      [2, 'intent'],
    ]);
    // The process dies here (its pid is gone): the next host to open the state ends the run.
    state.db.prepare('UPDATE running SET pid = 2147483646 WHERE run = ?').run(inner.run);
    const next = open(dir);
    const recovered = endInterruptedRuns(next, new LedgerStore(next), () => false);
    expect(recovered).toEqual([{ run: inner.run, pid: 2147483646, calls: 2 }]);
    const records = new LedgerStore(open(dir)).readRun(inner.run);
    expect(records.map((r) => r.record.type)).toEqual(['run-start', 'call', 'intent', 'run-end']);
    expect(records.at(-1)!.record).toMatchObject({ outcome: 'incomplete', unknown: [2], counts: { calls: 2, allowed: 1, unknown: 1 } });
    expect(verifyRun(records)).toMatchObject({ ok: true });
    expect(existsSync(intentLogPath(dir, inner.run))).toBe(false);
  });

  it('is emptied by every commit and removed by nothing but the end of the run', () => {
    const dir = tempDir();
    const state = open(dir);
    const inner = startRun(new LedgerStore(state));
    const log = IntentLog.forRun(dir, inner.run);
    const writer = new BufferedRunWriter(inner, state, { intentLog: log });
    writer.appendIntent({ call: 'c', args: [], decision: 'ask', rule: 'r' });
    writer.flush();
    expect(readIntentLog(dir, inner.run)).toEqual([]);
    writer.end({ outcome: 'ok', durationUs: 1 });
    log.remove();
    expect(existsSync(intentLogPath(dir, inner.run))).toBe(false);
  });

  it('leaves out a last line cut short by a kill in the middle of its write', () => {
    const dir = tempDir();
    const log = IntentLog.forRun(dir, 'RUN1');
    log.write([{ seq: 1, record: kvGet('a', '1') }]);
    appendFileSync(intentLogPath(dir, 'RUN1'), '{"seq":2,"record":{"call":"c","ar');
    expect(readIntentLog(dir, 'RUN1').map((e) => e.seq)).toEqual([1]);
  });
});
