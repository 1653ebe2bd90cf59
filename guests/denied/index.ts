// denied: tries to write a secret, which its policy is expected to deny, and carries on.
// → ok("<kind>: <message>") of the denial, or err(...) if the write was allowed.
import { kv, log, Result } from "ice";

export function run(input: string): Result<string, string> {
  const r = kv.set("secrets/token", input);
  if (r.isOk) return Result.err<string, string>('expected kv.set("secrets/token") to be denied, but it was allowed');
  log.info("denied as expected; carrying on");
  return Result.ok<string, string>(r.error.kind + ": " + r.error.message);
}
