/**
 * admit: a component may import only interfaces some capability of the registry serves, and only those
 * its policy mentions (granted, or set to `deny`; a WASI interface covered by its `grants.wasi` key).
 * Everything else refuses the load, before any code is compiled. The result is plain data (it crosses
 * to a run's worker): each imported capability with the imports it serves.
 */
import { ICE_PACKAGE, ICE_WIT_VERSION, ICE_WORLD, TYPE_ONLY_INTERFACES, qualifiedInterface } from '../core/world.js';
import { LoadError } from '../component/errors.js';
import type { ComponentInfo, WorldItem } from '../component/inspect.js';
import type { Capability, ForeignCapability, Grant, LoadContext } from './define.js';
import type { IcePolicy } from './policy.js';
import { CAPABILITIES, capabilityNamed, capabilityOfImport, worldSummary } from './registry.js';

export const RUN_EXPORT = 'run';
export const RUN_SIGNATURE = 'func(input: string) -> result<string, string>';

/** One imported capability and the component imports it serves (`ice:agent/kv@0.1.0`, or WASI interfaces). */
export interface AdmittedCapability {
  readonly name: string;
  readonly imports: readonly string[];
}

/** What a component imports, by capability, in registry order. */
export type Admitted = readonly AdmittedCapability[];

const TYPE_ONLY = new Set<string>(TYPE_ONLY_INTERFACES.map((name) => qualifiedInterface(name)));

/** The capabilities the component imports, in registry order; throws LoadError when any import is refused. */
export function admitImports(info: ComponentInfo, policy: IcePolicy, origin: string): Admitted {
  const foreign: string[] = [];
  const byCapability = new Map<string, string[]>();
  for (const item of info.imports) {
    const served = item.kind === 'interface' ? capabilityOfImport(item.name) : undefined;
    if (served) byCapability.set(served.capability.name, [...(byCapability.get(served.capability.name) ?? []), item.name]);
    else if (!(item.kind === 'interface' && TYPE_ONLY.has(item.name))) foreign.push(describe(item));
  }
  if (foreign.length > 0) {
    throw new LoadError(
      'foreign-import',
      origin,
      `${origin} imports ${foreign.join(', ')}, which ${foreign.length === 1 ? 'is' : 'are'} not part of the ` +
        `${ICE_PACKAGE}@${ICE_WIT_VERSION} world: ICE provides only ${worldSummary()}@${ICE_WIT_VERSION} and the WASI 0.2 interfaces a grants.wasi section covers; rebuild the guest against wit/`,
    );
  }
  const grants = policy.grants as Readonly<Record<string, unknown>>;
  const admitted: AdmittedCapability[] = [];
  const problems: string[] = [];
  for (const capability of CAPABILITIES) {
    const imports = byCapability.get(capability.name);
    if (!imports) continue;
    const grant = grants[capability.name];
    if (capability.kind === 'foreign') {
      const foreignCapability = capability as ForeignCapability<string, never, unknown>;
      const claims = imports.map((name) => foreignCapability.claim(name));
      problems.push(...foreignCapability.uncovered(claims, grant as never, policy.source, origin));
    } else if (grant === undefined) {
      const key = `grants.${capability.name}`;
      problems.push(
        `${origin} imports ${qualifiedInterface(capability.name)}, which policy ${policy.source} does not grant: add ${key} (or set ${key}: deny to load it with every call denied)`,
      );
    }
    admitted.push({ name: capability.name, imports });
  }
  if (problems.length > 0) throw new LoadError('ungranted-import', origin, problems.join('\n'));
  admitExports(info, origin);
  return admitted;
}

/**
 * What a component may export: typed functions (world-level or of exported interfaces) whose types are
 * all values, and/or `wasi:cli/run`. A function using a resource, a stream or a type ICE cannot read
 * refuses the load, naming it: ICE never loads what it could only half describe. The ICE world's
 * `run(input: string) -> result<string, string>` is one such function.
 */
function admitExports(info: ComponentInfo, origin: string): void {
  const { functions, command, problems } = info.exported;
  if (problems.length > 0) {
    throw new LoadError('bad-export', origin, `${origin} has exports ICE cannot call: ${problems.join('; ')}. ICE calls functions whose parameters and results are WIT values (bool, integers, floats, char, string, list, option, result, tuple, record, variant, enum, flags)`);
  }
  if (functions.length === 0 && command === undefined) {
    throw new LoadError('bad-export', origin, `${origin} exports nothing ICE can call: expected \`export run: ${RUN_SIGNATURE}\` (the ${ICE_PACKAGE}/${ICE_WORLD} world), typed functions, or wasi:cli/run (a WASI command)`);
  }
}

/** Whether the component implements the ICE world's `run` (what `ice run` calls with its input). */
export function hasRunExport(info: ComponentInfo): boolean {
  const run = info.exports.find((item) => item.name === RUN_EXPORT);
  return run?.kind === 'function' && normalize(run.signature ?? '') === RUN_SIGNATURE;
}

function describe(item: WorldItem): string {
  return item.signature ? `${item.name}: ${normalize(item.signature)}` : item.name;
}

function normalize(signature: string): string {
  return signature.replace(/\s+/g, ' ').replace(/;$/, '').trim();
}

/** Loads what the imported capabilities need before a run starts (preview2-shim for WASI); once per thread. */
export async function prepareCapabilities(admitted: Admitted): Promise<void> {
  for (const { name } of admitted) {
    const capability = capabilityNamed(name);
    if (capability?.kind === 'foreign') await capability.prepare?.();
  }
}

/**
 * Each admitted capability's own load checks, under its grant: throws LoadError for the first problem
 * (a missing secret, a mount that is not a directory). Returns the policy keys that need the host thread
 * free while the guest runs: a capability's `hostThreadKeys`, or `grants.<name>` when it has host effects.
 */
export function checkAdmitted(policy: IcePolicy, admitted: Admitted, context: LoadContext): string[] {
  const grants = policy.grants as Readonly<Record<string, Grant | { mode: 'deny' } | undefined>>;
  const needHostThread: string[] = [];
  for (const { name } of admitted) {
    const capability = capabilityNamed(name);
    const grant = grants[name];
    if (!capability || grant?.mode !== 'grant') continue;
    needHostThread.push(...hostThreadKeys(capability, grant));
    const problem = capability.checkLoad?.(grant as never, context);
    if (problem) throw new LoadError(problem.code, context.origin, problem.message);
  }
  return needHostThread;
}

function hostThreadKeys(capability: Capability, grant: Grant): readonly string[] {
  if (capability.hostThreadKeys) return capability.hostThreadKeys(grant as never);
  return capability.kind === 'ice' && capability.hostEffects && Object.keys(capability.hostEffects).length > 0 ? [grant.rule] : [];
}
