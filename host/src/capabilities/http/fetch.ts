/**
 * One guest `http.fetch` on the host thread: the request is decided again on the URL object that is sent,
 * secrets are added after that decision, and redirects are followed here — never by a library — with every
 * hop decided against the whole policy (deny rules, allow rules, ask rules with the approver), bounded by
 * `maxRedirects`, and reported as its own step so the ledger has one record per hop.
 *
 * Secrets: a hop gets the secret of the rule that allowed it only while the fetch stays on the origin that
 * secret was first sent to; once a redirect leaves that origin the secret is dropped for every later hop.
 * Credentials the guest set itself (Authorization, Cookie) are dropped on a cross-origin hop too. A
 * response that echoes an injected value back has it replaced by `[secret NAME]` before the guest or the
 * ledger sees it, in each of its common forms (redact.ts). Such a request asks for an unencoded response
 * (`Accept-Encoding: identity`, whatever the guest asked), and a server that encodes anyway is decoded
 * before the search (encoding.ts), or its body refused when the coding is unknown.
 */
import { deny, overLimit, type ApprovalRecord, type Refusal } from '../../core/verdict.js';
import type { ApprovalAnswer, ApprovalRequest } from '../define.js';
import type { SecretSource } from '../secrets.js';
import type { EgressPool, HopResult } from './client.js';
import { checkHttpRequest, IDEMPOTENCY_KEY } from './decide.js';
import type { HttpGrant, HttpRule } from './policy.js';
import { decodeBody } from './encoding.js';
import { Redactor, type Secret } from './redact.js';
import type { Header } from './rules.js';
import { SAME_BODY, type FetchReply, type WireHop, type WireRequest, type WireResponse, type WireStep } from './wire.js';

export interface FetchServices {
  readonly grant: HttpGrant;
  readonly component: string;
  readonly runId: string;
  /** The seq of the call's intent record: with the run id, the idempotency key of its effect. */
  readonly seq: number | undefined;
  /** This component's connection pool (never shared with another component or policy). */
  readonly pool: EgressPool;
  readonly secrets: SecretSource;
  readonly approve: (request: ApprovalRequest) => Promise<ApprovalAnswer>;
  /** Aborted when the run ends. */
  readonly signal?: AbortSignal;
  /** The run's W3C trace context (a traced run): sent as `traceparent` in place of any the guest set. */
  readonly traceparent?: string;
}

const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** Guest-set credentials that must not follow a redirect to another origin (the undici/axios leaks). */
const CREDENTIALS: ReadonlySet<string> = new Set(['authorization', 'cookie', 'cookie2']);
/** Headers that describe a body, dropped when a redirect turns the request into a GET without one. */
const BODY_HEADERS: ReadonlySet<string> = new Set(['content-type', 'content-encoding', 'content-language', 'content-location']);
/** On a request that carries a secret the host, not the guest, picks the response's encoding: none. */
const IDENTITY: Header = { name: 'Accept-Encoding', value: 'identity' };

interface Hop {
  method: string;
  url: URL;
  headers: Header[];
  body: Uint8Array | undefined;
  rule: HttpRule;
}

