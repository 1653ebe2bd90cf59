/**
 * Replay: every end-to-end case (both languages) replays exactly from its ledger; a changed guest
 * diverges at the right seq; the wrong component, and runs recorded as digests, are refused.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildGuest } from '../host/src/build/index.js';
import { ReplayError } from '../host/src/index.js';
import { freshHost, ice, tempDir, writePolicy } from './helpers.js';
import { POLICIES } from './fixtures/policies.js';
import { CASES_DIR, GUESTS_DIR, LANGUAGES, ROOT, guestWasm } from './paths.js';

const read = (dir: string, file: string) => (existsSync(join(dir, file)) ? readFileSync(join(dir, file), 'utf8').replace(/\n$/, '') : '');

describe.each(LANGUAGES)('replay of every end-to-end case (%s)', (language) => {
  for (const name of readdirSync(CASES_DIR).sort()) {
    it(name, async () => {
      const dir = join(CASES_DIR, name);
      // In-process: the cases already run in workers (cases.test.ts); this is about the replay.
      const { host } = await freshHost(tempDir(), { execution: 'in-process' });
      try {
        const agent = await host.load(guestWasm(name.split('--')[0]!, language), relative(ROOT, join(dir, 'policy.yaml')));
        const result = await agent.run(read(dir, 'input.txt'));
        const report = await host.replay(result.runId);
        expect(report).toMatchObject({ matches: true, calls: result.calls, outcome: result.outcome, fuel: result.fuel });
      } finally {
        host.close();
      }
    });
  }
});

describe('replay', () => {
  const helloPolicy = POLICIES.hello();

  it('serves clock and random from the record: the replayed output is the recorded one', async () => {
    const { host } = await freshHost();
    const policy = writePolicy('version: 1\ncomponent: clock-random\ngrants:\n  log: deny\n  clock: {}\n  random: {}\n');
    const result = await (await host.load(guestWasm('clock-random'), policy)).run('16');
    // A different clock and random source now: the replay must not see them.
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await host.replay(result.runId)).toMatchObject({ matches: true, calls: 2, outcome: 'ok' });
    host.close();
  });

  /** guests/hello with one edit, built from source: a new version of the agent. */
  async function changedHello(from: string, to: string): Promise<Uint8Array> {
    const dir = join(tempDir(), 'hello');
    mkdirSync(dir);
    const source = readFileSync(join(GUESTS_DIR, 'hello', 'index.ts'), 'utf8');
    expect(source).toContain(from);
    writeFileSync(join(dir, 'index.ts'), source.replace(from, to));
    return (await buildGuest(dir)).component;
  }

  it('reports the first divergence: an extra call, other arguments, another outcome', async () => {
    const { host } = await freshHost();
    const result = await (await host.load(guestWasm('hello'), helloPolicy)).run('world');
    const extraCall = await changedHello('  if (input.length == 0)', '  log.info("one more");\n  if (input.length == 0)');
    expect(await host.replay(result.runId, extraCall, { otherComponent: true })).toMatchObject({
      matches: false,
      seq: 2,
      expected: 'run-end (ok)',
      actual: 'log.write("info", "one more")',
    });
    const otherArgs = await changedHello('" chars"', '" characters"');
    expect(await host.replay(result.runId, otherArgs, { otherComponent: true })).toMatchObject({
      matches: false,
      seq: 1,
      expected: 'log.write("info", "hello called with 5 chars")',
      actual: 'log.write("info", "hello called with 5 characters")',
    });
    const otherOutput = await changedHello('"hello, " + input + "!"', '"hi, " + input + "!"');
    expect(await host.replay(result.runId, otherOutput, { otherComponent: true })).toMatchObject({
      matches: false,
      seq: 2,
      expected: expect.stringMatching(/^run-end ok output "hello, world!" fuel \d+$/),
      actual: expect.stringMatching(/^run-end ok output "hi, world!" fuel \d+$/),
    });
    host.close();
  });

  it('refuses a component that is not the recorded one, naming both digests', async () => {
    const { host } = await freshHost();
    const result = await (await host.load(guestWasm('hello'), helloPolicy)).run('world');
    const error = await host.replay(result.runId, guestWasm('hello', 'rust')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReplayError);
    expect((error as Error).message).toMatch(/hello\.wasm is not the component run \S+ executed: its sha256 is [0-9a-f]{64}, the run's is [0-9a-f]{64}$/);
    host.close();
  });

  it('refuses a run recorded as digests, naming why', async () => {
    const { host } = await freshHost();
    const policy = writePolicy('version: 1\ncomponent: hello\naudit: { capture: digest }\ngrants:\n  log: {}\n');
    const result = await (await host.load(guestWasm('hello'), policy)).run('world');
    await expect(host.replay(result.runId)).rejects.toThrow(`run ${result.runId} recorded its input as a digest (audit.capture: digest), so it cannot be replayed`);
    host.close();
  });

  it('replays a run stopped at its deadline up to the calls it made', async () => {
    const { host } = await freshHost();
    const policy = writePolicy('version: 1\ncomponent: hostile\nlimits: { fuel: 1000000000000000, timeoutMs: 300 }\ngrants:\n  log: {}\n  clock: { maxCalls: 1000000000 }\n  kv: { read: ["count"] }\n  events: deny\n');
    const result = await (await host.load(guestWasm('hostile'), policy)).run('loop-imports');
    expect(result).toMatchObject({ outcome: 'limit', limit: 'timeout' });
    expect(await host.replay(result.runId)).toMatchObject({ matches: true, calls: result.calls, note: expect.stringContaining('ended limit after these calls') });
    host.close();
  });

  it('works from the CLI: matches exits 0, a divergence exits 1, a refusal exits 2', async () => {
    const state = tempDir();
    expect(ice(['run', guestWasm('hello'), '--policy', helloPolicy, '--input', 'cli', '--state', state]).code).toBe(0);
    const match = ice(['replay', 'last', '--state', state]);
    expect(match).toMatchObject({ code: 0, stdout: expect.stringMatching(/^replay matches: 1 calls, ok, fuel \d+, in [\d.]+ ms\n$/) });
    // The Rust hello makes the same call and output, but its fuel differs: the run-end diverges.
    const diverge = ice(['replay', 'last', '--against', guestWasm('hello', 'rust'), '--state', state]);
    expect(diverge.code).toBe(1);
    expect(diverge.stdout).toMatch(/^replay diverges at seq 2: expected run-end ok output "hello, cli!" fuel \d+, got run-end ok output "hello, cli!" fuel \d+\n$/);
    const refused = ice(['replay', 'last', '--component', guestWasm('counter'), '--state', state]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^ice replay: .*counter\.wasm is not the component run/);
  });
});
