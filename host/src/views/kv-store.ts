/**
 * The components' persistent key-value memory, one namespace per component name, stored in the state
 * database next to the ledger (so a write and its ledger record can share one transaction).
 *
 * The store enforces no policy: the kv capability decides what a component may touch, through the
 * kernel, before it calls here.
 *
 * @example
 * ```ts
 * const kv = new KvStore(openStateDb('.ice'));
 * kv.set('counter', 'count', '41');
 * kv.get('counter', 'count');        // '41'
 * kv.keys('counter', 'co', 100);     // ['count']
 * ```
 */
import type { Statement } from 'better-sqlite3';
import type { StateDb } from '../storage/db.js';

/** A component's kv usage: its keys, and the UTF-8 bytes of its keys plus values. */
export interface KvUsage {
  readonly keys: number;
  readonly bytes: number;
}

export class KvStore {
  private readonly getStmt: Statement<[string, string], { value: string }>;
  private readonly setStmt: Statement<[string, string, string]>;
  private readonly deleteStmt: Statement<[string, string]>;
  private readonly keysInRangeStmt: Statement<[string, string, string, number], { key: string }>;
  private readonly keysFromStmt: Statement<[string, string, number], { key: string }>;
  private readonly usageStmt: Statement<[string], KvUsage>;
  private readonly entryBytesStmt: Statement<[string, string], { bytes: number }>;

  constructor(state: StateDb) {
    const { db } = state;
    this.getStmt = db.prepare('SELECT value FROM kv WHERE namespace = ? AND key = ?');
    this.setStmt = db.prepare(
      'INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?) ' +
        'ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value',
    );
    this.deleteStmt = db.prepare('DELETE FROM kv WHERE namespace = ? AND key = ?');
    this.keysInRangeStmt = db.prepare(
      'SELECT key FROM kv WHERE namespace = ? AND key >= ? AND key < ? ORDER BY key LIMIT ?',
    );
    this.keysFromStmt = db.prepare('SELECT key FROM kv WHERE namespace = ? AND key >= ? ORDER BY key LIMIT ?');
    this.usageStmt = db.prepare('SELECT keys, bytes FROM kv_usage WHERE namespace = ?');
    this.entryBytesStmt = db.prepare('SELECT octet_length(key) + octet_length(value) AS bytes FROM kv WHERE namespace = ? AND key = ?');
  }

  /**
   * What `namespace` holds: its keys, and the UTF-8 bytes of its keys plus values. A running total the
   * database's triggers keep in the transaction of every write (storage/db.ts), so it is one row read;
   * read it inside the write's transaction for a check that no concurrent writer can race.
   */
  usage(namespace: string): KvUsage {
    return this.usageStmt.get(namespace) ?? { keys: 0, bytes: 0 };
  }

  /** The UTF-8 bytes of `key` plus its value, or undefined when the key is not set. */
  entryBytes(namespace: string, key: string): number | undefined {
    return this.entryBytesStmt.get(namespace, key)?.bytes;
  }

  /**
   * The keys of `namespace` that start with `prefix` and pass `keep`, in key order, stopping once
   * `limit` of them passed: the rows are streamed, so keys `keep` rejects cost a comparison, never a
   * place in the answer nor in its cap.
   */
  keysWhere(namespace: string, prefix: string, limit: number, keep: (key: string) => boolean): string[] {
    const upper = prefixUpperBound(prefix);
    const rows =
      upper === undefined
        ? this.keysFromStmt.iterate(namespace, prefix, -1)
        : this.keysInRangeStmt.iterate(namespace, prefix, upper, -1);
    const kept: string[] = [];
    for (const { key } of rows) {
      if (!keep(key)) continue;
      kept.push(key);
      if (kept.length >= limit) break;
    }
    return kept;
  }

  /** The value under `key` in `namespace`, or undefined. */
  get(namespace: string, key: string): string | undefined {
    return this.getStmt.get(namespace, key)?.value;
  }

  /** Stores `value` under `key`, replacing any previous value. */
  set(namespace: string, key: string, value: string): void {
    this.setStmt.run(namespace, key, value);
  }

  /** Removes `key`; true if it existed. */
  delete(namespace: string, key: string): boolean {
    return this.deleteStmt.run(namespace, key).changes > 0;
  }

  /**
   * Up to `limit` keys of `namespace` that start with `prefix` (compared literally: `%`, `_`, `*` are
   * ordinary characters), sorted by Unicode code point (SQLite's binary UTF-8 order; this differs from
   * JavaScript's default UTF-16 sort only between astral characters and U+E000–U+FFFF).
   */
  keys(namespace: string, prefix: string, limit: number): string[] {
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new RangeError(`kv keys: limit must be a non-negative integer, got ${String(limit)}`);
    }
    const upper = prefixUpperBound(prefix);
    const rows =
      upper === undefined
        ? this.keysFromStmt.all(namespace, prefix, limit)
        : this.keysInRangeStmt.all(namespace, prefix, upper, limit);
    return rows.map((row) => row.key);
  }
}

/**
 * The smallest string greater than every string that starts with `prefix`, in code point order (which
 * is SQLite's binary order on UTF-8): the prefix with its last code point incremented, skipping the
 * surrogate range and dropping trailing U+10FFFF. Undefined when there is none (empty prefix, or all
 * U+10FFFF), meaning "no upper bound".
 *
 * A `prefix + '\uffff'` bound would be wrong: astral characters encode above U+FFFF in UTF-8.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  let end = prefix.length;
  while (end > 0) {
    // The last code point of prefix[0, end): a surrogate pair or a single code unit.
    const low = prefix.charCodeAt(end - 1);
    const high = end >= 2 ? prefix.charCodeAt(end - 2) : 0;
    const paired = low >= 0xdc00 && low <= 0xdfff && high >= 0xd800 && high <= 0xdbff;
    const start = paired ? end - 2 : end - 1;
    let last = paired ? prefix.codePointAt(start)! : low;
    // A lone surrogate reaches SQLite as U+FFFD (better-sqlite3 encodes strings as UTF-8).
    if (!paired && last >= 0xd800 && last <= 0xdfff) last = 0xfffd;
    if (last < 0x10ffff) {
      return prefix.slice(0, start) + String.fromCodePoint(last + 1 === 0xd800 ? 0xe000 : last + 1);
    }
    end = start;
  }
  return undefined;
}
