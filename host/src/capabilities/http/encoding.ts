/**
 * Undoing a response's Content-Encoding, so a secret can be searched for in what it really says. Only
 * used for a request that carried a secret: that request asked for `identity`, so a server that
 * encodes anyway is decoded here (gzip, deflate, br), bounded by maxResponseBytes, and a coding the host
 * does not know is refused rather than passed on unchecked.
 */
import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import type { Header } from './rules.js';

/** Headers that describe the encoded bytes; wrong once the body is decoded. */
const ENCODED_ONLY: ReadonlySet<string> = new Set(['content-encoding', 'content-length', 'content-md5', 'digest', 'content-digest']);
/** A chain of codings longer than this is not a real server's answer. */
const MAX_CODINGS = 4;

export function decodeBody(
  headers: readonly Header[],
  body: Uint8Array,
  maxBytes: number,
): { headers: readonly Header[]; body: Uint8Array } | { failed: string } {
  const codings = headers
    .filter((h) => h.name.toLowerCase() === 'content-encoding')
    .flatMap((h) => h.value.split(','))
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  // A HEAD, 204 or 304 answer names the coding of a body it does not carry.
  if (codings.length === 0 || body.byteLength === 0) return { headers, body };
  if (codings.length > MAX_CODINGS) return { failed: `is encoded ${codings.length} times over (Content-Encoding: ${codings.join(', ').slice(0, 100)})` };
  let out = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  // Codings are listed in the order they were applied: undo the last first.
  for (const coding of [...codings].reverse()) {
    const decode = decoder(coding);
    if (decode === undefined) {
      return { failed: `is encoded with ${JSON.stringify(coding.slice(0, 40))} (Content-Encoding), which the host cannot decode (it decodes gzip, deflate and br)` };
    }
    try {
      out = decode(out, maxBytes);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'ERR_BUFFER_TOO_LARGE') return { failed: `decodes to more than grants.http.maxResponseBytes (${maxBytes} bytes)` };
      return { failed: `says Content-Encoding ${coding} but is not valid ${coding} data` };
    }
  }
  return { headers: headers.filter((h) => !ENCODED_ONLY.has(h.name.toLowerCase())), body: new Uint8Array(out) };
}

function decoder(coding: string): ((input: Buffer, maxOutputLength: number) => Buffer) | undefined {
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      return (input, maxOutputLength) => gunzipSync(input, { maxOutputLength });
    case 'deflate':
      // RFC 9110 says zlib-wrapped; some servers send raw deflate.
      return (input, maxOutputLength) => {
        try {
          return inflateSync(input, { maxOutputLength });
        } catch (error) {
          if ((error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') throw error;
          return inflateRawSync(input, { maxOutputLength });
        }
      };
    case 'br':
      return (input, maxOutputLength) => brotliDecompressSync(input, { maxOutputLength });
    default:
      return undefined;
  }
}
