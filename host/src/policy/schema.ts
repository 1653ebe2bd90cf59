/**
 * The policy format: one zod schema, the single source of truth for what a policy may say, its defaults,
 * and the `PolicyDocument` type. Every object is strict (an unknown key is an error, never ignored: a
 * misspelt key would otherwise silently grant or limit less than its author believes), and every issue
 * carries a human message from errors.ts.
 */
import { z } from 'zod';
import { messages } from './errors.js';
import { DEFAULT_MAX_CALLS, MiB, POLICY_LIMITS, askTimeout, grantSlot, maxCalls, patternList, size, strictObject, utf8Bytes } from './schema-parts.js';
import { HttpSettings, HTTP_EXAMPLE } from './schema-http.js';
import { ModelSettings, MODEL_EXAMPLE } from './schema-model.js';
import { WasiSettings } from './schema-wasi.js';

export { DEFAULT_MAX_CALLS, POLICY_LIMITS } from './schema-parts.js';

export const POLICY_VERSION = 1;
export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export const CAPTURES = ['full', 'digest'] as const;
export const CAPABILITIES = ['log', 'clock', 'random', 'kv', 'events', 'http', 'model'] as const;

/** Defaults the schema fills in; `document` shows them, so the ledger records what was actually enforced. */
export const POLICY_DEFAULTS = Object.freeze({
  capture: 'full',
  maxCalls: DEFAULT_MAX_CALLS,
  logMaxMessageBytes: 4096,
  randomMaxBytes: 4096,
  kvMaxValueBytes: 65_536,
  kvMaxKeyBytes: 256,
  eventsMaxPayloadBytes: 65_536,
} as const);

/**
 * Run limits when the policy does not set them (`limits.*`): every run is bounded, never "unlimited".
 * fuel: units of guest work (one per function entry, function exit and loop iteration; see
 * component/meter.ts) — 10^9 is a few seconds of tight-loop compute on this machine's cores.
 */
export const DEFAULT_LIMITS = Object.freeze({
  fuel: 1_000_000_000,
  timeoutMs: 10_000,
  memoryMiB: 64,
  maxOutputBytes: MiB,
} as const);

/** Upper bounds of `limits.*`. memoryMiB: a wasm32 memory holds at most 4 GiB. */
export const LIMITS_MAX = Object.freeze({
  fuel: 1e15,
  timeoutMs: 3_600_000,
  memoryMiB: 4096,
  maxOutputBytes: 64 * MiB,
} as const);

/** audit.maxCaptureBytes: a value over this many bytes is recorded as its digest and size, even in `full` mode. */
export const DEFAULT_MAX_CAPTURE_BYTES = 64 * 1024;

export const COMPONENT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const LogSettings = strictObject(
  {
    levels: z
      .array(z.enum(LEVELS, { error: (issue) => messages.levelUnknown(issue.input) }), {
        error: (issue) => messages.levelsNotList(issue.input),
      })
      .superRefine((levels, ctx) => {
        const seen = new Set<string>();
        levels.forEach((level, index) => {
          if (seen.has(level)) ctx.addIssue({ code: 'custom', path: [index], message: messages.levelDuplicate(level) });
          seen.add(level);
        });
      })
      // A set of levels: canonical order, so `[warn, info]` and `[info, warn]` are the same policy (same digest).
      .transform((levels) => LEVELS.filter((level) => levels.includes(level)))
      .default(() => [...LEVELS]),
    maxCalls: maxCalls(),
    maxMessageBytes: size(POLICY_LIMITS.logMaxMessageBytes, POLICY_DEFAULTS.logMaxMessageBytes),
  },
  (got) => messages.grantNotSettings('log: { levels: [info, warn, error] }', got),
);

const ClockSettings = strictObject({ maxCalls: maxCalls() }, (got) => messages.grantNotSettings('clock: {}', got));

const RandomSettings = strictObject(
  {
    maxCalls: maxCalls(),
    maxBytes: size(POLICY_LIMITS.randomMaxBytes, POLICY_DEFAULTS.randomMaxBytes),
  },
  (got) => messages.grantNotSettings('random: { maxBytes: 4096 }', got),
);

const KV_EXAMPLE = 'kv: { read: ["count"], write: ["count"] }';

