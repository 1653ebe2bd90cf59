/** `ice inspect <component.wasm> [--json]`: what a component imports and exports, and the policy keys it needs. */
import { readComponentFile } from '../component/source.js';
import { inspectComponent, type WorldItem } from '../component/inspect.js';
import { failureType, parametersSchema, resultSchema, typeSchema } from '../component/json-schema.js';
import { signatureText } from '../component/wit-types.js';
import { capabilityOfImport } from '../capabilities/registry.js';
import { ICE_PACKAGE, ICE_WIT_VERSION, TYPE_ONLY_INTERFACES, qualifiedInterface } from '../core/world.js';
import { onePositional, withUsage } from './args.js';
import { parseArgs } from 'node:util';
import { EXIT, type Io } from './io.js';
import { INSPECT_USAGE } from './usage.js';
import { MAX_COMPONENT_BYTES_OPTION, maxComponentBytes } from './component-size.js';

export async function inspectCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = withUsage('inspect', INSPECT_USAGE, () =>
    parseArgs({ args: argv, options: { json: { type: 'boolean', default: false }, ...MAX_COMPONENT_BYTES_OPTION }, allowPositionals: true, strict: true }),
  );
  const path = onePositional('inspect', positionals, 'component file', INSPECT_USAGE);
  const bytes = readComponentFile(path, maxComponentBytes('inspect', values['max-component-bytes']));
  const info = await inspectComponent(bytes, path, await import('@bytecodealliance/jco'));
  const imports = info.imports.map((item) => ({ ...item, ...classify(item) }));
  const policyKeys = [...new Set(imports.flatMap((i) => (i.policyKey ? [i.policyKey] : [])))];
  const { functions, command, problems } = info.exported;
  if (values.json) {
    const callable = functions.map((fn) => ({
      name: fn.name,
      ...(fn.interface ? { interface: fn.interface } : {}),
      signature: signatureText(fn),
      ...(fn.docs ? { description: fn.docs } : {}),
      parameters: parametersSchema(fn),
      result: resultSchema(fn),
      ...(failureType(fn) ? { error: typeSchema(failureType(fn)!, 'output') } : {}),
    }));
    const document = { component: path, digest: info.digest, size: info.size, imports, exports: info.exports, functions: callable, ...(command ? { command } : {}), ...(problems.length ? { uncallable: problems } : {}), policyKeys };
    io.stdout(`${JSON.stringify(document, null, 2)}\n`);
    return EXIT.ok;
  }
  const width = Math.max(0, ...imports.map((i) => i.name.length));
  const ice = imports.filter((i) => !i.wasi);
  const wasi = imports.filter((i) => i.wasi);
  const lines = [
    `component ${path}`,
    `  digest  sha256:${info.digest}`,
    `  size    ${info.size} bytes`,
    'imports',
    ...(ice.length === 0 ? ['  (none)'] : ice.map((i) => `  ${i.name.padEnd(width)}  ${i.note}`)),
    ...(wasi.length === 0 ? [] : ['WASI 0.2 imports (each covered by its grants.wasi key)', ...wasi.map((i) => `  ${i.name.padEnd(width)}  ${i.note}`)]),
    'exports',
    ...info.exports.map((e) => `  ${e.name}${e.signature ? `: ${e.signature.replace(/;$/, '')}` : ''}`),
    ...(functions.length === 0 ? [] : ['functions (ice call <component> <function> --args <json>; --json prints their JSON schemas)', ...functions.flatMap((fn) => [`  ${fn.name}: ${signatureText(fn)}`, ...(fn.docs ? [`      ${oneLine(fn.docs)}`] : [])])]),
    ...(command ? [`command  ${command} (ice run <component> --policy <file> -- <args>)`] : []),
    ...(problems.length === 0 ? [] : ['cannot be called (ICE refuses this component)', ...problems.map((p) => `  ${p}`)]),
    `policy keys it needs: ${policyKeys.length > 0 ? policyKeys.join(', ') : '(none)'}`,
  ];
  const foreign = imports.filter((i) => i.foreign);
  if (foreign.length > 0) lines.push(`refused by ICE: ${foreign.map((i) => i.name).join(', ')} (not in the ${ICE_PACKAGE}@${ICE_WIT_VERSION} world)`);
  io.stdout(`${lines.join('\n')}\n`);
  return EXIT.ok;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** What an import needs: the policy key (from the capability registry), or nothing for types, or refused. */
function classify(item: WorldItem): { note: string; policyKey?: string; foreign?: true; wasi?: true } {
  const served = item.kind === 'interface' ? capabilityOfImport(item.name) : undefined;
  if (served) {
    const wasi = served.capability.kind === 'foreign' ? ({ wasi: true } as const) : {};
    const note = served.policyKey === `grants.${served.capability.name}` && served.capability.kind === 'foreign' ? `covered by any grants.${served.capability.name} section` : `grant with ${served.policyKey}`;
    return { note, policyKey: served.policyKey, ...wasi };
  }
  if (TYPE_ONLY_INTERFACES.some((name) => qualifiedInterface(name) === item.name)) return { note: 'types only (no grant needed)' };
  return { note: `not in the ${ICE_PACKAGE}@${ICE_WIT_VERSION} world: ICE refuses this component`, foreign: true };
}
