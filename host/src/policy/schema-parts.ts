/**
 * Building blocks of the policy schema shared by every grant's settings: strict objects with one message
 * per unknown key, bounded sizes, pattern lists, the `deny | settings` slot.
 */
import { z } from 'zod';
import { messages } from './errors.js';
import { parsePattern } from './matchers.js';
import { utf8Bytes } from '../core/text.js';

export const MiB = 1024 * 1024;

/** `maxCalls` when a granted interface does not set it: an explicit host default, never "unlimited". */
export const DEFAULT_MAX_CALLS = 100_000;

/**
 * Upper bounds every capability shares: a policy cannot grant budgets the host cannot honour (or record)
 * sensibly. A capability's own bounds live in its folder.
 */
export const POLICY_LIMITS = Object.freeze({
  maxCalls: 1_000_000_000,
  /** Patterns per list: matching is a linear scan, and a long list is better written as a prefix. */
  patterns: 1024,
} as const);

/** A strict object whose unknown keys are reported one per key, listing the allowed keys. */
export function strictObject<Shape extends z.core.$ZodLooseShape>(shape: Shape, notAnObject: (got: unknown) => string) {
  const allowed = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? messages.unknownKey(allowed) : notAnObject(issue.input)),
  });
}

export function size(max: number, fallback: number) {
  const error = (issue: { input?: unknown }) => messages.sizeOutOfRange(max, issue.input);
  return z.number({ error }).int({ error }).min(1, { error }).max(max, { error }).default(fallback);
}

export const maxCalls = () => size(POLICY_LIMITS.maxCalls, DEFAULT_MAX_CALLS);


export interface PatternListOptions {
  /** The list's rule path, e.g. `grants.kv.read`: duplicates name the earlier entry by its rule id. */
  readonly rule: string;
  /** A prefix pattern that fits the namespace, for fixes: `history/*` or `counter.*`. */
  readonly prefixExample: string;
  readonly listExample: string;
  /** Checked per pattern when the bound does not depend on a sibling setting. */
  readonly maxBytes?: number;
  /** The problem with a pattern over `maxBytes` (the text after `bad pattern "…": `). */
  readonly tooLong?: (bytes: number) => string;
  /** For a required list: the message when it is absent. */
  readonly missing?: () => string;
}

export function patternList(options: PatternListOptions) {
  const pattern = z
    .string({ error: (issue) => messages.patternNotString(issue.input) })
    .superRefine((text, ctx) => {
      const shape = parsePattern(text, options.prefixExample);
      if ('problem' in shape) {
        ctx.addIssue({ code: 'custom', message: messages.badPattern(text, shape.problem) });
      } else if (options.maxBytes !== undefined && utf8Bytes(text) > options.maxBytes) {
        ctx.addIssue({
          code: 'custom',
          message: messages.badPattern(text, (options.tooLong ?? ((bytes) => `${bytes} bytes, longer than ${options.maxBytes} bytes; shorten it`))(utf8Bytes(text))),
        });
      }
    });
  return z
    .array(pattern, {
      error: (issue) =>
        issue.input === undefined && options.missing
          ? options.missing()
          : messages.patternsNotList(options.listExample, issue.input),
    })
    .max(POLICY_LIMITS.patterns, {
      error: (issue) =>
        messages.patternsTooMany(
          Array.isArray(issue.input) ? issue.input.length : 0,
          POLICY_LIMITS.patterns,
          options.prefixExample,
        ),
    })
    .superRefine((patterns, ctx) => {
      const first = new Map<string, number>();
      patterns.forEach((text, index) => {
        const earlier = first.get(text);
        if (earlier === undefined) first.set(text, index);
        else ctx.addIssue({ code: 'custom', path: [index], message: messages.patternDuplicate(text, `${options.rule}[${earlier}]`) });
      });
    });
}

/** `"deny"` or the interface's settings; anything else is reported with an example of the settings. */
export function grantSlot<Settings extends z.ZodType>(settings: Settings, example: string) {
  return z
    .union([z.literal('deny'), settings], { error: (issue) => messages.grantNotSettings(example, issue.input) })
    .optional();
}


/** How long an `ask` waits for the host's approver; no answer in time is a denial. */
export const DEFAULT_ASK_TIMEOUT_MS = 60_000;
export const MAX_ASK_TIMEOUT_MS = 3_600_000;

export function askTimeout() {
  const error = (issue: { input?: unknown }) => messages.limitOutOfRange(MAX_ASK_TIMEOUT_MS, ' (ms)', issue.input);
  return z.number({ error }).int({ error }).min(1, { error }).max(MAX_ASK_TIMEOUT_MS, { error }).default(DEFAULT_ASK_TIMEOUT_MS);
}
