/**
 * Group commit for run-ends written by worker threads. A run's end must be on disk (fsynced) before
 * its result is given to the caller; when every worker fsyncs its own run-end commit, the commits
 * queue behind each other's fsync while holding the write lock (about 0.6 ms each on this machine),
 * which capped a pool of workers near one worker's rate. Instead the workers commit without a sync,
 * and the host thread syncs the WAL file — one fdatasync, off the event loop, covering every commit
 * made before it started — and releases the results it covers together.
 *
 * Syncing the WAL file is what SQLite's own `synchronous=FULL` commit does in WAL mode, and the sync
 * of a file covers writes made through any descriptor of it (other connections, other threads).
 */
import { closeSync, fdatasync, openSync } from 'node:fs';

export class WalSync {
  private fd: number | undefined;
  /** Waiting for the next sync (their commits happened before it starts). */
  private waiting: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  private syncing = false;

  constructor(private readonly walPath: string) {}

  /** Resolves once every commit to the file made before this call is on disk. */
  barrier(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.syncing) this.sync();
    });
  }

  private sync(): void {
    const batch = this.waiting;
    this.waiting = [];
    this.syncing = true;
    let fd: number;
    try {
      // The WAL exists once anything was committed, which the callers' commits were.
      fd = this.fd ??= openSync(this.walPath, 'r');
    } catch (error) {
      this.syncing = false;
      for (const w of batch) w.reject(error as Error);
      return;
    }
    fdatasync(fd, (error) => {
      for (const w of batch) if (error) w.reject(error);
      else w.resolve();
      this.syncing = false;
      // Commits that arrived during this sync need one of their own.
      if (this.waiting.length > 0) this.sync();
    });
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
