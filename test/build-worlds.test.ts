/**
 * `ice build` for the Rust guest forms beyond the ICE agent world: a guest with its own WIT world
 * (examples/calc) and a WASI command (guests/rust/command). Real cargo builds through `buildGuest`, the
 * function behind `ice build`, and real jco; the errors a guest author gets for a `wit/` that does not
 * say which world to build, or a toolchain without the WASI standard library.
 */
import { componentWit } from '@bytecodealliance/jco';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadPolicyFile } from '../host/src/capabilities/policy.js';
import { buildGuest, BuildError, customSections, type BuildResult } from '../host/src/build/index.js';
import { parseWitDocs } from '../host/src/build/wit-docs.js';
import { worldWitSource } from '../host/src/core/world.js';
import { ice, tempDir } from './helpers.js';
import { CALC_COMPONENT, COMMAND_COMPONENT, EXAMPLES_DIR, ROOT, RUST_GUESTS_DIR } from './paths.js';

const CALC_DIR = join(EXAMPLES_DIR, 'calc');
const COMMAND_DIR = join(RUST_GUESTS_DIR, 'command');

const CALC_EXPORTS = [
  'export add: func(a: u32, b: u32) -> u32;',
  'export divide: func(a: s64, b: s64) -> result<s64, string>;',
  'export greet: func(name: string, excited: option<bool>) -> string;',
  'export stats: func(xs: list<f64>) -> tuple<u32, f64, f64>;',
  'export first-char: func(s: string) -> option<tuple<char, u32>>;',
  'export checksum: func(data: list<u8>) -> u64;',
  'export remember: func(key: string, value: string) -> result<_, string>;',
  'export recall: func(key: string) -> option<string>;',
  'export example:calc/geometry@0.1.0;',
];

/** A custom section's payload as (version byte, parsed JSON). */
function docsSection(component: Uint8Array, name: string): { version: number | undefined; json: unknown } {
  const section = customSections(component).find((s) => s.name === name);
  expect(section, `a ${name} section`).toBeDefined();
  const payload = (section as { payload: Uint8Array }).payload;
  return { version: payload[0], json: JSON.parse(new TextDecoder().decode(payload.subarray(1))) };
}

