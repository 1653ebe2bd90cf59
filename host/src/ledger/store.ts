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
import { preparedOnce, type StateDb } from '../storage/db.js';
import {
  DECISION_COUNTER,
  BATCH_TYPE,
  emptyCounts,
  expandBatch,
  queuedType,
  storedRecords,
  serializeBatch,
  serializeBatchedCall,
  isoNow,
  KEYED_CHAIN,
  recordHasher,
  serializeRecord,
  type CallInput,
  type CallRecord,
  type IntentInput,
  type IntentRecord,
  type LedgerRecord,
  type QueuedInput,
  type ResultInput,
  type ResultRecord,
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
  /** Seqs of the intents written without a result yet. */
  readonly openIntents: ReadonlySet<number>;
  /** UTF-8 bytes of the record bodies of this run in the ledger (its run-start included): what limits.maxLedgerBytes bounds. */
  readonly bytes: number;
  /** The exact bytes `input` would take as the next record of this run (serialized as it would be, not written). */
  measure(input: QueuedInput): number;
  /** Appends a call record (seq = previous + 1); returns its hash. Committed on return unless in a transaction. */
  appendCall(call: CallInput): string;
  /** Appends an intent record; returns its seq. Committed on return unless in a transaction. */
  appendIntent(intent: IntentInput): number;
  /** Appends the result of an open intent of this run; returns its hash. */
  appendResult(result: ResultInput): string;
  /**
   * Makes sure the run-start is written (committed unless in a transaction): a writer from `deferRun`
   * writes it late; before an intent goes to the run's intent log the run must be known to recovery.
   */
  ensureStarted?(): void;
  /** Appends queued call, intent and result records, inside a transaction (see SqliteRunWriter.appendQueued). */
  appendQueued(inputs: readonly QueuedInput[]): void;
  /**
   * Appends the run-end record; returns its hash, the run's ledger root. The counts written are the
   * writer's own tally; `end.counts`, if given, must equal it (else LedgerError, nothing written). Open
   * intents become the run-end's `unknown`: their effect may or may not have happened.
   */
  end(end: RunEndInput): string;
}

/** One run in a listing, newest first. */
export interface RunSummary {
  run: string;
  startedAt: string;
  component: { name: string; digest: string };
  policyDigest: string;
  /** What the run called: `run`, a typed export's name (`geometry.area`), or `wasi:cli/run` for a command. */
  invoked: string;
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
  private readonly readRunStmt: Statement<[string], { type: string; hash: string; body: string }>;
  private readonly hasRunStmt: Statement<[string], { found: number }>;
  private readonly lastRecordStmt: Statement<[string], { seq: number; hash: string; type: string }>;
  private readonly runTalliesStmt: Statement<[{ run: string }], { type: string; decision: string | null; n: number }>;
  private readonly openIntentsStmt: Statement<[{ run: string }], { seq: number }>;
  private readonly runningTallyStmt: Statement<[string], { tally: string | null }>;
  private readonly runBytesStmt: Statement<[string], { bytes: number | null; calls: number }>;
  private readonly rowsStmt: Statement<[], LedgerRow>;
  private readonly insertRunningStmt: Statement<[string, number, string]>;
  private readonly listRunsStmt: Statement<
    [number],
    { start: string; end: string | null; root: string | null; callsSoFar: number | null }
  >;

  /** The hash of a record of a keyed run (every run this store starts is keyed). */
  private readonly keyed: (body: string) => string;
  private readonly batching: boolean;

