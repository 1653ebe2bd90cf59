/**
 * The state database: one SQLite file per state directory (`<stateDir>/ice.db`) holding both the
 * components' kv data and the audit ledger, so that a kv write and the ledger record of the call that
 * made it commit in one transaction.
 *
 * Nothing here is module-level: a worker thread opens its own connection from the state directory
 * alone (`openStateDb(dir)`); WAL mode lets several connections, threads and processes share the file.
 *
 * @example
 * ```ts
 * const state = openStateDb('.ice');
 * const kv = new KvStore(state);
 * state.transaction(() => kv.set('counter', 'count', '1'));
 * state.close();
 * ```
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ensureLedgerKey, type LedgerKey } from './ledger-key.js';
import { WriteLock } from './write-lock.js';

/** The schema version this build writes and understands (`PRAGMA user_version`). */
export const STATE_SCHEMA_VERSION = 5;

/** The database file name inside a state directory. */
export const STATE_DB_FILE = 'ice.db';

export interface StateDbOptions {
  /**
   * `normal` (default): in WAL mode every commit survives a crash or kill of the process the moment
   * it returns (it is in the WAL file); only an OS crash or power loss can lose the newest commits,
   * and `durable(...)` commits (every run-end) fsync the WAL, making themselves and everything before
   * them power-loss safe. `full` fsyncs every commit: 0.1–2.5 ms each on this machine's disk, against
   * about 10 µs, which is why it is not the default for per-call ledger records.
   */
  synchronous?: 'full' | 'normal';
  /** How long a writer waits for another connection's write lock before failing. Default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * Shared with the other threads of this process that write the same file (write-lock.ts): each
   * transaction takes it first, so they hand the file over without SQLite's busy sleeps.
   */
  writeLock?: SharedArrayBuffer;
}

export interface StateDb {
  /** The raw connection. Prefer `transaction` over `db.transaction` so rollback hooks run. */
  readonly db: Database.Database;
  /** Absolute path of the database file. */
  readonly path: string;
  /** Absolute path of the state directory (what a worker needs to open its own connection). */
  readonly dir: string;
  close(): void;
  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE; a SAVEPOINT when nested) and returns its
   * result. If `fn` throws, everything it wrote is rolled back, the hooks registered with
   * `onRollback` during it run (newest first), and the error is rethrown.
   */
  transaction<T>(fn: () => T): T;
  /**
   * Runs `fn` (whose writes autocommit or run in their own transaction) with `synchronous=FULL`, so
   * its commit fsyncs the WAL: it and every earlier commit on the file survive a power loss.
   */
  durable<T>(fn: () => T): T;
  /** The key of the ledger's keyed chain (storage/ledger-key.ts): kept outside the database. */
  readonly ledgerKey: LedgerKey;
  /** True while inside `transaction` on this connection. */
  readonly inTransaction: boolean;
  /**
   * Registers an undo for in-memory state tied to writes made in the current `transaction`; it runs
   * if that transaction (or an enclosing one) rolls back. Outside a transaction writes autocommit, so
   * this is a no-op.
   */
  onRollback(undo: () => void): void;
}

const statementCache = new WeakMap<StateDb, Map<string, Database.Statement>>();

/**
 * A statement prepared once per connection: for code that runs the same SQL many times but lives
 * shorter than the connection (a run's writer, a cluster shipment), where preparing costs more than
 * running it.
 */
export function preparedOnce<P extends unknown[] | object = unknown[], R = unknown>(state: StateDb, sql: string): Database.Statement<P, R> {
  let bySql = statementCache.get(state);
  if (bySql === undefined) statementCache.set(state, (bySql = new Map()));
  let statement = bySql.get(sql);
  if (statement === undefined) bySql.set(sql, (statement = state.db.prepare(sql)));
  return statement as unknown as Database.Statement<P, R>;
}

