/**
 * The host thread's side of the gateway: it serves the runs' HTTP fetches, model calls and approvals.
 * A run is registered for as long as it executes; a request naming any other run is refused. Each
 * (component, policy) gets its own egress connection pool, kept across that component's runs and never
 * shared with another component or policy.
 */
import type { ApprovalAnswer, ApprovalRequest, CompletionWire, FetchReply, WireRequest } from '../capabilities/gateway.js';
import { deny } from '../capabilities/operation.js';
import { EgressPool } from '../egress/client.js';
import { allowedAddresses } from '../egress/decide.js';
import { performFetch } from '../egress/fetch.js';
import type { SecretSource } from '../egress/secrets.js';
import { completeWith, type ModelConfig } from '../model/providers.js';
import { firstMatch, type CompiledPolicy, type HttpGrant, type ModelGrant } from '../policy/index.js';

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
  readonly models?: ModelConfig;
  /** DNS for egress (tests inject one); default the system resolver. */
  readonly resolve?: (hostname: string) => Promise<readonly string[]>;
  /** Extra CA certificates for egress TLS. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Reports approver failures (it must not fail a run silently). */
  readonly onApproverError?: (error: unknown) => void;
}

export class GatewayServer {
  private readonly runs = new Map<string, CompiledPolicy>();
  private readonly pools = new Map<string, EgressPool>();

  constructor(private readonly options: GatewayOptions) {}

  /** The run may use the gateway until `end`. */
  begin(runId: string, policy: CompiledPolicy): void {
    this.runs.set(runId, policy);
  }

  end(runId: string): void {
    this.runs.delete(runId);
  }

  close(): void {
    for (const pool of this.pools.values()) pool.close();
    this.pools.clear();
  }

  /** The bridge handler: `op` and its arguments as the run's thread sent them. */
  async serve(op: string, args: unknown): Promise<unknown> {
    switch (op) {
      case 'http.fetch': {
        const { runId, request } = args as { runId: string; request: WireRequest };
        const policy = this.policyOf(runId);
        return this.fetch(runId, policy, request);
      }
      case 'model.complete': {
        const { runId, request } = args as { runId: string; request: CompletionWire };
        return this.complete(this.policyOf(runId), request);
      }
      case 'approve': {
        const request = args as ApprovalRequest;
        this.policyOf(request.runId);
        return this.approve(request);
      }
      default:
        throw new Error(`unknown gateway operation ${JSON.stringify(op)}`);
    }
  }

  private policyOf(runId: string): CompiledPolicy {
    const policy = this.runs.get(runId);
    if (!policy) throw new Error(`run ${runId} is not executing; its gateway request is refused`);
    return policy;
  }

  private async fetch(runId: string, policy: CompiledPolicy, request: WireRequest): Promise<FetchReply> {
    const grant = policy.grants.http;
    if (grant?.mode !== 'grant') {
      return { first: { refused: deny('grants.http', `http.fetch is not granted to component "${policy.component}"`) }, hops: [] };
    }
    return performFetch(
      { grant, component: policy.component, runId, pool: this.poolFor(policy, grant), secrets: this.options.secrets, approve: (r) => this.approve(r) },
      request,
    );
  }

  private async complete(policy: CompiledPolicy, request: CompletionWire): Promise<unknown> {
    const grant: ModelGrant | undefined = policy.grants.model?.mode === 'grant' ? policy.grants.model : undefined;
    // The run's thread decided (and any ask was approved); checked again here, so the host thread never
    // calls a provider for a model the policy does not name.
    if (!grant || (!firstMatch(grant.models, request.model) && !firstMatch(grant.ask, request.model))) {
      return { refused: deny('grants.model.models', `model.complete: model "${request.model}" is not granted to component "${policy.component}"`) };
    }
    return completeWith(this.options.models ?? {}, this.options.secrets, request);
  }

  private poolFor(policy: CompiledPolicy, grant: HttpGrant): EgressPool {
    const key = `${policy.component}\u0000${policy.digest}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new EgressPool({
        allowedFor: (hostname) => allowedAddresses(grant, hostname),
        ...(this.options.resolve ? { resolve: this.options.resolve } : {}),
        ...(this.options.ca ? { ca: this.options.ca } : {}),
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Asks the approver; no approver, a failure or no answer in time is a denial. */
  async approve(request: ApprovalRequest): Promise<ApprovalAnswer> {
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
