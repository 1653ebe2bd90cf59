/**
 * `grants.model`: which models a component may call (patterns over `provider/model` names such as
 * `local/*` or `gpt-4o-mini`) and its token budgets. Usage is counted from the provider's answers.
 *
 *   model: { models: ["local/*", "gpt-4o-mini"], ask: ["gpt-4o"], maxTokensPerCall: 512, maxTokensPerRun: 4096 }
 */
import type { z } from 'zod';
import { askTimeout, compileMatchers, maxCalls, messages, patternList, size, strictObject, type CompileContext, type Matcher } from '../../policy/index.js';
import type { Grant } from '../define.js';

export const MODEL_EXAMPLE = 'model: { models: ["local/*"], maxTokensPerCall: 512, maxTokensPerRun: 4096 }';

export const MODEL_DEFAULTS = Object.freeze({ maxTokensPerCall: 1024, maxTokensPerRun: 16_384 } as const);
export const MODEL_LIMITS = Object.freeze({ maxTokensPerCall: 1_000_000, maxTokensPerRun: 100_000_000 } as const);

export const ModelSettings = strictObject(
  {
    // Required, like events.kinds: `model: {}` must not silently mean every model or none.
    models: patternList({
      rule: 'grants.model.models',
      prefixExample: 'local/*',
      listExample: '["local/*", "gpt-4o-mini"]',
      maxBytes: 256,
      tooLong: (bytes) => `${bytes} bytes, longer than the longest model name (256 bytes); shorten it`,
      missing: () => 'missing; list the models the component may call, like models: ["local/*", "gpt-4o-mini"]',
    }),
    ask: patternList({ rule: 'grants.model.ask', prefixExample: 'gpt-4o*', listExample: '["gpt-4o"]', maxBytes: 256, tooLong: (bytes) => `${bytes} bytes, longer than the longest model name (256 bytes); shorten it` }).default(() => []),
    askTimeoutMs: askTimeout(),
    maxCalls: maxCalls(),
    maxTokensPerCall: size(MODEL_LIMITS.maxTokensPerCall, MODEL_DEFAULTS.maxTokensPerCall),
    maxTokensPerRun: size(MODEL_LIMITS.maxTokensPerRun, MODEL_DEFAULTS.maxTokensPerRun),
  },
  (got) => messages.grantNotSettings(MODEL_EXAMPLE, got),
);

export interface ModelGrant extends Grant {
  readonly models: readonly Matcher[];
  readonly ask: readonly Matcher[];
  readonly askTimeoutMs: number;
  readonly maxTokensPerCall: number;
  readonly maxTokensPerRun: number;
}

export function compileModel(model: z.output<typeof ModelSettings>, { rule }: CompileContext): ModelGrant {
  return Object.freeze({
    mode: 'grant',
    rule,
    maxCalls: model.maxCalls,
    models: compileMatchers(`${rule}.models`, model.models),
    ask: compileMatchers(`${rule}.ask`, model.ask),
    askTimeoutMs: model.askTimeoutMs,
    maxTokensPerCall: model.maxTokensPerCall,
    maxTokensPerRun: model.maxTokensPerRun,
  });
}
