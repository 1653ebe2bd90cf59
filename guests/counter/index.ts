// counter: a run counter kept in kv.
//   "reset"         → deletes "count"                       → ok("count reset")
//   "keys:<prefix>" → kv.keys(prefix)                       → ok(keys joined by ",")
//   anything else   → count = get("count") + 1, set("count"), set("history/<n>", input) (may be
//                     denied: ignored)                      → ok("count=<n>")
// A failing get/set/delete/keys of the counter → err("kv.<fn> <kind>: <message>").
import { kv, Result, IceError } from "ice";

function fail(fn: string, e: IceError): Result<string, string> {
  return Result.err<string, string>("kv." + fn + " " + e.kind + ": " + e.message);
}

export function run(input: string): Result<string, string> {
  if (input == "reset") {
    const deleted = kv.delete("count");
    if (!deleted.isOk) return fail("delete", deleted.error);
    return Result.ok<string, string>("count reset");
  }
  if (input.startsWith("keys:")) {
    const keys = kv.keys(input.substring(5));
    if (!keys.isOk) return fail("keys", keys.error);
    return Result.ok<string, string>(keys.value.join(","));
  }
  const current = kv.get("count");
  if (!current.isOk) return fail("get", current.error);
  const stored = current.value;
  let n: i64 = 0;
  if (stored !== null) n = I64.parseInt(stored);
  n += 1;
  const saved = kv.set("count", n.toString());
  if (!saved.isOk) return fail("set", saved.error);
  kv.set("history/" + n.toString(), input); // a policy may deny history: ignored
  return Result.ok<string, string>("count=" + n.toString());
}
