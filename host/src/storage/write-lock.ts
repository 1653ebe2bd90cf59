/**
 * One writer at a time among the threads of a process that share a state database (the host thread
 * and its run workers), handed over without sleeping.
 *
 * Every connection to the file takes SQLite's write lock for a transaction; when another connection
 * holds it, SQLite's busy handler *sleeps* (1 ms, then 2, 5, 10 …) and retries. With two workers
 * committing every run, that sleep made two workers slower than one (802 against 890 hello runs/s
 * on this machine). This lock, a word in shared memory, is taken before SQLite's and given back after
 * the commit; a waiter is woken the moment it is free (Atomics.notify). Other processes on the same
 * file still meet only SQLite's own lock and busy timeout.
 *
 * The word holds the holder's id (its threadId + 1). A worker terminated while holding it (a run
 * stopped at its deadline in the middle of a state write) cannot give it back: its pool does
 * (`releaseIfHeldBy`) once the worker is gone, before anyone writes the stopped run's end.
 */
import { threadId } from 'node:worker_threads';

/** The lock's shared memory: one Int32. */
export function newWriteLockBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(4);
}

/** How long a waiter sleeps before it looks again (a notify wakes it at once; this bounds a missed one). */
const WAIT_SLICE_MS = 20;
/** Longer than any transaction: past it, the holder is stuck and waiting on would hang the thread. */
const GIVE_UP_MS = 30_000;

export class WriteLock {
  private readonly word: Int32Array;
  private readonly id = threadId + 1;

  constructor(buffer: SharedArrayBuffer) {
    this.word = new Int32Array(buffer, 0, 1);
  }

  acquire(): void {
    let waitingSince: number | undefined;
    for (let spins = 0; ; spins++) {
      const holder = Atomics.compareExchange(this.word, 0, 0, this.id);
      if (holder === 0) return;
      if (holder === this.id) throw new Error('write lock: already held by this thread (a transaction opened inside another on a second connection)');
      // A few spins first: a commit is ~10-100 µs, shorter than a wait and wake.
      if (spins < 64) continue;
      waitingSince ??= Date.now();
      if (Date.now() - waitingSince > GIVE_UP_MS) throw new Error(`state database write lock: thread ${holder - 1} has held it for over ${GIVE_UP_MS / 1000} s`);
      Atomics.wait(this.word, 0, holder, WAIT_SLICE_MS);
    }
  }

  release(): void {
    if (Atomics.compareExchange(this.word, 0, this.id, 0) === this.id) Atomics.notify(this.word, 0, 1);
  }
}

/** Frees the lock if the thread `workerThreadId` (now gone) held it. */
export function releaseIfHeldBy(buffer: SharedArrayBuffer, workerThreadId: number): void {
  const word = new Int32Array(buffer, 0, 1);
  if (Atomics.compareExchange(word, 0, workerThreadId + 1, 0) === workerThreadId + 1) Atomics.notify(word, 0, 1);
}
