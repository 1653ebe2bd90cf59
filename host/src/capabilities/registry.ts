/**
 * The registry: every capability ICE has, in WIT order. Adding a capability is adding its folder and one
 * line here; everything else — the policy schema and its compile (policy.ts), admission (admit.ts), the
 * import object and the ledger (kernel/), replay, the bridge to the host thread (sandbox/host-gateway.ts),
 * `ice inspect`'s policy keys and every message that lists interfaces — reads this list.
 */
import { ICE_PACKAGE, qualifiedInterface } from '../core/world.js';
import type { Denied } from '../policy/index.js';
import { clock } from './clock/index.js';
import type { Capability, ForeignCapability, HostEffect, IceCapability, PolicySlice } from './define.js';
import { events } from './events/index.js';
import { http } from './http/index.js';
import { kv } from './kv/index.js';
import { log } from './log/index.js';
import { model } from './model/index.js';
import { random } from './random/index.js';
import { wasi } from './wasi/index.js';

export const CAPABILITIES = [log, clock, random, kv, events, http, model, wasi] as const;

type Definition = (typeof CAPABILITIES)[number];
export type CapabilityName = Definition['name'];
type GrantOf<C> = C extends { readonly policy: PolicySlice<infer G> } ? G : never;

/**
 * The compiled grants, typed per capability: an ICE interface may be `deny` (it loads, every call is
 * denied); a foreign capability (WASI) is covered key by key instead.
 */
export type IceGrants = {
  readonly [C in Definition as C['name']]?: C extends { readonly kind: 'foreign' } ? GrantOf<C> : GrantOf<C> | Denied;
};

/** The capabilities that are interfaces of the ice:agent world, in WIT order. */
export const ICE_CAPABILITIES: readonly IceCapability[] = CAPABILITIES.filter((c): c is Extract<Definition, { kind: 'ice' }> => c.kind === 'ice') as readonly IceCapability[];
export const ICE_CAPABILITY_NAMES: readonly string[] = ICE_CAPABILITIES.map((c) => c.name);

const BY_NAME: ReadonlyMap<string, Capability> = new Map(CAPABILITIES.map((c) => [c.name, c as Capability]));
const BY_INTERFACE: ReadonlyMap<string, IceCapability> = new Map(ICE_CAPABILITIES.map((c) => [qualifiedInterface(c.name), c]));

export function capabilityNamed(name: string): Capability | undefined {
  return BY_NAME.get(name);
}

/**
 * Which capability serves a component import (`ice:agent/kv@0.1.0`, `wasi:cli/stdout@0.2.3`), and the
 * policy key that grants it; undefined for an import no capability serves.
 */
export function capabilityOfImport(importName: string): { readonly capability: Capability; readonly policyKey: string } | undefined {
  const ice = BY_INTERFACE.get(importName);
  if (ice) return { capability: ice, policyKey: `grants.${ice.name}` };
  for (const capability of CAPABILITIES) {
    if (capability.kind !== 'foreign') continue;
    const claim = (capability as ForeignCapability<string, never, unknown>).claim(importName);
    if (claim !== undefined) return { capability: capability as Capability, policyKey: (capability as ForeignCapability<string, never, unknown>).policyKeyOf(claim) };
  }
  return undefined;
}

/** `ice:agent/{log,clock,…}@0.1.0`: what the world offers, for messages. */
export function worldSummary(): string {
  return `${ICE_PACKAGE}/{${ICE_CAPABILITY_NAMES.join(',')}}`;
}

/**
 * The host effects of every capability, keyed `<capability>.<function>`: what the bridge from a run's
 * thread to the host thread may ask for. Derived, so no operation name is written twice.
 */
export const HOST_EFFECTS: ReadonlyMap<string, { readonly capability: string; readonly effect: HostEffect<unknown, unknown> }> = new Map(
  ICE_CAPABILITIES.flatMap((c) =>
    Object.entries(c.hostEffects ?? {}).map(([fn, effect]) => [`${c.name}.${fn}`, { capability: c.name, effect: effect as HostEffect<unknown, unknown> }] as const),
  ),
);

const KEY_OF_EFFECT: ReadonlyMap<HostEffect<unknown, unknown>, string> = new Map([...HOST_EFFECTS].map(([key, { effect }]) => [effect, key]));

/** The bridge key of a host effect (`http.fetch`). */
export function hostEffectKey(effect: HostEffect<never, unknown, never>): string {
  const key = KEY_OF_EFFECT.get(effect as unknown as HostEffect<unknown, unknown>);
  if (key === undefined) throw new Error('a host effect that no capability in the registry declares');
  return key;
}
