/**
 * A worker's journal of queued call records, in memory it shares with the host thread. The worker's
 * ledger writer commits records in batches; a worker terminated at its deadline would take its queued
 * records with it — the evidence of the calls the guest made just before, denied ones included. So
 * each queued record is also written here (seq + JSON), and after a kill the host thread commits the
 * ones the database does not have yet, before the run-end.
 *
 * Layout (Int32 view): [0] bytes used after the header, [1] entries. Entries: u32 seq, u32 length,
 * then the UTF-8 JSON of the queued record (a call, or an intent's result), padded to 4 bytes.
 */
import type { QueuedInput } from '../ledger/index.js';

const HEADER_BYTES = 8;
export const JOURNAL_BYTES = 1 << 20;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Journal {
  private readonly header: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.header = new Int32Array(buffer, 0, 2);
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
  }

  /** Appends a record; false when it does not fit (the writer then flushes, which clears the journal). */
  write(seq: number, record: QueuedInput): boolean {
    const used = this.header[0]!;
    const at = HEADER_BYTES + used;
    const room = this.bytes.length - at - 8;
    if (room <= 0) return false;
    const { read, written } = encoder.encodeInto(JSON.stringify(record), this.bytes.subarray(at + 8, at + 8 + room));
    if (read === undefined || written === undefined || written >= room) return false;
    this.view.setUint32(at, seq, true);
    this.view.setUint32(at + 4, written, true);
    // The count is published last: a reader never sees a half-written entry.
    Atomics.store(this.header, 0, used + 8 + ((written + 3) & ~3));
    Atomics.add(this.header, 1, 1);
    return true;
  }

  /** After a flush committed every queued record. */
  clear(): void {
    Atomics.store(this.header, 1, 0);
    Atomics.store(this.header, 0, 0);
  }

  /** The journaled records (by the host thread, once the worker is gone). */
  read(): { seq: number; record: QueuedInput }[] {
    const out: { seq: number; record: QueuedInput }[] = [];
    let at = HEADER_BYTES;
    for (let i = 0, n = Atomics.load(this.header, 1); i < n; i++) {
      const seq = this.view.getUint32(at, true);
      const length = this.view.getUint32(at + 4, true);
      out.push({ seq, record: JSON.parse(decoder.decode(this.bytes.slice(at + 8, at + 8 + length))) as QueuedInput });
      at += 8 + ((length + 3) & ~3);
    }
    return out;
  }
}
