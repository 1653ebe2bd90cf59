// ice:agent/events: domain events the agent publishes; each one is recorded in the run's ledger.
import { _events_emit } from "./imports";
import { IMPORT_RET, freeBlock, loweredLen, lowerString, takeStatus } from "./abi";
import { Status } from "./result";

export namespace events {
  /** Emits an event of `kind` (e.g. "counter.incremented") with a payload (typically JSON). */
  export function emit(kind: string, payload: string): Status {
    const k = lowerString(kind);
    const kLen = loweredLen;
    const p = lowerString(payload);
    _events_emit(k, kLen, p, loweredLen, IMPORT_RET);
    freeBlock(k);
    freeBlock(p);
    return takeStatus();
  }
}
