/**
 * What a component exports, with exact types, read from wasm-tools' text form of it (jco `print`).
 * jco's `componentWit` prints only the world's own lines (`export example:calc/geometry@0.1.0;`, not
 * the interface behind it), so the types come from the component's own type definitions: a world-level
 * function is a `canon lift` with a function type; an exported interface is an instance, which
 * wit-component builds by instantiating a small shim component whose exports carry the interface's
 * types (ascribed) and names.
 *
 * Everything is resolved to plain WitType data. A form this reader does not know — a resource, a
 * stream, an instance built some other way — is reported as a problem naming the export, never
 * guessed at: a function whose types are not fully known is never called.
 */
import { indexOf, topLevelForms, unquote, type SExpr } from './sexpr.js';
import type { Case, Field, Param, TypedFunction, WitType } from './wit-types.js';

export interface ExportReading {
  /** Every callable function, world-level first, in export order. */
  readonly functions: readonly TypedFunction[];
  /** Exported `wasi:cli/run@…` (the component is a WASI command). */
  readonly command?: string;
  /** Exports that cannot be called, each naming the export and why. */
  readonly problems: readonly string[];
}

const PRIMITIVES = new Set(['bool', 's8', 'u8', 's16', 'u16', 's32', 'u32', 's64', 'u64', 'f32', 'f64', 'char', 'string']);
const LEGACY: Readonly<Record<string, string>> = { float32: 'f32', float64: 'f64' };
const MAX_DEPTH = 64;
const COMMAND_EXPORT = /^wasi:cli\/run@0\.2\.\d+$/;

/** A reason a type cannot be a value: thrown while resolving, caught per export. */
class Unsupported extends Error {}

/**
 * One type index space: each entry is the form that defines the index (a type definition, or a
 * marker: `['eq', ref]` for an import bound to another type, `['named', name, ref]` for an exported
 * type, `['alias', instance, name]` for a type taken from an imported instance).
 */
class Scope {
  readonly types = new Map<string, SExpr>();
  constructor(private readonly parent?: Scope) {}

  define(form: SExpr[], definition: SExpr): void {
    const index = indexOf(form);
    if (index !== undefined) this.types.set(String(index), definition);
    const label = form.find((x) => typeof x === 'string' && x.startsWith('$'));
    if (typeof label === 'string') this.types.set(label, definition);
  }

  get(ref: string): SExpr | undefined {
    return this.types.get(ref);
  }

  outer(): Scope | undefined {
    return this.parent;
  }
}

interface Resolver {
  /** The type of an instance's export, for an alias of an imported instance's type. */
  aliased(instance: string, name: string, depth: number): WitType;
}

function resolve(ref: SExpr | undefined, scope: Scope, resolver: Resolver, depth: number, name?: string): WitType {
  if (depth > MAX_DEPTH) throw new Unsupported('types nested too deeply');
  if (ref === undefined) throw new Unsupported('a type is missing');
  if (typeof ref === 'string') {
    const primitive = LEGACY[ref] ?? ref;
    if (PRIMITIVES.has(primitive)) return { kind: primitive } as WitType;
    const def = scope.get(ref);
    if (def === undefined) throw new Unsupported(`type ${ref} is not defined where it is used`);
    return resolve(def, scope, resolver, depth + 1, name);
  }
  const [head, ...rest] = ref;
  const next = depth + 1;
  const sub = (x: SExpr | undefined): WitType => resolve(x, scope, resolver, next);
  const named = name === undefined ? {} : { name };
  switch (head) {
    case 'eq':
      return resolve(rest[0], scope, resolver, next, name);
    case 'named':
      return resolve(rest[1], scope, resolver, next, String(rest[0]));
    case 'alias':
      return resolver.aliased(String(rest[0]), String(rest[1]), next);
    case 'outer': {
      const outer = scope.outer();
      if (!outer) throw new Unsupported('an outer type it cannot find');
      return resolve(rest[0], outer, resolver, next, name);
    }
    case 'list':
      if (rest.length > 1) throw new Unsupported('a fixed-length list');
      return { kind: 'list', element: sub(rest[0]) };
    case 'option':
      return { kind: 'option', some: sub(rest[0]) };
    case 'result': {
      const error = rest.find((x) => Array.isArray(x) && x[0] === 'error') as SExpr[] | undefined;
      const ok = rest.find((x) => !(Array.isArray(x) && x[0] === 'error'));
      return { kind: 'result', ...(ok === undefined ? {} : { ok: sub(ok) }), ...(error ? { err: sub(error[1]) } : {}) };
    }
    case 'tuple':
      return { kind: 'tuple', items: rest.map(sub) };
    case 'record':
      return {
        kind: 'record',
        ...named,
        fields: rest.map((f): Field => {
          if (!Array.isArray(f) || f[0] !== 'field') throw new Unsupported('a record field it cannot read');
          return { name: unquote(f[1]) ?? '?', type: sub(f[2]) };
        }),
      };
    case 'variant':
      return {
        kind: 'variant',
        ...named,
        cases: rest.map((c): Case => {
          if (!Array.isArray(c) || c[0] !== 'case') throw new Unsupported('a variant case it cannot read');
          const payload = c[2];
          if (Array.isArray(payload) && payload[0] === 'refines') throw new Unsupported('a variant case that refines another');
          return { name: unquote(c[1]) ?? '?', ...(payload === undefined ? {} : { type: sub(payload) }) };
        }),
      };
    case 'enum':
      return { kind: 'enum', ...named, cases: rest.map((x) => unquote(x) ?? '?') };
    case 'flags':
      return { kind: 'flags', ...named, flags: rest.map((x) => unquote(x) ?? '?') };
    case 'own':
    case 'borrow':
    case 'resource':
    case 'sub':
      throw new Unsupported(`a resource${name ? ` (${name})` : ''}`);
    case 'stream':
    case 'future':
    case 'error-context':
      throw new Unsupported(`a ${head}`);
    default:
      throw new Unsupported(`a type it does not know (${String(head)})`);
  }
}

