/**
 * The cluster's shared database operations (PostgreSQL, `pg`): leases with fencing tokens, the run
 * queue (deliveries claimed with FOR UPDATE SKIP LOCKED), and shipments — a host's new ledger rows,
 * kv writes, emitted deliveries and intents, committed in one transaction that first proves the host
 * still holds the agent's lease with the token it was given. A shipment retried after an unknown
 * outcome (a lost connection at COMMIT) records nothing twice: rows are unique on (run, seq), and a
 * row already there must carry the same hash, or the shipment fails as a conflict.
 */
import pg from 'pg';
import type { LedgerRow } from '../ledger/index.js';
import type { Delivery } from '../views/deliveries.js';
import { chainLink, type ChainHead } from './chain.js';
import { migrateCluster } from './schema.js';

/** The host no longer holds the lease (it expired and another host took it): it must stop writing for the agent. */
export class LeaseLost extends Error {
  override readonly name = 'LeaseLost';
}

/** A row of the shipment is already in the shared ledger with another hash: another writer wrote that run. */
export class ShipConflict extends Error {
  override readonly name = 'ShipConflict';
}

export interface Lease {
  readonly agent: string;
  readonly token: number;
}

/** A delivery as the shipment carries it: one of `deliveries`, before it has an id or attempts. */
export type NewDelivery = Omit<Delivery, 'id' | 'attempts'>;

export interface AgentRow {
  readonly name: string;
  readonly state: string;
  readonly component: string;
  readonly digest: string;
  readonly policyDigest: string;
  readonly since: string;
}

/** What one host ships for one agent, in one transaction. */
export interface Shipment {
  /** Ledger rows in append order (each run's in seq order). */
  readonly rows: readonly Omit<LedgerRow, 'id'>[];
  /** Runs whose run-end is among `rows`, with the delivery each completes (done, or pending again when `incomplete`). */
  readonly ends: readonly { readonly run: string; readonly incomplete: boolean; readonly delivery?: number }[];
  /** The agent's kv namespace writes, oldest first: value null deletes. */
  readonly kv: readonly { readonly namespace: string; readonly key: string; readonly value: string | null }[];
  readonly deliveries: readonly NewDelivery[];
  readonly intents: readonly { readonly run: string; readonly seq: number; readonly entry: string }[];
  readonly registry: readonly AgentRow[];
  /** Claimed deliveries done with although their run never started (refused before it ran). */
  readonly done: readonly number[];
}

export class ClusterStore {
  private constructor(
    readonly pool: pg.Pool,
    readonly where: string,
  ) {}

  static async open(url: string, options: { readonly max?: number; /** false: a reader that must not create tables (verify). */ readonly migrate?: boolean } = {}): Promise<ClusterStore> {
    const where = redact(url);
    const pool = new pg.Pool({ connectionString: url, max: options.max ?? 8, application_name: 'ice' });
    // An idle client's error (the server restarted) must not crash the host; the next query reports it.
    pool.on('error', () => undefined);
    try {
      if (options.migrate === false) await pool.query('SELECT version FROM ice_schema');
      else await migrateCluster(pool, where);
    } catch (error) {
      await pool.end();
      throw error;
    }
    return new ClusterStore(pool, where);
  }

  close(): Promise<void> {
    return this.pool.end();
  }

