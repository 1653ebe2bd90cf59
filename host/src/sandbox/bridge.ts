/**
 * The worker bridge: a guest import served by an async function on the host thread, called
 * synchronously from the worker running the guest (a guest cannot await). The worker writes the request
 * into shared memory, wakes the host thread and blocks (Atomics.wait); the host thread, waiting with
 * Atomics.waitAsync, runs the effect, writes the answer and wakes the worker. Effects that must not run
 * inside a worker (network, model calls, approvals, which need the host's event loop or credentials)
 * are served this way.
 *
 * Layout (Int32 view of the SharedArrayBuffer): [0] state, [1] payload length; payload bytes from 8.
 * One call at a time per bridge: a worker runs one guest, and a guest is single-threaded.
 */

const IDLE = 0;
const REQUEST = 1;
const RESPONSE = 2;
const HEADER_BYTES = 8;

/** Room for the largest message: an 8 MiB body (grants.http.max*Bytes) as base64, plus its record. */
export const BRIDGE_BYTES = 16 << 20;

// Node 20 has Atomics.waitAsync; TypeScript's ES2022 lib does not declare it.
const waitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number): { async: boolean; value: Promise<string> | string };
}).waitAsync;

export class BridgeError extends Error {
  override readonly name = 'BridgeError';
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Wire {
  readonly control: Int32Array;
  readonly bytes: Uint8Array;
}

function wire(buffer: SharedArrayBuffer): Wire {
  return { control: new Int32Array(buffer, 0, 2), bytes: new Uint8Array(buffer, HEADER_BYTES) };
}

function put(w: Wire, value: unknown): void {
  const { read, written } = encoder.encodeInto(JSON.stringify(value), w.bytes);
  if (read === undefined || written === undefined || written >= w.bytes.length) {
    throw new BridgeError(`a bridge message is over ${w.bytes.length} bytes`);
  }
  w.control[1] = written;
}

function take(w: Wire): unknown {
  return JSON.parse(decoder.decode(w.bytes.slice(0, w.control[1]!)));
}

/** The worker's end: a blocking call. */
export class BridgeClient {
  private readonly w: Wire;

  constructor(buffer: SharedArrayBuffer) {
    this.w = wire(buffer);
  }

  call(op: string, args: unknown): unknown {
    put(this.w, { op, args });
    Atomics.store(this.w.control, 0, REQUEST);
    Atomics.notify(this.w.control, 0);
    // Blocks this worker only; its deadline (a terminate from the host) still applies.
    while (Atomics.wait(this.w.control, 0, REQUEST) === 'ok' && Atomics.load(this.w.control, 0) === REQUEST);
    const answer = take(this.w) as { ok: unknown } | { error: string };
    Atomics.store(this.w.control, 0, IDLE);
    if ('error' in answer) throw new BridgeError(answer.error);
    return answer.ok;
  }
}

export type BridgeHandler = (op: string, args: unknown) => Promise<unknown>;

/** The host thread's end: serves requests until closed. */
export class BridgeServer {
  private readonly w: Wire;
  private open = true;

  constructor(buffer: SharedArrayBuffer, private readonly handler: BridgeHandler) {
    this.w = wire(buffer);
    void this.serve();
  }

  close(): void {
    this.open = false;
    // Wakes the waiting loop so it can see it is closed.
    Atomics.notify(this.w.control, 0);
  }

  private async serve(): Promise<void> {
    while (this.open) {
      // One read for both the test and the wait: reading twice could wait on a REQUEST whose wake-up
      // already happened, and both threads would wait for ever.
      const state = Atomics.load(this.w.control, 0);
      if (state !== REQUEST) {
        await waitAsync(this.w.control, 0, state).value;
        continue;
      }
      let answer: { ok: unknown } | { error: string };
      try {
        const { op, args } = take(this.w) as { op: string; args: unknown };
        answer = { ok: await this.handler(op, args) };
      } catch (error) {
        answer = { error: error instanceof Error ? error.message : String(error) };
      }
      try {
        put(this.w, answer);
      } catch (error) {
        put(this.w, { error: (error as Error).message });
      }
      Atomics.store(this.w.control, 0, RESPONSE);
      Atomics.notify(this.w.control, 0);
    }
  }
}
