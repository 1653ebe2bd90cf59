/**
 * A guest's own WIT package (its `wit/` directory) as one `componentEmbed` source: the guest's package,
 * then the ICE world's package nested in it (`package ice:agent@0.1.0 { … }`), so the guest's world can
 * `import ice:agent/kv@0.1.0;` without copying ICE's wit/ files. Also picks the world to build and
 * collects the package's doc comments.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ICE_PACKAGE, ICE_WIT_VERSION, worldWitSource } from '../core/world.js';
import { BuildError } from './errors.js';
import { parseWitDocs, pruneDocs, type InterfaceDocs, type PackageDocs, type WorldDocs } from './wit-docs.js';

export const GUEST_WIT_DIR = 'wit';
/** How a package with several worlds names the one to build (Cargo.toml). */
export const WORLD_METADATA_HINT = '[package.metadata.ice] world';

export interface GuestWit {
  /** `example:calc@0.1.0`. */
  packageName: string;
  /** The world built, by its name in the package. */
  world: string;
  /** The world built, fully named: `example:calc/calc@0.1.0`. */
  qualifiedWorld: string;
  /** For componentEmbed: the guest's package, then ice:agent nested. */
  witSource: string;
  /** Every doc comment of the guest's package (pruned; undefined when it has none). */
  docs: PackageDocs | undefined;
}

/**
 * @param packageDir the directory holding `wit/`
 * @param chosenWorld the world the package's manifest names, if it names one
 * @throws BuildError naming what is wrong with `wit/` and how to fix it
 */
export function readGuestWit(packageDir: string, chosenWorld: string | undefined): GuestWit {
  const witDir = join(packageDir, GUEST_WIT_DIR);
  if (existsSync(join(witDir, 'deps'))) {
    throw new BuildError(packageDir, `${GUEST_WIT_DIR}/deps/ is not supported: a guest's world may import only ${ICE_PACKAGE} interfaces, which the build provides`);
  }
  const files = readdirSync(witDir).filter((f) => f.endsWith('.wit') && statSync(join(witDir, f)).isFile()).sort();
  if (files.length === 0) throw new BuildError(packageDir, `${GUEST_WIT_DIR}/ holds no .wit file: put the guest's WIT package there`);

  const parsed = files.map((file) => ({ file, text: readFileSync(join(witDir, file), 'utf8') })).map((f) => ({ ...f, wit: parseWitDocs(f.text) }));
  const names = [...new Set(parsed.flatMap((f) => (f.wit.package ? [f.wit.package.name] : [])))];
  if (names.length === 0) {
    throw new BuildError(packageDir, `no file in ${GUEST_WIT_DIR}/ declares its package: start one with \`package <namespace>:<name>@<version>;\``);
  }
  if (names.length > 1) {
    throw new BuildError(packageDir, `${GUEST_WIT_DIR}/ declares packages ${names.join(', ')}: it must hold exactly one package`);
  }
  const packageName = names[0] as string;
  if (packageName.split('@')[0] === ICE_PACKAGE) {
    throw new BuildError(packageDir, `${GUEST_WIT_DIR}/ must not declare ${ICE_PACKAGE}: the build provides it; import its interfaces, e.g. \`import ${ICE_PACKAGE}/kv@${ICE_WIT_VERSION};\``);
  }

  const worlds = parsed.flatMap((f) => f.wit.worlds);
  const world = chooseWorld(packageDir, worlds, chosenWorld);

  // One package header for the joined files: each file's own comes out (its doc comment stays, a comment).
  const bodies = parsed.map(({ file, text, wit }) => {
    const body = wit.package ? text.slice(0, wit.package.start) + text.slice(wit.package.end) : text;
    return `// ---- ${GUEST_WIT_DIR}/${file}\n${body.trim()}\n`;
  });
  const iceBody = worldWitSource().replace(/^\s*package\s+[^;]+;/, '').trim();
  const witSource = `package ${packageName};\n\n${bodies.join('\n')}\npackage ${ICE_PACKAGE}@${ICE_WIT_VERSION} {\n${iceBody}\n}\n`;

  const worldDocs: Record<string, WorldDocs> = {};
  const interfaceDocs: Record<string, InterfaceDocs> = {};
  let packageDocs: string | undefined;
  for (const { wit } of parsed) {
    Object.assign(worldDocs, wit.docs.worlds);
    Object.assign(interfaceDocs, wit.docs.interfaces);
    packageDocs ??= wit.docs.docs;
  }
  const docs = pruneDocs<PackageDocs>({ package: packageName, docs: packageDocs, worlds: worldDocs, interfaces: interfaceDocs });
  // A name alone is no documentation.
  const [name, version] = packageName.split('@');
  const qualifiedWorld = `${name}/${world}${version === undefined ? '' : `@${version}`}`;
  return { packageName, world, qualifiedWorld, witSource, docs: docs && Object.keys(docs).length > 1 ? docs : undefined };
}

function chooseWorld(packageDir: string, worlds: readonly string[], chosen: string | undefined): string {
  const listed = worlds.join(', ');
  if (chosen !== undefined) {
    if (!worlds.includes(chosen)) {
      throw new BuildError(packageDir, `Cargo.toml's \`${WORLD_METADATA_HINT} = "${chosen}"\` names no world of ${GUEST_WIT_DIR}/ (it declares ${listed || 'none'})`);
    }
    return chosen;
  }
  if (worlds.length === 0) {
    throw new BuildError(packageDir, `${GUEST_WIT_DIR}/ declares no world: add one, e.g. \`world main { import ${ICE_PACKAGE}/kv@${ICE_WIT_VERSION}; export hello: func() -> string; }\``);
  }
  if (worlds.length > 1) {
    throw new BuildError(packageDir, `${GUEST_WIT_DIR}/ declares ${worlds.length} worlds (${listed}): name the one to build in Cargo.toml with \`${WORLD_METADATA_HINT} = "${worlds[0]}"\``);
  }
  return worlds[0] as string;
}
