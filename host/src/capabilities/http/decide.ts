/**
 * The decision on one HTTP request (a guest's, or a redirect hop's) against a compiled `grants.http`: the
 * same pure function in the run's worker (before anything is sent) and on the host thread (again, on the
 * URL object that is dispatched, and for every hop). Order: the request's shape (refused as `invalid`),
 * its size, then deny rules (which win), allow rules, ask rules; nothing matched is a denial naming the fix.
 */
import type { Cidr } from './address.js';
import { checkRequest, decide, hostMatches, parseRequestUrl, type Header } from './rules.js';
import { ask, deny, invalid, overLimit, type Decided, type Refusal } from '../../core/verdict.js';
import type { HttpGrant, HttpRule } from './policy.js';

/** The header a rule with `idempotencyKey: true` adds to a request with a body. */
export const IDEMPOTENCY_KEY = 'Idempotency-Key';

export type HopMatch =
  | { readonly kind: 'allow' | 'ask'; readonly rule: HttpRule }
  | { readonly kind: 'deny'; readonly rule: string; readonly reason: string };

/** Which rule governs `method url`: a deny rule wins, then the first allow rule, then the first ask rule. */
export function matchRequest(grant: HttpGrant, method: string, url: URL): HopMatch {
  const allowed = decide(grant, method, url);
  if (allowed.decision === 'allow') return { kind: 'allow', rule: grant.allow.find((r) => r.rule === allowed.rule)! };
  if (allowed.rule.startsWith('grants.http.deny') || grant.ask.length === 0) return { kind: 'deny', rule: allowed.rule, reason: allowed.reason };
  const asked = decide({ allow: grant.ask, deny: [] }, method, url);
  if (asked.decision === 'allow') return { kind: 'ask', rule: grant.ask.find((r) => r.rule === asked.rule)! };
  return { kind: 'deny', rule: allowed.rule, reason: allowed.reason };
}

export type CheckedHttpRequest =
  | { readonly ok: true; readonly url: URL; readonly headers: Header[]; readonly decided: Decided; readonly rule?: HttpRule }
  | { readonly ok: false; readonly refusal: Refusal };

/**
 * Everything about a request that does not need the network. `component` names who asked, for messages.
 * A guest header with the name of a header the matching rule injects is refused: the host's value must
 * be the only one, and the guest must not learn whether it was replaced.
 */
export function checkHttpRequest(
  grant: HttpGrant,
  component: string,
  request: { readonly method: string; readonly url: string; readonly headers: readonly Header[]; readonly bodyBytes: number },
): CheckedHttpRequest {
  const refuse = (refusal: Refusal): CheckedHttpRequest => ({ ok: false, refusal });
  const parsed = parseRequestUrl(request.url);
  if (!parsed.ok) return refuse(invalid(grant.rule, `http.fetch: ${parsed.reason}`));
  const checked = checkRequest(request.method, parsed.url, request.headers);
  if (!checked.ok) return refuse(invalid(grant.rule, `http.fetch: ${checked.reason}`));
  if (request.bodyBytes > grant.maxRequestBytes) {
    return refuse(
      overLimit(`${grant.rule}.maxRequestBytes`, `http.fetch: the body is ${request.bodyBytes} bytes, over ${grant.rule}.maxRequestBytes (${grant.maxRequestBytes})`),
    );
  }
  const match = matchRequest(grant, request.method, parsed.url);
  if (match.kind === 'deny') return refuse(deny(match.rule, `http.fetch denied for component "${component}": ${match.reason}`));
  const injected = match.rule.inject?.header.toLowerCase();
  if (injected !== undefined && checked.headers.some((h) => h.name.toLowerCase() === injected)) {
    return refuse(
      invalid(`${match.rule.rule}.inject`, `http.fetch: header "${match.rule.inject!.header}" is set by the host for this URL (${match.rule.rule}.inject); remove it`),
    );
  }
  // The host's key names the recorded call; a guest's own key could make a server drop a different effect.
  if (match.rule.idempotencyKey && checked.headers.some((h) => h.name.toLowerCase() === IDEMPOTENCY_KEY.toLowerCase())) {
    return refuse(
      invalid(`${match.rule.rule}.idempotencyKey`, `http.fetch: header "${IDEMPOTENCY_KEY}" is set by the host for this URL (${match.rule.rule}.idempotencyKey); remove it`),
    );
  }
  const decided: Decided =
    match.kind === 'allow'
      ? { decision: 'allow', rule: match.rule.rule }
      : ask(match.rule.rule, match.rule.askTimeoutMs ?? 60_000, `${request.method} ${parsed.url.href}`);
  return { ok: true, url: parsed.url, headers: checked.headers, decided, rule: match.rule };
}

/**
 * Non-public address ranges a connection to `hostname` may reach: those of every allow or ask rule whose
 * host matches it (an IP-literal rule contributes its own address). Per hostname, because the connection
 * pool resolves and connects by hostname.
 */
export function allowedAddresses(grant: HttpGrant, hostname: string): readonly Cidr[] {
  const out: Cidr[] = [];
  for (const rule of [...grant.allow, ...grant.ask]) if (hostMatches(rule.host, hostname)) out.push(...rule.addresses);
  return out;
}
