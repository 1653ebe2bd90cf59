/**
 * The SQLite ledger store: appends hash-chained records to the `ledger` table of the state database
 * and reads them back.
 *
 * The table is append-only (triggers refuse UPDATE and DELETE). A run is written through a
 * `RunWriter`, which keeps the chain head in memory, so an append is one INSERT (one prepared
 * statement, no read). Appends autocommit — each record is durable when `appendCall` returns — unless
 * the caller wraps them in `state.transaction(...)` with other writes (a kv set and the record of the
 * call that made it), in which case they commit or roll back together and the writer's head follows.
 *
 * @example
 * ```ts
 * const state = openStateDb('.ice');
 * const ledger = new LedgerStore(state);
 * const run = ledger.startRun({ run: newRunId(), component, policy, input: capture('hi', 'full'), host: { ice: '0.1.0' } });
 * state.transaction(() => {
 *   kv.set('counter', 'count', '42');
 *   run.appendCall({ call: 'kv.set', args: [capture('count', 'full'), capture('42', 'full')],
 *     decision: 'allow', rule: 'grants.kv.write[0]', outcome: { ok: null }, durationUs: 12 });
 * });
 * const root = run.end({ outcome: 'ok', output: capture('42', 'full'), counts: run.counts, durationUs: 840 });
 * ```
 */
import type { Statement } from 'better-sqlite3';
import type { StateDb } from '../state/db.js';
import {
  DECISION_COUNTER,
  emptyCounts,
  isoNow,
  serializeRecord,
  sha256Hex,
  type CallInput,
  type CallRecord,
  type LedgerRecord,
  type RunCounts,
  type RunEndInput,
  type RunEndRecord,
  type RunOutcome,
  type RunStartInput,
  type RunStartRecord,
  type StoredRecord,
} from './records.js';

/** Writes one run's records, in order. Not shareable between threads; one writer per run. */
export interface RunWriter {
  readonly run: string;
  /** Seq of the last record written (0 after run-start). */
  readonly seq: number;
  /** Hash of the last record written. */
  readonly head: string;
  /** Tallies of the call records written so far; pass to `end`. */
  readonly counts: Readonly<RunCounts>;
  /** True once `end` has written the run-end record. */
  readonly ended: boolean;
  /** Appends a call record (seq = previous + 1); returns its hash. Committed on return unless in a transaction. */
  appendCall(call: CallInput): string;
  /** Appends many call records, inside a transaction (see SqliteRunWriter.appendCalls). */
  appendCalls(calls: readonly CallInput[]): void;
  /**
   * Appends the run-end record; returns its hash, the run's ledger root. The counts written are the
   * writer's own tally; `end.counts`, if given, must equal it (else LedgerError, nothing written).
   */
  end(end: RunEndInput): string;
}

/** One run in a listing, newest first. */
export interface RunSummary {
  run: string;
  startedAt: string;
  component: { name: string; digest: string };
  policyDigest: string;
  /** `unfinished` when the run has no run-end record (still running, or its host died). */
  outcome: RunOutcome | 'unfinished';
  /** Call records (from run-end counts; for an unfinished run, the calls written so far). */
  calls: number;
  durationUs: number | null;
  /** Hash of the run-end record, or null while unfinished. */
  root: string | null;
}

/** A raw ledger row, in store (append) order. */
export interface LedgerRow {
  id: number;
  run: string;
  seq: number;
  type: string;
  hash: string;
  body: string;
}

/** Thrown for misuse of the ledger API (not for tampering, which `verify*` reports). */
export class LedgerError extends Error {
  override readonly name = 'LedgerError';
}

export class LedgerStore {
  private readonly insertStmt: Statement<[string, number, string, string, string]>;
  private readonly lastRunStartStmt: Statement<[], { run: string; hash: string }>;
  private readonly readRunStmt: Statement<[string], { hash: string; body: string }>;
  private readonly rowsStmt: Statement<[], LedgerRow>;
  private readonly listRunsStmt: Statement<
    [number],
    { start: string; end: string | null; root: string | null; lastSeq: number }
  >;

