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

  -- The fence of every write for an agent: the caller still holds its lease with this token (and
  -- extends it). IC001: lost.
  CREATE FUNCTION ice_fence(p_host text, p_agent text, p_token bigint, p_ttl_ms integer) RETURNS void LANGUAGE plpgsql AS $$
  #variable_conflict use_column
  BEGIN
    UPDATE ice_leases SET expires = now() + p_ttl_ms * interval '1 millisecond' WHERE agent = p_agent AND holder = p_host AND token = p_token;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'IC001', MESSAGE = format('host %s no longer holds the lease of agent %s (token %s): another host took it over', p_host, p_agent, p_token);
    END IF;
  END $$;

  -- A shipment in one round trip (cluster/store.ts says what each part is). Run-start chain rows come
  -- with their n and link computed by the caller from the head it holds; a run already chained (a
  -- retried shipment) is skipped. Returns the chain's head. IC002: a row is there with another hash.
  CREATE FUNCTION ice_ship(
    p_host text, p_agent text, p_token bigint, p_ttl_ms integer,
    r_run text[], r_seq integer[], r_type text[], r_hash text[], r_body text[],
    c_run text[], c_n bigint[], c_hash text[], c_link text[],
    e_run text[], e_incomplete boolean[], e_delivery bigint[],
    k_namespace text[], k_key text[], k_value text[],
    d_event text[], d_agent text[], d_kind text[], d_payload text[], d_source text[],
    i_run text[], i_seq integer[], i_entry text[],
    p_done bigint[], p_registry jsonb
  ) RETURNS TABLE (n bigint, link text) LANGUAGE plpgsql AS $$
  #variable_conflict use_column
  DECLARE
    clash record;
  BEGIN
    PERFORM ice_fence(p_host, p_agent, p_token, p_ttl_ms);
    INSERT INTO ice_ledger (run, seq, type, hash, body, agent, host)
      SELECT r.run, r.seq, r.type, r.hash, r.body, p_agent, p_host FROM unnest(r_run, r_seq, r_type, r_hash, r_body) WITH ORDINALITY r(run, seq, type, hash, body, o) ORDER BY r.o
      ON CONFLICT ON CONSTRAINT ice_ledger_run_seq_key DO NOTHING;
    -- One index probe per row (the LIMIT keeps the planner from hashing the whole ledger for a join).
    SELECT r.run, r.seq INTO clash FROM unnest(r_run, r_seq, r_hash) r(run, seq, hash)
      CROSS JOIN LATERAL (SELECT l.hash FROM ice_ledger l WHERE l.run = r.run AND l.seq = r.seq LIMIT 1) l WHERE l.hash <> r.hash LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'IC002', MESSAGE = format('run %s seq %s is already in the shared ledger with another hash: another host wrote this run (it ended it after this host lost the lease)', clash.run, clash.seq);
    END IF;
    INSERT INTO ice_runs (agent, n, run, start_hash, link)
      SELECT p_agent, c.n, c.run, c.hash, c.link FROM unnest(c_run, c_n, c_hash, c_link) c(run, n, hash, link) ORDER BY c.n
      ON CONFLICT (run) DO NOTHING;
    INSERT INTO ice_running (run, agent, host, token)
      SELECT c.run, p_agent, p_host, p_token FROM unnest(c_run) c(run) WHERE c.run <> ALL(e_run) ON CONFLICT (run) DO NOTHING;
    INSERT INTO ice_intents (run, seq, entry) SELECT * FROM unnest(i_run, i_seq, i_entry) ON CONFLICT (run, seq) DO NOTHING;
    IF cardinality(e_run) > 0 THEN
      DELETE FROM ice_running WHERE run = ANY(e_run);
      DELETE FROM ice_intents WHERE run = ANY(e_run);
      IF true = ANY(e_incomplete) THEN
        UPDATE ice_deliveries d SET status = 'pending', host = NULL
          WHERE d.id = ANY(SELECT e.delivery FROM unnest(e_run, e_incomplete, e_delivery) e(run, incomplete, delivery) WHERE e.incomplete AND e.delivery IS NOT NULL)
            AND d.run = ANY(e_run) AND d.status = 'running';
      END IF;
      DELETE FROM ice_deliveries d
        WHERE d.id = ANY(SELECT e.delivery FROM unnest(e_run, e_incomplete, e_delivery) e(run, incomplete, delivery) WHERE NOT e.incomplete AND e.delivery IS NOT NULL)
          AND d.run = ANY(e_run);
    END IF;
    IF cardinality(p_done) > 0 THEN DELETE FROM ice_deliveries WHERE id = ANY(p_done); END IF;
    -- Oldest first: a key written twice keeps its newest value (each key appears once per shipment).
    DELETE FROM ice_kv k USING unnest(k_namespace, k_key, k_value) w(namespace, key, value) WHERE w.value IS NULL AND k.namespace = w.namespace AND k.key = w.key;
    INSERT INTO ice_kv (namespace, key, value) SELECT w.namespace, w.key, w.value FROM unnest(k_namespace, k_key, k_value) w(namespace, key, value) WHERE w.value IS NOT NULL
      ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value;
    IF cardinality(d_event) > 0 THEN
      INSERT INTO ice_deliveries (event, agent, kind, payload, source) SELECT * FROM unnest(d_event, d_agent, d_kind, d_payload, d_source) ON CONFLICT (event, agent) DO NOTHING;
      PERFORM pg_notify('ice_work', '');
    END IF;
    INSERT INTO ice_agents (name, state, component, digest, policy_digest, since)
      SELECT a.name, a.state, a.component, a.digest, a."policyDigest", a.since FROM jsonb_to_recordset(p_registry) a(name text, state text, component text, digest text, "policyDigest" text, since text)
      ON CONFLICT (name) DO UPDATE SET state = excluded.state, component = excluded.component, digest = excluded.digest, policy_digest = excluded.policy_digest, since = excluded.since;
    RETURN QUERY SELECT x.n, x.link FROM ice_runs x WHERE x.agent = p_agent ORDER BY x.n DESC LIMIT 1;
  END $$;

  -- Claims up to cardinality(p_runs) of the agent's oldest pending deliveries, the i-th for run p_runs[i].
  CREATE FUNCTION ice_claim(p_host text, p_agent text, p_token bigint, p_ttl_ms integer, p_runs text[])
    RETURNS TABLE (id bigint, event text, agent text, kind text, payload text, source text, attempts integer, run text) LANGUAGE plpgsql AS $$
  #variable_conflict use_column
  DECLARE
    ids bigint[];
  BEGIN
    PERFORM ice_fence(p_host, p_agent, p_token, p_ttl_ms);
    SELECT array_agg(x.id ORDER BY x.id) INTO ids FROM (
      SELECT d.id FROM ice_deliveries d WHERE d.agent = p_agent AND d.status = 'pending' ORDER BY d.id LIMIT cardinality(p_runs) FOR UPDATE SKIP LOCKED
    ) x;
    IF ids IS NULL THEN RETURN; END IF;
    RETURN QUERY
      UPDATE ice_deliveries u SET status = 'running', attempts = u.attempts + 1, run = p_runs[array_position(ids, u.id)], host = p_host
        WHERE u.id = ANY(ids)
        RETURNING u.id, u.event, u.agent, u.kind, u.payload, u.source, u.attempts - 1, u.run;
  END $$;
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
