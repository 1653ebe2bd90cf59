/**
 * A run's call records, committed in batches: the hot path of an import call only queues its record;
 * serializing, hashing (the chain) and the INSERTs happen at a flush, in one transaction.
 *
 * When a flush happens:
 *   - before any call that writes state (the mediator calls `flush()` first), so a kv write commits in
 *     its own transaction with its record and after every record before it;
 *   - every `maxPending` records;
 *   - at the run-end, in the same transaction as the run-end record — so when a run reports its
 *     result, every record of it is committed (and, the run-end being durable, fsynced).
 * What a batch costs: a process killed mid-run loses the queued records of that run (at most
 * `maxPending`, and never a state write's); the run is then ended `incomplete` on the next open with
 * what was committed. `pending()` lets a supervisor take over the queue (see sandbox/pool.ts).
 */
import type { StateDb } from '../state/db.js';
import { DECISION_COUNTER, isoNow, type CallInput, type RunCounts, type RunEndInput } from './records.js';
import { LedgerError, type RunWriter } from './store.js';

export const DEFAULT_MAX_PENDING = 256;

export class BufferedRunWriter {
  private queue: CallInput[] = [];
  private readonly tally: RunCounts;

  constructor(
    private readonly inner: RunWriter,
    private readonly state: StateDb,
    private readonly maxPending = DEFAULT_MAX_PENDING,
    /** Called with each record as it is queued, and its seq (a copy for a supervisor to keep); false asks for a flush. */
    private readonly onQueued?: (call: CallInput, seq: number) => boolean,
    /** Called after each flush committed. */
    private readonly onFlushed?: () => void,
  ) {
    this.tally = { ...inner.counts };
  }

  get run(): string {
    return this.inner.run;
  }

  /** Seq of the last record appended (queued or committed). */
  get seq(): number {
    return this.inner.seq + this.queue.length;
  }

  get counts(): Readonly<RunCounts> {
    return { ...this.tally };
  }

  appendCall(input: CallInput): void {
    // The record keeps the time of the call, not of its flush.
    const call = input.at === undefined ? { ...input, at: isoNow() } : input;
    if (this.state.inTransaction) {
      // Inside a state write's transaction: the record commits with the write, after the flushed queue.
      if (this.queue.length > 0) throw new LedgerError('appendCall: flush() before opening a transaction');
      this.inner.appendCall(call);
    } else {
      this.queue.push(call);
      const kept = this.onQueued?.(call, this.seq) ?? true;
      if (!kept || this.queue.length >= this.maxPending) this.flush();
    }
    this.tally.calls++;
    this.tally[DECISION_COUNTER[call.decision]]++;
  }

  flush(): void {
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.state.transaction(() => this.inner.appendCalls(batch));
    this.queue = [];
    this.onFlushed?.();
  }

  /** The queued records, not yet committed. */
  pending(): readonly CallInput[] {
    return this.queue;
  }

  /** Flushes and writes the run-end in one transaction; returns the ledger root. */
  end(end: RunEndInput): string {
    return this.state.transaction(() => {
      if (this.queue.length > 0) this.inner.appendCalls(this.queue);
      this.queue = [];
      return this.inner.end(end);
    });
  }
}
