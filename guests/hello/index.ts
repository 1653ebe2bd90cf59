// hello: greets its input. Logs once (the log status is ignored: a denied log must not stop it).
import { log, Result } from "ice";

export function run(input: string): Result<string, string> {
  log.info("hello called with " + input.length.toString() + " chars");
  if (input.length == 0) return Result.err<string, string>("hello needs a name");
  return Result.ok<string, string>("hello, " + input + "!");
}
