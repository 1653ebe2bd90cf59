/** The run worker's side of the gateway: each call blocks the guest's thread on the bridge until the host thread answers. */
import type { ApprovalAnswer, ApprovalRequest, CompletionReply, CompletionWire, FetchReply, HostGateway, WireRequest, WireStep } from '../capabilities/gateway.js';
import type { BridgeClient } from './bridge.js';

export class BridgeGateway implements HostGateway {
  constructor(private readonly bridge: BridgeClient) {}

  fetch(runId: string, request: WireRequest): FetchReply {
    return this.bridge.call('http.fetch', { runId, request }) as FetchReply;
  }

  complete(runId: string, request: CompletionWire): WireStep<CompletionReply> {
    return this.bridge.call('model.complete', { runId, request }) as WireStep<CompletionReply>;
  }

  approve(request: ApprovalRequest): ApprovalAnswer {
    return this.bridge.call('approve', request) as ApprovalAnswer;
  }
}
