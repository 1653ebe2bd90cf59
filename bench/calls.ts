/**
 * `npm run bench`: what governance and containment cost, on this machine, in one process run.
 *
 * Per import call, the same component (bench/guest, built from source) driven through
 *   - jco's generated bindings with plain host functions and unmetered core modules (the baseline)
 *   - ICE in-process: metered, decided, performed, recorded in the SQLite ledger (the real Host path)
 *   - ICE in a worker thread: the same, in the worker pool (the default execution)
 * One call's cost is (time of a run with n calls − time of a run with 0 calls) / n, median of rounds.
 *
 * Fuel metering: pure-compute runs (no import calls) of the same guest through jco's glue, with the
 * core modules as the compiler produced them and as ICE meters them.
 *
 * Start-up: build from source, first load (transpile + meter), cached load, a 0-call run per mode.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transpile } from '@bytecodealliance/jco';
import { buildGuest } from '../host/src/build/index.js';
import { capMemories, meterCoreModule } from '../host/src/component/meter.js';
import { instantiateGenerated, type AgentExports, type GeneratedInstantiate, type Meter } from '../host/src/component/prepare.js';
import { createHost, type Agent } from '../host/src/index.js';
import { openStateDb } from '../host/src/state/db.js';
import { KvStore } from '../host/src/state/kv-store.js';

const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/dist\/?$/, '');
const here = (p: string) => join(root, 'bench', p);
const N = Number(process.env.BENCH_CALLS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const CALLS = ['log', 'get', 'now', 'random'] as const;
const LABEL = { log: 'log.write', get: 'kv.get (hit)', now: 'clock.now', random: 'random.bytes(32)' } as const;
const COMPUTE = [
  ['fnv', 50_000_000, 'tight loop (FNV-1a, 5e7 iterations)'],
  ['sort', 300_000, 'sort 3e5 numbers with a comparator'],
] as const;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timeMs(fn: () => unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function perCallUs(run: (input: string) => unknown, call: string): Promise<number> {
  await run(`${call}:1000`); // warm up the JIT on every path
  const samples: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const empty = await timeMs(() => run(`${call}:0`));
    const full = await timeMs(() => run(`${call}:${N}`));
    samples.push(((full - empty) * 1000) / N);
  }
  return median(samples);
}

async function computeMs(run: (input: string) => unknown, input: string): Promise<number> {
  await run(input);
  const samples: number[] = [];
  for (let r = 0; r < 5; r++) samples.push(await timeMs(() => run(input)));
  return median(samples);
}

/** The component through jco's glue with plain host functions; core modules metered or not. */
async function plainInstance(component: Uint8Array, metered: boolean): Promise<AgentExports> {
  const { files } = await transpile(component, { name: 'agent', instantiation: 'sync' });
  const glue = (await import(`data:text/javascript;base64,${Buffer.from(files['agent.js']!).toString('base64')}`)) as {
    instantiate: GeneratedInstantiate;
  };
  const modules = new Map<string, WebAssembly.Module>();
  for (const [name, bytes] of Object.entries(files)) {
    if (!name.endsWith('.wasm')) continue;
    const core = metered ? capMemories(meterCoreModule(bytes), 4096) : bytes;
    modules.set(name, new WebAssembly.Module(core as Uint8Array<ArrayBuffer>));
  }
  const store = new Map([['count', '42']]);
  const random = new Uint8Array(32);
  const imports = {
    'ice:agent/log': { write: () => undefined },
    'ice:agent/kv': { get: (k: string) => store.get(k), set: () => undefined, delete: () => undefined, keys: () => [] },
    'ice:agent/clock': { now: () => BigInt(Date.now()) },
    'ice:agent/random': { bytes: () => random },
  };
  const meter: Meter = {
    fuel: new WebAssembly.Global({ value: 'i64', mutable: true }, 1n << 62n),
    memoryRefused: new WebAssembly.Global({ value: 'i32', mutable: true }, 0),
  };
  return metered ? instantiateGenerated(glue.instantiate, modules, imports, meter) : glue.instantiate((p) => modules.get(p)!, imports);
}

