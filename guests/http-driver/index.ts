// http-driver: makes one http.fetch per non-empty input line, for the egress tests. A line is
// tab-separated: method, url, then any number of `h:<name>:<value>` (a header; the value is
// everything after the second colon, "" if there is none) and `b:<text>` (the body, UTF-8 of text;
// the last one wins). Other fields are ignored. Nothing is validated here: whatever is written
// (lowercase methods, "\r", empty names) goes straight to the host, which must refuse bad input.
// → ok(one line per request: "ok <status> <hex headers> <hex body>", headers rendered as
//   "<name>: <value>\n" each, or "err <kind> <hex message>"); never err.
import { http, Result } from "ice";
import { hex, hexText } from "../shared/hex";

function parse(line: string): http.Request {
  const fields = line.split("\t");
  const req = new http.Request(fields[0], fields.length > 1 ? fields[1] : "");
  for (let i = 2; i < fields.length; i++) {
    const f = fields[i];
    if (f.startsWith("h:")) {
      const colon = f.indexOf(":", 2);
      if (colon < 0) req.header(f.substring(2), "");
      else req.header(f.substring(2, colon), f.substring(colon + 1));
    } else if (f.startsWith("b:")) {
      req.withText(f.substring(2));
    }
  }
  return req;
}

export function run(input: string): Result<string, string> {
  const lines = input.split("\n");
  const report = new Array<string>();
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].length == 0) continue;
    const r = http.fetch(parse(lines[i]));
    if (!r.isOk) {
      report.push("err " + r.error.kind + " " + hexText(r.error.message));
      continue;
    }
    const res = r.value;
    let headers = "";
    for (let h = 0; h < res.headers.length; h++) headers += res.headers[h].name + ": " + res.headers[h].value + "\n";
    report.push("ok " + res.status.toString() + " " + hexText(headers) + " " + hex(res.body));
  }
  return Result.ok<string, string>(report.join("\n"));
}
