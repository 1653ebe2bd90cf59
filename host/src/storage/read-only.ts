/**
 * A read-only connection to a state database, for readers that must not change the state they watch
 * (`ice audit tail` polling a state dir another process writes): no migration, no ledger key made, no
 * write lock taken. WAL lets it read while a writer commits; each statement sees the newest commit.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { STATE_DB_FILE } from './db.js';

/** Opens `<stateDir>/ice.db` read-only; undefined when there is no such file. */
export function openStateDbReadOnly(stateDir: string): Database.Database | undefined {
  const path = join(resolve(stateDir), STATE_DB_FILE);
  if (!existsSync(path)) return undefined;
  const db = new Database(path, { readonly: true, fileMustExist: true });
  // A reader waits for a checkpoint or recovery in progress rather than failing at once.
  db.pragma('busy_timeout = 5000');
  return db;
}
