/**
 * ice:agent/http — outbound HTTP. `decide` runs every check that needs no network (decide.ts) in the
 * run's own thread; the effect runs on the host thread (`FETCH`), which decides the request again on
 * the URL it dispatches, checks every address it connects to, follows redirects (each hop decided and
 * recorded), and adds secrets and the idempotency key. The guest gets the final response; each hop is a
 * ledger record, after the call's intent and result.
 */
import { askDetail } from '../../core/verdict.js';
import type * as HttpInterface from '../../generated/interfaces/ice-agent-http.js';
import { fail, type AbiAnswer } from '../abi.js';
import { hostEffect, Steps, type IceCapability, type LedgerForm, type StepResult } from '../define.js';
import { fields, fromHeaderLines, headerLines, plain } from '../forms.js';
import { EgressPool } from './client.js';
import { allowedAddresses, checkHttpRequest } from './decide.js';
import { performFetch } from './fetch.js';
import { compileHttp, HttpSettings, HTTP_EXAMPLE, type HttpGrant } from './policy.js';
import { SAME_BODY, type FetchReply, type WireRequest, type WireResponse, type WireStep } from './wire.js';

export type { HttpGrant, HttpRule, Injection } from './policy.js';

/** The host thread's half of `fetch`: the network request, with its redirects, secrets and address checks. */
export const FETCH = hostEffect<WireRequest, FetchReply, HttpGrant>(async (request, context) => {
  const { grant } = context;
  // Each (component, policy) has its own connection pool, kept across its runs, never shared.
  const pool = context.shared('egress', () => new EgressPool({
    allowedFor: (hostname) => allowedAddresses(grant, hostname),
    ...(context.config.resolve ? { resolve: context.config.resolve } : {}),
    ...(context.config.ca ? { ca: context.config.ca } : {}),
  }));
  return performFetch(
    {
      grant,
      component: context.component,
      runId: context.runId,
      seq: context.seq,
      pool,
      secrets: context.secrets,
      approve: context.approve,
      signal: context.signal,
      ...(context.traceparent ? { traceparent: context.traceparent } : {}),
    },
    request,
  );
});

/** A request and a response, field by field; the response also names where the host connected and what it added. */
const FETCH_FORM: LedgerForm = {
  args([request]) {
    const r = request as HttpInterface.Request;
    return [{ method: r.method, url: r.url, headers: headerLines(r.headers), body: r.body ?? null }];
  },
  result(value) {
    const r = value as HttpInterface.Response & { address?: string; injected?: readonly string[] };
    return {
      status: r.status,
      headers: headerLines(r.headers),
      body: r.body,
      // Where the host connected and what it added (secrets by name): audit facts, not part of the answer.
      ...(r.address === undefined ? {} : { address: r.address }),
      ...(r.injected && r.injected.length > 0 ? { injected: [...r.injected] } : {}),
    };
  },
  decode(recorded) {
    const f = fields(recorded);
    return { status: plain(f.status) as number, headers: fromHeaderLines(plain(f.headers) as string[]), body: plain(f.body) as Uint8Array };
  },
};

export const http: IceCapability<'http', typeof HttpInterface, HttpGrant> = {
  kind: 'ice',
  name: 'http',
  summary: 'outbound HTTP under URL rules, with secrets the guest never sees',
  policy: { schema: HttpSettings, example: HTTP_EXAMPLE, deniable: true, compile: compileHttp },
  functions: { fetch: { effect: 'host', form: FETCH_FORM } },
  hostEffects: { fetch: FETCH },
  checkLoad(grant, { policySource, secrets }) {
    for (const rule of [...grant.allow, ...grant.ask]) {
      const name = rule.inject?.secret;
      if (name !== undefined && !secrets.get(name)) {
        return {
          code: 'missing-secret',
          message: `policy ${policySource}: ${rule.rule}.inject needs the secret ${name}, which is not set in ${secrets.describe}; set it (e.g. ${name}=… in the environment, or ice run --secrets <file>)`,
        };
      }
    }
    return undefined;
  },
  operations(grant, run) {
    return {
      fetch: {
        decide([request]) {
          const checked = checkHttpRequest(grant, run.component, {
            method: request.method,
            url: request.url,
            headers: request.headers,
            bodyBytes: request.body?.byteLength ?? 0,
          });
          if (!checked.ok) return checked.refusal;
          return checked.decided.decision === 'ask' && request.body ? { ...checked.decided, detail: askDetail('body', request.body) } : checked.decided;
        },
        perform([request], call) {
          const reply = call.host(FETCH, toWire(request));
          return new Steps(
            fromWire(reply.first),
            reply.hops.map((hop) => ({
              args: [fromWireRequest(hop.request, request.body)],
              rule: hop.rule,
              result: fromWire(hop.result),
              durationUs: hop.durationUs,
              ...(hop.approval ? { approval: hop.approval } : {}),
            })),
          );
        },
      },
    };
  },
  // fetch(req) is flattened to 9 values: method, url, headers (list of 16-byte {name, value}), body option
  // (tag, ptr, len), then ret; result<response, error>: status u16 at 4, headers at 8/12, body at 16/20.
  binding: (abi, { fetch }) => ({
    fetch: (mp, ml, up, ul, hp, hl, bodyTag, bp, bl, ret) => {
      if (bodyTag !== 0 && bodyTag !== 1) throw new TypeError(`invalid option discriminant ${bodyTag} for the request body`);
      const request = {
        method: abi.string(mp!, ml!),
        url: abi.string(up!, ul!),
        headers: abi.stringPairs(hp!, hl!, 'name', 'value'),
        ...(bodyTag === 1 ? { body: abi.bytesCopy(bp!, bl!) } : {}),
      };
      const answer = fetch!(request) as AbiAnswer;
      if (answer.tag === 'err') return fail(abi, ret!, 4, answer.val);
      const response = answer.val as { status: number; headers: Record<string, string>[]; body: Uint8Array };
      const [headers, count] = abi.lowerStringPairs(response.headers, 'name', 'value');
      const [body, size] = abi.lowerBytes(response.body);
      const p = abi.area(ret!, 24);
      abi.u8(p, 0);
      abi.u16(p + 4, response.status);
      abi.u32(p + 8, headers);
      abi.u32(p + 12, count);
      abi.u32(p + 16, body);
      abi.u32(p + 20, size);
    },
  }),
};

function toWire(request: HttpInterface.Request): WireRequest {
  return {
    method: request.method,
    url: request.url,
    headers: request.headers.map(({ name, value }) => ({ name, value })),
    body: request.body === undefined ? null : Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength).toString('base64'),
  };
}

/** A hop's request; its body, when it has one, is the guest's own (see SAME_BODY). */
function fromWireRequest(request: WireRequest, guestBody: Uint8Array | undefined): HttpInterface.Request {
  const body = request.body === SAME_BODY ? guestBody : request.body === null ? undefined : new Uint8Array(Buffer.from(request.body, 'base64'));
  return { method: request.method, url: request.url, headers: [...request.headers], ...(body === undefined ? {} : { body }) };
}

/** The guest's response, plus the audit facts (address, what the host added) the ledger form records. */
function fromWire(step: WireStep<WireResponse>): StepResult {
  if (!('ok' in step)) return step;
  const { status, headers, body, address, injected } = step.ok;
  return { ok: { status, headers: [...headers], body: new Uint8Array(Buffer.from(body, 'base64')), address, injected } };
}
