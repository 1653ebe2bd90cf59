/**
 * The ledger key: the secret every record hash of a keyed run is an HMAC with. It lives outside the
 * database, so write access to `ice.db` alone cannot rewrite a record and rehash the chain after it.
 *
 * From `ICE_LEDGER_KEY` (a secret of at least 32 characters, e.g. from a secrets manager) when set;
 * else `<state>/ledger.key`, created with the state dir, owner-only (0600). The file also records how
 * many runs the ledger held when the key was made (`legacyRuns`): those may be unkeyed (written before
 * keys existed); any later unkeyed run is a downgrade that verification refuses.
 */
import { closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export const LEDGER_KEY_FILE = 'ledger.key';
export const LEDGER_KEY_ENV = 'ICE_LEDGER_KEY';
const MIN_ENV_KEY_LENGTH = 32;

export interface LedgerKey {
  readonly key: Buffer;
  /** Where it came from, for messages: the file's path or the variable's name. */
  readonly source: string;
  /** Runs (in store order) that may be unkeyed; undefined: unkeyed runs are allowed only before the first keyed one. */
  readonly legacyRuns?: number;
}

export class LedgerKeyError extends Error {
  override readonly name = 'LedgerKeyError';
}

/** The key of the state in `dir`, if one exists (from the environment or the key file); never creates it. */
export function readLedgerKey(dir: string, env: NodeJS.ProcessEnv = process.env): LedgerKey | undefined {
  const fromEnv = env[LEDGER_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fromEnv.length < MIN_ENV_KEY_LENGTH) {
      throw new LedgerKeyError(`${LEDGER_KEY_ENV} is ${fromEnv.length} characters: use a random secret of at least ${MIN_ENV_KEY_LENGTH} (e.g. openssl rand -hex 32)`);
    }
    return { key: Buffer.from(fromEnv, 'utf8'), source: LEDGER_KEY_ENV };
  }
  const path = join(dir, LEDGER_KEY_FILE);
  let stat;
  try {
    stat = statSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new LedgerKeyError(`cannot read the ledger key ${path}: ${(error as Error).message}`);
  }
  // A key others can read lets them forge records that verify: refuse it, as the secrets file does.
  if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
    throw new LedgerKeyError(`ledger key ${path} can be read or written by other users (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 ${path}`);
  }
  let parsed: { v?: unknown; key?: unknown; legacyRuns?: unknown };
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as typeof parsed;
  } catch {
    throw new LedgerKeyError(`ledger key ${path} is not a key file ICE wrote (not JSON): restore it from a backup; without it keyed runs cannot be verified`);
  }
  if (parsed.v !== 1 || typeof parsed.key !== 'string' || !/^[0-9a-f]{64}$/.test(parsed.key) || !(Number.isSafeInteger(parsed.legacyRuns) && (parsed.legacyRuns as number) >= 0)) {
    throw new LedgerKeyError(`ledger key ${path} is malformed: restore it from a backup; without it keyed runs cannot be verified`);
  }
  return { key: Buffer.from(parsed.key, 'hex'), source: path, legacyRuns: parsed.legacyRuns as number };
}

/**
 * The key of the state in `dir`, created (owner-only, exclusively: two hosts opening a new state at
 * once agree on one key) if there is none. `existingRuns`: runs in the ledger now, all unkeyed.
 */
export function ensureLedgerKey(dir: string, existingRuns: () => number): LedgerKey {
  const found = readLedgerKey(dir);
  if (found) return found;
  const path = join(dir, LEDGER_KEY_FILE);
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readLedgerKey(dir)!;
    throw new LedgerKeyError(`cannot create the ledger key ${path}: ${(error as Error).message}`);
  }
  try {
    writeSync(fd, `${JSON.stringify({ v: 1, key: randomBytes(32).toString('hex'), legacyRuns: existingRuns() })}\n`);
  } finally {
    closeSync(fd);
  }
  return readLedgerKey(dir)!;
}