  constructor(readonly state: StateDb) {
    const { db } = state;
    this.insertStmt = db.prepare('INSERT INTO ledger (run, seq, type, hash, body) VALUES (?, ?, ?, ?, ?)');
    this.lastRunStartStmt = db.prepare(
      "SELECT run, hash FROM ledger WHERE type = 'run-start' ORDER BY id DESC LIMIT 1",
    );
    this.readRunStmt = db.prepare('SELECT hash, body FROM ledger WHERE run = ? ORDER BY seq');
    this.rowsStmt = db.prepare('SELECT id, run, seq, type, hash, body FROM ledger ORDER BY id');
    this.listRunsStmt = db.prepare(
      `SELECT s.body AS start, e.body AS end, e.hash AS root,
              (SELECT max(m.seq) FROM ledger m WHERE m.run = s.run) AS lastSeq
         FROM ledger s LEFT JOIN ledger e ON e.run = s.run AND e.type = 'run-end'
        WHERE s.type = 'run-start'
        ORDER BY s.id DESC LIMIT ?`,
    );
  }

  /**
   * Writes the run-start record, chained to the newest run-start in the store. The read of that
   * head and the insert happen under one write lock (BEGIN IMMEDIATE), so concurrent writers on the
   * same file (threads, processes) still form one chain.
   */
  startRun(start: RunStartInput): RunWriter {
    if (typeof start.run !== 'string' || start.run === '') {
      throw new LedgerError('startRun: run id must be a non-empty string');
    }
    return this.state.transaction(() => {
      const prev = this.lastRunStartStmt.get()?.hash ?? null;
      const record: RunStartRecord = {
        v: 1,
        type: 'run-start',
        run: start.run,
        seq: 0,
        at: isoNow(),
        prev,
        component: start.component,
        policy: start.policy,
        input: start.input,
        host: start.host,
      };
      const body = serializeRecord(record);
      const hash = sha256Hex(body);
      try {
        this.insertStmt.run(record.run, 0, record.type, hash, body);
      } catch (err) {
        if (isUniqueViolation(err)) throw new LedgerError(`startRun: run ${start.run} already exists in the ledger`);
        throw err;
      }
      // The run is in flight, owned by this process, until its run-end (see ledger/recover.ts).
      this.state.db.prepare('INSERT INTO running (run, pid, started) VALUES (?, ?, ?)').run(start.run, process.pid, record.at);
      const writer = new SqliteRunWriter(this.state, this.insertStmt, start.run, 0, hash, emptyCounts(), false);
      // If an enclosing transaction rolls the run-start back, the writer has nothing to chain to.
      this.state.onRollback(() => writer.invalidate('its run-start record was rolled back'));
      return writer;
    });
  }

  /**
   * A writer that continues an unfinished run from its stored records — e.g. the main thread writing
   * the run-end after the worker running the guest was terminated. Use only once the original writer
   * is gone: two writers on one run collide on (run, seq).
   */
  resumeRun(runId: string): RunWriter {
    const records = this.readRun(runId);
    const last = records[records.length - 1];
    if (last === undefined) throw new LedgerError(`resumeRun: no run ${runId} in the ledger`);
    if (last.record.type === 'run-end') throw new LedgerError(`resumeRun: run ${runId} has already ended`);
    const counts = emptyCounts();
    for (const { record } of records) {
      if (record.type === 'call') {
        counts.calls++;
        counts[DECISION_COUNTER[record.decision]]++;
      }
    }
    return new SqliteRunWriter(this.state, this.insertStmt, runId, last.record.seq, last.hash, counts, false);
  }

  /** A run's records in seq order (empty if unknown). Bodies are parsed, not verified: see `verifyRun`. */
  readRun(runId: string): StoredRecord[] {
    return this.readRunStmt.all(runId).map(({ hash, body }) => ({ hash, body, record: JSON.parse(body) as LedgerRecord }));
  }

