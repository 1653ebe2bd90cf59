// clock-random: input is a decimal byte count (empty → 16).
// → ok("now=<ms> random=<lowercase hex>"), or err("clock.now <kind>: <message>") /
//   err("random.bytes <kind>: <message>").
import { clock, random, Result } from "ice";

// Lowercase hex digit for a nibble (0-15).
function hexDigit(nibble: i32): i32 {
  return nibble < 10 ? 0x30 + nibble : 0x57 + nibble;
}

export function run(input: string): Result<string, string> {
  const count: u32 = input.length == 0 ? 16 : <u32>U32.parseInt(input, 10);
  const now = clock.now();
  if (!now.isOk) return Result.err<string, string>("clock.now " + now.error.kind + ": " + now.error.message);
  const bytes = random.bytes(count);
  if (!bytes.isOk) return Result.err<string, string>("random.bytes " + bytes.error.kind + ": " + bytes.error.message);
  const data = bytes.value;
  const digits = new Array<i32>(data.length * 2);
  for (let i = 0; i < data.length; i++) {
    const b = <i32>data[i];
    digits[i * 2] = hexDigit(b >> 4);
    digits[i * 2 + 1] = hexDigit(b & 15);
  }
  return Result.ok<string, string>("now=" + now.value.toString() + " random=" + String.fromCharCodes(digits));
}
