/**
 * The policy as ICE reads it: the shared shape (policy/schema.ts) with one `grants.<name>` slot per
 * capability of the registry, each validated by the capability's own schema and compiled by its own
 * compile. This is the only place the two meet.
 *
 * @example
 * const policy = loadPolicyFile('examples/counter/policy.yaml');
 * const kv = policy.grants.kv;
 * if (kv?.mode === 'grant') firstMatch(kv.write, 'count')?.rule; // 'grants.kv.write[0]'
 */
import type { z } from 'zod';
import {
  compileWith,
  grantSlot,
  INLINE_SOURCE,
  parsePolicyData,
  policySchema,
  readPolicyFile,
  type CompiledPolicy,
  type GrantCompiler,
  type PolicyFormat,
} from '../policy/index.js';
import { CAPABILITIES, type IceGrants } from './registry.js';

export type IcePolicy = CompiledPolicy<IceGrants>;

const SLOTS: Readonly<Record<string, z.ZodType>> = Object.fromEntries(
  CAPABILITIES.map((c) => [c.name, c.policy.deniable ? grantSlot(c.policy.schema, c.policy.example) : c.policy.schema.optional()]),
);

/** The whole policy schema: the single source of truth for what a policy may say. */
export const PolicySchema = policySchema(SLOTS);

const COMPILERS: readonly GrantCompiler[] = CAPABILITIES.map((c) => ({
  name: c.name,
  deniable: c.policy.deniable,
  compile: c.policy.compile.bind(c.policy) as GrantCompiler['compile'],
}));

/**
 * Validates and compiles an already parsed policy (from a file, from the library API, or a `document`
 * sent to a worker). Throws `PolicyError` listing every problem found.
 */
export function compilePolicy(document: unknown, source: string = INLINE_SOURCE): IcePolicy {
  return compileWith<IceGrants>(PolicySchema, COMPILERS, document, source);
}

/**
 * Parses and compiles policy text. The format is `format` if given, else `.json` / `.yaml` / `.yml` in
 * `source`, else JSON when the text starts with `{`, else YAML.
 *
 * @example
 * const policy = parsePolicyText('version: 1\ncomponent: counter\ngrants: { clock: {} }', 'inline.yaml');
 * policy.grants.clock; // { mode: 'grant', rule: 'grants.clock', maxCalls: 100000 }
 */
export function parsePolicyText(text: string, source: string, format?: PolicyFormat): IcePolicy {
  return compilePolicy(parsePolicyData(text, source, format), source);
}

/** Reads, parses and compiles a policy file. */
export function loadPolicyFile(path: string): IcePolicy {
  return parsePolicyText(readPolicyFile(path), path);
}
