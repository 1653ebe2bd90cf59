// model-driver: one model.complete per non-empty input line `<model>\t<max_tokens>\t<content>`
// with the single message {role: "user", content}; content is everything after the second tab,
// max_tokens its leading decimal digits (none ⇒ 0; saturating at 4294967295). Nothing is validated.
// → ok(one line per call: "ok <input_tokens> <output_tokens> <hex text>" or
//   "err <kind> <hex message>"); never err.
import { model, Result } from "ice";
import { hexText } from "../shared/hex";

export function run(input: string): Result<string, string> {
  const lines = input.split("\n");
  const report = new Array<string>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.length == 0) continue;
    const tab1 = line.indexOf("\t");
    const tab2 = tab1 < 0 ? -1 : line.indexOf("\t", tab1 + 1);
    const name = tab1 < 0 ? line : line.substring(0, tab1);
    const max = tab1 < 0 ? "" : tab2 < 0 ? line.substring(tab1 + 1) : line.substring(tab1 + 1, tab2);
    const content = tab2 < 0 ? "" : line.substring(tab2 + 1);
    const r = model.complete(name, [model.Message.user(content)], maxTokens(max));
    if (!r.isOk) {
      report.push("err " + r.error.kind + " " + hexText(r.error.message));
      continue;
    }
    const c = r.value;
    report.push("ok " + c.usage.inputTokens.toString() + " " + c.usage.outputTokens.toString() + " " + hexText(c.text));
  }
  return Result.ok<string, string>(report.join("\n"));
}

// The leading decimal digits of `s` as a u32, saturating at 4294967295 (so a huge budget reaches the
// host as the largest one rather than wrapping to a small one).
function maxTokens(s: string): u32 {
  let n: u64 = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + <u64>(c - 0x30);
    if (n > <u64>U32.MAX_VALUE) return U32.MAX_VALUE;
  }
  return <u32>n;
}
