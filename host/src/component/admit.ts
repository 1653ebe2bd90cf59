/**
 * admit: a component may import only interfaces of the ICE world, and only those its policy mentions
 * (granted, or set to `deny`). Everything else refuses the load, before any code is compiled.
 */
import type { CompiledPolicy } from '../policy/index.js';
import { policyKeyFor } from '../policy/index.js';
import { LoadError } from './errors.js';
import type { ComponentInfo } from './inspect.js';
import { covers, KEY_EXAMPLES, wasiImport, type WasiImport, type WasiKey } from '../wasi/interfaces.js';
import {
  CAPABILITY_INTERFACES,
  ICE_PACKAGE,
  ICE_VERSION,
  TYPE_ONLY_INTERFACES,
  qualifiedInterface,
  type CapabilityName,
} from './wit.js';

export const RUN_EXPORT = 'run';
export const RUN_SIGNATURE = 'func(input: string) -> result<string, string>';

const CAPABILITY_BY_NAME = new Map<string, CapabilityName>(
  CAPABILITY_INTERFACES.map((name) => [qualifiedInterface(name), name]),
);
const TYPE_ONLY = new Set<string>(TYPE_ONLY_INTERFACES.map((name) => qualifiedInterface(name)));

/** The capabilities the component imports, in world order; throws LoadError when any import is refused. */
export function admitImports(info: ComponentInfo, policy: CompiledPolicy, origin: string): CapabilityName[] {
  const foreign: string[] = [];
  const imported = new Set<CapabilityName>();
  const wasi: WasiImport[] = [];
  for (const item of info.imports) {
    const capability = item.kind === 'interface' ? CAPABILITY_BY_NAME.get(item.name) : undefined;
    const wasiInterface = item.kind === 'interface' ? wasiImport(item.name) : undefined;
    if (capability) imported.add(capability);
    else if (wasiInterface) wasi.push(wasiInterface);
    else if (!(item.kind === 'interface' && TYPE_ONLY.has(item.name))) foreign.push(describe(item));
  }
  if (foreign.length > 0) {
    const world = `${ICE_PACKAGE}/{${CAPABILITY_INTERFACES.join(',')}}@${ICE_VERSION}`;
    throw new LoadError(
      'foreign-import',
      origin,
      `${origin} imports ${foreign.join(', ')}, which ${foreign.length === 1 ? 'is' : 'are'} not part of the ` +
        `${ICE_PACKAGE}@${ICE_VERSION} world: ICE provides only ${world} and the WASI 0.2 interfaces a grants.wasi section covers; rebuild the guest against wit/`,
    );
  }
  admitWasiImports(wasi, policy, origin);

  const ungranted = CAPABILITY_INTERFACES.filter((name) => imported.has(name) && policy.grants[name] === undefined);
  if (ungranted.length > 0) {
    const lines = ungranted.map(
      (name) =>
        `${origin} imports ${qualifiedInterface(name)}, which policy ${policy.source} does not grant: ` +
        `add ${policyKeyFor(name)} (or set ${policyKeyFor(name)}: deny to load it with every call denied)`,
    );
    throw new LoadError('ungranted-import', origin, lines.join('\n'));
  }

  admitExports(info, origin);
  return CAPABILITY_INTERFACES.filter((name) => imported.has(name));
}

/**
 * The WASI 0.2 interfaces the component imports, each covered by its `grants.wasi` key; throws LoadError
 * naming every key that is missing.
 */
export function wasiImportsOf(info: ComponentInfo): WasiImport[] {
  return info.imports.flatMap((item) => {
    const found = item.kind === 'interface' ? wasiImport(item.name) : undefined;
    return found ? [found] : [];
  });
}

function admitWasiImports(wasi: readonly WasiImport[], policy: CompiledPolicy, origin: string): void {
  if (wasi.length === 0) return;
  const grant = policy.grants.wasi as { readonly [k: string]: unknown } | undefined;
  const missing = new Map<WasiKey, string[]>();
  for (const item of wasi) {
    if (covers(grant, item.key)) continue;
    missing.set(item.key, [...(missing.get(item.key) ?? []), item.qualified]);
  }
  if (missing.size === 0) return;
  const lines = [...missing].map(
    ([key, names]) =>
      `${origin} imports ${names.join(', ')}, which policy ${policy.source} does not cover: add ${grant ? KEY_EXAMPLES[key] : `a grants.wasi section with ${KEY_EXAMPLES[key]}`}`,
  );
  throw new LoadError('ungranted-import', origin, lines.join('\n'));
}

function admitExports(info: ComponentInfo, origin: string): void {
  const run = info.exports.find((item) => item.name === RUN_EXPORT);
  const extra = info.exports.filter((item) => item.name !== RUN_EXPORT).map(describe);
  if (!run || run.kind !== 'function' || normalize(run.signature ?? '') !== RUN_SIGNATURE) {
    const found = run ? `it exports ${describe(run)}` : 'it exports no `run`';
    throw new LoadError(
      'bad-export',
      origin,
      `${origin} does not implement the ${ICE_PACKAGE}/${'agent'} world: ${found}; expected \`export run: ${RUN_SIGNATURE}\``,
    );
  }
  if (extra.length > 0) {
    throw new LoadError(
      'bad-export',
      origin,
      `${origin} exports ${extra.join(', ')} besides \`run\`; an ICE agent exports only \`run: ${RUN_SIGNATURE}\``,
    );
  }
}

function describe(item: { name: string; signature?: string }): string {
  return item.signature ? `${item.name}: ${normalize(item.signature)}` : item.name;
}

function normalize(signature: string): string {
  return signature.replace(/\s+/g, ' ').replace(/;$/, '').trim();
}
