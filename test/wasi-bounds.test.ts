/**
 * WASI sizes, time and mounts a hostile guest controls. The componentize-js agent (guests/js/wasi-agent)
 * asks for exact sizes from its input: every length a WASI call takes is bounded host-side before anything
 * is allocated (grants.wasi.maxRandomBytes, maxReadBytes, maxWriteBytes, maxPathBytes), a sleep on the
 * monotonic clock never outlasts limits.timeoutMs, and mounts cannot be written or removed around their
 * modes. (The AssemblyScript and Rust guests do not import WASI; only this guest reaches these paths.)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent, Host } from '../host/src/index.js';
import type { CallRecord } from '../host/src/ledger/index.js';
import { EXECUTIONS, freshHost, tempDir } from './helpers.js';
import { JS_GUEST_BUILD_DIR } from './paths.js';

const AGENT = join(JS_GUEST_BUILD_DIR, 'wasi-agent.wasm');
const place = tempDir('ice-wasi-bounds-');
const data = join(place, 'data');
const scratch = join(place, 'scratch');
const outer = join(place, 'outer');

function policy(wasi: Record<string, unknown> = {}, limits: Record<string, unknown> = {}) {
  return {
    version: 1,
    component: 'js-agent',
    limits: { timeoutMs: 10_000, ...limits },
    grants: {
      log: {},
      kv: { read: ['count'], write: ['count'] },
      wasi: {
        env: {},
        stdout: 'capture',
        stderr: 'capture',
        stdin: 'empty',
        clocks: 'allow',
        random: 'allow',
        filesystem: [
          { guest: '/data', host: data, mode: 'read-only' },
          { guest: '/scratch', host: scratch, mode: 'read-write' },
          // The same host tree twice: outer/ro is read-only through /inner, and must stay so through /outer.
          { guest: '/outer', host: outer, mode: 'read-write' },
          { guest: '/inner', host: join(outer, 'ro'), mode: 'read-only' },
        ],
        sockets: 'deny',
        http: 'deny',
        ...wasi,
      },
    },
  };
}

beforeAll(() => {
  mkdirSync(data);
  mkdirSync(scratch);
  mkdirSync(join(outer, 'ro'), { recursive: true });
  writeFileSync(join(data, 'hello.txt'), 'hello from a mounted file\n');
  writeFileSync(join(outer, 'ro', 'keep.txt'), 'read-only\n');
});

const calls = (host: Host, runId: string) => host.readRun(runId).flatMap(({ record }) => (record.type === 'call' ? [record as CallRecord] : []));

describe.each(EXECUTIONS)('WASI bounds (%s)', (execution) => {
  let host: Host;
  let agent: Agent;

  beforeAll(async () => {
    ({ host } = await freshHost(undefined, { execution }));
    agent = await host.load(AGENT, policy({ maxRandomBytes: 4096, maxReadBytes: 8, maxWriteBytes: 1000, maxPathBytes: 64 }));
  }, 120_000);
  afterAll(() => host.close());

  it.each(['random-bytes', 'insecure-random-bytes'])('traps %s over grants.wasi.maxRandomBytes, guest blame, naming the knob, before allocating', async (action) => {
    expect(await agent.run(`${action} 4096`)).toMatchObject({ ok: true, output: 'bytes=4096' });
    const result = await agent.run(`${action} 2000000000`);
    expect(result).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest' });
    expect(result.ok ? '' : result.error).toContain('grants.wasi.maxRandomBytes (4096)');
    expect(calls(host, result.runId).at(-1)).toMatchObject({ decision: 'deny', rule: 'grants.wasi.maxRandomBytes' });
  });

  it('bounds random bytes by default (1 MiB) when the policy sets no knob', async () => {
    const defaults = await host.load(AGENT, policy());
    expect(await defaults.run('random-bytes 1048576')).toMatchObject({ ok: true, output: 'bytes=1048576' });
    const result = await defaults.run('random-bytes 2000000000');
    expect(result).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest' });
    expect(result.ok ? '' : result.error).toContain('over grants.wasi.maxRandomBytes (1048576)');
    expect(await defaults.run('read-len 4000000000')).toMatchObject({ ok: true, output: 'bytes=26' });
  });

  it('answers a 4 GB descriptor read with a short read of at most grants.wasi.maxReadBytes', async () => {
    expect(await agent.run('read-len 4000000000')).toMatchObject({ ok: true, output: 'bytes=8' });
    expect(await agent.run('stream-read-len 4000000000')).toMatchObject({ ok: true, output: 'bytes=8' });
    expect(await agent.run('read-len 18446744073709551615')).toMatchObject({ ok: true, output: 'bytes=8' });
  });

  it('writes at most grants.wasi.maxWriteBytes per call: a descriptor write is short, a stream write over its permit traps', async () => {
    expect(await agent.run('write-len 5000')).toMatchObject({ ok: true, output: 'written=1000' });
    expect(readFileSync(join(scratch, 'big.bin')).byteLength).toBe(1000);
    const zeroes = await agent.run('stream-zeroes-len 4000000000');
    expect(zeroes).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest' });
    expect(zeroes.ok ? '' : zeroes.error).toContain('grants.wasi.maxWriteBytes (1000)');
  });

  it('refuses a path longer than grants.wasi.maxPathBytes with name-too-long', async () => {
    expect(await agent.run('path-len 65')).toMatchObject({ ok: true, output: 'err:name-too-long' });
    expect(await agent.run('path-len 64')).toMatchObject({ ok: true, output: 'err:no-entry' });
  });

  it('stops a sleep on the monotonic clock at limits.timeoutMs, by block or by poll', async () => {
    const short = await host.load(AGENT, policy({}, { timeoutMs: 500 }));
    for (const action of ['sleep-block', 'sleep-poll']) {
      const started = performance.now();
      const result = await short.run(`${action} 60000`);
      const took = performance.now() - started;
      expect(result).toMatchObject({ ok: false, outcome: 'limit', limit: 'timeout' });
      expect(took).toBeLessThan(5000);
    }
    expect(await short.run('sleep-poll 10')).toMatchObject({ ok: true, output: 'ready=1' });
  }, 30_000);

  it('keeps a read-only mount read-only through a read-write mount of the same host tree', async () => {
    const result = await agent.run('nested-write');
    expect(result).toMatchObject({ ok: true, output: 'err:read-only err:read-only err:read-only err:read-only' });
    expect(existsSync(join(outer, 'ro', 'x.txt'))).toBe(false);
    expect(readFileSync(join(outer, 'ro', 'keep.txt'), 'utf8')).toBe('read-only\n');
  });

  it('refuses to remove or rename a mount root', async () => {
    const result = await agent.run('remove-root');
    expect(result).toMatchObject({ ok: true, output: 'err:not-permitted err:not-permitted err:read-only' });
    expect(existsSync(scratch)).toBe(true);
    expect(existsSync(join(outer, 'ro'))).toBe(true);
  });
});
