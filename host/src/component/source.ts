/**
 * Reading a component: bounded before anything parses it. A component is untrusted input, and every
 * later stage (sha256, wasm-tools, the jco transpile, binaryen) costs time and memory in proportion to
 * its size (a 150 MB component took 25 s and 3 GB before it was refused), so the size is checked first:
 * on a file, while reading it (never more than the cap plus one byte, even from a FIFO or a file
 * that grows); on bytes, before hashing them.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { LoadError, componentUnreadable } from './errors.js';

/**
 * Default cap, for the library and the CLI. ICE's own guests are well under 1 MiB and a
 * componentize-js (JavaScript) guest about 12 MiB; raise it with `maxComponentBytes` /
 * `--max-component-bytes` for larger ones.
 */
export const DEFAULT_MAX_COMPONENT_BYTES = 64 * 1024 * 1024;

/** @throws LoadError (too-large) when `bytes` is over `maxBytes`. */
export function checkComponentSize(bytes: Uint8Array, origin: string, maxBytes: number): void {
  if (bytes.length > maxBytes) throw tooLarge(origin, `is ${bytes.length} bytes`, maxBytes);
}

/**
 * The file's bytes, read only while they fit under `maxBytes`.
 * @throws LoadError (not-found) when it cannot be read, (too-large) when it is over the cap
 */
export function readComponentFile(path: string, maxBytes: number): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw unreadable(path, error);
  }
  try {
    const size = fstatSync(fd).size;
    if (size > maxBytes) throw tooLarge(path, `is ${size} bytes`, maxBytes);
    // One byte over what is expected tells a file that grew (or a pipe, size 0) from one that fits;
    // such a file gets one buffer of the cap plus one, so reading stops at the cap either way.
    let buffer = Buffer.allocUnsafe(size + 1);
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (length > maxBytes) throw tooLarge(path, `has more than ${maxBytes} bytes`, maxBytes);
        const larger = Buffer.allocUnsafe(maxBytes + 1);
        buffer.copy(larger, 0, 0, length);
        buffer = larger;
      }
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) return buffer.subarray(0, length);
      length += read;
    }
  } catch (error) {
    if (error instanceof LoadError) throw error;
    throw unreadable(path, error);
  } finally {
    closeSync(fd);
  }
}

function unreadable(path: string, error: unknown): LoadError {
  return new LoadError('not-found', path, componentUnreadable(path, error));
}

function tooLarge(origin: string, what: string, maxBytes: number): LoadError {
  return new LoadError(
    'too-large',
    origin,
    `${origin} ${what}, over the host's limit of ${maxBytes} bytes for a component: ` +
      'raise it with --max-component-bytes (CLI) or maxComponentBytes (host options) if this component is trusted to be that large',
  );
}