const KvSettings = strictObject(
  {
    maxCalls: maxCalls(),
    read: patternList({ rule: 'grants.kv.read', prefixExample: 'history/*', listExample: '["count", "history/*"]' }).default(() => []),
    write: patternList({ rule: 'grants.kv.write', prefixExample: 'history/*', listExample: '["count", "history/*"]' }).default(() => []),
    maxValueBytes: size(POLICY_LIMITS.kvMaxValueBytes, POLICY_DEFAULTS.kvMaxValueBytes),
    maxKeyBytes: size(POLICY_LIMITS.kvMaxKeyBytes, POLICY_DEFAULTS.kvMaxKeyBytes),
    // Writes to these keys wait for the host's approver (an `ask` rule); `write` wins when both match.
    ask: patternList({ rule: 'grants.kv.ask', prefixExample: 'config/*', listExample: '["config/*"]' }).default(() => []),
    askTimeoutMs: askTimeout(),
  },
  (got) => messages.grantNotSettings(KV_EXAMPLE, got),
).superRefine((kv, ctx) => {
  // A pattern longer than the longest key the component may use can never match: almost surely a mistake.
  for (const list of ['read', 'write', 'ask'] as const) {
    kv[list].forEach((text, index) => {
      const bytes = utf8Bytes(text);
      if (bytes > kv.maxKeyBytes) {
        ctx.addIssue({
          code: 'custom',
          path: [list, index],
          message: messages.badPattern(text, messages.patternTooLongForKeys(bytes, kv.maxKeyBytes)),
        });
      }
    });
  }
});

const EVENTS_EXAMPLE = 'events: { kinds: ["counter.*"] }';

const EventsSettings = strictObject(
  {
    maxCalls: maxCalls(),
    // Required: granting events without saying which kinds would either allow every kind or none, and
    // neither should be the silent reading of `events: {}`.
    kinds: patternList({
      rule: 'grants.events.kinds',
      prefixExample: 'counter.*',
      listExample: '["counter.*"]',
      maxBytes: POLICY_LIMITS.eventKindBytes,
      missing: messages.kindsMissing,
    }),
    maxPayloadBytes: size(POLICY_LIMITS.eventsMaxPayloadBytes, POLICY_DEFAULTS.eventsMaxPayloadBytes),
  },
  (got) => messages.grantNotSettings(EVENTS_EXAMPLE, got),
);

const GrantsSchema = strictObject(
  {
    log: grantSlot(LogSettings, 'log: { levels: [info, warn, error] }'),
    clock: grantSlot(ClockSettings, 'clock: {}'),
    random: grantSlot(RandomSettings, 'random: { maxBytes: 4096 }'),
    kv: grantSlot(KvSettings, KV_EXAMPLE),
    events: grantSlot(EventsSettings, EVENTS_EXAMPLE),
    http: grantSlot(HttpSettings, HTTP_EXAMPLE),
    model: grantSlot(ModelSettings, MODEL_EXAMPLE),
    wasi: WasiSettings.optional(),
  },
  (got) => (got === undefined ? messages.grantsMissing() : messages.grantsNotMapping(got)),
);

const AuditSchema = strictObject(
  {
    capture: z.enum(CAPTURES, { error: (issue) => messages.captureInvalid(issue.input) }).default(POLICY_DEFAULTS.capture),
    maxCaptureBytes: size(16 * MiB, DEFAULT_MAX_CAPTURE_BYTES),
  },
  (got) => messages.auditNotMapping(got),
).default(() => ({ capture: POLICY_DEFAULTS.capture, maxCaptureBytes: DEFAULT_MAX_CAPTURE_BYTES }));

function limit(max: number, fallback: number, unit = '') {
  const error = (issue: { input?: unknown }) => messages.limitOutOfRange(max, unit, issue.input);
  return z.number({ error }).int({ error }).min(1, { error }).max(max, { error }).default(fallback);
}

const LimitsSchema = strictObject(
  {
    fuel: limit(LIMITS_MAX.fuel, DEFAULT_LIMITS.fuel),
    timeoutMs: limit(LIMITS_MAX.timeoutMs, DEFAULT_LIMITS.timeoutMs, ' (ms)'),
    memoryMiB: limit(LIMITS_MAX.memoryMiB, DEFAULT_LIMITS.memoryMiB, ' (MiB)'),
    maxOutputBytes: size(LIMITS_MAX.maxOutputBytes, DEFAULT_LIMITS.maxOutputBytes),
  },
  (got) => messages.limitsNotMapping(got),
).default(() => ({ ...DEFAULT_LIMITS }));

const TOP_LEVEL_KEYS = ['version', 'component', 'audit', 'limits', 'grants'];

export const PolicySchema = strictObject(
  {
    version: z.literal(POLICY_VERSION, {
      error: (issue) => (issue.input === undefined ? messages.versionMissing() : messages.versionUnsupported(issue.input)),
    }),
    component: z
      .string({
        error: (issue) =>
          issue.input === undefined ? messages.componentMissing() : messages.componentNotString(issue.input),
      })
      .regex(COMPONENT_NAME, { error: (issue) => messages.componentBadName(String(issue.input)) }),
    audit: AuditSchema,
    limits: LimitsSchema,
    grants: GrantsSchema,
  },
  (got) => messages.notAMapping(TOP_LEVEL_KEYS, got),
);

/** A validated policy with every default filled in: plain JSON data. */
export type PolicyDocument = z.output<typeof PolicySchema>;
/** What an author may write (defaults optional). */
export type PolicyInput = z.input<typeof PolicySchema>;
