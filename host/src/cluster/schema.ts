/**
 * The shared PostgreSQL schema of a cluster of `ice serve` hosts (`--db postgres://…`), migrated under
 * an advisory lock so hosts starting together migrate once.
 *
 * What is evidence and what is work, as in the SQLite state (storage/db.ts):
 * - `ice_ledger`: every host's ledger rows, byte for byte as hashed (one row per record, or a v2 batch),
 *   unique on (run, seq) so a retried shipment is recorded exactly once. Append-only (a trigger).
 * - `ice_runs`: the chain of run-starts, one per agent: row n links run-start n to the link of row n - 1
 *   (keyed HMAC, cluster/chain.ts), written only by the host holding the agent's lease.
 * - `ice_checkpoints`: signed snapshots of every agent chain's head, so a run removed from the end of a
 *   chain is still detected. Append-only.
 * - Work and views, not evidence: leases, hosts, runs in flight with their intents, kv, the agent
 *   registry, deliveries (the run queue).
 */
import type { Pool, PoolClient } from 'pg';

/** The schema version this build writes and understands. */
export const CLUSTER_SCHEMA_VERSION = 1;

/** A fixed advisory-lock key for migrations ("ICE" schema). */
const MIGRATION_LOCK = 0x1ce_5c4e;

const MIGRATIONS: readonly string[] = [
  `
  CREATE FUNCTION ice_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$;

  CREATE TABLE ice_ledger (
    id    bigserial PRIMARY KEY,
    run   text    NOT NULL,
    seq   integer NOT NULL,
    type  text    NOT NULL,
    hash  text    NOT NULL,
    body  text    NOT NULL,
    agent text    NOT NULL,
    host  text    NOT NULL,
    UNIQUE (run, seq)
  );
  CREATE TRIGGER ice_ledger_append_only BEFORE UPDATE OR DELETE ON ice_ledger FOR EACH ROW EXECUTE FUNCTION ice_append_only();

  CREATE TABLE ice_runs (
    agent      text   NOT NULL,
    n          bigint NOT NULL,
    run        text   NOT NULL UNIQUE,
    start_hash text   NOT NULL,
    link       text   NOT NULL,
    PRIMARY KEY (agent, n)
  );
  CREATE TRIGGER ice_runs_append_only BEFORE UPDATE OR DELETE ON ice_runs FOR EACH ROW EXECUTE FUNCTION ice_append_only();

  CREATE TABLE ice_checkpoints (
    id        bigserial PRIMARY KEY,
    at        text NOT NULL,
    host      text NOT NULL,
    heads     text NOT NULL,
    signature text NOT NULL
  );
  CREATE TRIGGER ice_checkpoints_append_only BEFORE UPDATE OR DELETE ON ice_checkpoints FOR EACH ROW EXECUTE FUNCTION ice_append_only();

  CREATE TABLE ice_hosts (
    id      text PRIMARY KEY,
    pid     integer NOT NULL,
    started timestamptz NOT NULL DEFAULT now(),
    seen    timestamptz NOT NULL DEFAULT now()
  );

  -- token: the fencing token, incremented by every acquisition; a write names the token it holds.
  CREATE TABLE ice_leases (
    agent   text PRIMARY KEY,
    holder  text,
    token   bigint NOT NULL DEFAULT 0,
    expires timestamptz
  );

  CREATE TABLE ice_running (
    run     text PRIMARY KEY,
    agent   text   NOT NULL,
    host    text   NOT NULL,
    token   bigint NOT NULL,
    started timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX ice_running_agent ON ice_running (agent);

  -- A run's intents (and the records queued before them), durable before their effects start.
  CREATE TABLE ice_intents (
    run   text    NOT NULL,
    seq   integer NOT NULL,
    entry text    NOT NULL,
    PRIMARY KEY (run, seq)
  );

  CREATE TABLE ice_kv (
    namespace text NOT NULL,
    key       text NOT NULL,
    value     text NOT NULL,
    PRIMARY KEY (namespace, key)
  );

  CREATE TABLE ice_agents (
    name          text PRIMARY KEY,
    state         text NOT NULL,
    component     text NOT NULL,
    digest        text NOT NULL,
    policy_digest text NOT NULL,
    since         text NOT NULL
  );

  CREATE TABLE ice_deliveries (
    id       bigserial PRIMARY KEY,
    event    text    NOT NULL,
    agent    text    NOT NULL,
    kind     text    NOT NULL,
    payload  text    NOT NULL,
    source   text    NOT NULL,
    status   text    NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    run      text,
    host     text,
    UNIQUE (event, agent)
  );
  CREATE INDEX ice_deliveries_pending ON ice_deliveries (agent, id) WHERE status = 'pending';
  CREATE INDEX ice_deliveries_running ON ice_deliveries (agent) WHERE status = 'running';
  `,
];

export class ClusterSchemaError extends Error {
  override readonly name = 'ClusterSchemaError';
}

/** Brings the database to `CLUSTER_SCHEMA_VERSION`; refuses one written by a newer ICE. */
export async function migrateCluster(pool: Pool, where: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS ice_schema (version integer NOT NULL)');
    let version = await schemaVersion(client);
    if (version > CLUSTER_SCHEMA_VERSION) {
      throw new ClusterSchemaError(`the cluster database ${where} has ICE schema version ${version}, but this ICE understands up to ${CLUSTER_SCHEMA_VERSION}: run a newer ICE`);
    }
    for (; version < CLUSTER_SCHEMA_VERSION; version++) await client.query(MIGRATIONS[version]!);
    await client.query('DELETE FROM ice_schema');
    await client.query('INSERT INTO ice_schema (version) VALUES ($1)', [version]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

async function schemaVersion(client: PoolClient): Promise<number> {
  const { rows } = await client.query<{ version: number }>('SELECT version FROM ice_schema');
  return rows[0]?.version ?? 0;
}
