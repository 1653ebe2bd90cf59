// fetcher: input is a URL. GET it with `Accept: text/plain`, log `fetched <status> (<n> bytes)`, then
// summarise the body (UTF-8, malformed sequences → U+FFFD) with model "local/echo" (64 tokens).
// → ok("status=<status> bytes=<n> summary=<text> tokens=<input>+<output>"), or
//   err("http.fetch <kind>: <message>") / err("model.complete <kind>: <message>").
import { http, log, model, Result } from "ice";

export function run(input: string): Result<string, string> {
  const fetched = http.fetch(http.Request.get(input).header("Accept", "text/plain"));
  if (!fetched.isOk) return Result.err<string, string>("http.fetch " + fetched.error.kind + ": " + fetched.error.message);
  const res = fetched.value;
  const n = res.body.length;
  log.info("fetched " + res.status.toString() + " (" + n.toString() + " bytes)"); // a denied log is ignored
  const messages = [model.Message.system("Summarize in one line."), model.Message.user(res.text())];
  const done = model.complete("local/echo", messages, 64);
  if (!done.isOk) return Result.err<string, string>("model.complete " + done.error.kind + ": " + done.error.message);
  const c = done.value;
  return Result.ok<string, string>(
    "status=" + res.status.toString() + " bytes=" + n.toString() + " summary=" + c.text +
    " tokens=" + c.usage.inputTokens.toString() + "+" + c.usage.outputTokens.toString(),
  );
}