  /** The id of the newest run in store order, or undefined for an empty ledger. */
  lastRunId(): string | undefined {
    return this.lastRunStartStmt.get()?.run;
  }

  /** A run id as users give it: an id, or `last` for the most recent run (undefined when there is none). */
  resolveRunId(idOrLast: string): string | undefined {
    return idOrLast === 'last' ? this.lastRunId() : idOrLast;
  }

  /** The newest `limit` runs, newest first. */
  listRuns(limit: number): RunSummary[] {
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new RangeError(`listRuns: limit must be a non-negative integer, got ${String(limit)}`);
    }
    return this.listRunsStmt.all(limit).map((row) => {
      const start = JSON.parse(row.start) as RunStartRecord;
      const end = row.end === null ? undefined : (JSON.parse(row.end) as RunEndRecord);
      return {
        run: start.run,
        startedAt: start.at,
        component: { name: start.component.name, digest: start.component.digest },
        policyDigest: start.policy.digest,
        outcome: end?.outcome ?? 'unfinished',
        calls: end?.counts.calls ?? row.lastSeq,
        durationUs: end?.durationUs ?? null,
        root: row.root,
      };
    });
  }

  /** Every row in store (append) order, streamed; what `verifyStore` walks. */
  rows(): IterableIterator<LedgerRow> {
    return this.rowsStmt.iterate();
  }
}

const DECISIONS: ReadonlySet<string> = new Set(Object.keys(DECISION_COUNTER));

/** Field types of a call record, checked before it is serialized (a malformed record never lands). */
function checkCallInput(input: CallInput): void {
  if (typeof input.call !== 'string') throw new LedgerError('appendCall: call must be a string');
  if (!Array.isArray(input.args)) throw new LedgerError('appendCall: args must be an array');
  if (typeof input.decision !== 'string' || !DECISIONS.has(input.decision)) {
    throw new LedgerError(`appendCall: unknown decision ${JSON.stringify(input.decision)}`);
  }
  if (typeof input.rule !== 'string') throw new LedgerError('appendCall: rule must be a string');
  if (typeof input.outcome !== 'object' || input.outcome === null) throw new LedgerError('appendCall: outcome must be an object');
  if (input.hop !== undefined && !(Number.isSafeInteger(input.hop) && input.hop > 0)) throw new LedgerError('appendCall: hop must be a positive integer');
}

function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE';
}

class SqliteRunWriter implements RunWriter {
  private invalidReason: string | undefined;

  constructor(
    private readonly state: StateDb,
    private readonly insertStmt: Statement<[string, number, string, string, string]>,
    readonly run: string,
    private seqValue: number,
    private headValue: string,
    private countsValue: RunCounts,
    private endedValue: boolean,
  ) {}

  get seq(): number {
    return this.seqValue;
  }
  get head(): string {
    return this.headValue;
  }
  get counts(): Readonly<RunCounts> {
    return { ...this.countsValue };
  }
  get ended(): boolean {
    return this.endedValue;
  }

  invalidate(reason: string): void {
    this.invalidReason = reason;
  }

  /** The next call record of this run: seq and prev follow the head. */
  private callRecord(input: CallInput): CallRecord {
    return {
      v: 1,
      type: 'call',
      run: this.run,
      seq: this.seqValue + 1,
      at: input.at ?? isoNow(),
      prev: this.headValue,
      call: input.call,
      args: input.args,
      decision: input.decision,
      rule: input.rule,
      outcome: input.outcome,
      durationUs: input.durationUs,
      ...(input.hop === undefined ? {} : { hop: input.hop }),
      ...(input.approval === undefined ? {} : { approval: input.approval }),
    };
  }

  appendCall(input: CallInput): string {
    this.checkWritable('appendCall');
    const record = this.callRecord(input);
    checkCallInput(input);
    const hash = this.insert(record);
    // insert() snapshotted the counts for a rollback; mutate in place.
    this.countsValue.calls++;
    this.countsValue[DECISION_COUNTER[record.decision]]++;
    return hash;
  }

