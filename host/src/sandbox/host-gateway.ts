/**
 * The host thread's side of the bridge: it serves the runs' host effects (the capabilities' `hostEffects`,
 * from the registry: HTTP fetches, model calls) and approvals. A run is registered for as long as it
 * executes; a request naming any other run, a key no capability declares, or a capability the run's
 * policy does not grant is refused. Resources a capability keeps across runs (a connection pool) are
 * kept per (component, policy), never shared with another component or policy, and closed with the host.
 */
import type { ApprovalAnswer, ApprovalRequest, Grant, HostCallContext, HostConfig } from '../capabilities/define.js';
import type { IcePolicy } from '../capabilities/policy.js';
import { HOST_EFFECTS } from '../capabilities/registry.js';
import type { SecretSource } from '../capabilities/secrets.js';
import { APPROVAL, type BridgeRequest } from '../kernel/live.js';

/**
 * Decides an `ask`: true/false, or an object naming who decided. Rejecting or throwing is a denial.
 * Called on the host thread while the run waits; an answer later than the rule's timeout is ignored.
 */
export type Approver = (
  request: ApprovalRequest,
) => boolean | { approved: boolean; by?: string; reason?: string } | Promise<boolean | { approved: boolean; by?: string; reason?: string }>;

export interface GatewayOptions {
  readonly secrets: SecretSource;
  readonly approver?: Approver;
  /** Who the ledger says answered, when the approver does not say (`by`). */
  readonly approverName?: string;
  /** What capabilities read on the host thread (model providers, egress DNS and CAs). */
  readonly config?: HostConfig;
  /** Reports approver failures (it must not fail a run silently). */
  readonly onApproverError?: (error: unknown) => void;
}

interface ExecutingRun {
  readonly policy: IcePolicy;
  /** Approvals served for the run (its thread's asks and the host thread's redirect-hop asks). */
  asks: number;
  /** Aborted when the run ends: what is still in flight for it is abandoned. */
  readonly ended: AbortController;
  /** The run's W3C trace context, when it is traced: its outbound requests carry it. */
  readonly traceparent: string | undefined;
}

export class HostGateway {
  private readonly runs = new Map<string, ExecutingRun>();
  private readonly shared = new Map<string, { close(): void }>();

  constructor(private readonly options: GatewayOptions) {}

  /** The run may use the host thread until `end`. */
  begin(runId: string, policy: IcePolicy, traceparent?: string): void {
    this.runs.set(runId, { policy, asks: 0, ended: new AbortController(), traceparent });
  }

  end(runId: string): void {
    this.runs.get(runId)?.ended.abort();
    this.runs.delete(runId);
  }

  close(): void {
    for (const run of this.runs.values()) run.ended.abort();
    for (const resource of this.shared.values()) resource.close();
    this.shared.clear();
  }

  /** The bridge handler: `key` and the payload as the run's thread sent them. */
  async serve(key: string, payload: unknown): Promise<unknown> {
    if (key === APPROVAL) {
      const { request } = payload as BridgeRequest & { request: ApprovalRequest };
      this.executing(request.runId);
      return this.approve(request);
    }
    const served = HOST_EFFECTS.get(key);
    if (!served) throw new Error(`unknown host operation ${JSON.stringify(key)}`);
    const { runId, seq, request } = payload as BridgeRequest;
    const run = this.executing(runId);
    const { policy } = run;
    const grant = (policy.grants as Readonly<Record<string, Grant | { mode: 'deny' } | undefined>>)[served.capability];
    // The run's thread decided; checked again here, so the host thread never acts for a capability the
    // policy does not grant. Only a host bug gets here: it fails the call (a host fault), closed.
    if (grant?.mode !== 'grant') throw new Error(`${key} is not granted to component "${policy.component}" (grants.${served.capability})`);
    const context: HostCallContext = {
      grant,
      component: policy.component,
      runId,
      seq,
      ...(run.traceparent ? { traceparent: run.traceparent } : {}),
      secrets: this.options.secrets,
      config: this.options.config ?? {},
      approve: (r) => this.approve(r),
      shared: (name, make) => this.sharedFor(policy, `${served.capability}.${name}`, make),
      signal: run.ended.signal,
    };
    return served.effect.serve(request, context);
  }

  private executing(runId: string): ExecutingRun {
    const run = this.runs.get(runId);
    if (!run) throw new Error(`run ${runId} is not executing; its request to the host thread is refused`);
    return run;
  }

  private sharedFor<T extends { close(): void }>(policy: IcePolicy, name: string, make: () => T): T {
    const key = `${policy.component}\u0000${policy.digest}\u0000${name}`;
    let resource = this.shared.get(key) as T | undefined;
    if (!resource) {
      resource = make();
      this.shared.set(key, resource);
    }
    return resource;
  }

  /** Asks the approver; no approver, a failure, no answer in time or a run over limits.maxAsks is a denial. */
  async approve(request: ApprovalRequest): Promise<ApprovalAnswer> {
    const run = this.runs.get(request.runId);
    if (run && ++run.asks > run.policy.limits.maxAsks) {
      const max = run.policy.limits.maxAsks;
      return { by: 'ice', answer: 'denied', waitedMs: 0, reason: `this run already asked ${max} times, the most limits.maxAsks (${max}) allows` };
    }
    const started = performance.now();
    const waited = () => Math.round(performance.now() - started);
    const approver = this.options.approver;
    if (!approver) return { by: 'none', answer: 'denied', waitedMs: 0, reason: 'this host has no approver (ice run --approve, or the approve option)' };
    const name = this.options.approverName ?? 'approver';
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), request.timeoutMs);
    });
    try {
      const answer = await Promise.race([Promise.resolve().then(() => approver(request)), timeout]);
      if (answer === 'timeout') return { by: name, answer: 'timeout', waitedMs: waited() };
      const approved = typeof answer === 'boolean' ? answer : answer?.approved === true;
      const by = typeof answer === 'object' && typeof answer?.by === 'string' && answer.by !== '' ? answer.by.slice(0, 200) : name;
      const reason = typeof answer === 'object' && typeof answer?.reason === 'string' ? answer.reason.slice(0, 500) : undefined;
      return { by, answer: approved ? 'approved' : 'denied', waitedMs: waited(), ...(reason ? { reason } : {}) };
    } catch (error) {
      this.options.onApproverError?.(error);
      return { by: name, answer: 'denied', waitedMs: waited(), reason: 'the approver failed' };
    } finally {
      clearTimeout(timer);
    }
  }
}
