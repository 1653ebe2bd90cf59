/**
 * ice:agent/http — outbound HTTP. `decide` runs every check that needs no network (egress/decide.ts) in
 * the run's own thread; `perform` hands the request to the host thread (the gateway), which decides it
 * again on the URL it dispatches, checks every address it connects to, follows redirects (each hop decided
 * and recorded), and adds secrets. The guest gets the final response; each hop is a ledger record.
 */
import type * as HttpInterface from '../generated/interfaces/ice-agent-http.js';
import { checkHttpRequest } from '../egress/decide.js';
import type { HttpGrant } from '../policy/index.js';
import { SAME_BODY, type HostGateway, type WireRequest, type WireResponse, type WireStep } from './gateway.js';
import { Steps, type InterfaceOperations, type RunScope, type StepResult } from './operation.js';

export function createHttp(grant: HttpGrant, scope: RunScope, gateway: HostGateway): InterfaceOperations<typeof HttpInterface> {
  return {
    fetch: {
      decide([request]) {
        const checked = checkHttpRequest(grant, scope.component, {
          method: request.method,
          url: request.url,
          headers: request.headers,
          bodyBytes: request.body?.byteLength ?? 0,
        });
        return checked.ok ? checked.decided : checked.refusal;
      },
      perform([request]) {
        const reply = gateway.fetch(scope.runId, toWire(request));
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
}

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

/** The guest's response, plus the audit facts (address, injected secret names) the ledger form records. */
function fromWire(step: WireStep<WireResponse>): StepResult {
  if (!('ok' in step)) return step;
  const { status, headers, body, address, injected } = step.ok;
  return { ok: { status, headers: [...headers], body: new Uint8Array(Buffer.from(body, 'base64')), address, injected } };
}
