/**
 * The sizes a guest passes to WASI, bounded before preview2-shim allocates anything (grants.wasi.maxReadBytes,
 * maxWriteBytes, maxRandomBytes, maxPathBytes). Where the interface lets an answer be short (a read, a
 * descriptor write, a splice, a skip) the length is lowered to the knob: the guest sees a legal short answer
 * and loops. Where it does not (random bytes must be exactly `len`; a stream write past its check-write
 * permit traps by the WASI spec) the call is refused naming the knob.
 */
import type { WasiGrant } from './policy.js';

/** A refusal: `payload` is the WASI error code where the function has one; without it the run traps. */
export interface BoundRefusal {
  readonly rule: string;
  readonly reason: string;
  readonly payload?: unknown;
}

/** Methods whose argument `index` is a length that may be answered short. */
const SHORTENED: Readonly<Record<string, { readonly index: number; readonly knob: 'maxReadBytes' | 'maxWriteBytes' }>> = {
  read: { index: 0, knob: 'maxReadBytes' }, // descriptor.read(len, offset), input-stream.read(len)
  blockingRead: { index: 0, knob: 'maxReadBytes' },
  skip: { index: 0, knob: 'maxReadBytes' },
  blockingSkip: { index: 0, knob: 'maxReadBytes' },
  splice: { index: 1, knob: 'maxReadBytes' }, // output-stream.splice(src, len)
  blockingSplice: { index: 1, knob: 'maxReadBytes' },
};

/** Output-stream writes: the guest must stay within check-write, which never permits more than maxWriteBytes. */
const STREAM_WRITES: ReadonlySet<string> = new Set(['write', 'blockingWriteAndFlush', 'writeZeroes', 'blockingWriteZeroesAndFlush']);

const RANDOM: ReadonlySet<string> = new Set(['getRandomBytes', 'getInsecureRandomBytes']);

function lengthOf(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return BigInt(Math.trunc(value));
  if (value instanceof Uint8Array) return BigInt(value.byteLength);
  return undefined;
}

/**
 * Refuses a call whose size is over a knob and has no short answer. `descriptor` says whether `self` is a
 * filesystem descriptor (whose `write(buffer, offset)` is shortened, not refused).
 */
export function checkBounds(grant: WasiGrant, iface: string, jsName: string, args: readonly unknown[], descriptor: boolean): BoundRefusal | undefined {
  if (iface.startsWith('wasi:random/') && RANDOM.has(jsName)) {
    const len = lengthOf(args[0]) ?? 0n;
    if (len > BigInt(grant.maxRandomBytes)) {
      return { rule: 'grants.wasi.maxRandomBytes', reason: `${len} random bytes were asked for in one call, over grants.wasi.maxRandomBytes (${grant.maxRandomBytes}); ask in smaller pieces or raise it` };
    }
    return undefined;
  }
  if (!descriptor && STREAM_WRITES.has(jsName)) {
    const len = lengthOf(args[0]) ?? 0n;
    if (len > BigInt(grant.maxWriteBytes)) {
      return { rule: 'grants.wasi.maxWriteBytes', reason: `a stream write of ${len} bytes is over grants.wasi.maxWriteBytes (${grant.maxWriteBytes}), which check-write permits at most; write in smaller pieces or raise it` };
    }
    return undefined;
  }
  if (descriptor) {
    for (const arg of args) {
      if (typeof arg === 'string' && Buffer.byteLength(arg, 'utf8') > grant.maxPathBytes) {
        return { rule: 'grants.wasi.maxPathBytes', reason: `a path of ${Buffer.byteLength(arg, 'utf8')} bytes is over grants.wasi.maxPathBytes (${grant.maxPathBytes})`, payload: 'name-too-long' };
      }
    }
  }
  return undefined;
}

/** The arguments the shim is given: lengths over a knob lowered to it (a short answer the interface allows). */
export function shortened(grant: WasiGrant, jsName: string, args: readonly unknown[], descriptor: boolean): unknown[] {
  const out = [...args];
  const rule = SHORTENED[jsName];
  if (rule) {
    const len = lengthOf(out[rule.index]);
    const max = BigInt(grant[rule.knob]);
    if (len !== undefined && len > max) out[rule.index] = typeof out[rule.index] === 'number' ? Number(max) : max;
  }
  if (descriptor && jsName === 'write' && out[0] instanceof Uint8Array && out[0].byteLength > grant.maxWriteBytes) {
    out[0] = out[0].subarray(0, grant.maxWriteBytes);
  }
  return out;
}

/** check-write's permit: never more than a single write may carry. */
export function boundedPermit(grant: WasiGrant, jsName: string, result: unknown): unknown {
  if (jsName === 'checkWrite' && typeof result === 'bigint' && result > BigInt(grant.maxWriteBytes)) return BigInt(grant.maxWriteBytes);
  return result;
}
