/**
 * `npm run bench`: what governance and containment cost, on this machine, in one process run.
 *
 * Per import call: 1. a raw core module calling a JS function (the floor); then the same component
 * (bench/guest, built from source) driven through 2. jco's generated bindings with plain host functions
 * and unmetered core modules (the baseline a user would otherwise pick), 3. ICE in-process: metered,
 * ICE's own bindings, decided, performed, recorded in the SQLite ledger (the real Host path),
 * 4. ICE in a worker thread (the default execution), and 5. the cost a capability served by an async
 * effect on the main thread will have (sandbox/bridge.ts): row 4 plus one bridge round trip, measured
 * alone from a real worker.
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
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import binaryen from 'binaryen';
import { transpile } from '@bytecodealliance/jco';
import { buildGuest } from '../host/src/build/index.js';
import { capModule, meterCoreModule, type MeterVariant } from '../host/src/component/meter.js';
import type { AgentExports, GeneratedInstantiate, Meter } from '../host/src/component/prepare.js';
import { instantiateGenerated } from '../host/src/sandbox/instantiate.js';
import { runMeter } from '../host/src/sandbox/fuel.js';
import { createHost, type Agent } from '../host/src/index.js';
import { BRIDGE_BYTES, BridgeServer } from '../host/src/sandbox/bridge.js';
import { openStateDb } from '../host/src/storage/db.js';
import { KvStore } from '../host/src/views/kv-store.js';

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

/**
 * The floor: a core module calling a JS function in a loop, n times, with the arguments a log.write
 * lowers to (level, ptr, len, retptr). No component, no glue.
 */
function rawCoreLoop(): (n: number) => void {
  const module = binaryen.parseText(`(module
    (import "env" "write" (func $write (param i32 i32 i32 i32)))
    (func (export "calls") (param $n i32) (local $i i32)
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (call $write (i32.const 2) (i32.const 16) (i32.const 4) (i32.const 64))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))))`);
  const bytes = module.emitBinary();
  module.dispose();
  let sink = 0;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), {
    env: { write: (level: number, ptr: number, len: number, ret: number) => void (sink += level + ptr + len + ret) },
  });
  return instance.exports.calls as (n: number) => void;
}

/**
 * Row 5's mechanism: a worker whose calls each block on the bridge while an async function on this
 * thread answers them; µs per round trip, the median of rounds of n calls.
 */
