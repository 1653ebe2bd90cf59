/**
 * ICE's own `wasi:cli` streams: stdout and stderr captured (each write recorded, the text passed to the
 * host's output sink, the total bounded), stdin empty. They answer the same methods as preview2-shim's
 * streams, so the guest cannot tell them apart — but nothing of the host process's own stdio is reachable.
 */

import type { StdStream } from '../run-services.js';

export type { StdStream };

/** A pollable that is always ready: ICE's streams never block. */
export class ReadyPollable {
  ready(): boolean {
    return true;
  }
  block(): void {}
}

/** A bounded, captured stdout or stderr. */
export class CaptureSink {
  written = 0;
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });

  constructor(
    readonly stream: StdStream,
    readonly maxBytes: number,
    private readonly onText: (text: string) => void,
  ) {}

  room(): number {
    return Math.max(0, this.maxBytes - this.written);
  }

  checkWrite(): bigint {
    return BigInt(Math.min(this.room(), 1 << 20));
  }
  write(contents: Uint8Array): void {
    this.written += contents.byteLength;
    const text = this.decoder.decode(contents, { stream: true });
    if (text !== '') this.onText(text);
  }
  blockingWriteAndFlush(contents: Uint8Array): void {
    this.write(contents);
  }
  flush(): void {}
  blockingFlush(): void {}
  writeZeroes(len: bigint): void {
    this.write(new Uint8Array(Number(len)));
  }
  blockingWriteZeroesAndFlush(len: bigint): void {
    this.writeZeroes(len);
  }
  subscribe(): ReadyPollable {
    return new ReadyPollable();
  }
  splice(): bigint {
    throw { tag: 'closed' };
  }
  blockingSplice(): bigint {
    throw { tag: 'closed' };
  }
}

/** An stdin that is at its end. */
export class EmptySource {
  read(): Uint8Array {
    throw { tag: 'closed' };
  }
  blockingRead(): Uint8Array {
    throw { tag: 'closed' };
  }
  skip(): bigint {
    throw { tag: 'closed' };
  }
  blockingSkip(): bigint {
    throw { tag: 'closed' };
  }
  subscribe(): ReadyPollable {
    return new ReadyPollable();
  }
}

/** A command's stdin: the run's input, read once (grants.wasi.stdin: input). */
export class InputSource {
  private offset = 0;
  constructor(private readonly bytes: Uint8Array) {}

  read(len: bigint): Uint8Array {
    if (this.offset >= this.bytes.length) throw { tag: 'closed' };
    const n = Math.min(Number(len), this.bytes.length - this.offset);
    const chunk = this.bytes.slice(this.offset, this.offset + n);
    this.offset += n;
    return chunk;
  }
  blockingRead(len: bigint): Uint8Array {
    return this.read(len);
  }
  skip(len: bigint): bigint {
    return BigInt(this.read(len).length);
  }
  blockingSkip(len: bigint): bigint {
    return this.skip(len);
  }
  subscribe(): ReadyPollable {
    return new ReadyPollable();
  }
}

/** Methods of output streams that write (and so are bounded and recorded with their bytes). */
export const WRITE_METHODS: ReadonlySet<string> = new Set(['write', 'blockingWriteAndFlush', 'writeZeroes', 'blockingWriteZeroesAndFlush']);

/** `poll` over ICE's and the shim's pollables: ICE's are always ready, so they answer at once. */
export function pollMixed(list: readonly unknown[], shimPoll: ((list: unknown[]) => Uint32Array) | undefined): Uint32Array {
  const ready: number[] = [];
  list.forEach((p, i) => {
    if (p instanceof ReadyPollable) ready.push(i);
  });
  if (ready.length > 0 || list.length === 0) return new Uint32Array(ready);
  if (!shimPoll) throw new Error('poll: no pollable can become ready');
  return shimPoll([...list]);
}
