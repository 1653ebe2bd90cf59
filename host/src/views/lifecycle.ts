/**
 * Served agents' lifecycle, as ledger records. Each transition (deployed → active ⇄ suspended →
 * stopped; quarantined after faults; an upgrade) is a *host record*: a run-start whose `invoke` is
 * `{ kind: 'lifecycle', agent, from, to }` and whose `cause` says what caused it (an operator, a fault,
 * an upgrade, the config), and its run-end, in the chain like any run. A trigger the server refused (a
 * webhook that failed its check, a full queue) is one too (`invoke.kind: 'refused'`).
 *
 * The `agents` table is a view: the fold of the lifecycle records, updated in the same transaction
 * as each one, so `ice state verify` can compare it with the ledger and `ice state rebuild` restore it.
 */
import { capture } from '../core/capture.js';
import { ICE_VERSION } from '../core/version.js';
import { newRunId, type AgentState, type LedgerStore, type RunCause, type RunStartRecord, type TriggerKind } from '../ledger/index.js';
import type { StateDb } from '../storage/db.js';

export type { AgentState } from '../ledger/index.js';

/** One served agent as the registry holds it. */
export interface AgentRecord {
  readonly name: string;
  readonly state: AgentState;
  /** Its policy's component name (its kv namespace). */
  readonly component: string;
  readonly digest: string;
  readonly policyDigest: string;
  /** The run id of the lifecycle record that set this state. */
  readonly since: string;
}

/** The component and policy a host record is about. */
export interface RecordSubject {
  readonly agent: string;
  readonly component: { readonly name: string; readonly digest: string };
  readonly policy: { readonly digest: string; readonly source: string; readonly document: unknown };
}

/** Which transitions exist; an upgrade (or a config change) keeps the state and changes the component. */
const ALLOWED: Readonly<Record<AgentState | 'new', readonly AgentState[]>> = {
  new: ['deployed'],
  deployed: ['active', 'stopped'],
  active: ['suspended', 'quarantined', 'stopped'],
  suspended: ['active', 'stopped'],
  quarantined: ['active', 'stopped'],
  stopped: ['deployed'],
};

/** What may change an agent without changing its state: a new component (upgrade) or a new config. */
const SAME_STATE_CAUSES: ReadonlySet<RunCause['kind']> = new Set(['upgrade', 'config']);

/** A transition that does not exist (resume an active agent, suspend a stopped one). Nothing was recorded. */
export class TransitionError extends Error {
  override readonly name = 'TransitionError';
}

export function canTransition(from: AgentState | null, to: AgentState, cause?: RunCause['kind']): boolean {
  if (from === to && from !== 'stopped') return cause !== undefined && SAME_STATE_CAUSES.has(cause);
  return ALLOWED[from ?? 'new'].includes(to);
}

/**
 * Records a transition of `subject.agent` from its current registry state to `to`, and updates the
 * registry, in one durable transaction. The current state is read inside it, so two operators racing
 * cannot both suspend. @throws TransitionError when `to` cannot follow the current state
 */
export function recordTransition(
  services: { readonly state: StateDb; readonly ledger: LedgerStore },
  subject: RecordSubject,
  to: AgentState,
  cause: RunCause,
): { readonly runId: string; readonly ledgerRoot: string; readonly from: AgentState | null } {
  const { state, ledger } = services;
  return state.durable(() =>
    state.transaction(() => {
      const from = readAgent(state, subject.agent)?.state ?? null;
      if (!canTransition(from, to, cause.kind)) {
        throw new TransitionError(`agent ${subject.agent} is ${from ?? 'not deployed'}: it cannot become ${to}${hint(from, to)}`);
      }
      const { runId, ledgerRoot } = hostRecord(ledger, subject, { kind: 'lifecycle', agent: subject.agent, from, to }, cause, 'ok', `${from ?? 'new'} → ${to}`);
      upsert(state, { name: subject.agent, state: to, component: subject.component.name, digest: subject.component.digest, policyDigest: subject.policy.digest, since: runId });
      return { runId, ledgerRoot, from };
    }),
  );
}

function hint(from: AgentState | null, to: AgentState): string {
  if (to === 'active' && from === 'active') return ' (it is already active)';
  if (to === 'suspended' && from === 'suspended') return ' (it is already suspended)';
  if (from === 'stopped') return ' (it was removed from the config; add it back and restart the server)';
  return '';
}

/** Records a trigger the server refused, with why (a bad webhook signature, a full queue). */
export function recordRefusal(
  services: { readonly state: StateDb; readonly ledger: LedgerStore },
  subject: RecordSubject,
  trigger: TriggerKind,
  reason: string,
  cause?: RunCause,
): { readonly runId: string; readonly ledgerRoot: string } {
  const { state, ledger } = services;
  return state.transaction(() => hostRecord(ledger, subject, { kind: 'refused', agent: subject.agent, trigger, reason }, cause, 'error', reason));
}