  /**
   * `format`: 2 (the default) stores consecutive call records as batch rows; 1 writes a row per record,
   * as ICE before ledger v2 did (kept to write, and test, ledgers of that format).
   */
  constructor(
    readonly state: StateDb,
    options: { readonly format?: 1 | 2 } = {},
  ) {
    this.batching = (options.format ?? 2) === 2;
    const { db } = state;
    this.keyed = recordHasher(state.ledgerKey.key);
    this.insertStmt = db.prepare('INSERT INTO ledger (run, seq, type, hash, body) VALUES (?, ?, ?, ?, ?)');
    this.lastRunStartStmt = db.prepare(
      "SELECT run, hash FROM ledger WHERE type = 'run-start' ORDER BY id DESC LIMIT 1",
    );
    this.readRunStmt = db.prepare('SELECT type, hash, body FROM ledger WHERE run = ? ORDER BY seq');
    this.rowsStmt = db.prepare('SELECT id, run, seq, type, hash, body FROM ledger ORDER BY id');
    this.insertRunningStmt = db.prepare('INSERT INTO running (run, pid, started) VALUES (?, ?, ?)');
    this.hasRunStmt = db.prepare('SELECT 1 AS found FROM ledger WHERE run = ? LIMIT 1');
    this.lastRecordStmt = db.prepare('SELECT seq, hash, type FROM ledger WHERE run = ? ORDER BY seq DESC LIMIT 1');
    // What a writer resuming a run needs, computed by SQLite (C, row by row) rather than by reading every
    // record into the host's memory: a stopped run can hold gigabytes.
    this.runTalliesStmt = db.prepare(
      `SELECT type, CASE WHEN type IN ('call', 'result') THEN body ->> '$.decision' END AS decision, count(*) AS n
         FROM ledger WHERE run = @run AND type <> 'batch' GROUP BY 1, 2
       UNION ALL
       SELECT 'call', j.value ->> '$.decision', count(*) FROM ledger l, json_each(l.body, '$.records') j
        WHERE l.run = @run AND l.type = 'batch' AND json_valid(l.body) GROUP BY 1, 2`,
    );
    this.runningTallyStmt = db.prepare('SELECT tally FROM running WHERE run = ?');
    // octet_length reads a row's header, not its text: cheap whatever the run's size. A batch's calls
    // are counted from its seqs; a body that is not JSON (tampered) is left to verify, not an error here.
    this.runBytesStmt = db.prepare(
      `SELECT sum(octet_length(body)) AS bytes,
              count(*) FILTER (WHERE type IN ('call', 'intent')) + coalesce(sum(seq - (body ->> '$.first') + 1) FILTER (WHERE type = 'batch' AND json_valid(body)), 0) AS calls
         FROM ledger WHERE run = ?`,
    );
    this.openIntentsStmt = db.prepare(
      `SELECT seq FROM ledger WHERE run = @run AND type = 'intent'
       EXCEPT SELECT body ->> '$.intent' FROM ledger WHERE run = @run AND type = 'result'
       ORDER BY 1`,
    );
    this.listRunsStmt = db.prepare(
      `SELECT s.body AS start, e.body AS end, e.hash AS root,
              CASE WHEN e.body IS NULL THEN
                (SELECT count(*) FILTER (WHERE m.type IN ('call', 'intent')) + coalesce(sum(m.seq - (m.body ->> '$.first') + 1) FILTER (WHERE m.type = 'batch' AND json_valid(m.body)), 0)
                   FROM ledger m WHERE m.run = s.run) END AS callsSoFar
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
        at: start.at ?? isoNow(),
        prev,
        component: start.component,
        policy: start.policy,
        input: start.input,
        ...(start.invoke ? { invoke: start.invoke } : {}),
        ...(start.cause ? { cause: start.cause } : {}),
        host: start.host,
        chain: KEYED_CHAIN,
      };
      const body = serializeRecord(record);
      const hash = this.keyed(body);
      try {
        this.insertStmt.run(record.run, 0, record.type, hash, body);
      } catch (err) {
        if (isUniqueViolation(err)) throw new LedgerError(`startRun: run ${start.run} already exists in the ledger`);
        throw err;
      }
      // The run is in flight, owned by this process, until its run-end (see ledger/recover.ts).
      this.insertRunningStmt.run(start.run, process.pid, record.at);
      const writer = new SqliteRunWriter(this.state, this.insertStmt, this.keyed, start.run, 0, hash, emptyCounts(), false, new Set(), Buffer.byteLength(body, 'utf8'), this.batching);
      writer.saveTally();
      // If an enclosing transaction rolls the run-start back, the writer has nothing to chain to.
      this.state.onRollback(() => writer.invalidate('its run-start record was rolled back'));
      return writer;
    });
  }

  /**
   * A writer whose run-start is written with the run's first records — at its first flush, in that
   * flush's transaction, or with the run-end — instead of in a transaction of its own. A run whose
   * calls stay inside it (no state write, no host effect, fewer records than a batch) then commits
   * once: run-start, calls and run-end together, one commit instead of two. Until then the run is in
   * no table: a process killed before it leaves no trace of a run that had no lasting effect, as with
   * the queued records of buffered-writer.ts. The run-start keeps the time the run started.
   */
  deferRun(start: RunStartInput): RunWriter {
    const input = { ...start, at: start.at ?? isoNow() };
    // An upper bound of the run-start's bytes (prev at its longest), for the run's ledger budget.
    const bound = Buffer.byteLength(serializeRecord({ v: 1, type: 'run-start', seq: 0, prev: '0'.repeat(64), ...input, chain: KEYED_CHAIN } as RunStartRecord), 'utf8');
    return new DeferredRunWriter(this.state, () => this.startRun(input), input.run, bound);
  }

  /**
   * A writer that continues an unfinished run from its stored records — e.g. the main thread writing
   * the run-end after the worker running the guest was terminated. Use only once the original writer
   * is gone: two writers on one run collide on (run, seq).
   */
  resumeRun(runId: string): RunWriter {
    const last = this.lastRecordStmt.get(runId);
    if (last === undefined) throw new LedgerError(`resumeRun: no run ${runId} in the ledger`);
    if (last.type === 'run-end') throw new LedgerError(`resumeRun: run ${runId} has already ended`);
    // A stopped run is never read whole (it may hold gigabytes): its writer kept its tallies in its
    // `running` row, committed with its records; bytes, calls and open intents come from the rows'
    // headers and the (few) intent and result records.
    const { bytes, calls } = this.runBytesStmt.get(runId) ?? { bytes: 0, calls: 0 };
    const saved = this.runningTallyStmt.get(runId)?.tally;
    const counts = saved ? ({ ...emptyCounts(), ...(JSON.parse(saved) as Partial<RunCounts>) } as RunCounts) : this.aggregateCounts(runId);
    // The tally must agree with the records; if it does not (written by an older ICE, or edited), count.
    const tallied = counts.calls === calls ? counts : this.aggregateCounts(runId);
    const open = new Set(this.openIntentsStmt.all({ run: runId }).map((row) => row.seq));
    // A run continues with its own chain's hash: an unkeyed run (written before keys) stays unkeyed.
    const startBody = this.state.db.prepare('SELECT body FROM ledger WHERE run = ? AND seq = 0').pluck().get(runId) as string | undefined;
    const start = startBody === undefined ? undefined : (JSON.parse(startBody) as { type?: string; chain?: string });
    const hasher = start?.type === 'run-start' && start.chain === KEYED_CHAIN ? this.keyed : recordHasher(undefined);
    return new SqliteRunWriter(this.state, this.insertStmt, hasher, runId, last.seq, last.hash, tallied, false, open, bytes ?? 0, this.batching);
  }

  /** The tallies `tally` keeps record by record, as SQL aggregates (parses every call and result, in SQLite). */
  private aggregateCounts(runId: string): RunCounts {
    const counts = emptyCounts();
    for (const row of this.runTalliesStmt.all({ run: runId })) {
      if (row.type === 'call' || row.type === 'intent') counts.calls += row.n;
      if ((row.type === 'call' || row.type === 'result') && row.decision !== null && DECISIONS.has(row.decision)) {
        counts[DECISION_COUNTER[row.decision as keyof typeof DECISION_COUNTER]] += row.n;
      }
    }
    return counts;
  }

  /** Whether the ledger holds any record of `runId` (one index lookup). */
  hasRun(runId: string): boolean {
    return this.hasRunStmt.get(runId) !== undefined;
  }

  /**
   * A run's records in seq order (empty if unknown), the calls of a batch row one by one (each with
   * `batch`). Bodies are parsed, not verified: see `verifyRun`.
   */
  readRun(runId: string): StoredRecord[] {
    return this.readRunStmt.all(runId).flatMap(({ type, hash, body }) => storedRecords(type, hash, body));
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
        invoked: invokedName(start),
        outcome: end?.outcome ?? 'unfinished',
        calls: end?.counts.calls ?? row.callsSoFar ?? 0,
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

/**
 * A row as a reader streaming the ledger sees it: itself, or one row per call of a batch row (same id,
 * each body a whole call record, `v: 2`), in seq order.
 */
export function expandRow(row: LedgerRow): LedgerRow[] {
  if (row.type !== BATCH_TYPE) return [row];
  const expanded = expandBatch(row.hash, row.body);
  if (expanded === undefined || expanded.length === 0) return [row];
  return expanded.map(({ record }) => ({ id: row.id, run: row.run, seq: record.seq, type: record.type, hash: row.hash, body: JSON.stringify(record) }));
}

/** What a run called, in one word: `run`, the function's name, `wasi:cli/run`, or what a host record stands for. */
export function invokedName(start: Pick<RunStartRecord, 'invoke'>): string {
  const invoke = start.invoke;
  if (invoke === undefined) return 'run';
  switch (invoke.kind) {
    case 'call':
      return invoke.function;
    case 'command':
      return 'wasi:cli/run';
    case 'operator':
      return `operator: ${invoke.action}`;
    case 'lifecycle':
      return `lifecycle: ${invoke.agent} ${invoke.from ?? 'new'} → ${invoke.to}`;
    case 'refused':
      return `refused: ${invoke.trigger} for ${invoke.agent}`;
  }
}

/** Whether a run-start stands for something the host did (an operator's write, a lifecycle transition, a refusal), not a run of a component. */
export function isHostRecord(start: Pick<RunStartRecord, 'invoke'>): boolean {
  const kind = start.invoke?.kind;
  return kind === 'operator' || kind === 'lifecycle' || kind === 'refused';
}

const DECISIONS: ReadonlySet<string> = new Set(Object.keys(DECISION_COUNTER));
const INTENT_DECISIONS: ReadonlySet<string> = new Set(['allow', 'ask']);

/**
 * Counts a record into a run's tallies, as the writer and the verifier both do: a call record or an
 * intent is a call; a call record or a result counts its decision; an intent stays open until its result.
 */
export function tally(counts: RunCounts, open: Set<number>, record: LedgerRecord): void {
  switch (record.type) {
    case 'call':
      counts.calls++;
      counts[DECISION_COUNTER[record.decision]]++;
      break;
    case 'intent':
      counts.calls++;
      open.add(record.seq);
      break;
    case 'result':
      counts[DECISION_COUNTER[record.decision]]++;
      open.delete(record.intent);
      break;
  }
}

/** Field types of a call, intent or result record, checked before it is serialized (a malformed record never lands). */
function checkInput(op: string, input: { call: unknown; decision: unknown; rule: unknown }, decisions: ReadonlySet<string>): void {
  if (typeof input.call !== 'string') throw new LedgerError(`${op}: call must be a string`);
  if (typeof input.decision !== 'string' || !decisions.has(input.decision)) {
    throw new LedgerError(`${op}: unknown decision ${JSON.stringify(input.decision)}`);
  }
  if (typeof input.rule !== 'string') throw new LedgerError(`${op}: rule must be a string`);
}

function checkCallInput(input: CallInput): void {
  checkInput('appendCall', input, DECISIONS);
  if (!Array.isArray(input.args)) throw new LedgerError('appendCall: args must be an array');
  if (typeof input.outcome !== 'object' || input.outcome === null) throw new LedgerError('appendCall: outcome must be an object');
  if (input.hop !== undefined && !(Number.isSafeInteger(input.hop) && input.hop > 0)) throw new LedgerError('appendCall: hop must be a positive integer');
}

function checkIntentInput(input: IntentInput): void {
  checkInput('appendIntent', input, INTENT_DECISIONS);
  if (!Array.isArray(input.args)) throw new LedgerError('appendIntent: args must be an array');
}

function checkDuration(type: string, durationUs: unknown): void {
  if (typeof durationUs !== 'number' || !Number.isFinite(durationUs) || durationUs < 0) {
    throw new LedgerError(`${type}: durationUs must be a finite non-negative number`);
  }
}

function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/** A RunWriter that writes its run-start only when it first writes anything (LedgerStore.deferRun). */
class DeferredRunWriter implements RunWriter {
  private real: RunWriter | undefined;
  private static readonly none: ReadonlySet<number> = new Set();

  constructor(
    private readonly state: StateDb,
    private readonly open: () => RunWriter,
    readonly run: string,
    private readonly startBytes: number,
  ) {}

  /** The real writer, its run-start written (in the caller's transaction, if any). */
  private started(): RunWriter {
    if (this.real === undefined) {
      this.real = this.open();
      // Rolled back with an enclosing transaction: the next write starts the run again.
      this.state.onRollback(() => (this.real = undefined));
    }
    return this.real;
  }

  get seq(): number {
    return this.real?.seq ?? 0;
  }
  get head(): string {
    return this.real?.head ?? '';
  }
  get counts(): Readonly<RunCounts> {
    return this.real?.counts ?? emptyCounts();
  }
  get ended(): boolean {
    return this.real?.ended ?? false;
  }
  get openIntents(): ReadonlySet<number> {
    return this.real?.openIntents ?? DeferredRunWriter.none;
  }
  get bytes(): number {
    return this.real?.bytes ?? this.startBytes;
  }
  measure(input: QueuedInput): number {
    return this.started().measure(input);
  }
  ensureStarted(): void {
    this.started();
  }
  appendCall(call: CallInput): string {
    return this.started().appendCall(call);
  }
  appendIntent(intent: IntentInput): number {
    return this.started().appendIntent(intent);
  }
  appendResult(result: ResultInput): string {
    return this.started().appendResult(result);
  }
  appendQueued(inputs: readonly QueuedInput[]): void {
    this.started().appendQueued(inputs);
  }
  end(end: RunEndInput): string {
    return this.started().end(end);
  }
}

class SqliteRunWriter implements RunWriter {
  private invalidReason: string | undefined;
  private saveTallyStmt: Statement<[string, string]> | undefined;

  constructor(
    private readonly state: StateDb,
    private readonly insertStmt: Statement<[string, number, string, string, string]>,
    private readonly hashBody: (body: string) => string,
    readonly run: string,
    private seqValue: number,
    private headValue: string,
    private countsValue: RunCounts,
    private endedValue: boolean,
    private openValue: Set<number> = new Set(),
    private bytesValue = 0,
    /** Whether consecutive queued calls become batch rows (format 2) or a row each (format 1). */
    private readonly batching = true,
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
  get openIntents(): ReadonlySet<number> {
    return this.openValue;
  }
  get bytes(): number {
    return this.bytesValue;
  }

  measure(input: QueuedInput): number {
    const type = queuedType(input);
    const record =
      type === 'result'
        ? this.resultRecord(input as ResultInput)
        : type === 'intent'
          ? this.intentRecord(input as IntentInput)
          : this.callRecord(input as CallInput);
    return Buffer.byteLength(serializeRecord(record), 'utf8');
  }

  invalidate(reason: string): void {
    this.invalidReason = reason;
  }

  /** Saves the decision tallies in the run's `running` row (in the caller's transaction): what resumeRun reads. */
  saveTally(): void {
    this.saveTallyStmt ??= preparedOnce(this.state, 'UPDATE running SET tally = ? WHERE run = ?');
    this.saveTallyStmt.run(JSON.stringify(this.countsValue), this.run);
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

  private resultRecord(input: ResultInput): ResultRecord {
    checkInput('appendResult', input, DECISIONS);
    if (!this.openValue.has(input.intent)) {
      throw new LedgerError(`appendResult: seq ${String(input.intent)} is not an open intent of run ${this.run}`);
    }
    if (typeof input.outcome !== 'object' || input.outcome === null) throw new LedgerError('appendResult: outcome must be an object');
    checkDuration('result', input.durationUs);
    return {
      v: 1,
      type: 'result',
      run: this.run,
      seq: this.seqValue + 1,
      at: input.at ?? isoNow(),
      prev: this.headValue,
      call: input.call,
      intent: input.intent,
      decision: input.decision,
      rule: input.rule,
      outcome: input.outcome,
      durationUs: input.durationUs,
      ...(input.approval === undefined ? {} : { approval: input.approval }),
    };
  }

  appendCall(input: CallInput): string {
    this.checkWritable('appendCall');
    const record = this.callRecord(input);
    checkCallInput(input);
    return this.insert(record);
  }

  appendIntent(input: IntentInput): number {
    this.checkWritable('appendIntent');
    const record = this.intentRecord(input);
    this.insert(record);
    return record.seq;
  }

  private intentRecord(input: IntentInput): IntentRecord {
    checkIntentInput(input);
    return {
      v: 1,
      type: 'intent',
      run: this.run,
      seq: this.seqValue + 1,
      at: input.at ?? isoNow(),
      prev: this.headValue,
      call: input.call,
      args: input.args,
      decision: input.decision,
      rule: input.rule,
    };
  }

  appendResult(input: ResultInput): string {
    this.checkWritable('appendResult');
    return this.insert(this.resultRecord(input));
  }

  /**
   * Appends queued records at once (a batch from BufferedRunWriter: calls, intents, results), with one
   * rollback snapshot for the batch. Must run inside a transaction. Consecutive call records become one
   * version-2 batch row (records.ts), hashed once; intents, results and a lone call stay one row each.
   * (Multi-row INSERTs of single records measured no faster on better-sqlite3 12; one row per batch is.)
   */
  appendQueued(inputs: readonly QueuedInput[]): void {
    this.checkWritable('appendQueued');
    if (!this.state.inTransaction) throw new LedgerError('appendQueued: must run inside state.transaction');
    this.snapshotForRollback();
    let calls: CallInput[] = [];
    for (const input of inputs) {
      const type = queuedType(input);
      if (type === 'call' && this.batching) {
        calls.push(input as CallInput);
        continue;
      }
      if (calls.length > 0) {
        this.writeCalls(calls);
        calls = [];
      }
      let record: CallRecord | IntentRecord | ResultRecord;
      if (type === 'result') record = this.resultRecord(input as ResultInput);
      else if (type === 'intent') record = this.intentRecord(input as IntentInput);
      else {
        checkCallInput(input as CallInput);
        checkDuration('call', (input as CallInput).durationUs);
        record = this.callRecord(input as CallInput);
      }
      this.writeRow(record, serializeRecord(record));
    }
    if (calls.length > 0) this.writeCalls(calls);
    this.saveTally();
  }

  /** Consecutive calls: one batch row, or a version-1 row for a lone call. */
  private writeCalls(calls: readonly CallInput[]): void {
    if (calls.length === 1) {
      const input = calls[0]!;
      checkCallInput(input);
      checkDuration('call', input.durationUs);
      const record = this.callRecord(input);
      this.writeRow(record, serializeRecord(record));
      return;
    }
    const first = this.seqValue + 1;
    const elements: string[] = new Array(calls.length);
    for (let i = 0; i < calls.length; i++) {
      const input = calls[i]!;
      checkCallInput(input);
      checkDuration('call', input.durationUs);
      elements[i] = serializeBatchedCall(first + i, input, input.at ?? isoNow());
    }
    const last = first + calls.length - 1;
    const body = serializeBatch(this.run, first, last, this.headValue, elements);
    const hash = this.hashBody(body);
    this.insertStmt.run(this.run, last, BATCH_TYPE, hash, body);
    this.seqValue = last;
    this.headValue = hash;
    this.bytesValue += Buffer.byteLength(body, 'utf8');
    const counts = this.countsValue;
    for (const input of calls) {
      counts.calls++;
      counts[DECISION_COUNTER[input.decision]]++;
    }
  }

  /** One version-1 row; advances the head and the tallies (the caller snapshots for a rollback). */
  private writeRow(record: CallRecord | IntentRecord | ResultRecord, body: string): void {
    const hash = this.hashBody(body);
    this.insertStmt.run(record.run, record.seq, record.type, hash, body);
    this.seqValue = record.seq;
    this.headValue = hash;
    this.bytesValue += Buffer.byteLength(body, 'utf8');
    tally(this.countsValue, this.openValue, record);
  }

  end(input: RunEndInput): string {
    this.checkWritable('end');
    const expected: RunCounts = { ...this.countsValue, ...(this.openValue.size > 0 ? { unknown: this.openValue.size } : {}) };
    const given = input.counts ?? expected;
    for (const key of Object.keys(expected) as Array<keyof RunCounts>) {
      if (given[key] !== expected[key]) {
        throw new LedgerError(
          `end: counts.${key} is ${String(given[key])} but run ${this.run} has ${String(expected[key])}; pass writer.counts`,
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
      counts: expected,
      fuel: input.fuel,
      durationUs: input.durationUs,
      ...(this.openValue.size > 0 ? { unknown: [...this.openValue].sort((a, b) => a - b) } : {}),
      ...(input.recovered === undefined ? {} : { recovered: input.recovered }),
    };
    // The run-end and the end of "in flight" commit together: a crash leaves either both or neither.
    const hash = this.state.transaction(() => {
      const written = this.insert(record);
      preparedOnce(this.state, 'DELETE FROM running WHERE run = ?').run(this.run);
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

  /** Registers an undo of the head, tallies and open intents, if inside a transaction. */
  private snapshotForRollback(): void {
    if (!this.state.inTransaction) return;
    const seq = this.seqValue;
    const head = this.headValue;
    const counts = { ...this.countsValue };
    const open = new Set(this.openValue);
    const ended = this.endedValue;
    const bytes = this.bytesValue;
    this.state.onRollback(() => {
      this.bytesValue = bytes;
      this.seqValue = seq;
      this.headValue = head;
      this.countsValue = counts;
      this.openValue = open;
      this.endedValue = ended;
    });
  }

  /** Inserts one record; advances the head and the tallies, and registers the undo if inside a transaction. */
  private insert(record: CallRecord | IntentRecord | ResultRecord | RunEndRecord): string {
    if (record.type !== 'intent') checkDuration(record.type, record.durationUs);
    // Outside a transaction the record and its tally commit together in one of their own.
    if (!this.state.inTransaction && record.type !== 'run-end') return this.state.transaction(() => this.insert(record));
    const body = serializeRecord(record);
    const hash = this.hashBody(body);
    this.insertStmt.run(record.run, record.seq, record.type, hash, body);
    this.snapshotForRollback();
    this.seqValue = record.seq;
    this.headValue = hash;
    this.bytesValue += Buffer.byteLength(body, 'utf8');
    tally(this.countsValue, this.openValue, record);
    if (record.type !== 'run-end') this.saveTally();
    return hash;
  }
}