function functionOf(def: SExpr | undefined, scope: Scope, resolver: Resolver): { params: Param[]; result?: WitType } {
  if (!Array.isArray(def) || def[0] !== 'func') throw new Unsupported('its type is not a function type');
  if (def.includes('async')) throw new Unsupported('it is async');
  const params = def.filter((x) => Array.isArray(x) && x[0] === 'param') as SExpr[][];
  const results = def.filter((x) => Array.isArray(x) && x[0] === 'result') as SExpr[][];
  if (results.length > 1 || results.some((r) => r.length > 2)) throw new Unsupported('it has named results');
  const result = results[0] ? resolve(results[0][1], scope, resolver, 0) : undefined;
  return {
    params: params.map((p) => ({ name: unquote(p[1]) ?? '?', type: resolve(p[2], scope, resolver, 0) })),
    ...(result === undefined ? {} : { result }),
  };
}

/** `(type N)` inside a form, or undefined. */
function typeRef(form: SExpr[]): string | undefined {
  const ref = form.find((x) => Array.isArray(x) && x[0] === 'type') as SExpr[] | undefined;
  return ref ? String(ref[1]) : undefined;
}

function labelOf(form: SExpr[]): string | undefined {
  const label = form.find((x) => typeof x === 'string' && x.startsWith('$'));
  return typeof label === 'string' ? label : undefined;
}

/** Registers a definition under its `(;N;)` index and its `$label`. */
function put<T>(map: Map<string, T>, form: SExpr[], value: T): void {
  const index = indexOf(form);
  if (index !== undefined) map.set(String(index), value);
  const label = labelOf(form);
  if (label) map.set(label, value);
}

/** The export's external name and the item it exports: `(export $l (@name "x") (;N;) "name" (func $f) (func (type T))?)`. */
function exportParts(form: SExpr[]): { name: string; item: SExpr[]; ascribed?: SExpr[] } | undefined {
  const nameAt = form.findIndex((x, i) => i > 0 && typeof x === 'string' && x.startsWith('"'));
  if (nameAt < 0) return undefined;
  const item = form[nameAt + 1];
  if (!Array.isArray(item)) return undefined;
  const ascribed = form[nameAt + 2];
  return { name: unquote(form[nameAt])!, item, ...(Array.isArray(ascribed) ? { ascribed } : {}) };
}

