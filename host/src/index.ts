/**
 * ICE's public API — the only module embedders import.
 * @example
 *   import { createHost } from 'ice-runtime';
 *   const host = await createHost({ stateDir: '.ice' });
 *   const agent = await host.load('hello.wasm', 'policy.yaml');
 *   const r = await agent.run('world');   // r.ok ? r.output : r.error; r.runId, r.calls, r.ledgerRoot
 */
export { createHost, Host, Agent, RunInputError, InvalidArguments, type HostOptions, type RunResult, type CallResult, type RunOutcome } from './host.js';
export { type TypedFunction, type WitType, type Param, signatureText, witText } from './component/wit-types.js';
export { parametersSchema, resultSchema, typeSchema, type JsonSchema } from './component/json-schema.js';
export { type Json } from './component/json-values.js';
export { LoadError, type LoadErrorCode } from './component/errors.js';
export { type ComponentInfo } from './component/inspect.js';
export { PolicyError, type CompiledPolicy } from './policy/index.js';
export { loadPolicyFile, parsePolicyText, compilePolicy, type IcePolicy } from './capabilities/policy.js';
export { CAPABILITIES, type CapabilityName } from './capabilities/registry.js';
export type { GuestLogEntry, GuestLogSink, GuestEvent, GuestEventSink, WasiOutputEntry, WasiOutputSink } from './capabilities/run-services.js';
export { ReplayError, type ReplayOptions, type ReplayReport } from './replay/replay.js';
export { type Approver } from './sandbox/host-gateway.js';
export { type ApprovalRequest } from './capabilities/define.js';
export { loadSecretsFile, SecretsError } from './capabilities/secrets.js';
export { type ModelConfig, type OpenAiCompatibleConfig } from './capabilities/model/index.js';