  private async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /** Runs `fn` holding a cluster-wide advisory lock named `name` (one host at a time). */
  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query("SELECT pg_advisory_lock(hashtext('ice:' || $1))", [name]);
      try {
        return await fn();
      } finally {
        await client.query("SELECT pg_advisory_unlock(hashtext('ice:' || $1))", [name]);
      }
    } finally {
      client.release();
    }
  }

  // --- hosts and leases ---------------------------------------------------------------------------

  /** Marks `host` alive; returns how many hosts were seen within `liveMs`. */
  async heartbeat(host: string, liveMs: number): Promise<number> {
    await this.pool.query('INSERT INTO ice_hosts (id, pid) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET seen = now()', [host, process.pid]);
    const { rows } = await this.pool.query<{ n: string }>("SELECT count(*) AS n FROM ice_hosts WHERE seen > now() - $1 * interval '1 millisecond'", [liveMs]);
    return Number(rows[0]?.n ?? 1);
  }

  async leaveHosts(host: string): Promise<void> {
    await this.pool.query('DELETE FROM ice_hosts WHERE id = $1', [host]);
  }

  /** Makes sure every agent has a lease row (free). */
  async addAgents(agents: readonly string[]): Promise<void> {
    await this.pool.query('INSERT INTO ice_leases (agent) SELECT unnest($1::text[]) ON CONFLICT (agent) DO NOTHING', [agents]);
  }

  /**
   * Takes the leases of up to `limit` of `agents` that are free or expired, skipping rows another host
   * is taking right now (SKIP LOCKED): each taken lease gets a new fencing token.
   */
  async acquire(host: string, agents: readonly string[], limit: number, ttlMs: number): Promise<Lease[]> {
    if (agents.length === 0 || limit <= 0) return [];
    const { rows } = await this.pool.query<{ agent: string; token: string }>(
      `UPDATE ice_leases l SET holder = $2, token = l.token + 1, expires = now() + $4 * interval '1 millisecond'
         FROM (SELECT agent FROM ice_leases WHERE agent = ANY($1) AND (holder IS NULL OR expires < now())
                ORDER BY agent LIMIT $3 FOR UPDATE SKIP LOCKED) free
        WHERE l.agent = free.agent
        RETURNING l.agent, l.token`,
      [agents, host, limit, ttlMs],
    );
    return rows.map((r) => ({ agent: r.agent, token: Number(r.token) }));
  }

  /** Extends every lease `host` holds; returns them (a lease missing from the answer was lost). */
  async renew(host: string, ttlMs: number): Promise<Lease[]> {
    const { rows } = await this.pool.query<{ agent: string; token: string }>(
      `UPDATE ice_leases SET expires = now() + $2 * interval '1 millisecond' WHERE holder = $1 RETURNING agent, token`,
      [host, ttlMs],
    );
    return rows.map((r) => ({ agent: r.agent, token: Number(r.token) }));
  }

  async release(host: string, lease: Lease): Promise<void> {
    await this.pool.query('UPDATE ice_leases SET holder = NULL, expires = NULL WHERE agent = $1 AND holder = $2 AND token = $3', [lease.agent, host, lease.token]);
  }

  /** Who holds an agent's lease now (undefined: nobody, or it expired). */
  async holder(agent: string): Promise<string | undefined> {
    const { rows } = await this.pool.query<{ holder: string | null }>('SELECT holder FROM ice_leases WHERE agent = $1 AND expires > now()', [agent]);
    return rows[0]?.holder ?? undefined;
  }

  /** Fails the transaction unless `host` still holds `lease`; extends it. */
  private async fence(client: pg.PoolClient, host: string, lease: Lease, ttlMs: number): Promise<void> {
    await typed(client.query('SELECT ice_fence($1, $2, $3, $4)', [host, lease.agent, lease.token, ttlMs]));
  }

  // --- what a new lease holder reads --------------------------------------------------------------

  async chainHead(agent: string): Promise<ChainHead | null> {
    const { rows } = await this.pool.query<{ n: string; link: string }>('SELECT n, link FROM ice_runs WHERE agent = $1 ORDER BY n DESC LIMIT 1', [agent]);
    const row = rows[0];
    return row ? { n: Number(row.n), link: row.link } : null;
  }

  async kvNamespace(namespace: string): Promise<{ key: string; value: string }[]> {
    const { rows } = await this.pool.query<{ key: string; value: string }>('SELECT key, value FROM ice_kv WHERE namespace = $1', [namespace]);
    return rows;
  }

  async agentRow(name: string): Promise<AgentRow | undefined> {
    const { rows } = await this.pool.query<AgentRow>('SELECT name, state, component, digest, policy_digest AS "policyDigest", since FROM ice_agents WHERE name = $1', [name]);
    return rows[0];
  }

  async registry(): Promise<AgentRow[]> {
    const { rows } = await this.pool.query<AgentRow>('SELECT name, state, component, digest, policy_digest AS "policyDigest", since FROM ice_agents ORDER BY name');
    return rows;
  }

  /** Runs of `agent` in flight on other hosts (or earlier lives of this one): what a new holder ends. */
  async orphanedRuns(agent: string, except: ReadonlySet<string>): Promise<{ run: string; host: string }[]> {
    const { rows } = await this.pool.query<{ run: string; host: string }>('SELECT run, host FROM ice_running WHERE agent = $1 ORDER BY started', [agent]);
    return rows.filter((r) => !except.has(r.run));
  }

  async runRows(run: string): Promise<Omit<LedgerRow, 'id'>[]> {
    const { rows } = await this.pool.query<Omit<LedgerRow, 'id'>>('SELECT run, seq, type, hash, body FROM ice_ledger WHERE run = $1 ORDER BY seq', [run]);
    return rows;
  }

  async runIntents(run: string): Promise<string[]> {
    const { rows } = await this.pool.query<{ entry: string }>('SELECT entry FROM ice_intents WHERE run = $1 ORDER BY seq', [run]);
    return rows.map((r) => r.entry);
  }

  /**
   * After orphaned runs are ended: deliveries a dead holder had claimed go back to pending, except those
   * whose run ended in the shared ledger with any outcome but `incomplete` (done).
   */
  async requeueOrphaned(host: string, lease: Lease, ttlMs: number): Promise<{ done: number; redelivered: number }> {
    return this.transaction(async (client) => {
      await this.fence(client, host, lease, ttlMs);
      const done = await client.query(
        `DELETE FROM ice_deliveries d WHERE d.agent = $1 AND d.status = 'running' AND EXISTS (
           SELECT 1 FROM ice_ledger e WHERE e.run = d.run AND e.type = 'run-end' AND (e.body::jsonb ->> 'outcome') <> 'incomplete')`,
        [lease.agent],
      );
      const redelivered = await client.query(`UPDATE ice_deliveries SET status = 'pending', host = NULL WHERE agent = $1 AND status = 'running'`, [lease.agent]);
      return { done: done.rowCount ?? 0, redelivered: redelivered.rowCount ?? 0 };
    });
  }

  // --- the run queue ------------------------------------------------------------------------------

  /** Agents (of `among`) whose holder let the lease expire without giving it back: it died or stalled, and what it left needs a new holder. */
  async abandoned(among: readonly string[]): Promise<string[]> {
    const { rows } = await this.pool.query<{ agent: string }>('SELECT agent FROM ice_leases WHERE agent = ANY($1) AND holder IS NOT NULL AND expires < now()', [among]);
    return rows.map((r) => r.agent);
  }

  /** How many of `among` have work: pending deliveries, or a live lease (runs going on somewhere). */
  async busyAgents(among: readonly string[]): Promise<number> {
    const { rows } = await this.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM unnest($1::text[]) a(agent)
        WHERE EXISTS (SELECT 1 FROM ice_deliveries d WHERE d.agent = a.agent AND d.status = 'pending')
           OR EXISTS (SELECT 1 FROM ice_leases l WHERE l.agent = a.agent AND l.holder IS NOT NULL AND l.expires > now())`,
      [among],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Agents (of `among`) with pending deliveries. */
  async agentsWithPending(among: readonly string[]): Promise<string[]> {
    const { rows } = await this.pool.query<{ agent: string }>(
      `SELECT a.agent FROM unnest($1::text[]) a(agent) WHERE EXISTS (SELECT 1 FROM ice_deliveries d WHERE d.agent = a.agent AND d.status = 'pending')`,
      [among],
    );
    return rows.map((r) => r.agent);
  }

  /** Claims up to `limit` of the agent's oldest pending deliveries, each for a run id from `runId`, under the lease (one round trip). */
  async claim(host: string, lease: Lease, limit: number, ttlMs: number, runId: () => string): Promise<{ delivery: Delivery; run: string }[]> {
    if (limit <= 0) return [];
    const runs = Array.from({ length: Math.min(limit, CLAIM_MAX) }, runId);
    const { rows } = await typed(
      this.pool.query<Delivery & { id: string; run: string }>('SELECT * FROM ice_claim($1, $2, $3, $4, $5)', [host, lease.agent, lease.token, ttlMs, runs]),
    );
    return rows.map(({ run, ...row }) => ({ delivery: { ...row, id: Number(row.id) }, run }));
  }

  /** Claimed deliveries a host gives back unstarted (it is stopping, or lost the agent). */
  async unclaim(host: string, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query(`UPDATE ice_deliveries SET status = 'pending', host = NULL WHERE id = ANY($1::bigint[]) AND host = $2 AND status = 'running'`, [ids, host]);
  }

  /** Deliveries by agent and status (pending, running). */
  async deliveryCounts(among: readonly string[]): Promise<Map<string, { pending: number; running: number }>> {
    const { rows } = await this.pool.query<{ agent: string; status: string; n: string }>('SELECT agent, status, count(*) AS n FROM ice_deliveries WHERE agent = ANY($1) GROUP BY 1, 2', [among]);
    const counts = new Map(among.map((a) => [a, { pending: 0, running: 0 }]));
    for (const row of rows) {
      const c = counts.get(row.agent);
      if (c && (row.status === 'pending' || row.status === 'running')) c[row.status] = Number(row.n);
    }
    return counts;
  }

  // --- shipments ------------------------------------------------------------------------------------

  /**
   * Commits a shipment under the lease: rows (exactly once), each new run-start appended to the agent's
   * chain, runs in flight and ended, kv writes, new deliveries, intents, registry rows. Returns the new
   * chain head. @throws LeaseLost, ShipConflict
   */
  async ship(host: string, lease: Lease, ttlMs: number, key: Buffer, head: ChainHead | null, shipment: Shipment): Promise<ChainHead | null> {
    const { rows, ends, kv, deliveries: d, intents: i } = shipment;
    // The chain rows of the shipment's run-starts, linked from the head this (single) writer holds.
    const chain: { run: string; n: number; hash: string; link: string }[] = [];
    let last = head;
    for (const row of rows) {
      if (row.seq !== 0) continue;
      const n = (last?.n ?? 0) + 1;
      const link = chainLink(key, lease.agent, n, row.run, row.hash, last?.link ?? null);
      chain.push({ run: row.run, n, hash: row.hash, link });
      last = { n, link };
    }
    const { rows: answer } = await typed(
      this.pool.query<{ n: string | null; link: string | null }>(
        `SELECT * FROM ice_ship($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)`,
        [
          host, lease.agent, lease.token, ttlMs,
          rows.map((r) => r.run), rows.map((r) => r.seq), rows.map((r) => r.type), rows.map((r) => r.hash), rows.map((r) => r.body),
          chain.map((c) => c.run), chain.map((c) => c.n), chain.map((c) => c.hash), chain.map((c) => c.link),
          ends.map((e) => e.run), ends.map((e) => e.incomplete), ends.map((e) => e.delivery ?? null),
          kv.map((w) => w.namespace), kv.map((w) => w.key), kv.map((w) => w.value),
          d.map((x) => x.event), d.map((x) => x.agent), d.map((x) => x.kind), d.map((x) => x.payload), d.map((x) => x.source),
          i.map((x) => x.run), i.map((x) => x.seq), i.map((x) => x.entry),
          shipment.done, JSON.stringify(shipment.registry),
        ],
      ),
    );
    const top = answer[0];
    return top && top.n !== null && top.link !== null ? { n: Number(top.n), link: top.link } : null;
  }

  // --- checkpoints ------------------------------------------------------------------------------------

  /** Every agent chain's head, read in one snapshot. */
  async heads(): Promise<Map<string, ChainHead>> {
    const { rows } = await this.pool.query<{ agent: string; n: string; link: string }>('SELECT DISTINCT ON (agent) agent, n, link FROM ice_runs ORDER BY agent, n DESC');
    return new Map(rows.map((r) => [r.agent, { n: Number(r.n), link: r.link }]));
  }

  /** Appends a checkpoint unless one was written in the last `everyMs` (hosts race for it; one wins). */
  async checkpoint(host: string, everyMs: number, sign: (heads: Map<string, ChainHead>, at: string) => { heads: string; signature: string }): Promise<boolean> {
    return this.transaction(async (client) => {
      const locked = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [0x1ce_c4e0]);
      if (!locked.rows[0]?.ok) return false;
      const recent = await client.query<{ fresh: boolean }>(`SELECT max(at)::timestamptz > now() - $1 * interval '1 millisecond' AS fresh FROM ice_checkpoints`, [everyMs]);
      if (recent.rows[0]?.fresh) return false;
      const { rows } = await client.query<{ agent: string; n: string; link: string }>('SELECT DISTINCT ON (agent) agent, n, link FROM ice_runs ORDER BY agent, n DESC');
      const at = new Date().toISOString();
      const signed = sign(new Map(rows.map((r) => [r.agent, { n: Number(r.n), link: r.link }])), at);
      await client.query('INSERT INTO ice_checkpoints (at, host, heads, signature) VALUES ($1, $2, $3, $4)', [at, host, signed.heads, signed.signature]);
      return true;
    });
  }
}

/** Most deliveries one claim takes (a queue of 100,000 does not claim 100,000 in one statement). */
const CLAIM_MAX = 256;

/** The database's refusals (ice_fence, ice_ship) as the errors callers handle. */
async function typed<T>(query: Promise<T>): Promise<T> {
  try {
    return await query;
  } catch (error) {
    const code = (error as { code?: string }).code;
    const message = error instanceof Error ? error.message : String(error);
    if (code === 'IC001') throw new LeaseLost(message);
    if (code === 'IC002') throw new ShipConflict(message);
    throw error;
  }
}

/** A connection string without its password, for messages and logs. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<a connection string that is not a URL>';
  }
}
