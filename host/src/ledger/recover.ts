/**
 * Crash recovery: a run whose process died (SIGKILL, a crash, power loss) has records up to some call
 * and no run-end. When a host opens the state, each such run gets the records its intent log holds that
 * the ledger does not (intent-log.ts), then a run-end `incomplete` listing the intents left without a
 * result; nothing already written is touched. A run is known to be in flight by its
 * row in `running` (written with its run-start, removed with its run-end), which names the process
 * that owns it: runs of processes still alive — another host on the same state — are left alone.
 */
import { rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { StateDb } from '../storage/db.js';
import { appendLogged, intentLogFiles, intentLogPath, readIntentLog, removeIntentLog, type IntentLogEntry } from './intent-log.js';
import type { LedgerStore, RunWriter } from './store.js';

export interface RecoveredRun {
  readonly run: string;
  readonly pid: number;
  /** Call records the run had committed. */
  readonly calls: number;
}

/** Whether a process exists (signal 0 checks without signalling; EPERM means it exists, as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function endInterruptedRuns(
  state: StateDb,
  ledger: LedgerStore,
  alive: (pid: number) => boolean = processAlive,
  /** This process's own runs too (a host stopping, which has cut its workers off), with why. */
  own?: { readonly reason: string },
): RecoveredRun[] {
  const inFlight = state.db.prepare('SELECT run, pid FROM running ORDER BY started').all() as { run: string; pid: number }[];
  const recovered: RecoveredRun[] = [];
  for (const { run, pid } of inFlight) {
    if (pid === process.pid ? own === undefined : alive(pid)) continue;
    state.durable(() =>
      state.transaction(() => {
        const reason = pid === process.pid && own ? own.reason : `the process running it (pid ${pid}) stopped before the run ended; ended when the state was next opened`;
        // What the run had made durable outside the ledger: its intents, and the records queued before them.
        const writer = endRecovered(ledger, run, readIntentLog(state.dir, run), reason);
        if (writer === undefined) state.db.prepare('DELETE FROM running WHERE run = ?').run(run);
        else recovered.push({ run, pid, calls: writer.counts.calls });
      }),
    );
    removeIntentLog(state.dir, run);
  }
  removeStaleIntentLogs(state);
  return recovered;
}

/**
 * Ends an unfinished run `incomplete` (call inside a transaction): appends the records it had made
 * durable outside the ledger (`logged`: its intents and the records queued before them) that the
 * ledger does not have, then a run-end listing the intents left without a result and, as `recovered`,
 * what the ledger held when recovery began — a run truncated before recovery (records deleted, a
 * `running` row forged) shows what was left, never a plain end. Its duration is what is known: from
 * the run-start to its last record. Undefined (nothing written) if the run has no records or has ended.
 */
export function endRecovered(ledger: LedgerStore, run: string, logged: readonly IntentLogEntry[], reason: string): RunWriter | undefined {
  const records = ledger.readRun(run);
  const last = records.at(-1);
  if (last === undefined || last.record.type === 'run-end') return undefined;
  const found = { records: records.length, lastSeq: last.record.seq, lastHash: last.hash };
  const writer = ledger.resumeRun(run);
  appendLogged(writer, logged);
  const first = Date.parse(records[0]!.record.at);
  const lastAt = Date.parse(ledger.readRun(run).at(-1)!.record.at);
  writer.end({ outcome: 'incomplete', reason, durationUs: Math.max(0, (lastAt - first) * 1000), recovered: found });
  return writer;
}

/** Logs of runs no longer in flight (their process ended them, then stopped before removing the log). */
function removeStaleIntentLogs(state: StateDb): void {
  const files = intentLogFiles(state.dir);
  if (files.length === 0) return;
  const inFlight = new Set((state.db.prepare('SELECT run FROM running').pluck().all() as string[]).map((run) => basename(intentLogPath(state.dir, run))));
  for (const file of files) if (!inFlight.has(file)) rmSync(join(state.dir, 'intents', file), { force: true });
}
