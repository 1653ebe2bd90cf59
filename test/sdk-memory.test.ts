/**
 * Both SDKs free everything that crosses the boundary: one instance making thousands of calls of every
 * import, on the ok and the err paths (each err carries a host-allocated message), ends with the same
 * linear memory size as a short run. A leak of even one message per call would grow it by megabytes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildGuest } from '../host/src/build/index.js';
import { freshHost, tempDir, writePolicy } from './helpers.js';
import { ROOT } from './paths.js';

const POLICY = `version: 1
component: churn
grants:
  log: {}
  clock: deny
  random: {}
  kv: { read: ["k"], write: ["k"] }
  events: { kinds: ["allowed.*"] }
`;

const ASSEMBLYSCRIPT = `import { clock, events, kv, log, random, Result } from "ice";
export function run(input: string): Result<string, string> {
  const n = I32.parseInt(input);
  kv.set("k", "a value that is long enough to matter");
  const before = memory.size();
  let failures = 0;
  for (let i = 0; i < n; i++) {
    log.info("call " + i.toString());
    if (!clock.now().isOk) failures++;                    // denied: err with a message
    if (random.bytes(64).value.length != 64) failures += 1000;
    if (kv.get("k").value === null) failures += 1000;
    if (kv.keys("").value.length != 1) failures += 1000;
    if (kv.set("other", "x").isErr) failures++;           // denied
    if (events.emit("allowed.x", "{}").isErr) failures += 1000;
    if (events.emit("other", "{}").isErr) failures++;     // denied
  }
  return Result.ok<string, string>(before.toString() + "->" + memory.size().toString() + " failures=" + failures.toString());
}
`;

const RUST = `use ice::{clock, events, kv, log, random};
fn run(input: String) -> Result<String, String> {
    let n: u32 = input.parse().unwrap();
    kv::set("k", "a value that is long enough to matter").unwrap();
    let before = core::arch::wasm32::memory_size(0);
    let mut failures = 0;
    for i in 0..n {
        let _ = log::info(&format!("call {}", i));
        if clock::now().is_err() { failures += 1; }
        if random::bytes(64).unwrap().len() != 64 { failures += 1000; }
        if kv::get("k").unwrap().is_none() { failures += 1000; }
        if kv::keys("").unwrap().len() != 1 { failures += 1000; }
        if kv::set("other", "x").is_err() { failures += 1; }
        if events::emit("allowed.x", "{}").is_err() { failures += 1000; }
        if events::emit("other", "{}").is_err() { failures += 1; }
    }
    Ok(format!("{}->{} failures={}", before, core::arch::wasm32::memory_size(0), failures))
}
ice::export_run!(run);
`;

function churnGuest(language: 'assemblyscript' | 'rust'): string {
  const dir = join(tempDir('ice-churn-'), 'churn');
  if (language === 'assemblyscript') {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.ts'), ASSEMBLYSCRIPT);
  } else {
    mkdirSync(join(dir, 'src'), { recursive: true });
    writeFileSync(
      join(dir, 'Cargo.toml'),
      `[package]\nname = "churn"\nversion = "0.1.0"\nedition = "2021"\n[lib]\ncrate-type = ["cdylib"]\n` +
        `[dependencies]\nice = { path = ${JSON.stringify(join(ROOT, 'sdk', 'rust'))} }\n`,
    );
    writeFileSync(join(dir, 'src', 'lib.rs'), RUST);
  }
  return dir;
}

describe.each(['assemblyscript', 'rust'] as const)('SDK memory (%s)', (language) => {
  it('keeps linear memory flat over 16,000 import calls, ok and err paths alike', async () => {
    process.env.CARGO_TARGET_DIR = join(ROOT, 'build', 'cargo-test-target');
    const built = await buildGuest(churnGuest(language));
    const { host } = await freshHost();
    const agent = await host.load(built.component, writePolicy(POLICY));
    const short = await agent.run('20');
    const long = await agent.run('2000');
    expect(short).toMatchObject({ ok: true, output: expect.stringMatching(/^\d+->\d+ failures=60$/) });
    expect(long).toMatchObject({ ok: true, output: expect.stringMatching(/^\d+->\d+ failures=6000$/) });
    const growth = (r: typeof short) => (r.ok ? r.output.split(' ')[0]!.split('->').map(Number) : []);
    const [shortBefore, shortAfter] = growth(short);
    const [longBefore, longAfter] = growth(long);
    expect(longBefore).toBe(shortBefore);
    expect(longAfter! - longBefore!).toBe(shortAfter! - shortBefore!);
    expect(long.calls).toBe(1 + 2000 * 8);
    host.close();
  }, 60_000);
});