export async function performFetch(services: FetchServices, request: WireRequest): Promise<FetchReply> {
  const { grant } = services;
  const deadline = performance.now() + grant.timeoutMs;
  const body = request.body === null ? undefined : new Uint8Array(Buffer.from(request.body, 'base64'));
  const checked = checkHttpRequest(grant, services.component, { ...request, bodyBytes: body?.byteLength ?? 0 });
  // The run's thread decided the same way before asking; a different answer here means something is
  // wrong, so fail closed. An `ask` reaching here was approved there.
  if (!checked.ok) return { first: { refused: checked.refusal }, hops: [] };
  let hop: Hop = { method: request.method, url: checked.url, headers: checked.headers, body, rule: checked.rule! };
  const trail: SecretTrail = { origins: new Map(), dropped: new Set() };
  const carried: Secret[] = [];
  let first: WireStep<WireResponse> | undefined;
  const hops: WireHop[] = [];
  const report = (step: WireStep<WireResponse>, current: Hop, started: number, approval?: ApprovalRecord) => {
    if (first === undefined) first = step;
    else {
      hops.push({
        request: toWire(current),
        rule: current.rule.rule,
        result: step,
        durationUs: Math.round((performance.now() - started) * 1000),
        ...(approval ? { approval } : {}),
      });
    }
  };
  let approval: ApprovalRecord | undefined;

  for (let count = 0; ; count++) {
    const started = performance.now();
    const injection = inject(hop, trail, services.secrets);
    if ('failed' in injection) {
      report({ failed: injection.failed }, hop, started, approval);
      break;
    }
    const idempotency = [...idempotencyHeader(hop, services), ...traceHeader(services)];
    // Every secret this fetch has sent so far: a later hop's server may have been handed it in a URL.
    for (const secret of injection.values) if (!carried.some((c) => c.value === secret.value)) carried.push(secret);
    const redactor = new Redactor(carried);
    const guarded = injection.values.length > 0;
    const guestHeaders = hop.headers.filter((h) => {
      const name = h.name.toLowerCase();
      return !(guarded && name === 'accept-encoding') && !(services.traceparent && (name === 'traceparent' || name === 'tracestate'));
    });
    const remaining = deadline - performance.now();
    const sent: HopResult =
      remaining <= 0
        ? { ok: false, kind: 'timeout', message: `the fetch took longer than ${grant.rule}.timeoutMs (${grant.timeoutMs} ms)` }
        : await services.pool.send(
            {
              method: hop.method,
              url: hop.url,
              headers: [...guestHeaders, ...injection.headers, ...(guarded ? [IDENTITY] : []), ...idempotency],
              ...(hop.body ? { body: hop.body } : {}),
            },
            { timeoutMs: remaining, maxResponseBytes: grant.maxResponseBytes, ...(services.signal ? { signal: services.signal } : {}) },
          );
    if (!sent.ok) {
      report(failure(grant, hop.rule, sent, services.component, redactor), hop, started, approval);
      break;
    }
    const response = redactedResponse(grant, hop, sent, redactor, [
      ...injection.names,
      ...(guarded ? [`${IDENTITY.name}: ${IDENTITY.value}`] : []),
      ...idempotency.map((h) => `${h.name}: ${h.value}`),
    ]);
    if ('failed' in response) {
      report(response, hop, started, approval);
      break;
    }
    // From the redacted headers: a Location carrying an injected value must not put it into the next hop's URL (and the ledger).
    const location = REDIRECTS.has(sent.status) ? response.headers.find((h) => h.name.toLowerCase() === 'location')?.value : undefined;
    const follow = location !== undefined && grant.maxRedirects > 0;
    // The body of a redirect that is followed goes nowhere (the guest gets the last hop's): not carried or kept.
    report({ ok: follow ? { ...response, body: '' } : response }, hop, started, approval);
    approval = undefined;
    if (!follow) break;
    const next = nextHop(hop, sent.status, location!);
    const hopStarted = performance.now();
    if ('refused' in next) {
      hops.push({ request: next.request, rule: grant.rule, result: { refused: next.refused }, durationUs: 0 });
      break;
    }
    if (count + 1 > grant.maxRedirects) {
      const refused = overLimit(`${grant.rule}.maxRedirects`, `http.fetch: the server redirected more than ${grant.rule}.maxRedirects (${grant.maxRedirects}) times; the last hop was not followed`);
      hops.push({ request: toWire(next.hop), rule: `${grant.rule}.maxRedirects`, result: { refused }, durationUs: 0 });
      break;
    }
    const decided = checkHttpRequest(grant, services.component, {
      method: next.hop.method,
      url: next.hop.url.href,
      headers: next.hop.headers,
      bodyBytes: next.hop.body?.byteLength ?? 0,
    });
    if (!decided.ok) {
      hops.push({ request: toWire(next.hop), rule: decided.refusal.rule, result: { refused: redirectRefusal(decided.refusal) }, durationUs: 0 });
      break;
    }
    hop = { ...next.hop, url: decided.url, headers: decided.headers, rule: decided.rule! };
    if (decided.decided.decision === 'ask') {
      const asked = decided.decided;
      const answer = await services.approve({
        runId: services.runId,
        component: services.component,
        call: 'http.fetch (redirect)',
        rule: asked.rule,
        summary: asked.summary,
        timeoutMs: asked.timeoutMs,
      });
      const record: ApprovalRecord = { by: answer.by, answer: answer.answer, waitedMs: answer.waitedMs };
      if (answer.answer !== 'approved') {
        const refused = deny(asked.rule, `http.fetch: the redirect to ${hop.url.href} needs approval under ${asked.rule} and was not approved (${answer.answer} by ${answer.by})`);
        hops.push({ request: toWire(hop), rule: asked.rule, result: { refused }, durationUs: Math.round((performance.now() - hopStarted) * 1000), approval: record });
        break;
      }
      approval = record;
    }
  }
  return { first: first!, hops };
}

