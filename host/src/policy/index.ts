/**
 * The policy: parse (YAML or JSON), validate (one strict zod schema), compile to typed matchers.
 *
 * @example
 * import { loadPolicyFile, firstMatch } from './policy/index.js';
 * const policy = loadPolicyFile('examples/counter/policy.yaml');
 * const kv = policy.grants.kv;
 * if (kv?.mode === 'grant') firstMatch(kv.write, 'count')?.rule; // 'grants.kv.write[0]'
 */
export type {
  Capture,
  ClockGrant,
  CompiledGrants,
  CompiledPolicy,
  Denied,
  EventsGrant,
  HttpGrant,
  HttpRule,
  Injection,
  ModelGrant,
  WasiGrant,
  WasiMount,
  KvGrant,
  Level,
  LogGrant,
  Matcher,
  PolicyCapability,
  RandomGrant,
  RunLimits,
} from './types.js';
export type { PolicyDocument, PolicyInput } from './schema.js';
export type { PolicyIssue } from './errors.js';
export type { PolicyFormat } from './load.js';
export { PolicyError } from './errors.js';
export { firstMatch, parsePattern } from './matchers.js';
export { compilePolicy, policyKeyFor, canonicalJson, INLINE_SOURCE } from './compile.js';
export { parsePolicyText, loadPolicyFile, parsePolicyData, MAX_POLICY_BYTES } from './load.js';
export {
  CAPABILITIES,
  CAPTURES,
  COMPONENT_NAME,
  DEFAULT_LIMITS,
  DEFAULT_MAX_CALLS,
  DEFAULT_MAX_CAPTURE_BYTES,
  LIMITS_MAX,
  LEVELS,
  POLICY_DEFAULTS,
  POLICY_LIMITS,
  POLICY_VERSION,
  PolicySchema,
} from './schema.js';