  /**
   * Appends many call records at once (a batch from BufferedRunWriter): the same records as that many
   * `appendCall`s, with one rollback snapshot for the batch. Must run inside a transaction. (Multi-row
   * INSERTs of 32 rows measured no faster than this on better-sqlite3 12, so the code stays simple.)
   */
  appendCalls(inputs: readonly CallInput[]): void {
    this.checkWritable('appendCalls');
    if (!this.state.inTransaction) throw new LedgerError('appendCalls: must run inside state.transaction');
    const before = { seq: this.seqValue, head: this.headValue, counts: { ...this.countsValue } };
    this.state.onRollback(() => {
      this.seqValue = before.seq;
      this.headValue = before.head;
      this.countsValue = before.counts;
    });
    for (const input of inputs) {
      checkCallInput(input);
      const record = this.callRecord(input);
      if (!Number.isFinite(record.durationUs) || record.durationUs < 0) throw new LedgerError('call: durationUs must be a finite non-negative number');
      const body = serializeRecord(record);
      const hash = sha256Hex(body);
      this.insertStmt.run(record.run, record.seq, record.type, hash, body);
      this.seqValue = record.seq;
      this.headValue = hash;
      this.countsValue.calls++;
      this.countsValue[DECISION_COUNTER[record.decision]]++;
    }
  }

  end(input: RunEndInput): string {
    this.checkWritable('end');
    const expected = this.countsValue;
    const given = input.counts ?? expected;
    for (const key of Object.keys(expected) as Array<keyof RunCounts>) {
      if (given[key] !== expected[key]) {
        throw new LedgerError(
          `end: counts.${key} is ${String(given[key])} but run ${this.run} has ${expected[key]}; pass writer.counts`,
        );
      }
    }
    const record: RunEndRecord = {
      v: 1,
      type: 'run-end',
      run: this.run,
      seq: this.seqValue + 1,
      at: isoNow(),
      prev: this.headValue,
      outcome: input.outcome,
      blame: input.blame,
      output: input.output,
      reason: input.reason,
      limit: input.limit,
      counts: { ...expected },
      fuel: input.fuel,
      durationUs: input.durationUs,
    };
    // The run-end and the end of "in flight" commit together: a crash leaves either both or neither.
    const hash = this.state.transaction(() => {
      const written = this.insert(record);
      this.state.db.prepare('DELETE FROM running WHERE run = ?').run(this.run);
      return written;
    });
    this.endedValue = true;
    return hash;
  }

  private checkWritable(op: string): void {
    if (this.invalidReason !== undefined) {
      throw new LedgerError(`${op}: run ${this.run} cannot be written: ${this.invalidReason}`);
    }
    if (this.endedValue) throw new LedgerError(`${op}: run ${this.run} has already ended`);
    if (this.state.db.inTransaction && !this.state.inTransaction) {
      // A rollback we cannot see would leave our in-memory head pointing at a record that is gone.
      throw new LedgerError(
        `${op}: run ${this.run} is being written inside a transaction not opened by StateDb.transaction; ` +
          'use state.transaction so the writer can follow a rollback',
      );
    }
  }

  /** Inserts the record; advances the head, and registers the undo if inside a transaction. */
  private insert(record: CallRecord | RunEndRecord): string {
    if (!Number.isFinite(record.durationUs) || record.durationUs < 0) {
      throw new LedgerError(`${record.type}: durationUs must be a finite non-negative number`);
    }
    const body = serializeRecord(record);
    const hash = sha256Hex(body);
    this.insertStmt.run(record.run, record.seq, record.type, hash, body);
    if (this.state.inTransaction) {
      const seq = this.seqValue;
      const head = this.headValue;
      const counts = { ...this.countsValue };
      const ended = this.endedValue;
      this.state.onRollback(() => {
        this.seqValue = seq;
        this.headValue = head;
        this.countsValue = counts;
        this.endedValue = ended;
      });
    }
    this.seqValue = record.seq;
    this.headValue = hash;
    return hash;
  }
}
