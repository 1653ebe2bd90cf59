// event-fetcher: for `ice serve` event triggers (the cluster tests): the run's input is the trigger's
// JSON, {"trigger":"event","event":{…,"payload":"<url>",…}}; GETs the payload URL once and counts the
// fetch in kv ("fetches"). → ok("status=<status> fetches=<n>"), or err("<fn> <kind>: <message>").
import { http, kv, Result } from "ice";

const MARK = "\"payload\":\"";

export function run(input: string): Result<string, string> {
  const at = input.indexOf(MARK);
  if (at < 0) return Result.err<string, string>("no event payload in the input");
  const start = at + MARK.length;
  const url = input.substring(start, input.indexOf("\"", start));
  const fetched = http.fetch(http.Request.get(url));
  if (!fetched.isOk) return Result.err<string, string>("http.fetch " + fetched.error.kind + ": " + fetched.error.message);
  const current = kv.get("fetches");
  if (!current.isOk) return Result.err<string, string>("kv.get " + current.error.kind + ": " + current.error.message);
  let n: i64 = 0;
  if (current.value !== null) n = I64.parseInt(current.value!);
  n += 1;
  const saved = kv.set("fetches", n.toString());
  if (!saved.isOk) return Result.err<string, string>("kv.set " + saved.error.kind + ": " + saved.error.message);
  return Result.ok<string, string>("status=" + fetched.value.status.toString() + " fetches=" + n.toString());
}
