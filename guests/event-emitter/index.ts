// event-emitter: each non-empty input line is "<kind> <payload>" (the payload may be empty); emits
// each, carrying on after errors. → ok(one line per event: "ok <kind>" or "<error kind> <kind>: <message>")
import { events, Result } from "ice";

export function run(input: string): Result<string, string> {
  const lines = input.split("\n");
  const report = new Array<string>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.length == 0) continue;
    const space = line.indexOf(" ");
    const kind = space < 0 ? line : line.substring(0, space);
    const payload = space < 0 ? "" : line.substring(space + 1);
    const status = events.emit(kind, payload);
    if (status.isOk) report.push("ok " + kind);
    else report.push(status.error.kind + " " + kind + ": " + status.error.message);
  }
  return Result.ok<string, string>(report.join("\n"));
}
