/**
 * Event deliveries to served agents (`ice serve`'s event triggers), in the state database.
 *
 * `subscriptions` says which agent receives which kinds: one row per pair of one of its trigger
 * patterns (`on.events`) and one of its policy's `grants.events.receive` patterns; a kind must match
 * both. The server rewrites the table at start. `deliveries` holds one row per (event, agent): inserted
 * by `events.emit` in the transaction of the emit's call record (so every recorded event has its
 * deliveries, and none exists without its event), then `pending` → `running` (claimed for a run whose
 * id it records, before the run starts) → deleted once the run ended (the ledger holds the run and its
 * cause, the evidence; the table stays the size of the work in hand). A run cut off by a crash leaves its delivery
 * `running`; `recover` puts it back to `pending` unless the ledger shows the run ended (not
 * `incomplete`), so every event is delivered at least once and completed by exactly one run.
 *
 * Not evidence: the ledger is (the emit's call record, the triggered run's run-start `cause`). This
 * table is the work queue between them.
 */
import type { Statement } from 'better-sqlite3';
import type { StateDb } from '../storage/db.js';

/** An emitted event as its deliveries need it: its id is `<run>#<seq>` (the seq of its call record). */
export interface EmittedEvent {
  readonly run: string;
  readonly seq: number;
  readonly kind: string;
  readonly payload: string;
  /** The emitting component. */
  readonly source: string;
}

/** A pattern matches a kind as the policy's matchers do: `*`, `prefix*`, or the exact kind (kinds never contain `*`). */
const MATCHES = (column: string) =>
  `(${column} = '*' OR ${column} = @kind OR (substr(${column}, -1) = '*' AND substr(@kind, 1, length(${column}) - 1) = substr(${column}, 1, length(${column}) - 1)))`;

export interface Subscription {
  readonly agent: string;
  /** One of its `on.events` patterns. */
  readonly pattern: string;
  /** One of its policy's `grants.events.receive` patterns. */
  readonly receive: string;
}

export interface Delivery {
  readonly id: number;
  /** `<run>#<seq>` of the emit's call record. */
  readonly event: string;
  readonly agent: string;
  readonly kind: string;
  readonly payload: string;
  /** The emitting component. */
  readonly source: string;
  readonly attempts: number;
}

export interface DeliveryCounts {
  readonly pending: number;
  readonly running: number;
}

const statements = new WeakMap<StateDb, Statements>();

interface Statements {
  readonly enqueue: Statement<{ event: string; kind: string; payload: string; source: string }>;
  readonly pending: Statement<[string, number], Delivery>;
  readonly claim: Statement<[string, number]>;
  readonly finish: Statement<[number]>;
  readonly release: Statement<[number]>;
  readonly pendingAgents: Statement<[], { agent: string }>;
}

function prepared(state: StateDb): Statements {
  let s = statements.get(state);
  if (s === undefined) {
    const { db } = state;
    s = {
      enqueue: db.prepare(
        `INSERT INTO deliveries (event, agent, kind, payload, source)
           SELECT DISTINCT @event, agent, @kind, @payload, @source FROM subscriptions WHERE ${MATCHES('pattern')} AND ${MATCHES('receive')}
           ON CONFLICT (event, agent) DO NOTHING`,
      ),
      pending: db.prepare(`SELECT id, event, agent, kind, payload, source, attempts FROM deliveries WHERE agent = ? AND status = 'pending' ORDER BY id LIMIT ?`),
      claim: db.prepare(`UPDATE deliveries SET status = 'running', run = ?, attempts = attempts + 1 WHERE id = ? AND status = 'pending'`),
      finish: db.prepare(`DELETE FROM deliveries WHERE id = ? AND status = 'running'`),
      release: db.prepare(`UPDATE deliveries SET status = 'pending' WHERE id = ? AND status = 'running'`),
      pendingAgents: db.prepare(`SELECT DISTINCT agent FROM deliveries WHERE status = 'pending'`),
    };
    statements.set(state, s);
  }
  return s;
}

/** Queues `event` for every subscribed agent; call inside the transaction of the emit's record. Returns how many. */
export function enqueueDeliveries(state: StateDb, event: EmittedEvent): number {
  return prepared(state).enqueue.run({ event: `${event.run}#${event.seq}`, kind: event.kind, payload: event.payload, source: event.source }).changes;
}

/** Replaces every subscription (the server's agents and patterns as of its start). */
export function setSubscriptions(state: StateDb, subscriptions: readonly Subscription[]): void {
  state.transaction(() => {
    state.db.prepare('DELETE FROM subscriptions').run();
    const insert = state.db.prepare('INSERT INTO subscriptions (agent, pattern, receive) VALUES (?, ?, ?)');
    for (const s of subscriptions) insert.run(s.agent, s.pattern, s.receive);
  });
}

/** The agents with pending deliveries. */
export function agentsWithPending(state: StateDb): string[] {
  return prepared(state).pendingAgents.all().map((r) => r.agent);
}

// Each write below runs in `state.transaction`: it takes the process's write lock (storage/write-lock.ts),
// so the host thread never meets a worker's SQLite lock and sleeps in SQLite's busy handler.

/**
 * Up to `limit` of the oldest pending deliveries to `agent`, each claimed for a new run id from
 * `runId` in one transaction (before the runs start).
 */
export function claimDeliveries(state: StateDb, agent: string, limit: number, runId: () => string): { delivery: Delivery; run: string }[] {
  if (limit <= 0) return [];
  const s = prepared(state);
  return state.transaction(() =>
    s.pending.all(agent, limit).flatMap((delivery) => {
      const run = runId();
      return s.claim.run(run, delivery.id).changes === 1 ? [{ delivery, run }] : [];
    }),
  );
}

/** The run of a claimed delivery ended (any outcome but `incomplete`): delivered. */
export function finishDelivery(state: StateDb, id: number): void {
  state.transaction(() => prepared(state).finish.run(id));
}

/** The run of a claimed delivery never ended (cut off): deliver it again. */
export function releaseDelivery(state: StateDb, id: number): void {
  state.transaction(() => prepared(state).release.run(id));
}

/**
 * After a crash (or at any start): every `running` delivery whose run ended in the ledger with an outcome
 * other than `incomplete` is done (deleted); the others (no run-start, no run-end, or `incomplete`) are
 * `pending` again. Call after the host has ended interrupted runs, with no run of this state in flight.
 */
export function recoverDeliveries(state: StateDb): { readonly done: number; readonly redelivered: number } {
  return state.transaction(() => {
    const done = state.db
      .prepare(
        `DELETE FROM deliveries WHERE status = 'running' AND EXISTS (
           SELECT 1 FROM ledger e WHERE e.run = deliveries.run AND e.type = 'run-end' AND e.body ->> '$.outcome' <> 'incomplete')`,
      )
      .run().changes;
    const redelivered = state.db.prepare(`UPDATE deliveries SET status = 'pending' WHERE status = 'running'`).run().changes;
    return { done, redelivered };
  });
}

/** Deliveries by status, for one agent or all. */
export function deliveryCounts(state: StateDb, agent: string): DeliveryCounts {
  const rows = state.db.prepare<[string], { status: string; n: number }>('SELECT status, count(*) AS n FROM deliveries WHERE agent = ? GROUP BY status').all(agent);
  const count = (status: string) => rows.find((r) => r.status === status)?.n ?? 0;
  return { pending: count('pending'), running: count('running') };
}
