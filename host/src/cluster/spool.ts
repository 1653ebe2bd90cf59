/**
 * A cluster host's local state (its `--state` directory) is where its runs execute exactly as on a
 * single host — same kernel, same SQLite commits, same speed — and a spool for the shared database:
 * what a run wrote locally is shipped (store.ts) once per run end, per intent, per host record.
 *
 * Kv writes are captured by triggers into `cluster_kv_changes` in the transaction of each write (whoever
 * writes: a worker's connection, a rebuild), so a shipment carries exactly the keys changed since the
 * last one, with their values as of the shipment. The changes are read before the ledger rows: a kv
 * write commits with its call record, so every shipped change has its record in the same shipment.
 */
import { preparedOnce, type StateDb } from '../storage/db.js';
import type { NewDelivery } from './store.js';

const SPOOL_SCHEMA = `
  CREATE TABLE IF NOT EXISTS cluster_kv_changes (
    id        INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL
  ) STRICT;
  CREATE TRIGGER IF NOT EXISTS cluster_kv_insert AFTER INSERT ON kv
  BEGIN INSERT INTO cluster_kv_changes (namespace, key) VALUES (NEW.namespace, NEW.key); END;
  CREATE TRIGGER IF NOT EXISTS cluster_kv_update AFTER UPDATE ON kv
  BEGIN INSERT INTO cluster_kv_changes (namespace, key) VALUES (NEW.namespace, NEW.key); END;
  CREATE TRIGGER IF NOT EXISTS cluster_kv_delete AFTER DELETE ON kv
  BEGIN INSERT INTO cluster_kv_changes (namespace, key) VALUES (OLD.namespace, OLD.key); END;
`;

/** Adds the kv change capture to a state database (idempotent). */
export function prepareSpool(state: StateDb): void {
  state.transaction(() => state.db.exec(SPOOL_SCHEMA));
}

export interface KvChanges {
  /** The newest change id read: what `forgetKvChanges` drops once shipped. */
  readonly upTo: number;
  readonly writes: { namespace: string; key: string; value: string | null }[];
}

/** The keys of `namespace` changed since the last shipment, with their values now (null: deleted). */
export function kvChanges(state: StateDb, namespace: string): KvChanges {
  const changed = preparedOnce<[string], { id: number; key: string }>(state, 'SELECT id, key FROM cluster_kv_changes WHERE namespace = ? ORDER BY id').all(namespace);
  if (changed.length === 0) return { upTo: 0, writes: [] };
  const value = preparedOnce<[string, string], { value: string }>(state, 'SELECT value FROM kv WHERE namespace = ? AND key = ?');
  const keys = [...new Set(changed.map((c) => c.key))];
  return { upTo: changed.at(-1)!.id, writes: keys.map((key) => ({ namespace, key, value: value.get(namespace, key)?.value ?? null })) };
}

export function forgetKvChanges(state: StateDb, namespace: string, upTo: number): void {
  if (upTo === 0) return;
  state.transaction(() => preparedOnce<[string, number]>(state, 'DELETE FROM cluster_kv_changes WHERE namespace = ? AND id <= ?').run(namespace, upTo));
}

/** A new lease holder's kv: the namespace as the shared database has it, replacing whatever this host had. */
export function loadNamespace(state: StateDb, namespace: string, entries: readonly { key: string; value: string }[]): void {
  state.transaction(() => {
    state.db.prepare('DELETE FROM kv WHERE namespace = ?').run(namespace);
    const insert = state.db.prepare('INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?)');
    for (const { key, value } of entries) insert.run(namespace, key, value);
    state.db.prepare('DELETE FROM cluster_kv_changes WHERE namespace = ?').run(namespace);
  });
}

/** A run's rows after `afterSeq`, in seq order. */
export function runRowsAfter(state: StateDb, run: string, afterSeq: number): { run: string; seq: number; type: string; hash: string; body: string }[] {
  return preparedOnce<[string, number], { run: string; seq: number; type: string; hash: string; body: string }>(state, 'SELECT run, seq, type, hash, body FROM ledger WHERE run = ? AND seq > ? ORDER BY seq').all(run, afterSeq);
}

/** Deliveries this host's runs queued locally for events of `run` up to `seq` (emits it has recorded). */
export function emittedDeliveries(state: StateDb, run: string, upToSeq: number): (NewDelivery & { id: number })[] {
  // Event ids are `<run>#<seq>`: '#' sorts just before '$', so the range is the run's events.
  const rows = preparedOnce<[string, string], NewDelivery & { id: number }>(state, 'SELECT id, event, agent, kind, payload, source FROM deliveries WHERE event > ? AND event < ?').all(`${run}#`, `${run}$`);
  return rows.filter((row) => Number(row.event.slice(row.event.lastIndexOf('#') + 1)) <= upToSeq);
}

export function forgetDeliveries(state: StateDb, ids: readonly number[]): void {
  if (ids.length === 0) return;
  state.transaction(() => {
    const remove = preparedOnce<[number]>(state, 'DELETE FROM deliveries WHERE id = ?');
    for (const id of ids) remove.run(id);
  });
}

/** The registry row a host record (lifecycle) set, as the local fold has it. */
export function registryRow(state: StateDb, agent: string): { name: string; state: string; component: string; digest: string; policyDigest: string; since: string } | undefined {
  return state.db
    .prepare<[string], { name: string; state: string; component: string; digest: string; policyDigest: string; since: string }>(
      'SELECT name, state, component, digest, policy_digest AS policyDigest, since FROM agents WHERE name = ?',
    )
    .get(agent);
}

/** Sets the local registry row from the shared one (the local fold is a cache on a cluster host). */
export function importRegistryRow(state: StateDb, row: { name: string; state: string; component: string; digest: string; policyDigest: string; since: string }): void {
  state.transaction(() =>
    state.db
      .prepare(
        `INSERT INTO agents (name, state, component, digest, policy_digest, since) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET state = excluded.state, component = excluded.component, digest = excluded.digest, policy_digest = excluded.policy_digest, since = excluded.since`,
      )
      .run(row.name, row.state, row.component, row.digest, row.policyDigest, row.since),
  );
}