/**
 * `Idempotency-Key: <run>-<seq>` for a request with a body whose rule asks for it: the same key for every
 * hop of the call (a 307/308 resends the same effect), and for a replay of the same record.
 */
function idempotencyHeader(hop: Hop, services: FetchServices): Header[] {
  if (!hop.rule.idempotencyKey || hop.body === undefined || services.seq === undefined) return [];
  return [{ name: IDEMPOTENCY_KEY, value: `${services.runId}-${services.seq}` }];
}

/** The run's trace context for the receiving service (W3C Trace Context), when the run is traced. */
function traceHeader(services: FetchServices): Header[] {
  return services.traceparent ? [{ name: 'traceparent', value: services.traceparent }] : [];
}

/** Which origin each secret was first sent to in this fetch, and which secrets a hop has carried away from it. */
interface SecretTrail {
  readonly origins: Map<string, string>;
  readonly dropped: Set<string>;
}

/** The injected headers for `hop`, or why a secret the rule needs is missing. */
function inject(
  hop: Hop,
  trail: SecretTrail,
  secrets: SecretSource,
): { headers: Header[]; names: string[]; values: Secret[] } | { failed: string } {
  // Any hop off a secret's origin drops that secret for the rest of the fetch, even if a later hop returns.
  for (const [secret, origin] of trail.origins) if (origin !== hop.url.origin) trail.dropped.add(secret);
  const spec = hop.rule.inject;
  if (!spec || trail.dropped.has(spec.secret)) return { headers: [], names: [], values: [] };
  const value = secrets.get(spec.secret);
  if (value === undefined || value === '') {
    return { failed: `http.fetch: the secret ${spec.secret} that ${hop.rule.rule}.inject adds is not set on the host; set it in ${secrets.describe}` };
  }
  trail.origins.set(spec.secret, hop.url.origin);
  // A function replacer: the value goes in literally, never read as `$&`, `$'`, ... patterns.
  const sent = spec.format.replace('{}', () => value);
  return {
    headers: [{ name: spec.header, value: sent }],
    names: [`${spec.header} ← secret ${spec.secret}`],
    values: [{ name: spec.secret, value, sent }],
  };
}

