/**
 * What crosses between the run's thread and the host thread for an `http.fetch`: plain JSON (bodies as
 * base64), since it travels over the bridge (sandbox/bridge.ts).
 */
import type { ApprovalRecord } from '../../core/verdict.js';
import type { WireStep } from '../define.js';

export type { WireStep } from '../define.js';
import type { Header } from './rules.js';

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
  /**
   * What the host added to the request, for the ledger: `Authorization ← secret GITHUB_TOKEN` for each
   * secret (names only, never values), `Idempotency-Key: <run>-<seq>`.
   */
  readonly injected: readonly string[];
}

export interface WireHop {
  /** The request of this hop, as sent except for what the host added (listed in its response). */
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
