/**
 * The host gateway: effects a run cannot perform on its own thread — outbound HTTP, model calls and
 * approvals need the host's event loop, its secrets and its approver. A run in a worker reaches them
 * synchronously over the bridge (sandbox/bridge.ts); the host thread serves them (sandbox/gateway-server.ts).
 * Everything here crosses threads as JSON: bodies travel as base64.
 */
import type { Header } from '../egress/rules.js';
import type { ApprovalRecord, Refusal } from './operation.js';

/** In a redirect hop's request: "the guest's own body" (307/308 resend it), which the run's thread already holds. */
export const SAME_BODY = '=';

export interface WireRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: readonly Header[];
  /** base64, or null for none, or SAME_BODY. */
  readonly body: string | null;
}

export interface WireResponse {
  readonly status: number;
  readonly headers: readonly Header[];
  /** base64 */
  readonly body: string;
  /** The remote address the host connected to (for the ledger). */
  readonly address: string;
  /** `Authorization ← secret GITHUB_TOKEN` for each secret the host added: names only, never values. */
  readonly injected: readonly string[];
}

export type WireStep<T> = { readonly ok: T } | { readonly refused: Refusal } | { readonly failed: string };

export interface WireHop {
  /** The request of this hop, as sent except for injected secrets (listed in its response). */
  readonly request: WireRequest;
  readonly rule: string;
  readonly result: WireStep<WireResponse>;
  readonly durationUs: number;
  readonly approval?: ApprovalRecord;
}

export interface FetchReply {
  readonly first: WireStep<WireResponse>;
  readonly hops: readonly WireHop[];
}

export interface CompletionWire {
  readonly model: string;
  readonly messages: readonly { readonly role: string; readonly content: string }[];
  readonly maxTokens: number;
}

export interface CompletionReply {
  readonly text: string;
  readonly usage: { readonly inputTokens: number; readonly outputTokens: number };
}

export interface ApprovalRequest {
  readonly runId: string;
  readonly component: string;
  /** `http.fetch`, `kv.set`, ... */
  readonly call: string;
  /** The ask rule, e.g. `grants.http.ask[0]`. */
  readonly rule: string;
  /** What is asked for, e.g. `POST https://api.example.com/v1/issues`. */
  readonly summary: string;
  readonly timeoutMs: number;
}

export interface ApprovalAnswer extends ApprovalRecord {
  readonly reason?: string;
}

/** Synchronous from the run's point of view (the guest cannot await). */
export interface HostGateway {
  fetch(runId: string, request: WireRequest): FetchReply;
  complete(runId: string, request: CompletionWire): WireStep<CompletionReply>;
  approve(request: ApprovalRequest): ApprovalAnswer;
}
