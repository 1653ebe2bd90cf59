// Hex encoding for the driver guests, whose reports must carry any bytes on one line.

const HEX = "0123456789abcdef";

/** Lowercase hex of `data`, built as ASCII bytes (a 100 KB body makes a 200 KB line). */
export function hex(data: Uint8Array): string {
  const out = new Uint8Array(data.length << 1);
  for (let i = 0; i < data.length; i++) {
    const b = <i32>data[i];
    out[i << 1] = <u8>HEX.charCodeAt(b >> 4);
    out[(i << 1) + 1] = <u8>HEX.charCodeAt(b & 15);
  }
  return String.UTF8.decode(out.buffer);
}

/** Lowercase hex of the UTF-8 bytes of `s`. */
export function hexText(s: string): string {
  return hex(Uint8Array.wrap(String.UTF8.encode(s)));
}
