import { readFileSync } from 'node:fs';
import { buildGuest } from '../dist/host/src/build/index.js';
import { transpile } from '@bytecodealliance/jco';
import { meterCoreModule, capMemories } from '../dist/host/src/component/meter.js';
import { instantiateGenerated } from '../dist/host/src/component/prepare.js';
const built = await buildGuest('bench/guest');
const { files } = await transpile(built.component, { name: 'agent', instantiation: 'sync' });
const glue = await import(`data:text/javascript;base64,${Buffer.from(files['agent.js']).toString('base64')}`);
for (const metered of [false, true]) {
  const modules = new Map();
  for (const [n, b] of Object.entries(files)) if (n.endsWith('.wasm')) modules.set(n, new WebAssembly.Module(metered ? capMemories(meterCoreModule(b), 4096) : b));
  const meter = { fuel: new WebAssembly.Global({ value: 'i64', mutable: true }, 1n << 62n), memoryRefused: new WebAssembly.Global({ value: 'i32', mutable: true }, 0) };
  const noop = { write: () => undefined, get: () => undefined, set() {}, delete() {}, keys: () => [], now: () => 0n, bytes: () => new Uint8Array(32) };
  const imports = { 'ice:agent/log': noop, 'ice:agent/kv': noop, 'ice:agent/clock': noop, 'ice:agent/random': noop };
  const inst = metered ? instantiateGenerated(glue.instantiate, modules, imports, meter) : glue.instantiate((p) => modules.get(p), imports);
  for (const input of ['fnv:50000000', 'sort:300000']) {
    inst.run(input); const xs = [];
    for (let i = 0; i < 5; i++) { const t = performance.now(); inst.run(input); xs.push(performance.now() - t); }
    xs.sort((a, b) => a - b); console.log(metered ? 'metered' : 'plain  ', input, xs[2].toFixed(1), 'ms', metered ? ((1n << 62n) - meter.fuel.value) : '');
  }
}