/** Schema migrations: index i brings a database from version i to i + 1. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE kv (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
  ) WITHOUT ROWID;

  CREATE TABLE ledger (
    id   INTEGER PRIMARY KEY,
    run  TEXT    NOT NULL,
    seq  INTEGER NOT NULL,
    type TEXT    NOT NULL,
    hash TEXT    NOT NULL,
    body TEXT    NOT NULL,
    UNIQUE (run, seq)
  );
  -- The newest run-start (to chain the next one) and run listings, without scanning call records.
  CREATE INDEX ledger_run_start ON ledger (id) WHERE type = 'run-start';
  -- A run's run-end for listings.
  CREATE INDEX ledger_run_end ON ledger (run) WHERE type = 'run-end';

  -- Append-only: a guard against our own bugs. A tamperer can drop these; verification catches that.
  CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
  BEGIN SELECT RAISE(ABORT, 'ledger is append-only: UPDATE refused'); END;
  CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
  BEGIN SELECT RAISE(ABORT, 'ledger is append-only: DELETE refused'); END;
  `,
  // v2: the runs in flight and the process running each (not evidence, so not in the chain): a run
  // whose process is gone when a host opens the state is ended \`incomplete\` (ledger/recover.ts).
  `
  CREATE TABLE running (
    run     TEXT PRIMARY KEY,
    pid     INTEGER NOT NULL,
    started TEXT NOT NULL
  ) STRICT;
  `,
  // v3: each component's kv usage (keys, and UTF-8 bytes of keys plus values), kept by triggers in the
  // transaction of every kv write, so a quota check is one row read, never a scan, and stays exact
  // whoever writes the table (runs, concurrent runs, a rebuild of the view).
  `
  CREATE TABLE kv_usage (
    namespace TEXT PRIMARY KEY,
    keys      INTEGER NOT NULL,
    bytes     INTEGER NOT NULL
  ) STRICT;
  INSERT INTO kv_usage (namespace, keys, bytes)
    SELECT namespace, count(*), sum(octet_length(key) + octet_length(value)) FROM kv GROUP BY namespace;
  CREATE TRIGGER kv_usage_insert AFTER INSERT ON kv
  BEGIN
    INSERT INTO kv_usage (namespace, keys, bytes) VALUES (NEW.namespace, 1, octet_length(NEW.key) + octet_length(NEW.value))
      ON CONFLICT (namespace) DO UPDATE SET keys = keys + 1, bytes = bytes + excluded.bytes;
  END;
  CREATE TRIGGER kv_usage_update AFTER UPDATE ON kv
  BEGIN
    UPDATE kv_usage SET bytes = bytes - octet_length(OLD.key) - octet_length(OLD.value) WHERE namespace = OLD.namespace;
    UPDATE kv_usage SET bytes = bytes + octet_length(NEW.key) + octet_length(NEW.value) WHERE namespace = NEW.namespace;
  END;
  CREATE TRIGGER kv_usage_delete AFTER DELETE ON kv
  BEGIN
    UPDATE kv_usage SET keys = keys - 1, bytes = bytes - octet_length(OLD.key) - octet_length(OLD.value) WHERE namespace = OLD.namespace;
  END;
  -- A run in flight's decision tallies (JSON RunCounts), committed with its records: what its run-end
  -- needs when another writer ends it, without reading (parsing) every record of a run that may be huge.
  ALTER TABLE running ADD COLUMN tally TEXT;
  `,
  // v4: `ice serve`. The registry of served agents (a view: the fold of the ledger's lifecycle records,
  // rebuilt and checked by `ice state`); which agents receive which event kinds (the intersection of
  // their `on.events` and `grants.events.receive`, as written by the server at start); and the
  // deliveries of emitted events to them, inserted in the transaction of the emit's call record, so an
  // event is never emitted without its deliveries nor delivered without having been emitted.
  `
  CREATE TABLE agents (
    name          TEXT PRIMARY KEY,
    state         TEXT NOT NULL,
    component     TEXT NOT NULL,
    digest        TEXT NOT NULL,
    policy_digest TEXT NOT NULL,
    since         TEXT NOT NULL
  ) STRICT;
  CREATE TABLE subscriptions (
    agent   TEXT NOT NULL,
    pattern TEXT NOT NULL,
    receive TEXT NOT NULL
  ) STRICT;
  CREATE TABLE deliveries (
    id        INTEGER PRIMARY KEY,
    event     TEXT NOT NULL,
    agent     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    payload   TEXT NOT NULL,
    source    TEXT NOT NULL,
    status    TEXT NOT NULL DEFAULT 'pending',
    attempts  INTEGER NOT NULL DEFAULT 0,
    run       TEXT,
    UNIQUE (event, agent)
  ) STRICT;
  CREATE INDEX deliveries_pending ON deliveries (agent, id) WHERE status = 'pending';
  CREATE INDEX deliveries_running ON deliveries (run) WHERE status = 'running';
  -- The runs a run caused (\`ice audit trace\`), without scanning every run-start.
  CREATE INDEX ledger_cause ON ledger (body ->> '$.cause.run') WHERE type = 'run-start';
  `,
  // v5: ledger v2 (ledger/records.ts): consecutive call records committed together are one \`batch\`
  // row, hashed once. The version bump makes an ICE that cannot read batches refuse the file instead of
  // misreading it. \`ledger_records\` is the ledger one record per row for SQL readers (an auditor's
  // query, a report): a batch's calls as rows of their own, each body its element of the batch.
  `
  CREATE VIEW ledger_records (id, run, seq, type, body) AS
    SELECT id, run, seq, type, body FROM ledger WHERE type <> 'batch'
    UNION ALL
    SELECT l.id, l.run, j.value ->> '$.seq', 'call', j.value FROM ledger l, json_each(l.body, '$.records') j WHERE l.type = 'batch';
  `,
];

/**
 * Opens (creating if needed) `<stateDir>/ice.db`: WAL journal, `synchronous=NORMAL` (see StateDbOptions), a busy timeout,
 * and the schema migrated to `STATE_SCHEMA_VERSION`. Refuses a database written by a newer ICE.
 */
