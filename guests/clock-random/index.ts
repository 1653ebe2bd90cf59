// clock-random: input is a decimal byte count (empty → 16).
// → ok("now=<ms> random=<lowercase hex>"), or err("clock.now <kind>: <message>") /
//   err("random.bytes <kind>: <message>").
import { clock, random, Result } from "ice";

const HEX = "0123456789abcdef";

export function run(input: string): Result<string, string> {
  const count: u32 = input.length == 0 ? 16 : <u32>U32.parseInt(input, 10);
  const now = clock.now();
  if (!now.isOk) return Result.err<string, string>("clock.now " + now.error.kind + ": " + now.error.message);
  const bytes = random.bytes(count);
  if (!bytes.isOk) return Result.err<string, string>("random.bytes " + bytes.error.kind + ": " + bytes.error.message);
  const data = bytes.value;
  const parts = new Array<string>(data.length * 2);
  for (let i = 0; i < data.length; i++) {
    const b = data[i];
    parts[i * 2] = HEX.charAt(b >> 4);
    parts[i * 2 + 1] = HEX.charAt(b & 15);
  }
  return Result.ok<string, string>("now=" + now.value.toString() + " random=" + parts.join(""));
}