async function bridgeRoundTripUs(n: number): Promise<number> {
  const buffer = new SharedArrayBuffer(BRIDGE_BYTES);
  const server = new BridgeServer(buffer, async (_op, args) => ({ tag: 'ok', val: args }));
  const bridgeUrl = new URL('../host/src/sandbox/bridge.js', import.meta.url).href;
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(${JSON.stringify(bridgeUrl)}).then(({ BridgeClient }) => {
      const client = new BridgeClient(workerData.buffer);
      const samples = [];
      for (let r = 0; r < ${ROUNDS}; r++) {
        const t = performance.now();
        for (let i = 0; i < workerData.n; i++) client.call('log.write', ['info', 'tick']);
        samples.push(((performance.now() - t) * 1000) / workerData.n);
      }
      parentPort.postMessage(samples);
    });`;
  const worker = new Worker(source, { eval: true, workerData: { buffer, n } });
  const samples = await new Promise<number[]>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  server.close();
  return median(samples);
}

/** The component through jco's glue with plain host functions; core modules metered or not. */
async function plainInstance(component: Uint8Array, metered: false | MeterVariant): Promise<AgentExports> {
  const { files } = await transpile(component, { name: 'agent', instantiation: 'sync' });
  const glue = (await import(`data:text/javascript;base64,${Buffer.from(files['agent.js']!).toString('base64')}`)) as {
    instantiate: GeneratedInstantiate;
  };
  const modules = new Map<string, WebAssembly.Module>();
  for (const [name, bytes] of Object.entries(files)) {
    if (!name.endsWith('.wasm')) continue;
    const core = metered ? capModule(meterCoreModule(bytes, metered), 4096) : bytes;
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
  const meter = meterOf();
  return metered ? instantiateGenerated(glue.instantiate, modules, { imports, coreImports: () => ({}) }, meter) : glue.instantiate((p) => modules.get(p)!, imports);
}

const pad = (s: string, n: number) => s.padEnd(n);
const meterOf = (): Meter => runMeter(2 ** 62).meter;
const work = mkdtempSync(join(tmpdir(), 'ice-bench-'));
try {
  const startup: [string, number][] = [];
  let t = performance.now();
  const built = await buildGuest(here('guest'));
  startup.push(['build bench guest from source (asc + componentize)', performance.now() - t]);
  const wasm = join(work, 'bench.wasm');
  writeFileSync(wasm, built.component);

  const plain = await plainInstance(built.component, false);
  const meteredPlain = await plainInstance(built.component, 'trap');
  const preemptiblePlain = await plainInstance(built.component, 'preemptible');

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
  // The per-user cache shared across state dirs: a new state dir loads from it, paying no first load.
  t = performance.now();
  const otherDir = await createHost({ stateDir: join(work, 'state-2'), cacheDir, execution: 'in-process', onGuestLog: () => undefined });
  await otherDir.load(wasm, here('policy.yaml'));
  startup.push(['load into a new state dir from the per-user cache (new Host)', performance.now() - t]);
  otherDir.close();
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

  const floor = rawCoreLoop();
  const rows: Record<(typeof CALLS)[number], number[]> = { log: [], get: [], now: [], random: [] };
  for (const call of CALLS) {
    rows[call] = [
      await perCallUs((input) => floor(Number(input.split(':')[1])), call),
      await perCallUs((input) => plain.run(input), call),
      await perCallUs(runOf(inProcess), call),
      await perCallUs(runOf(inWorker), call),
    ];
  }
  const compute: [string, number, number, number, number][] = [];
  for (const [call, n, label] of COMPUTE) {
    const input = `${call}:${n}`;
    const fuel = (await inProcess.run(input)).fuel ?? 0;
    compute.push([label, await computeMs((i) => plain.run(i), input), await computeMs((i) => meteredPlain.run(i), input), await computeMs((i) => preemptiblePlain.run(i), input), fuel]);
  }

  // Instantiation alone, and hello's throughput on the worker pool.
  const helloPolicy = join(work, 'hello.yaml');
  writeFileSync(helloPolicy, 'version: 1\ncomponent: hello\ngrants:\n  log: {}\n');
  const helloWasm = join(work, 'hello.wasm');
  writeFileSync(helloWasm, (await buildGuest(join(root, 'guests', 'hello'))).component);
  const hello = await workerHost.load(helloWasm, helloPolicy);
  t = performance.now();
  const unit = () => ({ tag: 'ok', val: undefined });
  const world = {
    'ice:agent/log': { write: unit },
    'ice:agent/kv': { get: unit, set: unit, delete: unit, keys: unit },
    'ice:agent/clock': { now: unit },
    'ice:agent/random': { bytes: unit },
  };
  const modules256 = inProcess.prepared.modules(256);
  for (let i = 0; i < 200; i++) instantiateGenerated(inProcess.prepared.generated, modules256, { imports: world, coreImports: () => ({}) }, meterOf());
  const instantiateMs = (performance.now() - t) / 200;
  startup.push(['instantiate the component alone (fresh instance, mean of 200)', instantiateMs]);
  // A pool serving traffic is warm (the JIT of both workers): 2,000 runs first, then the median of five bursts.
  for (let w = 0; w < 2; w++) await Promise.all(Array.from({ length: 1000 }, () => hello.run('warm')));
  const RUNS = 1000;
  const bursts: number[] = [];
  for (let b = 0; b < 5; b++) {
    t = performance.now();
    await Promise.all(Array.from({ length: RUNS }, (_, i) => hello.run(`run ${i}`)));
    bursts.push(RUNS / ((performance.now() - t) / 1000));
  }
  const runsPerSecond = median(bursts);
  const processMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    spawnSync(process.execPath, [join(root, 'bin', 'ice.js'), 'run', helloWasm, '--policy', helloPolicy, '--input', 'x', '--state', stateDir]);
    processMs.push(performance.now() - start);
  }
  startup.push(['`ice run` of hello as a process, cached component (median of 5)', median(processMs)]);
  inProcessHost.close();
  workerHost.close();


  const MODES = ['1. raw core wasm -> JS import (floor)', '2. jco component, unmediated (baseline)', '3. ICE in-process, mediated + recorded', '4. ICE worker, mediated + recorded'];
  console.log(`\nimport call cost, µs per call, median of ${ROUNDS} rounds of ${N} calls (ratio to row 2)`);
  console.log(`machine: ${availableParallelism()} cores, node ${process.version}, ${process.arch}\n`);
  console.log(`${pad('', 42)}${CALLS.map((c) => pad(LABEL[c], 20)).join('')}`);
  MODES.forEach((mode, row) => {
    const cells = CALLS.map((c) => {
      const us = rows[c][row]!;
      return pad(`${us.toFixed(2)} (${(us / rows[c][1]!).toFixed(2)}x)`, 20);
    });
    console.log(`${pad(mode, 42)}${cells.join('')}`);
  });
  const bridge = await bridgeRoundTripUs(Math.min(N, 5000));
  console.log(`${pad('5. ICE worker + bridge to the main thread', 42)}${CALLS.map((c) => pad(`${(rows[c][3]! + bridge).toFixed(2)} (${((rows[c][3]! + bridge) / rows[c][1]!).toFixed(2)}x)`, 20)).join('')}`);
  console.log(`   (row 4 + one bridge round trip, measured alone: ${bridge.toFixed(2)} µs; the cost a bridged capability (http, model, approvals) adds; see bench/egress.ts)`);
  console.log('\nfuel metering, ms per run (median of 5; same glue, no import calls)\n');
  console.log('(metered: worker runs; preemptible: runs on the calling thread, whose deadline needs a refuel call on the cold path)\n');
  console.log(`${pad('guest work', 38)}  ${pad('unmetered', 10)}  ${pad('metered', 10)}  ${pad('slowdown', 9)}  ${pad('preemptible', 12)}  ${pad('slowdown', 9)}  fuel used`);
  for (const [label, base, metered, preemptible, fuel] of compute) {
    const ratio = (ms: number) => pad(`${(ms / base).toFixed(2)}x`, 9);
    console.log(`${pad(label, 38)}  ${pad(base.toFixed(1), 10)}  ${pad(metered.toFixed(1), 10)}  ${ratio(metered)}  ${pad(preemptible.toFixed(1), 12)}  ${ratio(preemptible)}  ${fuel}`);
  }
  console.log('\nstart-up, ms');
  for (const [label, ms] of startup) console.log(`${pad(label, 84)}  ${ms.toFixed(1)}`);
  console.log(`${pad(`hello runs per second on the worker pool (${availableParallelism()} workers, ${RUNS} concurrent runs, warm, median of 5)`, 84)}  ${Math.round(runsPerSecond)}`);

  // The goals of "a governed call at memory speed" (issue 18), from the numbers above: the ratio is
  // measured ÷ goal, so ≤ 1.00 meets a time goal and ≥ 1.00 a rate goal. Ledger throughput: bench/ledger.ts.
  const goals: [string, string, number, number, 'max' | 'min'][] = [];
  for (const call of ['log', 'get', 'now'] as const) {
    const inProc = rows[call][2]!;
    goals.push([`in-process mediated + recorded ${LABEL[call]}, µs`, '< 1', inProc, 1, 'max']);
    goals.push([`  the same ÷ jco unmediated (${rows[call][1]!.toFixed(2)} µs)`, '< 0.25', inProc / rows[call][1]!, 0.25, 'max']);
    goals.push([`  worker ÷ in-process, ${LABEL[call]}`, '≤ 3', rows[call][3]! / inProc, 3, 'max']);
  }
  goals.push(['hello runs/s on the 2-worker pool', '≥ 2000', runsPerSecond, 2000, 'min']);
  goals.push(['fresh instance per run, ms', '< 0.5', instantiateMs, 0.5, 'max']);
  goals.push(['`ice run` of a cached component as a process, ms', '< 150', median(processMs), 150, 'max']);
  console.log('\ngoals (issue 18), this run: measured ÷ goal (≤ 1.00 meets a time goal, ≥ 1.00 a rate goal)\n');
  console.log(`${pad('', 58)}${pad('goal', 10)}${pad('measured', 12)}ratio   met`);
  for (const [label, goal, value, target, kind] of goals) {
    const met = kind === 'max' ? value <= target : value >= target;
    console.log(`${pad(label, 58)}${pad(goal, 10)}${pad(value >= 100 ? Math.round(value).toString() : value.toFixed(2), 12)}${pad((value / target).toFixed(2), 8)}${met ? 'yes' : 'no'}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
