/**
 * Custom sections of a core module or component, read and appended without a wasm library: the
 * binary is a header and then sections of (id byte, LEB128 u32 size, payload), where a custom
 * section (id 0) starts its payload with a LEB128-length-prefixed UTF-8 name.
 */

const HEADER_BYTES = 8;
const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const CUSTOM_SECTION_ID = 0;

export interface CustomSection {
  name: string;
  payload: Uint8Array;
}

/** The custom sections at the top level of `bytes` (not those of nested modules), in order. */
export function customSections(bytes: Uint8Array): CustomSection[] {
  if (bytes.length < HEADER_BYTES || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new Error('not a WebAssembly binary (no \\0asm header)');
  }
  const found: CustomSection[] = [];
  let at = HEADER_BYTES;
  while (at < bytes.length) {
    const id = bytes[at++] as number;
    const [size, payloadAt] = readU32(bytes, at);
    const end = payloadAt + size;
    if (end > bytes.length) throw new Error(`section ${id} at byte ${at - 1} runs past the end of the binary`);
    if (id === CUSTOM_SECTION_ID) {
      const [nameLength, nameAt] = readU32(bytes, payloadAt);
      if (nameAt + nameLength > end) throw new Error(`custom section at byte ${at - 1} has a name longer than itself`);
      const name = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(nameAt, nameAt + nameLength));
      found.push({ name, payload: bytes.subarray(nameAt + nameLength, end) });
    }
    at = end;
  }
  return found;
}

/** `bytes` with a custom section appended: sections may end a module or component in any number. */
export function appendCustomSection(bytes: Uint8Array, name: string, payload: Uint8Array): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const body = [...leb128(nameBytes.length), ...nameBytes];
  const sectionSize = leb128(body.length + payload.length);
  const out = new Uint8Array(bytes.length + 1 + sectionSize.length + body.length + payload.length);
  let at = 0;
  out.set(bytes, at);
  at += bytes.length;
  out[at++] = CUSTOM_SECTION_ID;
  out.set(sectionSize, at);
  at += sectionSize.length;
  out.set(body, at);
  at += body.length;
  out.set(payload, at);
  return out;
}

/** Unsigned LEB128, at most 5 bytes (a u32): the value and the offset after it. */
function readU32(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  for (let i = 0; i < 5; i++) {
    if (at + i >= bytes.length) throw new Error(`LEB128 at byte ${at} runs past the end of the binary`);
    const byte = bytes[at + i] as number;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) {
      if (value > 0xffff_ffff) throw new Error(`LEB128 at byte ${at} is larger than a u32`);
      return [value, at + i + 1];
    }
  }
  throw new Error(`LEB128 at byte ${at} is longer than 5 bytes`);
}

function leb128(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  do {
    let byte = rest & 0x7f;
    rest = Math.floor(rest / 128);
    if (rest !== 0) byte |= 0x80;
    out.push(byte);
  } while (rest !== 0);
  return out;
}
