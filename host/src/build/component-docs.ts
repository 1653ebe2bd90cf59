/**
 * Doc comments into a built component, as custom sections appended at its end.
 *
 * - `package-docs`: the section wit-component itself reads when it decodes a component (jco's
 *   `componentWit`, `jco transpile`), which applies it to the component's own package, `root:component`
 *   with world `root`. So it holds only what that world is sure to have: the built world's docs and the
 *   docs of the functions and inline interfaces it exports (an import the core module does not use is
 *   dropped, and docs for a missing item make the decoder fail). Its payload is a version byte (1) and
 *   then JSON, e.g.
 *   `{"worlds":{"root":{"docs":"…","func_exports":{"add":{"docs":"Adds two numbers, wrapping at 2^32.\n"}}}}}`.
 * - `ice:package-docs`: every doc comment of the guest's package, under its real names, in the same
 *   format plus the package name (the newest wit-component's `package` field, which jco 1.35's decoder
 *   would reject in `package-docs`), e.g. `{"package":"example:calc@0.1.0","worlds":{"calc":{…}},
 *   "interfaces":{"geometry":{"docs":"Shapes and their measures.\n","funcs":{"area":{"docs":"…"}},
 *   "types":{"point":{"docs":"…"}}}}}`. Exported interfaces' docs are only here.
 */
import { appendCustomSection } from './custom-sections.js';
import { encodePackageDocs, pruneDocs, type InterfaceDocs, type PackageDocs } from './wit-docs.js';

export const PACKAGE_DOCS_SECTION = 'package-docs';
export const ICE_PACKAGE_DOCS_SECTION = 'ice:package-docs';
/** What wit-component names a decoded component's world. */
const COMPONENT_WORLD = 'root';

/** The docs wit-component may apply to the component's `root` world, or undefined when there are none. */
export function componentWorldDocs(docs: PackageDocs | undefined, world: string): PackageDocs | undefined {
  const built = docs?.worlds?.[world];
  if (built === undefined && docs?.docs === undefined) return undefined;
  const exportsOnly = (iface: InterfaceDocs): InterfaceDocs => ({ docs: iface.docs, funcs: iface.funcs });
  return pruneDocs<PackageDocs>({
    docs: docs?.docs,
    worlds: {
      [COMPONENT_WORLD]: {
        docs: built?.docs,
        func_exports: built?.func_exports,
        interface_exports: Object.fromEntries(Object.entries(built?.interface_exports ?? {}).map(([name, iface]) => [name, exportsOnly(iface)])),
      },
    },
  });
}

/** `component` with the docs sections appended (unchanged when the package has no docs). */
export function withDocs(component: Uint8Array, docs: PackageDocs | undefined, world: string): Uint8Array {
  let out = component;
  const forComponent = componentWorldDocs(docs, world);
  if (forComponent !== undefined) out = appendCustomSection(out, PACKAGE_DOCS_SECTION, encodePackageDocs(forComponent));
  if (docs !== undefined) out = appendCustomSection(out, ICE_PACKAGE_DOCS_SECTION, encodePackageDocs(docs));
  return out;
}