/** The functions of a component's export section, with their types. */
export function exportedFunctions(wat: string, forms: readonly SExpr[] = componentForms(wat)): ExportReading {
  const types = new Scope();
  const funcs = new Map<string, SExpr[]>(); // func index → defining form
  const instances = new Map<string, SExpr[]>();
  const components = new Map<string, SExpr[]>();
  const exports: SExpr[][] = [];
  const instanceTypes = new Map<string, string>(); // imported instance → its type ref

  for (const form of forms) {
    if (!Array.isArray(form)) continue;
    switch (form[0]) {
      case 'type':
        types.define(form, form[form.length - 1]!);
        break;
      case 'alias':
        if (form[1] === 'export' && Array.isArray(form[4])) {
          const target = form[4];
          const marker: SExpr = ['alias', String(form[2]), unquote(form[3]) ?? '?'];
          if (target[0] === 'type') types.define(target, marker);
          else if (target[0] === 'func') put(funcs, target, marker as SExpr[]);
        }
        break;
      case 'import': {
        const desc = form[2];
        if (!Array.isArray(desc)) break;
        if (desc[0] === 'instance') {
          const ref = typeRef(desc);
          const label = labelOf(desc);
          if (ref && label) instanceTypes.set(label, ref);
          put(instances, desc, ['imported']);
        } else if (desc[0] === 'type') types.define(desc, desc[desc.length - 1]!);
        else if (desc[0] === 'func') put(funcs, desc, desc);
        break;
      }
      case 'func':
        put(funcs, form, form);
        break;
      case 'instance':
        put(instances, form, form);
        break;
      case 'component':
        put(components, form, form);
        break;
      case 'export': {
        exports.push(form);
        const parts = exportParts(form);
        if (parts?.item[0] === 'func') put(funcs, form, ['func', parts.ascribed ? ['type', typeRef(parts.ascribed) ?? '?'] : parts.item]);
        else if (parts?.item[0] === 'type') types.define(form, ['named', parts.name, String(parts.item[1])]);
        else if (parts?.item[0] === 'instance') put(instances, form, ['same', String(parts.item[1])]);
        break;
      }
    }
  }

  const root: Resolver = {
    aliased(instance, name, depth) {
      const ref = instanceTypes.get(instance);
      const type = ref === undefined ? undefined : types.get(ref);
      if (!Array.isArray(type) || type[0] !== 'instance') throw new Unsupported(`a type from ${instance} it cannot read`);
      const scope = instanceTypeScope(type, types);
      const exported = type.find((d) => Array.isArray(d) && d[0] === 'export' && unquote(d[2]) === name) as SExpr[] | undefined;
      const eq = exported && Array.isArray(exported[3]) ? exported[3][1] : undefined;
      if (!Array.isArray(eq) || eq[0] !== 'eq') throw new Unsupported(`a resource (${name})`);
      return resolve(['named', name, String(eq[1])], scope, root, depth);
    },
  };

  /** The function type of a func index at the root: its `(type T)`, following exports and ascriptions. */
  const rootFunction = (ref: string, depth = 0): { params: Param[]; result?: WitType } => {
    const form = funcs.get(ref);
    if (!form || depth > MAX_DEPTH) throw new Unsupported('its function is not defined in the component');
    if (form[0] === 'func' && Array.isArray(form[1]) && form[1][0] === 'type') return functionOf(types.get(String(form[1][1])), types, root);
    if (form[0] === 'func' && Array.isArray(form[1]) && form[1][0] === 'func') return rootFunction(String(form[1][1]), depth + 1);
    if (form[0] === 'alias') throw new Unsupported('it re-exports an imported function');
    const type = typeRef(form);
    if (type === undefined) throw new Unsupported('its type is not declared');
    return functionOf(types.get(type), types, root);
  };

  const functions: TypedFunction[] = [];
  const problems: string[] = [];
  let command: string | undefined;
  const interfaceFunctions: TypedFunction[] = [];
  for (const form of exports) {
    const parts = exportParts(form);
    if (!parts) continue;
    const { name, item } = parts;
    try {
      if (item[0] === 'func') {
        const fn = parts.ascribed ? functionOf(types.get(typeRef(parts.ascribed) ?? '?'), types, root) : rootFunction(String(item[1]));
        functions.push({ name, func: name, ...fn });
      } else if (item[0] === 'instance') {
        if (COMMAND_EXPORT.test(name)) {
          command = name;
          continue;
        }
        const members = instanceFunctions(String(item[1]), instances, components, rootFunction);
        const short = interfaceShortName(name);
        for (const member of members) interfaceFunctions.push({ name: `${short}.${member.func}`, interface: name, ...member });
      } else if (item[0] !== 'type') {
        problems.push(`export \`${name}\` is a ${String(item[0])}, which ICE cannot call`);
      }
    } catch (error) {
      if (!(error instanceof Unsupported)) throw error;
      problems.push(`export \`${name}\` uses ${error.message}`);
    }
  }
  return { functions: [...functions, ...interfaceFunctions], ...(command ? { command } : {}), problems };
}

