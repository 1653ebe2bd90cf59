/**
 * A run's records, committed in batches: the hot path of an import call only queues its record;
 * serializing, hashing (the chain) and the INSERTs happen at a flush, in one transaction.
 *
 * When a flush happens:
 *   - before any call that writes state (the kernel calls `flush()` first), so a kv write commits in
 *     its own transaction with its record and after every record before it;
 *   - every `maxPending` records;
 *   - at the run-end, in the same transaction as the run-end record — so when a run reports its
 *     result, every record of it is committed (and, the run-end being durable, fsynced).
 * An intent is queued like any record, but `appendIntent` returns only once it is durable: written to
 * the run's intent log (intent-log.ts) with every queued record before it, or — without a log — committed.
 * What a batch costs: a process killed mid-run loses the queued records of that run that are in no log
 * (at most `maxPending`, and never an intent or a state write's record); the run is then ended
 * `incomplete` on the next open with what was committed and logged. `onQueued` lets a supervisor keep a
 * copy of the queue (see sandbox/journal.ts).
 */
import type { StateDb } from '../storage/db.js';
import { recordBytesBound } from './budget.js';
import type { IntentLog } from './intent-log.js';
import { DECISION_COUNTER, isoNow, queuedType, type CallInput, type IntentInput, type QueuedInput, type ResultInput, type RunCounts, type RunEndInput } from './records.js';
import { LedgerError, type RunWriter } from './store.js';

export const DEFAULT_MAX_PENDING = 256;

export interface BufferedWriterOptions {
  readonly maxPending?: number;
  /** Called with each record as it is queued, and its seq (a copy for a supervisor to keep); false asks for a flush. */
  readonly onQueued?: (input: QueuedInput, seq: number) => boolean;
  /** Called after each flush committed. */
  readonly onFlushed?: () => void;
  /** Where intents are made durable before their effect; without one, an intent is committed at once. */
  readonly intentLog?: Pick<IntentLog, 'write' | 'clear'>;
}

export class BufferedRunWriter {
  private queue: QueuedInput[] = [];
  /** How many of the queued records are in the intent log. */
  private logged = 0;
  private readonly tally: RunCounts;
  /** Intents without a result yet (committed or queued). */
  private readonly open = new Set<number>();
  private readonly maxPending: number;
  /** An upper bound of the bytes of the queued records (see budget.ts); exact once they are committed. */
  private queuedBytes = 0;

  constructor(
    private readonly inner: RunWriter,
    private readonly state: StateDb,
    private readonly options: BufferedWriterOptions = {},
  ) {
    this.tally = { ...inner.counts };
    for (const seq of inner.openIntents) this.open.add(seq);
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
  }

  get run(): string {
    return this.inner.run;
  }

  /** Seq of the last record appended (queued or committed). */
  get seq(): number {
    return this.inner.seq + this.queue.length;
  }

  /**
   * An upper bound of the bytes of this run's records (committed, exact, plus a bound of the queued
   * ones); exact after `flush()`.
   */
  get bytesBound(): number {
    return this.inner.bytes + this.queuedBytes;
  }

  /** The exact bytes `input` would take as the next record; commits the queue first (a record's seq and prev depend on it). */
  measure(input: QueuedInput): number {
    this.flush();
    return this.inner.measure(input);
  }

  get counts(): Readonly<RunCounts> {
    return this.open.size > 0 ? { ...this.tally, unknown: this.open.size } : { ...this.tally };
  }

  /** `bound`: `recordBytesBound(run, input)` if the caller has it (the kernel computed it for the budget check). */
  appendCall(input: CallInput, bound?: number): void {
    // The record keeps the time of the call, not of its flush (the kernel sets it; a copy only when it did not).
    this.append(input.at === undefined ? { ...input, at: isoNow() } : input, bound);
    this.tally.calls++;
    this.tally[DECISION_COUNTER[input.decision]]++;
  }

  /** Queues the result of an intent of this run. */
  appendResult(input: ResultInput, bound?: number): void {
    this.append(input.at === undefined ? { ...input, at: isoNow() } : input, bound);
    this.tally[DECISION_COUNTER[input.decision]]++;
    this.open.delete(input.intent);
  }

  /**
   * Appends an intent and returns its seq once it is durable (in the intent log with every record
   * queued before it, or committed): the effect it announces may start only then.
   */
  appendIntent(input: IntentInput): number {
    const intent = input.at === undefined ? { ...input, at: isoNow() } : input;
    this.append(intent);
    const seq = this.seq;
    const log = this.options.intentLog;
    // Recovery finds a run's intent log through its run-start (its `running` row): write it first.
    if (log) this.inner.ensureStarted?.();
    if (this.queue.length > 0 && log) {
      log.write(this.queue.slice(this.logged).map((record, i) => ({ seq: this.inner.seq + this.logged + i + 1, record })));
      this.logged = this.queue.length;
    } else this.flush();
    this.tally.calls++;
    this.open.add(seq);
    return seq;
  }

  flush(): void {
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.state.transaction(() => this.inner.appendQueued(batch));
    this.committed();
  }

  /** The queued records, not yet committed. */
  pending(): readonly QueuedInput[] {
    return this.queue;
  }

  /** Flushes and writes the run-end in one transaction; returns the ledger root. */
  end(end: RunEndInput): string {
    const root = this.state.transaction(() => {
      if (this.queue.length > 0) this.inner.appendQueued(this.queue);
      return this.inner.end(end);
    });
    this.committed();
    return root;
  }

  private append(input: QueuedInput, bound?: number): void {
    if (this.state.inTransaction) {
      // Inside a state write's transaction: the record commits with the write, after the flushed queue.
      if (this.queue.length > 0) throw new LedgerError(`append${capitalized(queuedType(input))}: flush() before opening a transaction`);
      this.inner.appendQueued([input]);
      return;
    }
    this.queue.push(input);
    this.queuedBytes += bound ?? recordBytesBound(this.inner.run, input);
    const kept = this.options.onQueued?.(input, this.seq) ?? true;
    if (!kept || this.queue.length >= this.maxPending) this.flush();
  }

  private committed(): void {
    this.queue = [];
    this.queuedBytes = 0;
    this.logged = 0;
    this.options.intentLog?.clear();
    this.options.onFlushed?.();
  }
}

function capitalized(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}