function hostRecord(
  ledger: LedgerStore,
  subject: RecordSubject,
  invoke: NonNullable<RunStartRecord['invoke']>,
  cause: RunCause | undefined,
  outcome: 'ok' | 'error',
  output: string,
): { runId: string; ledgerRoot: string } {
  const started = performance.now();
  const writer = ledger.startRun({
    run: newRunId(),
    component: { name: subject.component.name, digest: subject.component.digest },
    policy: { digest: subject.policy.digest, source: subject.policy.source, document: subject.policy.document },
    input: capture('', 'full'),
    invoke,
    ...(cause ? { cause } : {}),
    host: { ice: ICE_VERSION },
  });
  const ledgerRoot = writer.end({ outcome, output: capture(output, 'full'), durationUs: Math.round((performance.now() - started) * 1000) });
  return { runId: writer.run, ledgerRoot };
}

/** The registry row of `agent`, or undefined. */
export function readAgent(state: StateDb, agent: string): AgentRecord | undefined {
  return state.db
    .prepare<[string], AgentRecord>('SELECT name, state, component, digest, policy_digest AS policyDigest, since FROM agents WHERE name = ?')
    .get(agent);
}

/** Every agent in the registry, by name. */
export function readRegistry(state: StateDb): AgentRecord[] {
  return state.db.prepare<[], AgentRecord>('SELECT name, state, component, digest, policy_digest AS policyDigest, since FROM agents ORDER BY name').all();
}

function upsert(state: StateDb, agent: AgentRecord): void {
  state.db
    .prepare(
      `INSERT INTO agents (name, state, component, digest, policy_digest, since) VALUES (@name, @state, @component, @digest, @policyDigest, @since)
       ON CONFLICT (name) DO UPDATE SET state = excluded.state, component = excluded.component, digest = excluded.digest, policy_digest = excluded.policy_digest, since = excluded.since`,
    )
    .run(agent);
}

/** The registry as the fold of the ledger's lifecycle records, in store order. */
export function foldRegistry(state: StateDb): AgentRecord[] {
  const rows = state.db
    .prepare<[], { body: string }>(`SELECT body FROM ledger WHERE type = 'run-start' AND body ->> '$.invoke.kind' = 'lifecycle' ORDER BY id`)
    .all();
  const agents = new Map<string, AgentRecord>();
  for (const { body } of rows) {
    const start = JSON.parse(body) as RunStartRecord;
    const invoke = start.invoke as { agent: string; to: AgentState };
    agents.set(invoke.agent, { name: invoke.agent, state: invoke.to, component: start.component.name, digest: start.component.digest, policyDigest: start.policy.digest, since: start.run });
  }
  return [...agents.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Where the registry differs from the fold of the ledger: one line per agent, empty when equal. */
export function diffRegistry(state: StateDb): { readonly agents: number; readonly transitions: number; readonly differences: readonly string[] } {
  return state.transaction(() => {
    const folded = foldRegistry(state);
    const table = new Map(readRegistry(state).map((a) => [a.name, a]));
    const differences: string[] = [];
    for (const agent of folded) {
      const row = table.get(agent.name);
      table.delete(agent.name);
      if (row === undefined) differences.push(`agent ${agent.name}: in the ledger (${agent.state}, since run ${agent.since}) but not in the registry`);
      else if (JSON.stringify(row) !== JSON.stringify(agent)) differences.push(`agent ${agent.name}: the registry says ${describe(row)}, the ledger ${describe(agent)}`);
    }
    for (const row of table.values()) differences.push(`agent ${row.name}: in the registry (${row.state}) but no lifecycle record says so`);
    const transitions = state.db.prepare(`SELECT count(*) FROM ledger WHERE type = 'run-start' AND body ->> '$.invoke.kind' = 'lifecycle'`).pluck().get() as number;
    return { agents: folded.length, transitions, differences };
  });
}

function describe(a: AgentRecord): string {
  return `${a.state}, component ${a.component} sha256:${a.digest.slice(0, 12)}, policy sha256:${a.policyDigest.slice(0, 12)}, since run ${a.since}`;
}

/** Rewrites the registry from the ledger; returns the number of agents. */
export function rebuildRegistry(state: StateDb): number {
  return state.transaction(() => {
    const folded = foldRegistry(state);
    state.db.prepare('DELETE FROM agents').run();
    for (const agent of folded) upsert(state, agent);
    return folded.length;
  });
}
