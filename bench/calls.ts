/**
 * `npm run bench`: what governance costs, on this machine, in one process run.
 *
 * Per import call: the same component (bench/guest, built from source) driven through
 *   - jco's generated bindings with plain host functions: no decision, no record (the baseline)
 *   - ICE in-process: decided, performed, recorded in the SQLite ledger (the real Host path)
 * One call's cost is (time of a run with n calls − time of a run with 0 calls) / n, median of rounds.
 * Start-up: build from source, first load (transpile), cached load (disk cache, new Host), run of hello.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGuest } from '../host/src/build/index.js';
import { ComponentCache } from '../host/src/component/prepare.js';
import { createHost } from '../host/src/index.js';
import { openStateDb } from '../host/src/state/db.js';
import { KvStore } from '../host/src/state/kv-store.js';

const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/dist\/?$/, '');
const here = (p: string) => join(root, 'bench', p);
const N = Number(process.env.BENCH_CALLS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const CALLS = ['log', 'get', 'now', 'random'] as const;
const LABEL = { log: 'log.write', get: 'kv.get (hit)', now: 'clock.now', random: 'random.bytes(32)' } as const;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const timeMs = (fn: () => void) => {
  const t = performance.now();
  fn();
  return performance.now() - t;
};

function perCallUs(run: (input: string) => void, call: string): number {
  run(`${call}:1000`); // warm up the JIT on both paths
  const samples: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const empty = timeMs(() => run(`${call}:0`));
    const full = timeMs(() => run(`${call}:${N}`));
    samples.push(((full - empty) * 1000) / N);
  }
  return median(samples);
}

const work = mkdtempSync(join(tmpdir(), 'ice-bench-'));
try {
  const startup: [string, number][] = [];
  let t = performance.now();
  const built = await buildGuest(here('guest'));
  startup.push(['build bench guest from source (asc + componentize)', performance.now() - t]);
  const wasm = join(work, 'bench.wasm');
  writeFileSync(wasm, built.component);

  // Baseline: jco's bindings, plain host functions.
  const cache = new ComponentCache(undefined);
  const info = await cache.inspect(built.component, wasm);
  const prepared = await cache.prepare(built.component, info, wasm);
  const store = new Map([['count', '42']]);
  const bytes = new Uint8Array(32);
  const meter = {
    fuel: new WebAssembly.Global({ value: 'i64', mutable: true }, 1n << 62n),
    memoryRefused: new WebAssembly.Global({ value: 'i32', mutable: true }, 0),
  };
  const plain = prepared.instantiate(64, {
    'ice:agent/log': { write: () => undefined },
    'ice:agent/kv': { get: (k: string) => store.get(k), set: () => undefined, delete: () => undefined, keys: () => [] },
    'ice:agent/clock': { now: () => BigInt(Date.now()) },
    'ice:agent/random': { bytes: () => bytes },
  }, meter);

  // ICE: the real Host path on a fresh state dir with the real policy file; kv holds 'count' so gets hit.
  const stateDir = join(work, 'state');
  const cacheDir = join(work, 'cache');
  const seed = openStateDb(stateDir);
  new KvStore(seed).set('bench', 'count', '42');
  seed.close();

  t = performance.now();
  const first = await createHost({ stateDir, cacheDir, onGuestLog: () => undefined });
  await first.load(wasm, here('policy.yaml'));
  startup.push(['first load: inspect + admit + transpile + compile (new Host)', performance.now() - t]);
  first.close();

  t = performance.now();
  const host = await createHost({ stateDir, cacheDir, onGuestLog: () => undefined });
  const agent = await host.load(wasm, here('policy.yaml'));
  startup.push(['cached load from the disk cache (new Host)', performance.now() - t]);
  const runSync = (input: string) => {
    // Agent.run is synchronous underneath; its promise only wraps the result.
    void agent.run(input);
  };
  t = performance.now();
  for (let i = 0; i < 100; i++) runSync('log:0');
  startup.push(['one run with 0 calls: fresh instance + run-start and run-end records (mean of 100)', (performance.now() - t) / 100]);

  const rows: [string, number, number][] = CALLS.map((call) => {
    const base = perCallUs((input) => plain.run(input), call);
    const ice = perCallUs(runSync, call);
    return [LABEL[call], base, ice];
  });
  host.close();

  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(`\nimport call cost, µs per call (median of ${ROUNDS} rounds of ${N} calls; node ${process.version}, ${process.arch})\n`);
  console.log(`${pad('call', 18)}  ${pad('jco, unmediated', 16)}  ${pad('ICE mediated+recorded', 22)}  ratio`);
  for (const [label, base, ice] of rows) {
    console.log(`${pad(label, 18)}  ${pad(base.toFixed(2), 16)}  ${pad(ice.toFixed(2), 22)}  ${(ice / base).toFixed(2)}x`);
  }
  console.log('\nstart-up, ms');
  for (const [label, ms] of startup) console.log(`${pad(label, 78)}  ${ms.toFixed(1)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