function nextHop(
  current: Hop,
  status: number,
  location: string,
): { hop: Omit<Hop, 'rule'> & { rule?: HttpRule } } | { refused: Refusal; request: WireRequest } {
  let url: URL;
  try {
    url = new URL(location, current.url);
  } catch {
    const refused = deny(`grants.http`, `http.fetch: the server redirected to ${JSON.stringify(location.slice(0, 200))}, which is not a URL; not followed`);
    return { refused, request: { method: current.method, url: location.slice(0, 2048), headers: [], body: null } };
  }
  // 303 makes any method but HEAD a GET; 301 and 302 make POST a GET (what every client does); 307 and
  // 308 keep method and body.
  const toGet = (status === 303 && current.method !== 'HEAD') || ((status === 301 || status === 302) && current.method === 'POST');
  const crossOrigin = url.origin !== current.url.origin;
  const headers = current.headers.filter((h) => {
    const lower = h.name.toLowerCase();
    if (crossOrigin && CREDENTIALS.has(lower)) return false;
    return !(toGet && BODY_HEADERS.has(lower));
  });
  return {
    hop: {
      method: toGet ? 'GET' : current.method,
      url,
      headers,
      body: toGet ? undefined : current.body,
    },
  };
}

function redirectRefusal(refusal: Refusal): Refusal {
  return { ...refusal, error: { tag: refusal.error.tag, val: `redirect not followed: ${refusal.error.val}` } };
}

function failure(grant: HttpGrant, rule: HttpRule, sent: Extract<HopResult, { ok: false }>, component: string, redactor: Redactor): WireStep<WireResponse> {
  // Our messages never quote a response or a header value; redacting them anyway keeps that a guarantee.
  const result = { ...sent, message: redactor.text(sent.message) };
  switch (result.kind) {
    case 'address':
      return { refused: deny(`${rule.rule}.addresses`, `http.fetch denied for component "${component}": ${result.message}`) };
    case 'timeout':
      return { refused: overLimit(`${grant.rule}.timeoutMs`, `http.fetch: ${result.message}`) };
    case 'too-large':
      return { refused: overLimit(`${grant.rule}.maxResponseBytes`, `http.fetch: ${result.message}`) };
    case 'network':
      return { failed: `http.fetch: ${result.message}` };
  }
}

/**
 * A hop's request for its record. A body is only ever the guest's own (307/308 resend it), so it is sent
 * back as `=` rather than again in full: the run's thread has it.
 */
function toWire(hop: Pick<Hop, 'method' | 'url' | 'headers' | 'body'>): WireRequest {
  return {
    method: hop.method,
    url: hop.url.href,
    headers: hop.headers.map(({ name, value }) => ({ name, value })),
    body: hop.body ? SAME_BODY : null,
  };
}

/**
 * The response as the guest and the ledger get it: decoded when the request carried a secret and the
 * server encoded it anyway, then with every form of every secret this fetch sent replaced, in the
 * body and in every header (a Location among them, before it becomes the next hop's URL).
 */
function redactedResponse(grant: HttpGrant, hop: Hop, sent: Extract<HopResult, { ok: true }>, redactor: Redactor, injected: string[]): WireResponse | { failed: string } {
  let headers: readonly Header[] = sent.headers;
  let body = sent.body;
  if (!redactor.empty) {
    const decoded = decodeBody(sent.headers, sent.body, grant.maxResponseBytes);
    if ('failed' in decoded) {
      return { failed: `http.fetch: the response from ${hop.url.origin} to a request that carried a secret ${decoded.failed}; it was not passed on, since the host could not check it for the secret` };
    }
    headers = decoded.headers;
    body = decoded.body;
  }
  const redactedBody = redactor.bytes(body);
  const redactedHeaders: Header[] = [];
  for (const { name, value } of headers) {
    const n = redactor.latin1(name);
    const v = redactor.latin1(value);
    if (n === undefined || v === undefined || redactedBody === undefined) {
      return { failed: `http.fetch: the response from ${hop.url.origin} repeats a secret in a form the host could not replace; it was not passed on` };
    }
    redactedHeaders.push({ name: n, value: v });
  }
  if (redactedBody === undefined) {
    return { failed: `http.fetch: the response from ${hop.url.origin} repeats a secret in a form the host could not replace; it was not passed on` };
  }
  return {
    status: sent.status,
    headers: redactedHeaders,
    body: Buffer.from(redactedBody.buffer, redactedBody.byteOffset, redactedBody.byteLength).toString('base64'),
    address: sent.address,
    injected,
  };
}
