/**
 * A run's records, committed in batches: the hot path of an import call only queues its record;
 * serializing, hashing (the chain) and the INSERTs happen at a flush, in one transaction.
 *
 * When a flush happens:
 *   - before any call that writes state (the kernel calls `flush()` first), so a kv write commits in
 *     its own transaction with its record and after every record before it;
 *   - with every intent: an intent is committed, with everything queued before it, before the effect
 *     it announces starts (`appendIntent` returns only then);
 *   - every `maxPending` records;
 *   - at the run-end, in the same transaction as the run-end record — so when a run reports its
 *     result, every record of it is committed (and, the run-end being durable, fsynced).
 * What a batch costs: a process killed mid-run loses the queued records of that run (at most
 * `maxPending`, and never a state write's or an intent); the run is then ended `incomplete` on the
 * next open with what was committed. `onQueued` lets a supervisor keep a copy of the queue (see
 * sandbox/journal.ts).
 */
import type { StateDb } from '../storage/db.js';
import { DECISION_COUNTER, isResultInput, isoNow, type CallInput, type IntentInput, type QueuedInput, type ResultInput, type RunCounts, type RunEndInput } from './records.js';
import { LedgerError, type RunWriter } from './store.js';

export const DEFAULT_MAX_PENDING = 256;

export class BufferedRunWriter {
  private queue: QueuedInput[] = [];
  private readonly tally: RunCounts;
  /** Intents without a result yet (committed or queued). */
  private readonly open = new Set<number>();

  constructor(
    private readonly inner: RunWriter,
    private readonly state: StateDb,
    private readonly maxPending = DEFAULT_MAX_PENDING,
    /** Called with each record as it is queued, and its seq (a copy for a supervisor to keep); false asks for a flush. */
    private readonly onQueued?: (input: QueuedInput, seq: number) => boolean,
    /** Called after each flush committed. */
    private readonly onFlushed?: () => void,
  ) {
    this.tally = { ...inner.counts };
    for (const seq of inner.openIntents) this.open.add(seq);
  }

  get run(): string {
    return this.inner.run;
  }

  /** Seq of the last record appended (queued or committed). */
  get seq(): number {
    return this.inner.seq + this.queue.length;
  }

  get counts(): Readonly<RunCounts> {
    return this.open.size > 0 ? { ...this.tally, unknown: this.open.size } : { ...this.tally };
  }

  appendCall(input: CallInput): void {
    // The record keeps the time of the call, not of its flush (the kernel sets it; a copy only when it did not).
    this.append(input.at === undefined ? { ...input, at: isoNow() } : input);
    this.tally.calls++;
    this.tally[DECISION_COUNTER[input.decision]]++;
  }

  /** Queues the result of an intent this writer committed. */
  appendResult(input: ResultInput): void {
    this.append(input.at === undefined ? { ...input, at: isoNow() } : input);
    this.tally[DECISION_COUNTER[input.decision]]++;
    this.open.delete(input.intent);
  }

  /**
   * Commits an intent, and everything queued before it, before returning its seq: the effect it
   * announces may start only once the ledger shows it.
   */
  appendIntent(input: IntentInput): number {
    const at = input.at ?? isoNow();
    const seq = this.state.inTransaction
      ? this.inTransaction('appendIntent', () => this.inner.appendIntent({ ...input, at }))
      : this.state.transaction(() => {
          if (this.queue.length > 0) this.inner.appendQueued(this.queue);
          return this.inner.appendIntent({ ...input, at });
        });
    if (!this.state.inTransaction) this.committed();
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
    return this.state.transaction(() => {
      if (this.queue.length > 0) this.inner.appendQueued(this.queue);
      this.queue = [];
      return this.inner.end(end);
    });
  }

  private append(input: QueuedInput): void {
    if (this.state.inTransaction) {
      // Inside a state write's transaction: the record commits with the write, after the flushed queue.
      this.inTransaction(isResultInput(input) ? 'appendResult' : 'appendCall', () => this.inner.appendQueued([input]));
      return;
    }
    this.queue.push(input);
    const kept = this.onQueued?.(input, this.seq) ?? true;
    if (!kept || this.queue.length >= this.maxPending) this.flush();
  }

  private inTransaction<T>(op: string, write: () => T): T {
    if (this.queue.length > 0) throw new LedgerError(`${op}: flush() before opening a transaction`);
    return write();
  }

  private committed(): void {
    this.queue = [];
    this.onFlushed?.();
  }
}
