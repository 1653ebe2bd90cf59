/**
 * Ending a run whose host died (its lease expired and this host took the agent over): the shared
 * ledger holds a verifiable prefix of the run (what its host shipped: at least up to its last intent)
 * and `ice_intents` the intents it made durable before their effects. The run is continued exactly as
 * a single host recovers a run after a crash (`endRecovered`, ledger/recover.ts): the logged records
 * the ledger does not have are appended, then a run-end `incomplete` whose `unknown` lists the
 * intents without a result. It is done in a scratch SQLite state holding only that run, with the same writer code, and
 * the new rows are shipped back under the new lease.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { endRecovered, LedgerStore, type IntentLogEntry, type LedgerRow } from '../ledger/index.js';
import { openStateDb } from '../storage/db.js';
import { LEDGER_KEY_ENV } from '../storage/ledger-key.js';

/** The rows to append to an orphaned run (its logged records, then its run-end), computed offline. */
export function endOrphanedRun(rows: readonly Omit<LedgerRow, 'id'>[], intents: readonly string[], reason: string): Omit<LedgerRow, 'id'>[] {
  const first = rows[0];
  const last = rows.at(-1);
  if (first === undefined || last === undefined) return [];
  if (last.type === 'run-end') return [];
  const dir = mkdtempSync(join(tmpdir(), 'ice-recover-'));
  try {
    const state = openStateDb(dir);
    try {
      // The scratch state must hash with the cluster's key, never a key of its own.
      if (state.ledgerKey.source !== LEDGER_KEY_ENV) throw new Error(`ending an orphaned run needs the cluster's ledger key in ${LEDGER_KEY_ENV}`);
      const ledger = new LedgerStore(state);
      state.transaction(() => {
        const insert = state.db.prepare('INSERT INTO ledger (run, seq, type, hash, body) VALUES (?, ?, ?, ?, ?)');
        for (const row of rows) insert.run(row.run, row.seq, row.type, row.hash, row.body);
        state.db.prepare('INSERT INTO running (run, pid, started) VALUES (?, 0, ?)').run(first.run, new Date().toISOString());
      });
      state.transaction(() => endRecovered(ledger, first.run, intents.map((entry) => JSON.parse(entry) as IntentLogEntry), reason));
      return state.db.prepare<[string, number], Omit<LedgerRow, 'id'>>('SELECT run, seq, type, hash, body FROM ledger WHERE run = ? AND seq > ? ORDER BY seq').all(first.run, last.seq);
    } finally {
      state.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
