/**
 * ICE's public API — the only module embedders import.
 * @example
 *   import { createHost } from 'ice-runtime';
 *   const host = await createHost({ stateDir: '.ice' });
 *   const agent = await host.load('hello.wasm', 'policy.yaml');
 *   const r = await agent.run('world');   // r.ok ? r.output : r.error; r.runId, r.calls, r.ledgerRoot
 */
export { createHost, Host, Agent, RunInputError, type HostOptions, type RunResult, type RunOutcome } from './host.js';
export { LoadError, type LoadErrorCode } from './component/errors.js';
export { type ComponentInfo } from './component/inspect.js';
export { PolicyError, loadPolicyFile, parsePolicyText, compilePolicy, type CompiledPolicy } from './policy/index.js';
export { type GuestLogEntry, type GuestLogSink } from './capabilities/log.js';
export { type GuestEvent, type GuestEventSink } from './capabilities/events.js';
export { ReplayError, type ReplayOptions, type ReplayReport } from './replay/replay.js';
export { type Approver } from './sandbox/gateway-server.js';
export { type ApprovalRequest } from './capabilities/gateway.js';
export { loadSecretsFile, SecretsError } from './egress/secrets.js';
export { type ModelConfig, type OpenAiCompatibleConfig } from './model/providers.js';
