/**
 * What ICE refuses at load: bytes that are not a component, components that import outside the
 * world or beyond their policy, and imports whose signatures differ from wit/.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { componentEmbed, componentNew } from '@bytecodealliance/jco';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoadError, type Host } from '../host/src/index.js';
import { worldWitSource } from '../host/src/core/world.js';
import { freshHost, tempDir, writePolicy } from './helpers.js';
import { LANGUAGES, guestWasm } from './paths.js';

/** A policy that grants (or denies) every interface, so a load only ever fails on the component. */
const allGranted = (component: string): string =>
  writePolicy(`version: 1\ncomponent: ${component}\ngrants:\n  log: {}\n  clock: {}\n  random: {}\n  kv: { read: ["*"], write: ["*"] }\n  events: { kinds: ["*"] }\n`);

const RUN = 'export run: func(input: string) -> result<string, string>;';
const TYPES = 'interface types { variant error { denied(string), limit(string), invalid(string), failed(string) } }';

/** A real component (jco's dummy core module) for a world we write, to play a hostile third party. */
async function componentFor(wit: string, world = 'w'): Promise<Uint8Array> {
  return componentNew(await componentEmbed({ dummy: true, witSource: wit, world, stringEncoding: 'utf8' }), []);
}

async function loadError(host: Host, bytes: Uint8Array | string, policy: string): Promise<LoadError> {
  const error = await host.load(bytes, policy).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LoadError);
  return error as LoadError;
}

