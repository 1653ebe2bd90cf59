/**
 * A PostgreSQL for the cluster tests: the server `.ci/run` started (ICE_TEST_POSTGRES, a URL), or, when
 * that is unset, a throwaway one this test run starts with scripts/postgres.sh (Debian's postgresql
 * package must be installed: the tests fail, never skip, without it). Each caller gets a database of
 * its own, so test files do not share state.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { ROOT } from './paths.js';
import { join } from 'node:path';
import { tempDir } from './helpers.js';

let started: { url: string; stop: () => void } | undefined;

function serverUrl(): string {
  const given = process.env['ICE_TEST_POSTGRES'];
  if (given) return given;
  if (started) return started.url;
  const dir = tempDir('ice-pg-');
  // As root the server runs as the postgres user, which must reach its data directory inside this one.
  chmodSync(dir, 0o755);
  // A port of its own per test file (files run in parallel): from the pid, in a range nothing else uses here.
  const env = { ...process.env, ICE_PG_DIR: join(dir, 'data'), ICE_PG_PORT: String(55000 + (process.pid % 4000)) };
  let url: string;
  try {
    url = execFileSync('bash', [join(ROOT, 'scripts', 'postgres.sh'), 'start'], { env, encoding: 'utf8' }).trim();
  } catch (error) {
    throw new Error(`the cluster tests need PostgreSQL: set ICE_TEST_POSTGRES to a server's URL, or install Debian's postgresql (apt-get install postgresql) so scripts/postgres.sh can start one: ${String(error)}`);
  }
  started = {
    url,
    stop: () => {
      execFileSync('bash', [join(ROOT, 'scripts', 'postgres.sh'), 'stop'], { env });
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return url;
}

/** A fresh, empty database; returns its URL. */
export async function freshDatabase(): Promise<string> {
  const url = serverUrl();
  const name = `ice_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

/** Stops the server this process started, if any (afterAll). */
export function stopPostgres(): void {
  started?.stop();
  started = undefined;
}

/** One query on its own connection. */
export async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}
