/**
 * The shared ledger (PostgreSQL) is verified with the same semantics as a host's own (SQLite): the same
 * runs, written by the real LedgerStore and shipped to the cluster by the real ClusterStore, tampered the
 * same way in both databases, must fail at the same run, seq and reason in `verifyStore` and in
 * `verifyCluster` — every leaf of every record (a v2 batch's included), hashes, rehashed edits, a
 * dropped record, a truncated run, a forged record after the end, a body that is not JSON.
 * (What only the cluster has — its per-agent chains of run-starts and checkpoints — is in cluster.test.ts.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterStore } from '../host/src/cluster/store.js';
import { verifyCluster } from '../host/src/cluster/verify.js';
import { BufferedRunWriter, capture, LedgerStore, newRunId, sha256Hex } from '../host/src/ledger/index.js';
import { openStateDb, type StateDb } from '../host/src/storage/db.js';
import { key, keyedHash, verifyStore, call } from './ledger-keyed.js';
import { freshDatabase, query, stopPostgres } from './postgres.js';

afterAll(() => stopPostgres());

/** A run as the runtime writes one: batched calls (a v2 batch row), an intent and its result (v1 rows), a lone call, the run-end. */
function writeRun(ledger: LedgerStore): string {
  const inner = ledger.startRun({ run: newRunId(), component: { name: 'a', digest: sha256Hex('c') }, policy: { digest: sha256Hex('p'), source: 'p.yaml', document: {} }, input: capture('in', 'full'), host: { ice: 'test' } });
  const writer = new BufferedRunWriter(inner, ledger.state);
  for (let i = 1; i <= 3; i++) writer.appendCall(call(i));
  const intent = writer.appendIntent({ call: 'ice:agent/http@0.1.0#fetch', args: [capture('https://example.org', 'full')], decision: 'allow', rule: 'grants.http.allow[0]' });
  writer.appendResult({ call: 'ice:agent/http@0.1.0#fetch', intent, decision: 'allow', rule: 'grants.http.allow[0]', outcome: { ok: null }, durationUs: 9 });
  writer.appendCall(call(9));
  writer.end({ outcome: 'ok', output: capture('out', 'full'), durationUs: 100 });
  return inner.run;
}

interface Row {
  run: string;
  seq: number;
  type: string;
  hash: string;
  body: string;
}

/** Both databases, holding the same rows; each edit is made in both. */
class Twin {
  private constructor(
    readonly state: StateDb,
    readonly ledger: LedgerStore,
    readonly store: ClusterStore,
    readonly db: string,
    readonly dir: string,
  ) {}

  static async create(): Promise<{ twin: Twin; runs: string[] }> {
    const dir = mkdtempSync(join(tmpdir(), 'ice-twin-'));
    const state = openStateDb(dir);
    const ledger = new LedgerStore(state);
    const runs = [writeRun(ledger), writeRun(ledger)];
    const db = await freshDatabase();
    const store = await ClusterStore.open(db, { max: 2 });
    await store.addAgents(['a']);
    const [lease] = await store.acquire('host', ['a'], 1, 60_000);
    let head = null;
    for (const run of runs) {
      const rows = state.db.prepare('SELECT run, seq, type, hash, body FROM ledger WHERE run = ? ORDER BY seq').all(run) as Row[];
      head = await store.ship('host', lease!, 60_000, key, head, { rows, ends: [{ run, incomplete: false }], kv: [], deliveries: [], intents: [], registry: [], done: [] });
    }
    // What an attacker with write access does first: the append-only triggers out of the way.
    state.db.exec('DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete;');
    await query(db, 'ALTER TABLE ice_ledger DISABLE TRIGGER USER');
    return { twin: new Twin(state, ledger, store, db, dir), runs };
  }

  rows(run: string): Row[] {
    return this.state.db.prepare('SELECT run, seq, type, hash, body FROM ledger WHERE run = ? ORDER BY seq').all(run) as Row[];
  }

  async set(run: string, seq: number, change: { body?: string; hash?: string; run?: string }): Promise<void> {
    const now = this.rows(run).find((r) => r.seq === seq)!;
    const next = { body: change.body ?? now.body, hash: change.hash ?? now.hash, run: change.run ?? run };
    this.state.db.prepare('UPDATE ledger SET body = ?, hash = ?, run = ? WHERE run = ? AND seq = ?').run(next.body, next.hash, next.run, run, seq);
    await query(this.db, 'UPDATE ice_ledger SET body = $1, hash = $2, run = $3 WHERE run = $4 AND seq = $5', [next.body, next.hash, next.run, run, seq]);
  }

  async remove(run: string, seq: number): Promise<void> {
    this.state.db.prepare('DELETE FROM ledger WHERE run = ? AND seq = ?').run(run, seq);
    await query(this.db, 'DELETE FROM ice_ledger WHERE run = $1 AND seq = $2', [run, seq]);
  }

  async append(row: Row): Promise<void> {
    this.state.db.prepare('INSERT INTO ledger (run, seq, type, hash, body) VALUES (?, ?, ?, ?, ?)').run(row.run, row.seq, row.type, row.hash, row.body);
    await query(this.db, `INSERT INTO ice_ledger (run, seq, type, hash, body, agent, host) VALUES ($1, $2, $3, $4, $5, 'a', 'attacker')`, [row.run, row.seq, row.type, row.hash, row.body]);
  }