export function openStateDb(stateDir: string, options: StateDbOptions = {}): StateDb {
  const dir = resolve(stateDir);
  // Owner-only: the ledger is evidence and the component cache holds code the host will execute.
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, STATE_DB_FILE);
  const db = new Database(path);
  let ledgerKey: LedgerKey;
  try {
    // The busy timeout first: switching to WAL and migrating may wait on another connection.
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (String(mode).toLowerCase() !== 'wal') {
      throw new Error(`state database ${path}: could not enable WAL journal mode (got "${String(mode)}")`);
    }
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    // Checkpoints fsync the database; with one small commit per import call the default (1000 pages)
    // checkpoints every few thousand calls. 8000 pages (~32 MB of WAL) cut the per-call cost by a third.
    db.pragma('wal_autocheckpoint = 8000');
    migrate(db, path);
    ledgerKey = ensureLedgerKey(dir, () => db.prepare("SELECT count(*) FROM ledger WHERE type = 'run-start'").pluck().get() as number);
  } catch (err) {
    db.close();
    throw err;
  }
  return createStateDb(db, path, dir, options.synchronous === 'full' ? 'FULL' : 'NORMAL', ledgerKey, options.writeLock ? new WriteLock(options.writeLock) : undefined);
}

function schemaVersion(db: Database.Database): number {
  return Number(db.pragma('user_version', { simple: true }));
}

function migrate(db: Database.Database, path: string): void {
  const check = (version: number): void => {
    if (version > STATE_SCHEMA_VERSION) {
      throw new Error(
        `state database ${path} has schema version ${version}, but this ICE understands up to version ` +
          `${STATE_SCHEMA_VERSION}; open it with a newer ICE`,
      );
    }
  };
  check(schemaVersion(db));
  if (schemaVersion(db) === STATE_SCHEMA_VERSION) return;
  // Re-read the version under the write lock: another process may be migrating the same file.
  db.transaction(() => {
    let version = schemaVersion(db);
    check(version);
    for (; version < STATE_SCHEMA_VERSION; version++) {
      db.exec(MIGRATIONS[version] ?? '');
      db.pragma(`user_version = ${version + 1}`);
    }
  }).immediate();
}

function createStateDb(db: Database.Database, path: string, dir: string, synchronous: 'FULL' | 'NORMAL', ledgerKey: LedgerKey, lock: WriteLock | undefined): StateDb {
  // One frame of undo hooks per open `transaction` level on this connection.
  const frames: Array<Array<() => void>> = [];
  // One wrapper for every transaction: better-sqlite3 builds a wrapper per db.transaction() (~6 µs, as
  // much as the commit of an empty transaction), and a run opens one per batch and state write.
  const run = db.transaction(<T>(fn: () => T): T => fn());
  return {
    db,
    path,
    dir,
    ledgerKey,
    close: () => db.close(),
    get inTransaction() {
      return frames.length > 0;
    },
    durable<T>(fn: () => T): T {
      if (synchronous === 'FULL' || frames.length > 0) return fn(); // inside a transaction the outer commit decides
      db.pragma('synchronous = FULL');
      try {
        return fn();
      } finally {
        db.pragma(`synchronous = ${synchronous}`);
      }
    },
    onRollback(undo) {
      frames[frames.length - 1]?.push(undo);
    },
    transaction<T>(fn: () => T): T {
      const frame: Array<() => void> = [];
      const outermost = frames.length === 0;
      if (outermost) lock?.acquire();
      frames.push(frame);
      let result: T;
      try {
        result = run.immediate(fn) as T;
      } catch (err) {
        frames.pop();
        if (outermost) lock?.release();
        for (let i = frame.length - 1; i >= 0; i--) frame[i]!();
        throw err;
      }
      frames.pop();
      if (outermost) lock?.release();
      // Committed at this level; if nested, an enclosing rollback still undoes it.
      const parent = frames[frames.length - 1];
      if (parent) for (const undo of frame) parent.push(undo);
      return result;
    },
  };
}
