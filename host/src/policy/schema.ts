/**
 * The policy format, version 1: the part every policy shares (version, component, audit, limits) and
 * the `grants` mapping, assembled from the capabilities' slices (capabilities/policy.ts builds the one
 * schema from the registry). Every object is strict (an unknown key is an error, never ignored: a
 * misspelt key would otherwise silently grant or limit less than its author believes), and every issue
 * carries a human message from errors.ts.
 */
import { z } from 'zod';
import { messages } from './errors.js';
import { MiB, size, strictObject } from './schema-parts.js';

export { DEFAULT_MAX_CALLS, POLICY_LIMITS } from './schema-parts.js';

export const POLICY_VERSION = 1;
export const CAPTURES = ['full', 'digest'] as const;

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
  // The bytes of ledger records one run may append (a run over it gets `limit`; see ledger/budget.ts).
  maxLedgerBytes: 256 * MiB,
  // The deadline pauses while a human answers an ask, so asks are what could stretch a run without end.
  maxAsks: 20,
} as const);

/** Upper bounds of `limits.*`. memoryMiB: a wasm32 memory holds at most 4 GiB. */
export const LIMITS_MAX = Object.freeze({
  fuel: 1e15,
  timeoutMs: 3_600_000,
  memoryMiB: 4096,
  maxOutputBytes: 64 * MiB,
  maxLedgerBytes: 64 * 1024 * MiB,
  maxAsks: 1000,
} as const);

/** audit.maxCaptureBytes: a value over this many bytes is recorded as its digest and size, even in `full` mode. */
export const DEFAULT_MAX_CAPTURE_BYTES = 64 * 1024;

export const COMPONENT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const AuditSchema = strictObject(
  {
    capture: z.enum(CAPTURES, { error: (issue) => messages.captureInvalid(issue.input) }).default('full'),
    maxCaptureBytes: size(16 * MiB, DEFAULT_MAX_CAPTURE_BYTES),
  },
  (got) => messages.auditNotMapping(got),
).default(() => ({ capture: 'full' as const, maxCaptureBytes: DEFAULT_MAX_CAPTURE_BYTES }));

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
    maxLedgerBytes: size(LIMITS_MAX.maxLedgerBytes, DEFAULT_LIMITS.maxLedgerBytes),
    maxAsks: limit(LIMITS_MAX.maxAsks, DEFAULT_LIMITS.maxAsks),
  },
  (got) => messages.limitsNotMapping(got),
).default(() => ({ ...DEFAULT_LIMITS }));

const TOP_LEVEL_KEYS = ['version', 'component', 'sha256', 'audit', 'limits', 'grants'];

/** The whole policy schema, given the `grants.<name>` slot of every capability (in registry order). */
export function policySchema(grants: Readonly<Record<string, z.ZodType>>) {
  const names = Object.keys(grants);
  const GrantsSchema = strictObject(grants, (got) => (got === undefined ? messages.grantsMissing() : messages.grantsNotMapping(names, got)));
  return strictObject(
    {
      version: z.literal(POLICY_VERSION, {
        error: (issue) => (issue.input === undefined ? messages.versionMissing() : messages.versionUnsupported(issue.input)),
      }),
      component: z
        .string({
          error: (issue) => (issue.input === undefined ? messages.componentMissing() : messages.componentNotString(issue.input)),
        })
        .regex(COMPONENT_NAME, { error: (issue) => messages.componentBadName(String(issue.input)) }),
      // A pin: the policy applies to exactly this component (sha256 hex of its bytes), and refuses any other.
      sha256: z
        .string({ error: (issue) => messages.sha256Bad(issue.input) })
        .transform((s) => s.toLowerCase())
        .refine((s) => /^[0-9a-f]{64}$/.test(s), { error: (issue) => messages.sha256Bad(issue.input) })
        .optional(),
      audit: AuditSchema,
      limits: LimitsSchema,
      grants: GrantsSchema,
    },
    (got) => messages.notAMapping(TOP_LEVEL_KEYS, got),
  );
}
