/**
 * ice:agent/model — completions from providers the host configures. `decide` checks the model name
 * against grants.model (models, then ask), the request's token bound against maxTokensPerCall, and what
 * the run has used so far plus that bound against maxTokensPerRun, so a run can never be answered past
 * its budget. Usage is counted from the provider's answer.
 */
import type * as ModelInterface from '../generated/interfaces/ice-agent-model.js';
import { firstMatch, type ModelGrant } from '../policy/index.js';
import type { HostGateway } from './gateway.js';
import { allow, ask, deny, invalid, overLimit, quote, utf8Bytes, RefusedEffect, Steps, type InterfaceOperations, type RunScope } from './operation.js';

/** Largest prompt (all message contents) one call may send; it crosses to the host thread and the provider. */
export const MODEL_MAX_PROMPT_BYTES = 4 * 1024 * 1024;

export function createModel(grant: ModelGrant, scope: RunScope, gateway: HostGateway): InterfaceOperations<typeof ModelInterface> {
  /** Tokens this run has used (input + output), from the providers' answers. */
  let used = 0;
  return {
    complete: {
      decide([request]) {
        const { model, messages, maxTokens } = request;
        if (messages.length === 0) return invalid(grant.rule, 'model.complete: messages is empty; send at least one message');
        if (maxTokens === 0) return invalid(`${grant.rule}.maxTokensPerCall`, 'model.complete: max-tokens is 0; ask for at least 1 token');
        const bytes = messages.reduce((n, m) => n + utf8Bytes(m.content) + utf8Bytes(m.role), 0);
        if (bytes > MODEL_MAX_PROMPT_BYTES) {
          return overLimit(grant.rule, `model.complete: the messages are ${bytes} bytes, over the host's ${MODEL_MAX_PROMPT_BYTES} bytes per call`);
        }
        if (maxTokens > grant.maxTokensPerCall) {
          return overLimit(
            `${grant.rule}.maxTokensPerCall`,
            `model.complete: max-tokens ${maxTokens} is over ${grant.rule}.maxTokensPerCall (${grant.maxTokensPerCall})`,
          );
        }
        if (used + maxTokens > grant.maxTokensPerRun) {
          return overLimit(
            `${grant.rule}.maxTokensPerRun`,
            `model.complete: this run has used ${used} tokens; ${maxTokens} more could pass ${grant.rule}.maxTokensPerRun (${grant.maxTokensPerRun})`,
          );
        }
        const allowed = firstMatch(grant.models, model);
        if (allowed) return allow(allowed.rule);
        const asked = firstMatch(grant.ask, model);
        if (asked) return ask(asked.rule, grant.askTimeoutMs, `complete with model ${quote(model)} (max ${maxTokens} tokens)`);
        return deny(
          `${grant.rule}.models`,
          `model.complete(${quote(model)}) denied for component "${scope.component}": no rule in ${grant.rule}.models matches; add ${quote(model)} to it`,
        );
      },
      perform([request]) {
        const answer = gateway.complete(scope.runId, {
          model: request.model,
          messages: request.messages.map(({ role, content }) => ({ role, content })),
          maxTokens: request.maxTokens,
        });
        if ('refused' in answer) return new RefusedEffect(answer.refused);
        if ('failed' in answer) return new Steps({ failed: answer.failed });
        // Counted as reported, even past the request's bound: the budget is what was actually spent.
        used += answer.ok.usage.inputTokens + answer.ok.usage.outputTokens;
        return { text: answer.ok.text, usage: { ...answer.ok.usage } };
      },
    },
  };
}