  /** Both verdicts, reduced to what they say: ok, or where and why not. */
  async verdicts(): Promise<[unknown, unknown]> {
    const pick = (r: { ok: boolean; run?: string; seq?: number; reason?: string }) => (r.ok ? { ok: true } : { ok: false, run: r.run, seq: r.seq, reason: r.reason });
    return [pick(verifyStore(this.ledger) as never), pick((await verifyCluster(this.store, key)) as never)];
  }

  async close(): Promise<void> {
    this.state.close();
    await this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Every leaf of a JSON value, as a path and a replacement of a different content. */
function leafEdits(value: unknown, path: Array<string | number> = []): Array<{ path: Array<string | number>; replacement: unknown }> {
  if (Array.isArray(value)) return value.flatMap((item, i) => leafEdits(item, [...path, i]));
  if (typeof value === 'object' && value !== null) return Object.entries(value).flatMap(([k, item]) => leafEdits(item, [...path, k]));
  return [{ path, replacement: typeof value === 'number' ? value + 1 : typeof value === 'boolean' ? !value : value === null ? 'x' : `${String(value)}x` }];
}

function edited(body: string, path: Array<string | number>, replacement: unknown): string {
  const parsed = JSON.parse(body) as Record<string | number, unknown>;
  let node = parsed;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = replacement;
  return JSON.stringify(parsed);
}

describe('the shared ledger verifies as a host ledger does', () => {
  it('names the same run, seq and reason as SQLite for an edit of any leaf of any record, batches included', async () => {
    const { twin, runs } = await Twin.create();
    try {
      expect(await twin.verdicts()).toEqual([{ ok: true }, { ok: true }]);
      const run = runs[1]!;
      const types = new Set<string>();
      let edits = 0;
      for (const row of twin.rows(run)) {
        types.add(row.type);
        for (const { path, replacement } of leafEdits(JSON.parse(row.body))) {
          await twin.set(run, row.seq, { body: edited(row.body, path, replacement) });
          const [sqlite, shared] = await twin.verdicts();
          expect(sqlite, `${row.type} ${row.seq} ${path.join('.')}`).toMatchObject({ ok: false, run });
          expect(shared, `${row.type} ${row.seq} ${path.join('.')}`).toEqual(sqlite);
          edits++;
        }
        await twin.set(run, row.seq, { body: row.body });
      }
      expect([...types].sort()).toEqual(['batch', 'call', 'intent', 'result', 'run-end', 'run-start']);
      expect(edits).toBeGreaterThan(60);
      expect(await twin.verdicts()).toEqual([{ ok: true }, { ok: true }]);
    } finally {
      await twin.close();
    }
  });

  it('names the same failure for a changed hash, an edit rehashed with the key, a dropped record, a truncated run, a forged record after the end and a garbage body', async () => {
    const cases: Array<[string, (twin: Twin, runs: string[]) => Promise<void>]> = [
      ['a changed hash', (t, [, run]) => t.set(run!, t.rows(run!)[2]!.seq, { hash: '0'.repeat(64) })],
      ['a batch row with a changed hash', (t, [, run]) => t.set(run!, t.rows(run!).find((r) => r.type === 'batch')!.seq, { hash: '0'.repeat(64) })],
      [
        'an edit rehashed with the key (caught at the next record)',
        async (t, [, run]) => {
          const row = t.rows(run!).find((r) => r.type === 'intent')!;
          const body = row.body.replace('example.org', 'example.net');
          await t.set(run!, row.seq, { body, hash: keyedHash(body) });
        },
      ],
      ['a dropped record', (t, [, run]) => t.remove(run!, t.rows(run!).find((r) => r.type === 'result')!.seq)],
      ['a truncated run (its run-end dropped)', (t, [, run]) => t.remove(run!, t.rows(run!).at(-1)!.seq)],
      [
        'a forged record after the run-end, chained and hashed with the key',
        async (t, [, run]) => {
          const last = t.rows(run!).at(-1)!;
          const body = JSON.stringify({ v: 1, type: 'call', run, seq: last.seq + 1, at: new Date().toISOString(), prev: last.hash, call: 'x', args: [], decision: 'allow', rule: 'r', outcome: { ok: null }, durationUs: 1 });
          await t.append({ run: run!, seq: last.seq + 1, type: 'call', hash: keyedHash(body), body });
        },
      ],
      ['a body that is not JSON, its hash matching', (t, [, run]) => t.set(run!, t.rows(run!)[2]!.seq, { body: 'not json', hash: keyedHash('not json') })],
    ];
    for (const [name, tamper] of cases) {
      const { twin, runs } = await Twin.create();
      try {
        await tamper(twin, runs);
        const [sqlite, shared] = await twin.verdicts();
        expect(sqlite, name).toMatchObject({ ok: false });
        expect(shared, name).toEqual(sqlite);
      } finally {
        await twin.close();
      }
    }
  });
});
