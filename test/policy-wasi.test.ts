/** grants.wasi in the policy: what compiles, what is refused with the path and the fix, and where mounts resolve. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../host/src/capabilities/policy.js';
import type { WasiGrant } from '../host/src/capabilities/wasi/index.js';
import { PolicyError } from '../host/src/policy/index.js';

const base = (wasi: object) => ({ version: 1, component: 'c', grants: { wasi } });

function issues(wasi: object): string {
  try {
    compilePolicy(base(wasi), 'p.yaml');
  } catch (error) {
    if (error instanceof PolicyError) return error.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    throw error;
  }
  throw new Error('expected a PolicyError, but the policy loaded');
}

describe('grants.wasi', () => {
  it('compiles with no defaults: an absent key stays absent (its interfaces are then refused at load)', () => {
    const wasi = compilePolicy(base({ stdout: 'capture', env: { A: '1' } })).grants.wasi as WasiGrant;
    expect(wasi).toEqual({
      mode: 'grant',
      rule: 'grants.wasi',
      stdout: 'capture',
      env: [['A', '1']],
      maxCalls: 100_000,
      maxReadBytes: 1024 * 1024,
      maxWriteBytes: 1024 * 1024,
      maxRandomBytes: 1024 * 1024,
      maxPathBytes: 4096,
    });
  });

  it('resolves mount host paths against the policy file, and an inline policy against the working directory', () => {
    const fromFile = compilePolicy(base({ filesystem: [{ guest: '/data', host: './data', mode: 'read-only' }] }), '/etc/ice/policy.yaml').grants.wasi as WasiGrant;
    expect(fromFile.filesystem).toEqual([{ guest: '/data', host: '/etc/ice/data', mode: 'read-only' }]);
    const inline = compilePolicy(base({ filesystem: [{ guest: '/data', host: 'data', mode: 'read-write' }] })).grants.wasi as WasiGrant;
    expect(inline.filesystem).toEqual([{ guest: '/data', host: join(process.cwd(), 'data'), mode: 'read-write' }]);
  });

  it.each([
    [{ stdout: 'inherit' }, 'grants.wasi.stdout: expected capture or deny, got "inherit"'],
    [{ stdin: 'host' }, 'grants.wasi.stdin: expected empty or input or deny'],
    [{ sockets: 'allow' }, 'only deny is supported for sockets'],
    [{ http: 'rules' }, 'only deny is supported for wasi:http'],
    [{ env: { 'BAD-NAME': 'x' } }, 'is not a variable name'],
    [{ env: { A: 'line\nbreak' } }, 'values must be printable'],
    [{ cwd: 'relative' }, 'must be absolute'],
    [{ filesystem: [{ guest: '/data', host: './d', mode: 'rw' }] }, 'expected read-only or read-write'],
    [{ filesystem: [{ guest: 'data', host: './d', mode: 'read-only' }] }, 'must be absolute, like "/data"'],
    [{ filesystem: [{ guest: '/a/../b', host: './d', mode: 'read-only' }] }, 'must not contain "." or ".." segments'],
    [{ filesystem: [{ guest: '/d', host: './d', mode: 'read-only' }, { guest: '/d', host: './e', mode: 'read-only' }] }, '/d is mounted twice'],
    [{ preopens: {} }, 'grants.wasi.preopens: unknown key'],
    // Nested guest paths: what /data/ro/x means would depend on the descriptor used.
    [{ filesystem: [{ guest: '/data', host: './d', mode: 'read-write' }, { guest: '/data/ro', host: './e', mode: 'read-only' }] }, '/data/ro and /data are nested'],
    [{ filesystem: [{ guest: '/', host: './d', mode: 'read-only' }, { guest: '/data', host: './e', mode: 'read-only' }] }, '/data and / are nested'],
    [{ maxRandomBytes: 0 }, 'grants.wasi.maxRandomBytes'],
    [{ maxRandomBytes: 2_000_000_000 }, 'grants.wasi.maxRandomBytes'],
    [{ maxReadBytes: 1.5 }, 'grants.wasi.maxReadBytes'],
    [{ maxWriteBytes: '1MB' }, 'grants.wasi.maxWriteBytes'],
    [{ maxPathBytes: 1_000_000 }, 'grants.wasi.maxPathBytes'],
  ])('refuses %j', (wasi, message) => {
    expect(issues(wasi)).toContain(message);
  });
});
