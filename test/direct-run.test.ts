/**
 * `run(input)` called on the guest's core module (sandbox/direct-run.ts) instead of through jco's
 * export wrapper: taken for the SDKs' guests (AssemblyScript and Rust, built from source), and giving
 * exactly what jco's wrapper gives, on two fresh instances of the same component.
 */
import { describe, expect, it } from 'vitest';
import { directRuns, gluePlainRun } from '../host/src/sandbox/direct-run.js';
import { instantiateGenerated } from '../host/src/sandbox/instantiate.js';
import { runMeter } from '../host/src/sandbox/fuel.js';
import type { GuestMemory } from '../host/src/capabilities/abi.js';
import { freshHost, writePolicy } from './helpers.js';
import { guestWasm } from './paths.js';

const POLICY = writePolicy('version: 1\ncomponent: hello\ngrants:\n  log: {}\n');

describe('run(input) on the core module', () => {
  it.each([['assemblyscript'], ['rust']] as const)('is taken for the %s hello and answers as jco’s wrapper does', async (language) => {
    const { host } = await freshHost(undefined, { execution: 'in-process' });
    try {
      const agent = await host.load(guestWasm('hello', language), POLICY);
      const { generated } = agent.prepared;
      expect(gluePlainRun(generated)).toBe(true);
      const modules = agent.prepared.modules(agent.policy.limits.memoryMiB);
      // log.write answered ok at the core level (tag 0 in the return area), as the kernel would.
      const instance = () => {
        const provider = {
          imports: { 'ice:agent/log': { write: () => undefined } },
          // The guest's memory exists once its instance does, before any call: read it at call time.
          coreImports: (guest: GuestMemory) => ({
            'ice:agent/log@0.1.0': { write: (_level: number, _ptr: number, _len: number, ret: number) => new DataView(guest.memory!.buffer).setUint8(ret, 0) },
          }),
        };
        return instantiateGenerated(generated, modules, provider, runMeter(1e9).meter) as unknown as { run(input: string): string };
      };
      for (const input of ['world', 'ünïcødé ✓ 𝄞', 'x'.repeat(70_000), '']) {
        const viaJco = (() => {
          try {
            return { tag: 'ok', val: instance().run(input) };
          } catch (error) {
            return { tag: 'err', val: (error as { payload?: unknown }).payload };
          }
        })();
        const exports = instance();
        const direct = directRuns.get(exports);
        expect(direct, 'the direct entry').toBeDefined();
        expect(direct!(input)).toEqual(viaJco);
      }
      // And through the Host: the empty input is the guest's err, a name its ok.
      expect(await agent.run('')).toMatchObject({ ok: false, outcome: 'error', error: 'hello needs a name' });
      expect(await agent.run('you')).toMatchObject({ ok: true, output: 'hello, you!' });
    } finally {
      host.close();
    }
  });
});
