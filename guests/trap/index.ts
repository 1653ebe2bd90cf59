// trap: logs, then traps. Input "abort" → throws (the SDK abort logs the message at level error, then
// traps); anything else → `unreachable()` (a bare trap, nothing logged).
import { log, Result } from "ice";

export function run(input: string): Result<string, string> {
  log.info("about to trap");
  if (input == "abort") throw new Error("guest gave up: " + input);
  unreachable();
  return Result.ok<string, string>("unreachable");
}