describe('admission', () => {
  let host: Host;
  const logOnly = writePolicy('version: 1\ncomponent: probe\ngrants:\n  log: {}\n');
  beforeAll(async () => ({ host } = await freshHost()));
  afterAll(() => host.close());

  it('refuses an import outside the ICE world, naming it', async () => {
    const bytes = await componentFor(`package evil:net@0.1.0;\ninterface socket { connect: func(host: string) -> u32; }\nworld w { import socket; ${RUN} }`);
    const error = await loadError(host, bytes, logOnly);
    expect(error.code).toBe('foreign-import');
    expect(error.message).toBe(
      '<component bytes> imports evil:net/socket@0.1.0, which is not part of the ice:agent@0.1.0 world: ' +
        'ICE provides only ice:agent/{log,clock,random,kv,events,http,model}@0.1.0 and the WASI 0.2 interfaces a grants.wasi section covers; rebuild the guest against wit/',
    );
  });

  it('refuses another version of an ICE interface', async () => {
    const wit = `package ice:agent@0.2.0;\n${TYPES}\ninterface log { use types.{error}; enum level { trace, debug, info, warn, error } write: func(level: level, message: string) -> result<_, error>; }\nworld w { import log; ${RUN} }`;
    const error = await loadError(host, await componentFor(wit), logOnly);
    expect(error.code).toBe('foreign-import');
    expect(error.message).toContain('imports ice:agent/types@0.2.0, ice:agent/log@0.2.0, which are not part of the ice:agent@0.1.0 world');
  });

  for (const language of LANGUAGES) {
    it(`refuses an import the policy does not mention, naming the policy key that would grant it (${language})`, async () => {
      const counter = guestWasm('counter', language);
      const error = await loadError(host, counter, logOnly);
      expect(error.code).toBe('ungranted-import');
      expect(error.message).toBe(
        `${counter} imports ice:agent/kv@0.1.0, which policy ${logOnly} does not grant: ` +
          'add grants.kv (or set grants.kv: deny to load it with every call denied)',
      );
    });

    // Every guest imports log: both SDKs report an abort or a panic through it before trapping.
    it(`admits a guest importing only the interfaces its code calls, plus log (${language})`, async () => {
      const imports = async (name: string) => (await host.load(guestWasm(name, language), allGranted(name))).imports;
      expect(await imports('hello')).toEqual(['log']);
      expect(await imports('counter')).toEqual(['log', 'kv']);
      expect(await imports('clock-random')).toEqual(['log', 'clock', 'random']);
      expect(await imports('event-emitter')).toEqual(['log', 'events']);
      expect(await imports('denied')).toEqual(['log', 'kv']);
    });
  }

  describe('imports whose types differ from wit/', () => {
    const kvPolicy = writePolicy('version: 1\ncomponent: probe\ngrants:\n  log: {}\n  kv: { read: ["*"] }\n');
    const LOG = 'interface log { use types.{error}; enum level { trace, debug, info, warn, error } write: func(level: level, message: string) -> result<_, error>; }';
    const cases: [string, string, string][] = [
      [
        'a parameter of another type',
        `${TYPES}\ninterface kv { use types.{error}; get: func(key: u32) -> result<option<string>, error>; }`,
        'ice:agent/kv@0.1.0 declares `get: func(key: u32) -> result<option<string>, error>` where the world has `get: func(key: string) -> result<option<string>, error>`',
      ],
      [
        'a bare return instead of a result',
        `${TYPES}\ninterface kv { get: func(key: string) -> option<string>; }`,
        'ice:agent/kv@0.1.0 declares `get: func(key: string) -> option<string>` where the world has `get: func(key: string) -> result<option<string>, error>`',
      ],
      [
        'a renamed parameter',
        `${TYPES}\ninterface kv { use types.{error}; get: func(name: string) -> result<option<string>, error>; }`,
        'declares `get: func(name: string) -> result<option<string>, error>`',
      ],
      [
        'a function the world does not have',
        `${TYPES}\ninterface kv { use types.{error}; drop-all: func() -> result<_, error>; }`,
        'ice:agent/kv@0.1.0 declares `drop-all: func() -> result<_, error>`, which the world does not have',
      ],
      [
        'an error variant with other cases',
        `interface types { variant error { denied(string), allowed(string) } }\ninterface kv { use types.{error}; get: func(key: string) -> result<option<string>, error>; }`,
        'ice:agent/types@0.1.0 declares `type error = variant{denied(string), allowed(string)}`',
      ],
      [
        'an enum with other cases',
        `${TYPES}\n${LOG.replace('warn, error }', 'warn, error, fatal }')}`,
        'declares `type level = enum{trace, debug, info, warn, error, fatal}`',
      ],
    ];
    for (const [what, interfaces, message] of cases) {
      it(`refuses ${what}, before compiling anything`, async () => {
        const world = interfaces.includes('interface log') ? 'import log;' : 'import kv;';
        const bytes = await componentFor(`package ice:agent@0.1.0;\n${interfaces}\nworld w { ${world} ${RUN} }`);
        const error = await loadError(host, bytes, kvPolicy);
        expect(error.code).toBe('signature-mismatch');
        expect(error.message.startsWith('<component bytes> declares ICE imports that differ from the ice:agent@0.1.0 world in wit/: ')).toBe(true);
        expect(error.message).toContain(message);
        expect(error.message).toMatch(/; rebuild the guest against this version of the world$/);
      });
    }
  });

  it('loads a `run` of another signature as a typed export, but `run(input)` refuses it, naming the expected signature', async () => {
    const wit = `package x:y@0.1.0;\nworld w { export run: func(input: u32) -> string; }`;
    const agent = await host.load(await componentFor(wit), logOnly);
    expect(agent.implementsRun).toBe(false);
    expect(agent.functions.map((f) => f.name)).toEqual(['run']);
    await expect(agent.run('x')).rejects.toThrow(/does not implement `run: func\(input: string\) -> result<string, string>`; it exports run: call one with `ice call/);
  });

  it('refuses a component exporting a function that takes a resource, naming the export', async () => {
    const wit = `package x:y@0.1.0;\ninterface files { resource file { name: func() -> string; } open: func(path: string) -> file; }\nworld w { export files; export ok: func() -> u8; }`;
    const error = await loadError(host, await componentFor(wit), logOnly);
    expect(error.code).toBe('bad-export');
    expect(error.message).toContain('export `x:y/files@0.1.0` uses');
    expect(error.message).toContain('resource');
  });

  it('refuses a component that exports nothing callable', async () => {
    const wit = `package x:y@0.1.0;\ninterface t { type n = u8; }\nworld w { export t; }`;
    const error = await loadError(host, await componentFor(wit), logOnly);
    expect(error.code).toBe('bad-export');
    expect(error.message).toContain('exports nothing ICE can call');
  });

  it('loads a component importing the whole world when every interface is granted or denied', async () => {
    const bytes = await componentFor(worldWitSource(), 'agent');
    const policy = writePolicy(
      'version: 1\ncomponent: all\ngrants:\n  log: {}\n  clock: deny\n  random: {}\n  kv: deny\n  events: { kinds: ["*"] }\n  http: deny\n  model: { models: ["local/*"] }\n',
    );
    const agent = await host.load(bytes, policy);
    expect(agent.imports).toEqual(['log', 'clock', 'random', 'kv', 'events', 'http', 'model']);
  });

  describe('bytes that are not a component', () => {
    const dir = tempDir();
    const cases: [string, Uint8Array, string, string][] = [
      ['empty file', new Uint8Array(), 'empty', 'is empty (0 bytes)'],
      ['text', new TextEncoder().encode('#!/bin/sh\necho hi\n'), 'not-wasm', 'is not a WebAssembly binary (it starts with 23 21 2f 62'],
      ['a truncated header', new Uint8Array([0, 0x61, 0x73]), 'not-wasm', 'is truncated: only 3 bytes'],
      ['a core module', new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), 'core-module', 'is a core WebAssembly module, not a component'],
      ['an unknown binary version', new Uint8Array([0, 0x61, 0x73, 0x6d, 0x0c, 0, 1, 0]), 'unsupported-version', 'has an unsupported component binary version'],
    ];
    for (const [what, bytes, code, message] of cases) {
      it(`refuses ${what}`, async () => {
        const path = join(dir, `${code}.wasm`);
        writeFileSync(path, bytes);
        const error = await loadError(host, path, logOnly);
        expect(error.code).toBe(code);
        expect(error.message).toContain(`${path} ${message}`);
      });
    }

    it('refuses a truncated component and garbage after a valid header', async () => {
      const real = readFileSync(guestWasm('hello'));
      for (const bytes of [real.subarray(0, Math.floor(real.length / 2)), Buffer.concat([real.subarray(0, 8), Buffer.from('garbage garbage garbage')])]) {
        const error = await loadError(host, bytes, logOnly);
        expect(error.code).toBe('malformed');
        expect(error.message).toMatch(/^<component bytes> is not a valid component: .+/);
      }
    });

    it('refuses a missing file', async () => {
      const error = await loadError(host, join(dir, 'nope.wasm'), logOnly);
      expect(error.message).toBe(`cannot read component ${join(dir, 'nope.wasm')}: no such file (check the path; \`ice build\` makes a component from a guest)`);
    });
  });
});
