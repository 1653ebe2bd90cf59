// Benchmark guest: input "<call>:<n>" makes n import calls through the SDK, so the host can time
// one crossing (mediated or not) as (time(n) - time(0)) / n.
import { clock, kv, log, random, Result } from "ice";

export function run(input: string): Result<string, string> {
  const colon = input.indexOf(":");
  const call = input.substring(0, colon);
  const n = I32.parseInt(input.substring(colon + 1), 10);
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