/** Every top-level form but core modules and core instances (exports need the nested components). */
export function componentForms(wat: string): SExpr[] {
  return topLevelForms(wat, /^\(core\b/);
}

/** `geometry` for `example:calc/geometry@0.1.0`. */
export function interfaceShortName(name: string): string {
  return name.replace(/@.*$/, '').replace(/^.*\//, '');
}

type Member = { func: string; params: Param[]; result?: WitType };

/**
 * The functions of an exported instance. wit-component makes it by instantiating a shim component
 * whose exports ascribe each function's type in the shim's own type space (with the interface's type
 * names, from its type exports); an instance made of inline exports takes the root's functions.
 */
function instanceFunctions(
  ref: string,
  instances: Map<string, SExpr[]>,
  components: Map<string, SExpr[]>,
  rootFunction: (ref: string) => { params: Param[]; result?: WitType },
  depth = 0,
): Member[] {
  const form = instances.get(ref);
  if (!form || depth > MAX_DEPTH) throw new Unsupported('an instance it cannot find');
  if (form[0] === 'same') return instanceFunctions(String(form[1]), instances, components, rootFunction, depth + 1);
  if (form[0] === 'imported') throw new Unsupported('a re-exported import');
  const instantiate = form.find((x) => Array.isArray(x) && x[0] === 'instantiate') as SExpr[] | undefined;
  if (instantiate) {
    const component = components.get(String(instantiate[1]));
    if (!component) throw new Unsupported('an instance of a component it cannot find');
    return shimFunctions(component);
  }
  const members: Member[] = [];
  for (const decl of form) {
    if (!Array.isArray(decl) || decl[0] !== 'export') continue;
    const name = unquote(decl[1]);
    const item = decl[2];
    if (name === undefined || !Array.isArray(item)) continue;
    if (item[0] === 'func') members.push({ func: name, ...rootFunction(String(item[1])) });
    else if (item[0] !== 'type') throw new Unsupported(`an instance exporting a ${String(item[0])}`);
  }
  return members;
}

function shimFunctions(component: SExpr[]): Member[] {
  const scope = new Scope();
  const funcs = new Map<string, string>(); // func index → type ref
  const members: Member[] = [];
  const none: Resolver = {
    aliased() {
      throw new Unsupported('a type from another instance');
    },
  };
  for (const decl of component) {
    if (!Array.isArray(decl)) continue;
    if (decl[0] === 'type') scope.define(decl, decl[decl.length - 1]!);
    else if (decl[0] === 'import' && Array.isArray(decl[2])) {
      const desc = decl[2];
      if (desc[0] === 'type') scope.define(desc, desc[desc.length - 1]!);
      else if (desc[0] === 'func') put(funcs, desc, typeRef(desc) ?? '?');
      else throw new Unsupported(`a shim importing a ${String(desc[0])}`);
    } else if (decl[0] === 'export') {
      const parts = exportParts(decl);
      if (!parts) continue;
      if (parts.item[0] === 'type') scope.define(decl, ['named', parts.name, String(parts.item[1])]);
      else if (parts.item[0] === 'func') {
        const type = parts.ascribed ? typeRef(parts.ascribed) : funcs.get(String(parts.item[1]));
        members.push({ func: parts.name, ...functionOf(type === undefined ? undefined : scope.get(type), scope, none) });
      } else throw new Unsupported(`an interface exporting a ${String(parts.item[0])}`);
    } else if (decl[0] !== 'alias') {
      throw new Unsupported(`an instance built from a component it cannot read (${String(decl[0])})`);
    }
  }
  return members;
}

/** An imported instance type's own index space (types, outer aliases to the root, `eq` exports). */
function instanceTypeScope(body: SExpr[], root: Scope): Scope {
  const scope = new Scope(root);
  for (const decl of body) {
    if (!Array.isArray(decl)) continue;
    if (decl[0] === 'type') scope.define(decl, decl[decl.length - 1]!);
    else if (decl[0] === 'alias' && decl[1] === 'outer' && Array.isArray(decl[4])) {
      scope.define(decl[4], ['outer', String(decl[3])]);
    } else if (decl[0] === 'export' && Array.isArray(decl[3]) && decl[3][0] === 'type') {
      const eq = decl[3][1];
      if (Array.isArray(eq) && eq[0] === 'eq') scope.define(decl, ['named', unquote(decl[2]) ?? '?', String(eq[1])]);
    }
  }
  return scope;
}
