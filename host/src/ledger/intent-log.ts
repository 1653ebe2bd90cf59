/**
 * A run's intent log: where an intent is made durable before its effect starts, without a database
 * commit on the effect's path. A run's records are queued and committed to the ledger in batches; when
 * an intent is queued, it and every record queued before it that is not yet in the log are appended to
 * `<state>/intents/<run>.jsonl` in one write (a few µs, against 50–100 µs for a SQLite commit in a busy
 * worker). Like a WAL commit with synchronous=NORMAL, a write that returned survives a kill of the
 * process; neither survives a power loss until the next fsync (every run-end's).
 *
 * The log is emptied once its records are committed to the ledger, and removed with the run-end. A run
 * whose process died is ended by the next host to open the state (recover.ts), which first appends to
 * the ledger every logged record the ledger does not have — so an intent whose effect may have
 * happened is never lost, and its run-end lists it as a call whose outcome is unknown.
 */
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '../core/digest.js';
import type { QueuedInput } from './records.js';
import type { RunWriter } from './store.js';

export interface IntentLogEntry {
  readonly seq: number;
  readonly record: QueuedInput;
}

const DIR = 'intents';
const SAFE_RUN_ID = /^[0-9A-Za-z_-]{1,64}$/u;

/** The log file of a run (a run id that is not a plain name is hashed, so it cannot leave the directory). */
export function intentLogPath(stateDir: string, runId: string): string {
  return join(stateDir, DIR, `${SAFE_RUN_ID.test(runId) ? runId : sha256Hex(runId)}.jsonl`);
}

export class IntentLog {
  private fd: number | undefined;
  private dirty = false;

  constructor(readonly path: string) {}

  static forRun(stateDir: string, runId: string): IntentLog {
    return new IntentLog(intentLogPath(stateDir, runId));
  }

  /** Appends entries in one write; when it returns they survive a kill of the process. */
  write(entries: readonly IntentLogEntry[]): void {
    if (entries.length === 0) return;
    if (this.fd === undefined) {
      // Owner-only, like the state directory: the log holds call arguments.
      mkdirSync(join(this.path, '..'), { recursive: true, mode: 0o700 });
      this.fd = openSync(this.path, 'a', 0o600);
    }
    writeSync(this.fd, entries.map((entry) => `${JSON.stringify(entry)}\n`).join(''));
    this.dirty = true;
  }

  /** After what the log holds is committed to the ledger. */
  clear(): void {
    if (!this.dirty || this.fd === undefined) return;
    ftruncateSync(this.fd, 0);
    this.dirty = false;
  }

  /** After the run-end is committed. */
  remove(): void {
    // Most runs never write one (no host effect): no file to remove, and no syscall to find that out.
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    rmSync(this.path, { force: true });
  }
}

/**
 * The entries a run's log holds, in order. A last line cut short by a kill in the middle of a write is
 * left out: its intent's effect had not started (the write returns before the effect does).
 */
export function readIntentLog(stateDir: string, runId: string): IntentLogEntry[] {
  let text: string;
  try {
    text = readFileSync(intentLogPath(stateDir, runId), 'utf8');
  } catch {
    return [];
  }
  const entries: IntentLogEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      entries.push(JSON.parse(line) as IntentLogEntry);
    } catch {
      break;
    }
  }
  return entries;
}

export function removeIntentLog(stateDir: string, runId: string): void {
  rmSync(intentLogPath(stateDir, runId), { force: true });
}

/** The runs that have a log in the state directory (by file name). */
export function intentLogFiles(stateDir: string): string[] {
  try {
    return readdirSync(join(stateDir, DIR)).filter((name) => name.endsWith('.jsonl'));
  } catch {
    return [];
  }
}

/**
 * Appends the records a stopped run left outside the ledger (its journal in memory, its intent log on
 * disk: the same records, or one a part of the other), those after its last committed seq, in seq order.
 * A kill between a commit and the clearing of a journal leaves records in both: only what the database
 * does not have is appended.
 */
export function appendLogged(writer: RunWriter, entries: readonly IntentLogEntry[]): void {
  const bySeq = new Map<number, IntentLogEntry['record']>();
  for (const { seq, record } of entries) if (seq > writer.seq && !bySeq.has(seq)) bySeq.set(seq, record);
  const missing: IntentLogEntry['record'][] = [];
  // Contiguous from the head: a record after a gap could not be chained.
  for (let seq = writer.seq + 1; bySeq.has(seq); seq++) missing.push(bySeq.get(seq)!);
  if (missing.length > 0) writer.appendQueued(missing);
}
