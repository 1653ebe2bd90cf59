/**
 * The exact types a component declares for each instance it imports, read from wasm-tools' text form
 * of the component (jco `print`) and rendered as WIT-like lines:
 *
 *   type error = variant{denied(string), limit(string), invalid(string), failed(string)}
 *   get: func(key: string) -> result<option<string>, error>
 *
 * Type indices, aliases and `eq` exports are resolved, so the rendering depends only on the types and
 * names themselves: the same interface gives the same lines whichever other imports the component has.
 * Admission compares these lines with those of the ICE world (a component synthesized from wit/), so
 * a component that declares `kv.get` with any other signature is refused before it is compiled.
 *
 * Anything this reader does not understand renders as `?` (never matching the world): unknown type
 * forms fail closed.
 */
import { indexOf, topLevelForms, unquote, type SExpr } from './sexpr.js';

/** Imported instance name → item name → rendering. */
export type ImportSignatures = Record<string, Record<string, string>>;

const MAX_DEPTH = 64;
const PRIMITIVES = new Set(['bool', 's8', 'u8', 's16', 'u16', 's32', 'u32', 's64', 'u64', 'f32', 'f64', 'float32', 'float64', 'char', 'string']);

/** `forms`: the component's top-level forms when already read (inspect reads them once for imports and exports). */
export function importSignatures(wat: string, forms: readonly SExpr[] = topLevelForms(wat)): ImportSignatures {
  const types = new Map<number, SExpr>(); // component-level type index → definition form
  const typeNames = new Map<string, number>();
  const instances = new Map<string, { name: string; type: string }>(); // $instance → import
  const imports: { name: string; type: string }[] = [];

  for (const form of forms) {
    if (!Array.isArray(form)) continue;
    const [head] = form;
    if (head === 'type') {
      const index = indexOf(form);
      if (index === undefined) continue;
      const name = form.find((x) => typeof x === 'string' && x.startsWith('$')) as string | undefined;
      if (name) typeNames.set(name, index);
      types.set(index, form[form.length - 1]!);
    } else if (head === 'alias' && form[1] === 'export') {
      // (alias export $instance "name" (type $t (;N;)))
      const target = form[4];
      if (Array.isArray(target) && target[0] === 'type') {
        const index = indexOf(target);
        if (index === undefined) continue;
        const name = target.find((x) => typeof x === 'string' && x.startsWith('$')) as string | undefined;
        if (name) typeNames.set(name, index);
        types.set(index, ['instance-export', form[2] as string, form[3] as string]);
      }
    } else if (head === 'import') {
      // (import "name" (instance $x (;N;) (type $ty)))
      const name = unquote(form[1]);
      const desc = form[2];
      if (!Array.isArray(desc) || desc[0] !== 'instance' || name === undefined) continue;
      const typeRef = desc.find((x) => Array.isArray(x) && x[0] === 'type') as SExpr[] | undefined;
      const label = desc.find((x) => typeof x === 'string' && x.startsWith('$')) as string | undefined;
      const entry = { name, type: typeRef ? String(typeRef[1]) : '?' };
      imports.push(entry);
      if (label) instances.set(label, entry);
    }
  }

  const componentType = (ref: string): SExpr | undefined => {
    const index = ref.startsWith('$') ? typeNames.get(ref) : Number(ref);
    return index === undefined ? undefined : types.get(index);
  };

  /** Renders the items of an instance type body. */
  const renderInstance = (body: SExpr, depth: number): Record<string, string> => {
    const items: Record<string, string> = {};
    if (!Array.isArray(body) || body[0] !== 'instance') return items;
    const scope = instanceScope(body);
    for (const decl of body) {
      if (!Array.isArray(decl) || decl[0] !== 'export') continue;
      const name = unquote(decl[2]);
      const what = decl[3];
      if (name === undefined || !Array.isArray(what)) continue;
      if (what[0] === 'func') {
        const typeRef = what.find((x) => Array.isArray(x) && x[0] === 'type') as SExpr[] | undefined;
        const def = typeRef ? scope.get(Number(typeRef[1])) : undefined;
        items[name] = `${name}: ${def ? render(def, scope, depth, false) : '?'}`;
      } else if (what[0] === 'type') {
        const eq = what[1];
        const target = Array.isArray(eq) && eq[0] === 'eq' ? scope.get(Number(eq[1])) : undefined;
        items[name] = `type ${name} = ${target ? render(target, scope, depth, true) : '?'}`;
      }
    }
    return items;
  };

  /**
   * One instance type's local type index space: `(type ...)`, `(alias outer ...)` and
   * `(export ... (type (eq j)))` each define the next index.
   */
  function instanceScope(body: SExpr[]): Map<number, SExpr> {
    const scope = new Map<number, SExpr>();
    for (const decl of body) {
      if (!Array.isArray(decl)) continue;
      if (decl[0] === 'type') {
        const index = indexOf(decl);
        if (index !== undefined) scope.set(index, decl[decl.length - 1]!);
      } else if (decl[0] === 'alias' && decl[1] === 'outer') {
        const target = decl[4];
        const index = Array.isArray(target) ? indexOf(target) : undefined;
        if (index !== undefined) scope.set(index, ['outer', String(decl[3])]);
      } else if (decl[0] === 'export' && Array.isArray(decl[3]) && decl[3][0] === 'type') {
        const index = indexOf(decl);
        const eq = decl[3][1];
        if (index !== undefined && Array.isArray(eq)) scope.set(index, ['named', unquote(decl[2]) ?? '?', String(eq[1])]);
      }
    }
    return scope;
  }

  /**
   * A value or function type as text. `named` types render by name inside signatures and by structure
   * when the named type itself is the item (`structural`), so names and structure are both compared.
   */
  function render(def: SExpr, scope: Map<number, SExpr>, depth: number, structural: boolean): string {
    if (depth > MAX_DEPTH) return '?';
    const next = depth + 1;
    const ref = (x: SExpr | undefined): string => {
      if (x === undefined) return '_';
      if (typeof x === 'string') {
        if (PRIMITIVES.has(x)) return x === 'float32' ? 'f32' : x === 'float64' ? 'f64' : x;
        const local = scope.get(Number(x));
        return local === undefined ? '?' : render(local, scope, next, false);
      }
      return render(x, scope, next, false);
    };
    if (typeof def === 'string') return ref(def);
    const [head, ...rest] = def;
    switch (head) {
      case 'named': {
        const target = scope.get(Number(rest[1]));
        return structural ? (target === undefined ? '?' : render(target, scope, next, true)) : String(rest[0]);
      }
      case 'outer': {
        // Outer types are the component's: an alias of an export of another imported instance.
        const outer = componentType(String(rest[0]));
        if (!Array.isArray(outer) || outer[0] !== 'instance-export') return '?';
        const instance = instances.get(String(outer[1]));
        const instanceType = instance ? componentType(instance.type) : undefined;
        if (!Array.isArray(instanceType)) return '?';
        const item = renderInstance(instanceType, next)[unquote(outer[2]) ?? ''];
        return item?.startsWith('type ') ? item.slice(item.indexOf('=') + 2) : '?';
      }
      case 'func': {
        const params = rest.filter((x) => Array.isArray(x) && x[0] === 'param') as SExpr[][];
        const result = rest.find((x) => Array.isArray(x) && x[0] === 'result') as SExpr[] | undefined;
        const list = params.map((p) => `${unquote(p[1]) ?? '?'}: ${ref(p[2])}`).join(', ');
        return `func(${list})${result ? ` -> ${ref(result[1])}` : ''}`;
      }
      case 'option':
        return `option<${ref(rest[0])}>`;
      case 'list':
        return `list<${ref(rest[0])}>`;
      case 'result': {
        const error = rest.find((x) => Array.isArray(x) && x[0] === 'error') as SExpr[] | undefined;
        const ok = rest.find((x) => !(Array.isArray(x) && x[0] === 'error'));
        return `result<${ok === undefined ? '_' : ref(ok)}, ${error ? ref(error[1]) : '_'}>`;
      }
      case 'tuple':
        return `tuple<${rest.map(ref).join(', ')}>`;
      case 'enum':
        return `enum{${rest.map((x) => unquote(x) ?? '?').join(', ')}}`;
      case 'flags':
        return `flags{${rest.map((x) => unquote(x) ?? '?').join(', ')}}`;
      case 'variant':
        return `variant{${rest
          .map((c) => (Array.isArray(c) && c[0] === 'case' ? `${unquote(c[1]) ?? '?'}${c[2] === undefined ? '' : `(${ref(c[2])})`}` : '?'))
          .join(', ')}}`;
      case 'record':
        return `record{${rest
          .map((f) => (Array.isArray(f) && f[0] === 'field' ? `${unquote(f[1]) ?? '?'}: ${ref(f[2])}` : '?'))
          .join(', ')}}`;
      default:
        return '?';
    }
  }

  const out: ImportSignatures = {};
  for (const entry of imports) {
    const type = componentType(entry.type);
    out[entry.name] = type === undefined ? {} : renderInstance(type, 0);
  }
  return out;
}

/**
 * Differences between what a component declares for the world's interfaces and the world itself:
 * every item the component declares for an interface the world has must be the world's item,
 * rendered identically. Interfaces the world does not have are admission's business, not this.
 */
export function signatureMismatches(component: ImportSignatures, world: ImportSignatures): string[] {
  const out: string[] = [];
  for (const [name, items] of Object.entries(component)) {
    const expected = world[name];
    if (!expected) continue;
    for (const [item, rendering] of Object.entries(items)) {
      const want = expected[item];
      if (want === undefined) out.push(`${name} declares \`${rendering}\`, which the world does not have`);
      else if (want !== rendering) out.push(`${name} declares \`${rendering}\` where the world has \`${want}\``);
    }
  }
  return out;
}
