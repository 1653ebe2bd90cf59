/**
 * The policy machinery every capability's slice is built with: parse (YAML or JSON), the shared schema
 * (version, component, audit, limits), typed matchers, compile. The assembled policy — the one schema
 * with every capability's grant — is capabilities/policy.ts.
 */
export type { Capture, CompiledPolicy, Denied, Matcher, PolicyDocument, RunLimits } from './types.js';
export type { PolicyIssue } from './errors.js';
export type { PolicyFormat } from './load.js';
export { PolicyError, describeValue, messages } from './errors.js';
export { firstMatch, parsePattern, compileMatcher } from './matchers.js';
export { compileWith, compileMatchers, policyKeyFor, canonicalJson, deepFreeze, SealedSet, INLINE_SOURCE, type CompileContext, type GrantCompiler } from './compile.js';
export { parsePolicyData, readPolicyFile, MAX_POLICY_BYTES } from './load.js';
export {
  CAPTURES,
  COMPONENT_NAME,
  DEFAULT_LIMITS,
  DEFAULT_MAX_CALLS,
  DEFAULT_MAX_CAPTURE_BYTES,
  LIMITS_MAX,
  POLICY_LIMITS,
  POLICY_VERSION,
  policySchema,
} from './schema.js';
export { MiB, askTimeout, grantSlot, maxCalls, patternList, size, strictObject, DEFAULT_ASK_TIMEOUT_MS, MAX_ASK_TIMEOUT_MS } from './schema-parts.js';