/** A cargo package in a temp dir: `files` maps a relative path to its contents. */
function rustPackage(name: string, files: Record<string, string>): string {
  const dir = join(tempDir('ice-world-'), name);
  mkdirSync(join(dir, 'src'), { recursive: true });
  const manifest = `[package]\nname = "${name}"\nversion = "0.1.0"\nedition = "2021"\n\n[lib]\ncrate-type = ["cdylib"]\n`;
  writeFileSync(join(dir, 'Cargo.toml'), manifest);
  writeFileSync(join(dir, 'src', 'lib.rs'), '#[export_name = "b"]\nextern "C" fn b() {}\n');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

async function buildError(dir: string): Promise<BuildError> {
  const error = await buildGuest(dir).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(BuildError);
  return error as BuildError;
}

const TWO_WORLDS = 'package test:two@0.1.0;\n\nworld one {\n  export a: func();\n}\n\nworld two {\n  export b: func();\n}\n';

describe('ice build: a Rust guest with its own WIT world (examples/calc)', () => {
  let calc: BuildResult;
  beforeAll(async () => {
    calc = await buildGuest(CALC_DIR);
  });

  it('builds a component of world calc: its exports, and kv as its only ICE import', async () => {
    expect(calc).toMatchObject({ language: 'rust', form: 'world' });
    const wit = await componentWit(calc.component);
    for (const line of CALC_EXPORTS) expect(wit).toContain(`  ${line}\n`);
    expect(wit).toContain('  import ice:agent/kv@0.1.0;\n');
    // kv's error type comes along; no other interface, as calc calls only kv.
    expect([...wit.matchAll(/^ {2}import ([^;]+);$/gm)].map((m) => m[1])).toEqual(['ice:agent/types@0.1.0', 'ice:agent/kv@0.1.0']);
  });

  it('is the component the test setup built for other tests (CALC_COMPONENT)', async () => {
    expect(existsSync(CALC_COMPONENT)).toBe(true);
    expect(await componentWit(readFileSync(CALC_COMPONENT))).toBe(await componentWit(calc.component));
  });

  it('carries its WIT docs: package-docs for the component world, ice:package-docs for its package', async () => {
    const names = customSections(calc.component).map((s) => s.name);
    expect(names.slice(-2)).toEqual(['package-docs', 'ice:package-docs']);

    // package-docs: a version byte (1), then wit-component's JSON for the decoded component's own world:
    // {"worlds":{"root":{"func_exports":{"add":{"docs":"Adds two numbers, wrapping at 2^32.\n"}, …}}}}
    const forComponent = docsSection(calc.component, 'package-docs');
    expect(forComponent.version).toBe(1);
    expect(forComponent.json).toEqual({
      worlds: {
        root: {
          func_exports: expect.objectContaining({
            add: { docs: 'Adds two numbers, wrapping at 2^32.\n' },
            recall: { docs: 'Reads back a remembered value.\n' },
          }),
        },
      },
    });
    expect(Object.keys((forComponent.json as { worlds: { root: { func_exports: object } } }).worlds.root.func_exports)).toHaveLength(8);
    // wit-component reads that section back: the decoded world has the docs.
    expect(await componentWit(calc.component)).toContain('  /// Adds two numbers, wrapping at 2^32.\n  export add: func(a: u32, b: u32) -> u32;\n');

    // ice:package-docs: the same format for the guest's package by its own names, with "package".
    const forPackage = docsSection(calc.component, 'ice:package-docs');
    expect(forPackage.version).toBe(1);
    expect(forPackage.json).toMatchObject({
      package: 'example:calc@0.1.0',
      worlds: { calc: { func_exports: { checksum: { docs: 'FNV-1a 64-bit hash of some bytes.\n' } } } },
      interfaces: {
        geometry: {
          docs: 'Shapes and their measures.\n',
          funcs: {
            area: { docs: 'The area of a shape, in square units.\n' },
            'describe-style': { docs: 'A style as text, e.g. "bold+italic (metric)"; "plain (metric)" when no flag is set.\n' },
          },
          types: { point: { docs: 'A point in the plane.\n' }, shape: { docs: 'A circle by its radius, a rectangle by two corners, or nothing.\n' } },
        },
      },
    });
  });

  it('has a policy that grants kv, and ice inspect asks for exactly that', () => {
    expect(loadPolicyFile(join(CALC_DIR, 'policy.yaml'))).toBeDefined();
    const inspected = ice(['inspect', CALC_COMPONENT]);
    expect(inspected.code).toBe(0);
    expect(inspected.stdout).toContain('policy keys it needs: grants.kv\n');
  });
});

describe('ice build: choosing the world of wit/', () => {
  it('refuses a wit/ with two worlds and no [package.metadata.ice] world, naming the fix', async () => {
    const dir = rustPackage('two-worlds', { 'wit/two.wit': TWO_WORLDS });
    expect((await buildError(dir)).reason).toBe(
      'wit/ declares 2 worlds (one, two): name the one to build in Cargo.toml with `[package.metadata.ice] world = "one"`',
    );
  });

  it('builds the world [package.metadata.ice] names', async () => {
    const dir = rustPackage('chosen-world', { 'wit/two.wit': TWO_WORLDS });
    writeFileSync(join(dir, 'Cargo.toml'), `${readFileSync(join(dir, 'Cargo.toml'), 'utf8')}\n[package.metadata.ice]\nworld = "two"\n`);
    const built = await buildGuest(dir);
    expect(built.form).toBe('world');
    const wit = await componentWit(built.component);
    expect(wit).toContain('  export b: func();\n');
    expect(wit).not.toContain('export a:');
  });

  it('refuses a world name that wit/ does not declare, and a wit/ without a package or declaring ice:agent', async () => {
    const misnamed = rustPackage('misnamed', { 'wit/two.wit': TWO_WORLDS });
    writeFileSync(join(misnamed, 'Cargo.toml'), `${readFileSync(join(misnamed, 'Cargo.toml'), 'utf8')}\n[package.metadata.ice]\nworld = "three"\n`);
    expect((await buildError(misnamed)).reason).toBe('Cargo.toml\'s `[package.metadata.ice] world = "three"` names no world of wit/ (it declares one, two)');

    const unnamed = rustPackage('unnamed', { 'wit/w.wit': 'world w { export b: func(); }\n' });
    expect((await buildError(unnamed)).reason).toContain('no file in wit/ declares its package: start one with `package <namespace>:<name>@<version>;`');

    const ice = rustPackage('not-ice', { 'wit/w.wit': 'package ice:agent@0.1.0;\nworld w { export b: func(); }\n' });
    expect((await buildError(ice)).reason).toContain('wit/ must not declare ice:agent');
  });

  it('joins a package split over several files', async () => {
    const dir = rustPackage('split', {
      'wit/a.wit': 'package test:split@0.1.0;\n\n/// Things.\ninterface things {\n  /// Nothing at all.\n  nothing: func();\n}\n',
      'wit/b.wit': 'package test:split@0.1.0;\n\n/// The world.\nworld split {\n  import things;\n  /// Exported.\n  export b: func();\n}\n',
    });
    const built = await buildGuest(dir);
    const wit = await componentWit(built.component);
    expect(wit).toContain('/// The world.\nworld root {');
    expect(wit).toContain('  /// Exported.\n  export b: func();\n');
    expect(docsSection(built.component, 'ice:package-docs').json).toEqual({
      package: 'test:split@0.1.0',
      worlds: { split: { docs: 'The world.\n', func_exports: { b: { docs: 'Exported.\n' } } } },
      interfaces: { things: { docs: 'Things.\n', funcs: { nothing: { docs: 'Nothing at all.\n' } } } },
    });
  });
});

describe('WIT doc comments', () => {
  it('reads the docs of every kind of item, by the names wit-component gives them', () => {
    const wit = parseWitDocs(
      [
        '/// The package.',
        'package test:docs@0.1.0;',
        '',
        '/** An interface',
        '  with a block comment. */',
        'interface things {',
        '  // not a doc comment',
        '  /// A handle.',
        '  resource handle {',
        '    /// Makes one.',
        '    constructor(n: u32);',
        '    /// Its size.',
        '    size: func() -> u32;',
        '    /// Another one.',
        '    copy: static func(h: borrow<handle>) -> handle;',
        '  }',
        '  /// An alias.',
        '  type id = u32;',
        '  /// A choice.',
        '  variant choice { /// The first.',
        '    first(list<tuple<u8, u8>>), second }',
        '  /// Not built.',
        '  @unstable(feature = later)',
        '  later: func();',
        '  /// Stable since 0.1.0.',
        '  @since(version = 0.1.0)',
        '  %type: func(a: option<u8>) -> result<_, string>;',
        '}',
        '',
        'world w {',
        '  /// Inline.',
        '  export inline: interface { /// In it.',
        '    f: func(); }',
        '  /// Imported.',
        '  import ping: async func();',
        '  /// By path: nowhere to keep these.',
        '  import things;',
        '  include other;',
        '}',
        'world other { export g: func(); }',
      ].join('\n'),
    );
    expect(wit.package?.name).toBe('test:docs@0.1.0');
    expect(wit.worlds).toEqual(['w', 'other']);
    expect(wit.docs).toEqual({
      docs: 'The package.\n',
      worlds: {
        w: {
          interfaces: {},
          types: {},
          funcs: { ping: { docs: 'Imported.\n' } },
          interface_exports: { inline: { docs: 'Inline.\n', funcs: { f: { docs: 'In it.\n' } }, types: {} } },
          func_exports: {},
        },
        other: { interfaces: {}, types: {}, funcs: {}, interface_exports: {}, func_exports: { g: { docs: undefined } } },
      },
      interfaces: {
        things: {
          docs: ' An interface\n  with a block comment. \n',
          funcs: {
            '[constructor]handle': { docs: 'Makes one.\n' },
            '[method]handle.size': { docs: 'Its size.\n' },
            '[static]handle.copy': { docs: 'Another one.\n' },
            type: { docs: 'Stable since 0.1.0.\n' },
          },
          types: {
            handle: { docs: 'A handle.\n' },
            id: { docs: 'An alias.\n' },
            choice: { docs: 'A choice.\n', items: { first: 'The first.\n' } },
          },
        },
      },
    });
  });

  it('finds the world of the ICE WIT and never stops on text that is not WIT', () => {
    expect(parseWitDocs(worldWitSource()).worlds).toEqual(['agent']);
    for (const text of ['', '}}}', 'world', 'interface x {', 'world w { export', '/* open', '@@@ ( < {', 'package a:b { world x {} }']) {
      expect(() => parseWitDocs(text)).not.toThrow();
    }
  });

  it('keeps only docs the decoded component has in package-docs, so componentWit still reads it', async () => {
    const dir = rustPackage('inline', {
      'wit/w.wit': [
        'package test:inline@0.1.0;',
        '/// A world.',
        'world w {',
        '  /// Unused, so not in the component.',
        '  import ping: func();',
        '  /// A type.',
        '  type id = u32;',
        '  /// Inline.',
        '  export things: interface {',
        '    /// Nothing.',
        '    nothing: func();',
        '  }',
        '  /// Exported.',
        '  export b: func();',
        '}',
      ].join('\n'),
    });
    writeFileSync(join(dir, 'src', 'lib.rs'), '#[export_name = "b"]\nextern "C" fn b() {}\n#[export_name = "things#nothing"]\nextern "C" fn nothing() {}\n');
    const built = await buildGuest(dir);
    expect(docsSection(built.component, 'package-docs').json).toEqual({
      worlds: { root: { docs: 'A world.\n', func_exports: { b: { docs: 'Exported.\n' } }, interface_exports: { things: { docs: 'Inline.\n', funcs: { nothing: { docs: 'Nothing.\n' } } } } } },
    });
    const wit = await componentWit(built.component);
    expect(wit).toContain('/// A world.\nworld root {');
    expect(wit).toContain('  /// Inline.\n  export things: interface {\n    /// Nothing.\n    nothing: func();\n  }');
  });
});

describe('ice build: a Rust WASI command (guests/rust/command)', () => {
  it('builds a wasi:cli/command component that imports only WASI interfaces', async () => {
    const built = await buildGuest(COMMAND_DIR);
    expect(built).toMatchObject({ language: 'rust', form: 'command' });
    const wit = await componentWit(built.component);
    expect(wit).toMatch(/^ {2}export wasi:cli\/run@0\.2\.\d+;$/m);
    const imports = [...wit.matchAll(/^ {2}import ([^;]+);$/gm)].map((m) => m[1] as string);
    expect(imports).toContain('wasi:cli/stdin@0.2.12');
    expect(imports.filter((i) => !i.startsWith('wasi:'))).toEqual([]);
    expect(existsSync(COMMAND_COMPONENT)).toBe(true);
  });

  it('names the missing WASI standard library and the Debian package that has it', () => {
    // A rustc whose target libdir holds no standard library, for every target.
    const dir = tempDir('ice-no-wasi-');
    const rustc = join(dir, 'rustc');
    writeFileSync(rustc, `#!/bin/sh\nif [ "$1" = "--print" ] && [ "$2" = "target-libdir" ]; then echo ${dir}; exit 0; fi\nexec /usr/bin/rustc "$@"\n`);
    chmodSync(rustc, 0o755);
    const out = ice(['build', 'guests/rust/command', '-o', join(dir, 'x.wasm')], { env: { ICE_RUSTC: rustc } });
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(`cannot build ${join(ROOT, 'guests', 'rust', 'command')}: no Rust toolchain for wasm32-wasip1 or wasm32-wasi was found`);
    expect(out.stderr).toContain('apt-get install rustc cargo libstd-rust-dev-wasm32 lld (or rustup target add wasm32-wasip1)');
  });
});
