/**
 * The runs a run caused (`ice audit trace`): every run whose run-start `cause.run` names it — the runs
 * its events triggered, the quarantine its fault caused — and, recursively, the runs those caused.
 *
 * A cause always names an earlier run, so the tree has no cycle; but one run can cause thousands (an
 * event with many subscribers, an agent answering its own events), so the walk is bounded in depth,
 * fan-out and total size, and every node says how many of its runs it leaves out.
 *
 * Reads the stored bodies as they are: it does not check the hash chain (`ice audit verify` does).
 */
import type { StateDb } from '../storage/db.js';
import type { Blame, LimitKind, RunCause, RunEndRecord, RunOutcome, RunStartRecord } from './records.js';
import { invokedName } from './store.js';

/** One run in the tree. */
export interface TracedRun {
  readonly run: string;
  readonly component: string;
  /** What it called: `run`, a function, `wasi:cli/run`, or what a host record stands for (`invokedName`). */
  readonly invoked: string;
  readonly at: string;
  readonly cause?: RunCause;
  /** `unfinished`: no run-end (yet); `inFlight` says whether a process still claims it. */
  readonly outcome: RunOutcome | 'unfinished';
  readonly limit?: LimitKind;
  readonly blame?: Blame;
  readonly inFlight?: true;
  /** The runs it caused, in store order, as far as the bounds allow. */
  readonly caused: TracedRun[];
  /** How many runs it caused that `caused` leaves out (past a bound). */
  omitted: number;
}

export interface TraceBounds {
  /** Levels below the root. Default 32. */
  readonly maxDepth?: number;
  /** Runs listed per run. Default 50. */
  readonly maxChildren?: number;
  /** Runs in the whole tree, the root included. Default 1000. */
  readonly maxRuns?: number;
}

export const DEFAULT_TRACE_BOUNDS: Required<TraceBounds> = { maxDepth: 32, maxChildren: 50, maxRuns: 1000 };

interface Row {
  start: string;
  end: string | null;
  inFlight: number;
}

/**
 * The tree of runs `run` caused, or undefined when the ledger has no run-start for `run`. Breadth
 * first, so a bound cuts the deepest, latest runs and the first levels are always whole (up to
 * `maxChildren`). Read in one snapshot: runs committed meanwhile are in it entirely or not at all.
 */
export function causedRuns(state: StateDb, run: string, bounds: TraceBounds = {}): TracedRun | undefined {
  const { maxDepth, maxChildren, maxRuns } = { ...DEFAULT_TRACE_BOUNDS, ...bounds };
  const { db } = state;
  const columns = `s.body AS start, e.body AS "end", EXISTS (SELECT 1 FROM running r WHERE r.run = s.run) AS inFlight
       FROM ledger s LEFT JOIN ledger e ON e.run = s.run AND e.type = 'run-end'`;
  const rootStmt = db.prepare<[string], Row>(`SELECT ${columns} WHERE s.run = ? AND s.seq = 0 AND s.type = 'run-start'`);
  // `body ->> '$.cause.run'` and `type = 'run-start'` exactly as the partial index ledger_cause has them.
  const childrenStmt = db.prepare<[string, number], Row>(
    `SELECT ${columns} WHERE s.type = 'run-start' AND s.body ->> '$.cause.run' = ? ORDER BY s.id LIMIT ?`,
  );
  const countStmt = db
    .prepare<[string], number>("SELECT count(*) FROM ledger WHERE type = 'run-start' AND body ->> '$.cause.run' = ?")
    .pluck();

  return db
    .transaction((): TracedRun | undefined => {
      const rootRow = rootStmt.get(run);
      if (rootRow === undefined) return undefined;
      const root = node(rootRow);
      const seen = new Set([root.run]);
      let total = 1;
      let level = [root];
      for (let depth = 0; level.length > 0; depth++) {
        const next: TracedRun[] = [];
        for (const parent of level) {
          const room = Math.min(maxChildren, maxRuns - total);
          if (depth >= maxDepth || room <= 0) {
            parent.omitted = countStmt.get(parent.run) ?? 0;
            continue;
          }
          // One more than the room: only then is the count query needed.
          const rows = childrenStmt.all(parent.run, room + 1);
          for (const row of rows.slice(0, room)) {
            const child = node(row);
            // A forged ledger could name a later run, or itself, as a cause: never walk a run twice.
            if (seen.has(child.run)) continue;
            seen.add(child.run);
            parent.caused.push(child);
            next.push(child);
            total++;
          }
          if (rows.length > room) parent.omitted = (countStmt.get(parent.run) ?? 0) - parent.caused.length;
        }
        level = next;
      }
      return root;
    })
    .deferred();
}

function node(row: Row): TracedRun {
  const start = JSON.parse(row.start) as RunStartRecord;
  const end = row.end === null ? undefined : (JSON.parse(row.end) as RunEndRecord);
  return {
    run: start.run,
    component: String(start.component?.name),
    invoked: invokedName(start),
    at: start.at,
    ...(start.cause ? { cause: start.cause } : {}),
    outcome: end?.outcome ?? 'unfinished',
    ...(end?.limit ? { limit: end.limit } : {}),
    ...(end?.blame ? { blame: end.blame } : {}),
    ...(end === undefined && row.inFlight ? { inFlight: true as const } : {}),
    caused: [],
    omitted: 0,
  };
}