const pad = (s: string, n: number) => s.padEnd(n);
const work = mkdtempSync(join(tmpdir(), 'ice-bench-'));
try {
  const startup: [string, number][] = [];
  let t = performance.now();
  const built = await buildGuest(here('guest'));
  startup.push(['build bench guest from source (asc + componentize)', performance.now() - t]);
  const wasm = join(work, 'bench.wasm');
  writeFileSync(wasm, built.component);

  const plain = await plainInstance(built.component, false);
  const meteredPlain = await plainInstance(built.component, true);

  // ICE: the real Host path on a fresh state dir with the real policy file; kv holds 'count' so gets hit.
  const stateDir = join(work, 'state');
  const cacheDir = join(work, 'cache');
  const seed = openStateDb(stateDir);
  new KvStore(seed).set('bench', 'count', '42');
  seed.close();

  t = performance.now();
  const first = await createHost({ stateDir, cacheDir, onGuestLog: () => undefined });
  await first.load(wasm, here('policy.yaml'));
  startup.push(['first load: inspect + admit + transpile + meter + compile (new Host)', performance.now() - t]);
  first.close();

  t = performance.now();
  const inProcessHost = await createHost({ stateDir, cacheDir, execution: 'in-process', onGuestLog: () => undefined });
  const inProcess = await inProcessHost.load(wasm, here('policy.yaml'));
  startup.push(['cached load from the disk cache (new Host)', performance.now() - t]);
  const workerHost = await createHost({ stateDir, cacheDir, onGuestLog: () => undefined });
  const inWorker = await workerHost.load(wasm, here('policy.yaml'));

  const runOf = (agent: Agent) => (input: string) => agent.run(input);
  t = performance.now();
  await inWorker.run('log:0');
  startup.push(['first run in a new worker pool (thread start, database, component)', performance.now() - t]);
  for (const [label, agent] of [['in-process', inProcess], ['in a worker', inWorker]] as const) {
    await agent.run('log:0');
    t = performance.now();
    for (let i = 0; i < 100; i++) await agent.run('log:0');
    startup.push([`one run with 0 calls, ${label}: fresh instance + run-start and run-end (mean of 100)`, (performance.now() - t) / 100]);
  }

  const rows: [string, number, number, number][] = [];
  for (const call of CALLS) {
    rows.push([LABEL[call], await perCallUs((input) => plain.run(input), call), await perCallUs(runOf(inProcess), call), await perCallUs(runOf(inWorker), call)]);
  }
  const compute: [string, number, number, number][] = [];
  for (const [call, n, label] of COMPUTE) {
    const input = `${call}:${n}`;
    const fuel = (await inProcess.run(input)).fuel ?? 0;
    compute.push([label, await computeMs((i) => plain.run(i), input), await computeMs((i) => meteredPlain.run(i), input), fuel]);
  }
  inProcessHost.close();
  workerHost.close();

  console.log(`\nimport call cost, µs per call (median of ${ROUNDS} rounds of ${N} calls; node ${process.version}, ${process.arch})\n`);
  console.log(`${pad('call', 18)}  ${pad('jco, unmediated', 16)}  ${pad('ICE in-process', 15)}  ${pad('ICE worker', 11)}  ${pad('in-process/jco', 15)}  worker/in-process`);
  for (const [label, base, ice, worker] of rows) {
    console.log(
      `${pad(label, 18)}  ${pad(base.toFixed(2), 16)}  ${pad(ice.toFixed(2), 15)}  ${pad(worker.toFixed(2), 11)}  ${pad(`${(ice / base).toFixed(2)}x`, 15)}  ${(worker / ice).toFixed(2)}x`,
    );
  }
  console.log('\nfuel metering, ms per run (median of 5; same glue, no import calls)\n');
  console.log(`${pad('guest work', 38)}  ${pad('unmetered', 10)}  ${pad('metered', 10)}  ${pad('slowdown', 9)}  fuel used`);
  for (const [label, base, metered, fuel] of compute) {
    console.log(`${pad(label, 38)}  ${pad(base.toFixed(1), 10)}  ${pad(metered.toFixed(1), 10)}  ${pad(`${(metered / base).toFixed(2)}x`, 9)}  ${fuel}`);
  }
  console.log('\nstart-up, ms');
  for (const [label, ms] of startup) console.log(`${pad(label, 84)}  ${ms.toFixed(1)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
