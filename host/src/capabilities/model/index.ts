/**
 * ice:agent/model — completions from providers the host configures. `decide` checks the model name
 * against grants.model (models, then ask), the request's token bound against maxTokensPerCall, and what
 * the run has used so far plus that bound against maxTokensPerRun, so a run can never be answered past
 * its budget. Usage is counted from the provider's answer. The call runs on the host thread (`COMPLETE`).
 */
import type * as ModelInterface from '../../generated/interfaces/ice-agent-model.js';
import { quote, utf8Bytes } from '../../core/text.js';
import { allow, ask, deny, invalid, overLimit } from '../../core/verdict.js';
import { firstMatch } from '../../policy/index.js';
import { fail, type AbiAnswer } from '../abi.js';
import { hostEffect, RefusedEffect, Steps, type IceCapability, type LedgerForm, type WireStep } from '../define.js';
import { fields, plain } from '../forms.js';
import { compileModel, ModelSettings, MODEL_EXAMPLE, type ModelGrant } from './policy.js';
import { completeWith, type CompletionReply, type CompletionWire } from './providers.js';

export type { ModelGrant } from './policy.js';
export type { ModelConfig, OpenAiCompatibleConfig } from './providers.js';

/** Largest prompt (all message contents) one call may send; it crosses to the host thread and the provider. */
export const MODEL_MAX_PROMPT_BYTES = 4 * 1024 * 1024;

/** The host thread's half of `complete`: the provider call. */
export const COMPLETE = hostEffect<CompletionWire, WireStep<CompletionReply>, ModelGrant>(async (request, { grant, component, config, secrets }) => {
  // The run's thread decided (and any ask was approved); checked again here, so the host thread never
  // calls a provider for a model the policy does not name.
  if (!firstMatch(grant.models, request.model) && !firstMatch(grant.ask, request.model)) {
    return { refused: deny(`${grant.rule}.models`, `model.complete: model "${request.model}" is not granted to component "${component}"`) };
  }
  return completeWith(config.models ?? {}, secrets, request);
});

/** The request with its messages as `role: content` lines, and sizes a reader scans for; the completion field by field. */
const COMPLETE_FORM: LedgerForm = {
  args([request]) {
    const r = request as ModelInterface.CompletionRequest;
    return [
      {
        model: r.model,
        messageCount: r.messages.length,
        messageBytes: r.messages.reduce((n, m) => n + Buffer.byteLength(m.content, 'utf8'), 0),
        messages: r.messages.map((m) => `${m.role}: ${m.content}`),
        maxTokens: r.maxTokens,
      },
    ];
  },
  result(value) {
    const c = value as ModelInterface.Completion;
    return { text: c.text, usage: { inputTokens: c.usage.inputTokens, outputTokens: c.usage.outputTokens } };
  },
  decode(recorded) {
    const f = fields(recorded);
    const usage = fields(f.usage ?? { value: null });
    return { text: plain(f.text) as string, usage: { inputTokens: plain(usage.inputTokens) as number, outputTokens: plain(usage.outputTokens) as number } };
  },
};

export const model: IceCapability<'model', typeof ModelInterface, ModelGrant> = {
  kind: 'ice',
  name: 'model',
  summary: 'language-model completions under model patterns and token budgets',
  policy: { schema: ModelSettings, example: MODEL_EXAMPLE, deniable: true, compile: compileModel },
  functions: { complete: { effect: 'host', form: COMPLETE_FORM } },
  hostEffects: { complete: COMPLETE },
  operations(grant, run) {
    /** Tokens this run has used (input + output), from the providers' answers. */
    let used = 0;
    return {
      complete: {
        decide([request]) {
          const { model: name, messages, maxTokens } = request;
          if (messages.length === 0) return invalid(grant.rule, 'model.complete: messages is empty; send at least one message');
          if (maxTokens === 0) return invalid(`${grant.rule}.maxTokensPerCall`, 'model.complete: max-tokens is 0; ask for at least 1 token');
          const bytes = messages.reduce((n, m) => n + utf8Bytes(m.content) + utf8Bytes(m.role), 0);
          if (bytes > MODEL_MAX_PROMPT_BYTES) {
            return overLimit(grant.rule, `model.complete: the messages are ${bytes} bytes, over the host's ${MODEL_MAX_PROMPT_BYTES} bytes per call`);
          }
          if (maxTokens > grant.maxTokensPerCall) {
            return overLimit(`${grant.rule}.maxTokensPerCall`, `model.complete: max-tokens ${maxTokens} is over ${grant.rule}.maxTokensPerCall (${grant.maxTokensPerCall})`);
          }
          if (used + maxTokens > grant.maxTokensPerRun) {
            return overLimit(
              `${grant.rule}.maxTokensPerRun`,
              `model.complete: this run has used ${used} tokens; ${maxTokens} more could pass ${grant.rule}.maxTokensPerRun (${grant.maxTokensPerRun})`,
            );
          }
          const allowed = firstMatch(grant.models, name);
          if (allowed) return allow(allowed.rule);
          const asked = firstMatch(grant.ask, name);
          if (asked) return ask(asked.rule, grant.askTimeoutMs, `complete with model ${quote(name)} (max ${maxTokens} tokens)`);
          return deny(
            `${grant.rule}.models`,
            `model.complete(${quote(name)}) denied for component "${run.component}": no rule in ${grant.rule}.models matches; add ${quote(name)} to it`,
          );
        },
        perform([request], call) {
          const answer = call.host(COMPLETE, {
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
  },
  // complete(req) is flattened to: model (ptr, len), messages (16-byte {role, content}), max-tokens, ret;
  // result<completion, error>: text at 4/8, usage input at 12, output at 16.
  binding: (abi, { complete }) => ({
    complete: (mp, ml, lp, ll, maxTokens, ret) => {
      const request = { model: abi.string(mp!, ml!), messages: abi.stringPairs(lp!, ll!, 'role', 'content'), maxTokens: maxTokens! >>> 0 };
      const answer = complete!(request) as AbiAnswer;
      if (answer.tag === 'err') return fail(abi, ret!, 4, answer.val);
      const completion = answer.val as { text: string; usage: { inputTokens: number; outputTokens: number } };
      const [text, length] = abi.lowerString(completion.text);
      const p = abi.area(ret!, 20);
      abi.u8(p, 0);
      abi.u32(p + 4, text);
      abi.u32(p + 8, length);
      abi.u32(p + 12, completion.usage.inputTokens >>> 0);
      abi.u32(p + 16, completion.usage.outputTokens >>> 0);
    },
  }),
};
