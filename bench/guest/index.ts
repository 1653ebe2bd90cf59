// Benchmark guest: input "<call>:<n>" makes n import calls through the SDK, so the host can time
// one crossing (mediated or not) as (time(n) - time(0)) / n. "fnv:<n>" and "sort:<n>" are pure
// compute with no import calls (a tight loop; a comparator called ~n log n times), for the cost of
// fuel metering.
import { clock, kv, log, random, Result } from "ice";

function fnv(n: i32): u32 {
  let h: u32 = 2166136261;
  for (let i = 0; i < n; i++) h = (h ^ <u32>i) * 16777619;
  return h;
}

function sortNumbers(n: i32): f64 {
  const xs = new Array<f64>(n);
  let seed: u32 = 12345;
  for (let i = 0; i < n; i++) {
    seed = seed * 1103515245 + 12345;
    xs[i] = <f64>(seed >> 8);
  }
  xs.sort((a: f64, b: f64): i32 => (a < b ? -1 : a > b ? 1 : 0));
  return xs[n >> 1];
}

export function run(input: string): Result<string, string> {
  const colon = input.indexOf(":");
  const call = input.substring(0, colon);
  const n = I32.parseInt(input.substring(colon + 1), 10);
  if (call == "fnv") return Result.ok<string, string>(fnv(n).toString());
  if (call == "sort") return Result.ok<string, string>(sortNumbers(n).toString());
  let failures = 0;
  for (let i = 0; i < n; i++) {
    if (call == "log") { if (!log.info("tick").isOk) failures++; }
    else if (call == "get") { if (!kv.get("count").isOk) failures++; }
    else if (call == "now") { if (!clock.now().isOk) failures++; }
    else if (call == "random") { if (!random.bytes(32).isOk) failures++; }
    else return Result.err<string, string>("unknown call " + call);
  }
  return Result.ok<string, string>(call + " x" + n.toString() + ", failures " + failures.toString());
}
